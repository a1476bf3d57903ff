//! `wasm` (an fcd extension; FC has no such runtime): the code package holds a WebAssembly
//! component or WASI command module, run in process by the server's wasm engine
//! ([`crate::wasm`]) instead of in an OS process.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Launch, Placement, ProcessLaunch, Runtime};
use crate::wasm::WasmEngine;

#[derive(Debug)]
pub(crate) struct Wasm {
    pub(crate) engine: Arc<WasmEngine>,
}

/// What the wasm backend needs to start an instance: the engine and the guest file.
#[derive(Debug)]
pub(crate) struct WasmLaunch {
    pub(crate) engine: Arc<WasmEngine>,
    pub(crate) guest: PathBuf,
}

impl Runtime for Wasm {
    fn names(&self) -> &'static [&'static str] {
        &["wasm"]
    }

    fn launch(&self, p: &Placement<'_>) -> Result<Launch, crate::StartError> {
        let guest = WasmEngine::locate(&p.spec.code_dir, &p.spec.function.handler)
            .map_err(crate::StartError::Spawn)?;
        Ok(Launch::Wasm(WasmLaunch {
            engine: self.engine.clone(),
            guest,
        }))
    }

    fn blank_launch(&self, _memory_mb: u32) -> Option<ProcessLaunch> {
        None
    }

    fn describe(&self) -> String {
        self.engine.describe()
    }

    fn wasm_engine(&self) -> Option<Arc<WasmEngine>> {
        Some(self.engine.clone())
    }
}
