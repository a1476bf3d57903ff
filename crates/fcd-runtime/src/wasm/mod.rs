//! The in-process WebAssembly backend: fcd's `wasm` runtime on wasmtime.
//!
//! One [`WasmEngine`] per server owns the wasmtime `Engine` (pooling allocator sized from the
//! server's budget, epoch interruption driven by one ticker thread), the linkers, and the
//! compiled code: each guest file is compiled once, ahead of its first call, into
//! `<cache-dir>/<sha256 of the file>-<engine fingerprint>.cwasm` and kept loaded
//! (pre-instantiated, with its imports resolved) in memory while it is in use.
//!
//! A guest is one of three kinds ([`GuestKind`]): a component exporting
//! `wasi:http/incoming-handler` (the `wasi:http/proxy` world, with the WASI 0.2 command
//! interfaces linked beside it as `wasmtime serve -Scli` does), a component exporting
//! `wasi:cli/run`, or a core module exporting `_start` (WASI preview 1). How a call runs on
//! each is [`instance`]'s business.
//!
//! Invariants:
//! - compiling never happens on a request path that did not ask for it: CreateFunction and
//!   UpdateFunction start it ([`WasmEngine::prepare`]); an invocation of code not yet compiled
//!   (another node's update, a restart with an empty cache) waits for the same single compile;
//! - a `.cwasm` is only ever read from fcd's own cache directory, written there complete (a
//!   temporary file renamed into place) and named by the digest of the source and the engine's
//!   compatibility fingerprint, so a file from another engine build is never loaded.

pub(crate) mod instance;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::WasmOptions;
use instance::{CommandHost, Host};

/// How often the engine's epoch advances: the granularity of timeouts and of the yields that
/// keep a busy guest from holding a server thread.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How much of a pooled memory slot, and of a table slot, stays mapped between two instances
/// (reset by copying instead of unmapping).
const KEEP_RESIDENT_MEMORY: usize = 32 << 20;
const KEEP_RESIDENT_TABLE: usize = 1 << 20;

/// How many compiled guests stay loaded while nothing uses them.
const KEEP_LOADED: usize = 64;

/// What a guest file is, and so how it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestKind {
    /// A `wasi:http/proxy` component: every call is an HTTP request.
    Http,
    /// A `wasi:cli/run` component: the event on stdin, the result on stdout.
    CommandComponent,
    /// A WASI preview 1 core module with `_start`: as a command component.
    CommandModule,
}

impl GuestKind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            GuestKind::Http => "wasi:http component",
            GuestKind::CommandComponent => "wasi:cli command component",
            GuestKind::CommandModule => "WASI command module",
        }
    }
}

/// A compiled guest, ready to be instantiated for each call.
pub(crate) enum Loaded {
    Http(ProxyPre<Host>),
    CommandComponent(CommandPre<Host>),
    CommandModule(wasmtime::InstancePre<CommandHost>),
}

impl Loaded {
    pub(crate) fn kind(&self) -> GuestKind {
        match self {
            Loaded::Http(_) => GuestKind::Http,
            Loaded::CommandComponent(_) => GuestKind::CommandComponent,
            Loaded::CommandModule(_) => GuestKind::CommandModule,
        }
    }
}

type Slot = Arc<OnceCell<Result<Arc<Loaded>, String>>>;

/// A guest in memory and when it was last asked for.
struct Held {
    slot: Slot,
    used: std::time::Instant,
}

/// The engine, its linkers and the compiled guests.
pub struct WasmEngine {
    engine: Engine,
    components: Linker<Host>,
    modules: wasmtime::Linker<CommandHost>,
    cache_dir: PathBuf,
    fingerprint: String,
    pooling: bool,
    /// Guests by the path of their source file (inside an extracted, immutable code package),
    /// with the order they were first asked for (to unload the oldest unused).
    loaded: Mutex<(HashMap<PathBuf, Held>, Vec<PathBuf>)>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("cache_dir", &self.cache_dir)
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

fn config(pooling: Option<&WasmOptions>) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.wasm_component_model(true);
    if let Some(opts) = pooling {
        // Every call is its own store with one component instance; a lane of the instance
        // pool runs up to `instanceConcurrency` of them. Four stores per budgeted instance
        // leaves room for concurrency above 1; guests made by componentize-py/-js have tens
        // of core instances and tables and a few memories each.
        let stores = opts.max_instances.saturating_mul(4).clamp(64, 8192);
        let mut p = PoolingAllocationConfig::new();
        p.total_component_instances(stores)
            .total_stacks(stores)
            .max_core_instances_per_component(64)
            .total_core_instances(stores.saturating_mul(16))
            .max_memories_per_component(16)
            .total_memories(stores.saturating_mul(2))
            .max_tables_per_component(64)
            .total_tables(stores.saturating_mul(16))
            .table_elements(100_000)
            .max_memory_size(4 << 30)
            // A fresh instance per call would otherwise fault in, page by page, every page of
            // the guest's memory image it touches (a componentize-py guest: ~40 % of a call's
            // time); with these, the pages a call dirtied are copied back from the image and
            // stay mapped, found by the PAGEMAP_SCAN ioctl where the kernel has it (6.7+).
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

impl WasmEngine {
    /// Builds the engine and its linkers and starts the epoch ticker. Where the pooling
    /// allocator cannot reserve its address space (a `ulimit -v`), it falls back to
    /// allocating on demand and says so.
    pub fn new(opts: &WasmOptions) -> Result<Arc<WasmEngine>, String> {
        let (engine, pooling) = match opts.pooling {
            true => match Engine::new(&config(Some(opts))) {
                Ok(e) => (e, true),
                Err(e) => {
                    tracing::warn!(error = %e, "wasm: the pooling allocator is unavailable here; instances are allocated on demand");
                    (
                        Engine::new(&config(None)).map_err(|e| e.to_string())?,
                        false,
                    )
                }
            },
            false => (
                Engine::new(&config(None)).map_err(|e| e.to_string())?,
                false,
            ),
        };
        let mut components = Linker::<Host>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut components).map_err(|e| e.to_string())?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut components)
            .map_err(|e| e.to_string())?;
        let mut modules = wasmtime::Linker::<CommandHost>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut modules, |h: &mut CommandHost| &mut h.wasi)
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&opts.cache_dir)
            .map_err(|e| format!("creating {}: {e}", opts.cache_dir.display()))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let fingerprint = format!("{:016x}", h.finish());
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("fcd-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(WasmEngine {
            engine,
            components,
            modules,
            cache_dir: opts.cache_dir.clone(),
            fingerprint,
            pooling,
            loaded: Mutex::new((HashMap::new(), Vec::new())),
        }))
    }

    /// Unloads the guests no instance has run for `idle` (the instance idle timeout): their
    /// compiled code stays in the cache directory, and a later call maps it back.
    pub(crate) fn unload_unused_for(&self, idle: Duration) {
        if let Ok(mut g) = self.loaded.lock() {
            let (map, order) = &mut *g;
            unload_unused(map, order, KEEP_LOADED, Some(idle));
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// For `GET /status`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "wasmtime 48 (in process; {} allocator; compiled code in {})",
            if self.pooling { "pooling" } else { "on-demand" },
            self.cache_dir.display()
        )
    }

    /// The guest file of a function: `handler` when it names a file of the package, else the
    /// package's only top-level `.wasm` or `.wat` file.
    pub(crate) fn locate(code_dir: &Path, handler: &str) -> Result<PathBuf, String> {
        let named = handler.trim_start_matches("./");
        if !named.is_empty() && !named.split('/').any(|p| p == "..") {
            let p = code_dir.join(named);
            if p.is_file() {
                return Ok(p);
            }
        }
        let mut found = Vec::new();
        if let Ok(dir) = std::fs::read_dir(code_dir) {
            for e in dir.flatten() {
                let p = e.path();
                let guest = matches!(
                    p.extension().and_then(|x| x.to_str()),
                    Some("wasm") | Some("wat")
                );
                if guest && p.is_file() {
                    found.push(p);
                }
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(format!(
                "the code package has no file '{handler}' and no .wasm or .wat file at its top level; the wasm runtime's handler names the WebAssembly file to run"
            )),
            _ => Err(format!(
                "the code package has no file '{handler}' and several .wasm/.wat files; set the handler to the one to run"
            )),
        }
    }

    /// Checks that `handler` names a guest fcd can run and starts compiling it; waits up to
    /// `wait` for the result, so small guests' errors reach CreateFunction's caller. A guest
    /// still compiling after `wait` keeps compiling; its first call waits for it.
    pub async fn prepare(
        self: &Arc<Self>,
        code_dir: &Path,
        handler: &str,
        wait: Duration,
    ) -> Result<(), String> {
        let path = Self::locate(code_dir, handler)?;
        let head = read_head(&path)?;
        if !head.starts_with(b"\0asm") && !looks_like_wat(&head) {
            return Err(format!(
                "'{}' is not WebAssembly (neither a binary module or component nor WebAssembly text)",
                display_name(code_dir, &path)
            ));
        }
        let me = self.clone();
        let task = tokio::spawn(async move { me.load(&path).await });
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(Err(e))) => Err(e),
            _ => Ok(()),
        }
    }

    /// The compiled guest at `path`, compiling it (once, whoever asks) when the cache has it
    /// not.
    pub(crate) async fn load(self: &Arc<Self>, path: &Path) -> Result<Arc<Loaded>, String> {
        let slot = {
            let Ok(mut g) = self.loaded.lock() else {
                return Err("the wasm engine's state is poisoned".into());
            };
            let (map, order) = &mut *g;
            match map.get_mut(path) {
                Some(h) => {
                    h.used = std::time::Instant::now();
                    h.slot.clone()
                }
                None => {
                    let s: Slot = Arc::new(OnceCell::new());
                    map.insert(
                        path.to_owned(),
                        Held {
                            slot: s.clone(),
                            used: std::time::Instant::now(),
                        },
                    );
                    order.push(path.to_owned());
                    unload_unused(map, order, KEEP_LOADED, None);
                    s
                }
            }
        };
        let me = self.clone();
        let path = path.to_owned();
        slot.get_or_init(|| async move {
            let blocking = tokio::task::spawn_blocking(move || me.load_blocking(&path));
            match blocking.await {
                Ok(r) => r.map(Arc::new),
                Err(e) => Err(format!("compiling the guest failed: {e}")),
            }
        })
        .await
        .clone()
    }

    fn load_blocking(&self, path: &Path) -> Result<Loaded, String> {
        let started = std::time::Instant::now();
        let source = std::fs::read(path).map_err(|e| format!("reading the guest: {e}"))?;
        // wasmtime assembles WebAssembly text itself (its `wat` feature).
        let component = match source.starts_with(b"\0asm") {
            true => source.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00][..]),
            false => wat_form(&source) == Some("component"),
        };
        let digest = hex::encode(Sha256::digest(&source));
        let cwasm = self
            .cache_dir
            .join(format!("{digest}-{}.cwasm", self.fingerprint));
        let mut compiled = false;
        if !cwasm.is_file() {
            let bytes = match component {
                true => self.engine.precompile_component(&source),
                false => self.engine.precompile_module(&source),
            }
            .map_err(|e| format!("the guest does not compile: {e:#}"))?;
            let tmp = self.cache_dir.join(format!(
                ".{digest}-{}.{}.tmp",
                self.fingerprint,
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &cwasm))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    format!("writing the compiled guest: {e}")
                })?;
            compiled = true;
        }
        let loaded = if component {
            // SAFETY: `cwasm` is fcd's own cache file, produced above by this same engine
            // configuration (its name carries the engine's compatibility fingerprint) and
            // written completely before being renamed into place; wasmtime checks the
            // header's engine compatibility again while loading it.
            #[allow(unsafe_code)]
            let c = unsafe { Component::deserialize_file(&self.engine, &cwasm) }
                .map_err(|e| format!("loading the compiled guest: {e:#}"))?;
            self.classify_component(&c)?
        } else {
            // SAFETY: as for components above.
            #[allow(unsafe_code)]
            let m = unsafe { Module::deserialize_file(&self.engine, &cwasm) }
                .map_err(|e| format!("loading the compiled guest: {e:#}"))?;
            if !matches!(m.get_export("_start"), Some(wasmtime::ExternType::Func(_))) {
                return Err("the core module exports no `_start` function: fcd runs core modules as WASI commands".into());
            }
            let pre = self
                .modules
                .instantiate_pre(&m)
                .map_err(|e| format!("the module's imports cannot be satisfied: {e:#}"))?;
            Loaded::CommandModule(pre)
        };
        tracing::info!(
            guest = %path.display(),
            kind = loaded.kind().describe(),
            compiled,
            ms = started.elapsed().as_millis() as u64,
            "wasm guest loaded"
        );
        Ok(loaded)
    }

    fn classify_component(&self, c: &Component) -> Result<Loaded, String> {
        let pre = self.components.instantiate_pre(c).map_err(|e| {
            format!("the component's imports cannot be satisfied (fcd links WASI 0.2 and wasi:http): {e:#}")
        })?;
        if let Ok(p) = ProxyPre::new(pre.clone()) {
            return Ok(Loaded::Http(p));
        }
        match CommandPre::new(pre) {
            Ok(p) => Ok(Loaded::CommandComponent(p)),
            Err(_) => Err(
                "the component exports neither wasi:http/incoming-handler@0.2 nor wasi:cli/run@0.2"
                    .into(),
            ),
        }
    }
}

/// Forgets the oldest guests nobody holds, beyond `keep` of them, or (with `idle`) every one
/// nobody holds that was last asked for longer ago than that.
fn unload_unused(
    map: &mut HashMap<PathBuf, Held>,
    order: &mut Vec<PathBuf>,
    keep: usize,
    idle: Option<Duration>,
) {
    let mut excess = map.len().saturating_sub(keep);
    order.retain(|p| {
        let Some(h) = map.get(p) else {
            return false;
        };
        let wanted = excess > 0 || idle.is_some_and(|d| h.used.elapsed() >= d);
        // Held by nobody but the map: no instance runs it and no compile is under way.
        let unused = Arc::strong_count(&h.slot) == 1
            && h.slot
                .get()
                .is_none_or(|r| r.as_ref().map_or(true, |l| Arc::strong_count(l) == 1));
        if wanted && unused {
            map.remove(p);
            excess = excess.saturating_sub(1);
            return false;
        }
        true
    });
}

fn read_head(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut head = vec![0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| format!("reading the guest: {e}"))?;
    head.truncate(n);
    Ok(head)
}

/// WebAssembly text starts, after whitespace and comments, with `(module` or `(component`.
fn looks_like_wat(head: &[u8]) -> bool {
    wat_form(head).is_some()
}

/// `module` or `component`: the first form of WebAssembly text.
fn wat_form(head: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(head);
    let mut rest = text.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix(";;") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = rest.strip_prefix("(;") {
            rest = r.split_once(";)").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    if rest.starts_with("(module") {
        Some("module")
    } else if rest.starts_with("(component") {
        Some("component")
    } else {
        None
    }
}

fn display_name(code_dir: &Path, path: &Path) -> String {
    path.strip_prefix(code_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_recognised_after_comments() {
        assert!(looks_like_wat(b"  ;; a command\n(module (func))"));
        assert!(looks_like_wat(b"(; block ;) (component)"));
        assert!(!looks_like_wat(b"PK\x03\x04"));
        assert!(!looks_like_wat(b"hello"));
    }

    #[test]
    fn only_guests_nobody_holds_are_unloaded() {
        let mut map = HashMap::new();
        let mut order = Vec::new();
        let held: Slot = Arc::new(OnceCell::new());
        for (name, slot) in [("a", held.clone()), ("b", Arc::new(OnceCell::new()))] {
            let used = std::time::Instant::now();
            map.insert(PathBuf::from(name), Held { slot, used });
            order.push(PathBuf::from(name));
        }
        // Recently used and within the count: both stay.
        unload_unused(&mut map, &mut order, 8, Some(Duration::from_secs(60)));
        assert_eq!(map.len(), 2);
        // Idle long enough: the one nobody holds goes, the held one stays.
        unload_unused(&mut map, &mut order, 8, Some(Duration::ZERO));
        assert!(map.contains_key(Path::new("a")) && !map.contains_key(Path::new("b")));
        assert_eq!(order, vec![PathBuf::from("a")]);
        drop(held);
        // Beyond the count, the oldest unused goes even when recently used.
        unload_unused(&mut map, &mut order, 0, None);
        assert!(map.is_empty() && order.is_empty());
    }

    #[test]
    fn the_handler_names_the_guest_or_the_only_one_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.path().join("README"), b"x").unwrap();
        let p = WasmEngine::locate(dir.path(), "index.handler").unwrap();
        assert!(p.ends_with("app.wasm"));
        std::fs::write(dir.path().join("other.wat"), b"(module)").unwrap();
        assert!(WasmEngine::locate(dir.path(), "index.handler").is_err());
        let p = WasmEngine::locate(dir.path(), "other.wat").unwrap();
        assert!(p.ends_with("other.wat"));
        assert!(WasmEngine::locate(dir.path(), "../etc/passwd").is_err());
    }
}
