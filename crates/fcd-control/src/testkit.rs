//! What unit tests of the control plane build their `Control` from: an instance manager that
//! can run nothing (no interpreters, no jail) and an IAM without keys.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fcd_runtime::{InstanceManager, NetworkMode, Registry, RuntimeConfig, RuntimeOptions};
use fcd_store::MetadataStore;

use crate::Control;

/// A control plane on `store`, its code and runtime files under `dir` named by `tag` (so that
/// several "nodes" can share a directory).
pub(crate) fn control(dir: &Path, store: Arc<dyn MetadataStore>, tag: &str) -> Control {
    let code =
        fcd_store::code::CodeStore::open(dir.join(format!("code-{tag}"))).expect("code store");
    let runtime = Arc::new(InstanceManager::new(RuntimeConfig {
        region: "cn-test".into(),
        network: NetworkMode::Host,
        runtimes: Registry::detect(&RuntimeOptions {
            python: "/nonexistent/python3".into(),
            node: "/nonexistent/node".into(),
            dir: dir.join(format!("runtime-{tag}")),
            wasm: None,
        }),
        start_timeout: Duration::from_secs(1),
        max_instances: 1,
        max_memory_mb: 128,
        idle_timeout: Duration::from_secs(1),
        jail: None,
        jail_unavailable: Some("unit test".into()),
        egress: None,
        egress_unavailable: None,
        prewarm: 0,
        code_store: None,
    }));
    let iam = Arc::new(crate::iam::Iam::new(
        store.clone(),
        crate::iam::IamConfig {
            region: "cn-test".into(),
            root_keys: vec![],
            token_key: fcd_iam::TokenKey::derive(b"test"),
            min_session_duration_secs: 900,
        },
    ));
    Control::new(
        store,
        code,
        runtime,
        "cn-test".into(),
        b"secret".to_vec(),
        iam,
    )
}
