//! What every instance is told, whatever runs it: the environment of fc-runtime-contract.md
//! section 5 and the `x-fc-*` headers of section 2.2 that are the same for every call.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::credentials::{self, FunctionCredentials};
use crate::{FunctionSpec, RuntimeConfig};

pub(crate) fn header(map: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        map.insert(HeaderName::from_static(name), v);
    }
}

/// Where an instance runs, as its environment must describe it.
pub(crate) struct Placed<'a> {
    pub(crate) id: &'a str,
    pub(crate) port: u16,
    pub(crate) qualifier: &'a str,
    /// The code directory as the instance sees it.
    pub(crate) code_root: &'a std::path::Path,
    pub(crate) jailed: bool,
    /// The runtime's interpreter directories, before the system ones on `PATH`.
    pub(crate) path_dirs: &'a [String],
    /// Where the instance reaches the host, when it has outbound network.
    pub(crate) host_addr: Option<std::net::Ipv4Addr>,
    /// The role's credentials of the invocation that starts the instance, when the function
    /// has a [`crate::CredentialSource`].
    pub(crate) credentials: Option<&'a FunctionCredentials>,
}

/// The environment of fc-runtime-contract.md section 5, then the user's variables.
pub(crate) fn instance_env(
    cfg: &RuntimeConfig,
    spec: &FunctionSpec,
    at: &Placed<'_>,
) -> Vec<(String, String)> {
    let mut env = platform_env(cfg, spec, at);
    for (k, v) in &spec.function.environment_variables {
        env.push((k.clone(), v.clone()));
    }
    env
}

/// FC's variables and the role's credentials, without the user's.
fn platform_env(
    cfg: &RuntimeConfig,
    spec: &FunctionSpec,
    at: &Placed<'_>,
) -> Vec<(String, String)> {
    let f = &spec.function;
    let code = at.code_root.display().to_string();
    let system = if at.jailed {
        // Inside a jail only the system directories and the runtime's interpreter exist.
        "/usr/local/bin:/usr/bin:/bin".to_owned()
    } else {
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())
    };
    // Layers: at `/opt` in a jail; without one, wherever their merged tree is on the host.
    let opt = spec.layers.as_ref().map(|l| {
        if at.jailed {
            "/opt".to_owned()
        } else {
            l.dir.display().to_string()
        }
    });
    let mut path = format!("{code}:{code}/bin");
    if let Some(opt) = &opt {
        path.push_str(&format!(":{opt}:{opt}/bin"));
    }
    for d in at.path_dirs {
        path.push(':');
        path.push_str(d);
    }
    path.push(':');
    path.push_str(&system);
    let mut env = vec![
        ("PATH".to_owned(), path),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("HOME".to_owned(), "/tmp".to_owned()),
        ("TZ".to_owned(), "UTC".to_owned()),
        (
            "LD_LIBRARY_PATH".to_owned(),
            match &opt {
                Some(opt) => format!("{code}:{code}/lib:/usr/local/lib:{opt}/lib"),
                None => format!("{code}:{code}/lib:/usr/local/lib"),
            },
        ),
        ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
        (
            "NODE_PATH".to_owned(),
            match &opt {
                Some(opt) => format!("{code}/node_modules:{opt}/nodejs/node_modules"),
                None => format!("{code}/node_modules"),
            },
        ),
        ("FC_FUNC_CODE_PATH".to_owned(), code.clone()),
        ("FC_ACCOUNT_ID".to_owned(), spec.account_id.clone()),
        ("FC_REGION".to_owned(), cfg.region.clone()),
        (
            "FC_SERVICE_NAME".to_owned(),
            shown_service_name(spec).to_owned(),
        ),
        ("FC_FUNCTION_NAME".to_owned(), f.function_name.clone()),
        ("FC_FUNCTION_HANDLER".to_owned(), f.handler.clone()),
        (
            "FC_FUNCTION_MEMORY_SIZE".to_owned(),
            f.memory_size.to_string(),
        ),
        ("FC_INSTANCE_ID".to_owned(), at.id.to_owned()),
        ("FC_QUALIFIER".to_owned(), at.qualifier.to_owned()),
        ("FC_RUNTIME_VERSION".to_owned(), f.runtime.clone()),
        ("FC_SERVER_PORT".to_owned(), at.port.to_string()),
        ("FC_CUSTOM_LISTEN_PORT".to_owned(), at.port.to_string()),
    ];
    if let Some(v) = &spec.version_id {
        env.push(("FC_VER_ID".to_owned(), v.clone()));
        env.push(("FC_FUNCTION_VERSION".to_owned(), v.clone()));
    }
    if !f.initializer.is_empty() {
        env.push(("FC_FUNCTION_INITIALIZER".to_owned(), f.initializer.clone()));
    }
    if let Some(addr) = at.host_addr {
        env.push(("FCD_HOST_ADDR".to_owned(), addr.to_string()));
    }
    if let Some(opt) = opt {
        // FC's Python path for layers (its bootstrap adds the versioned site-packages too, as
        // fcd's does); a custom runtime's Python finds layer modules through it.
        env.push(("PYTHONPATH".to_owned(), format!("{opt}/python")));
        // Where fcd's bootstraps look for layers instead of `/opt` (outside a jail).
        env.push(("FCD_LAYERS_DIR".to_owned(), opt));
    }
    env.extend(credential_env(f, at.credentials));
    env
}

/// The environment of a `custom-container` instance: the image's `Env`, then FC's variables
/// (section 5) and the role's credentials, then the function's own variables — each later one
/// replacing an earlier one of the same name. The image keeps its `PATH` (fcd's search paths
/// name `/code`, which an image does not have) and `HOME` (else `/tmp`, the one place the
/// instance may write).
pub(crate) fn container_env(
    cfg: &RuntimeConfig,
    spec: &FunctionSpec,
    at: &Placed<'_>,
) -> Vec<(String, String)> {
    const IMAGE_DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let image_env = spec.image.as_ref().map(|i| i.env.as_slice()).unwrap_or(&[]);
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: &str, v: &str| match env
        .iter_mut()
        .find(|(name, _)| name == k)
    {
        Some(slot) => slot.1 = v.to_owned(),
        None => env.push((k.to_owned(), v.to_owned())),
    };
    set(&mut env, "PATH", IMAGE_DEFAULT_PATH);
    set(&mut env, "HOME", "/tmp");
    for (k, v) in image_env {
        set(&mut env, k, v);
    }
    // FC's variables, without what describes fcd's own process runtimes' layout.
    const PROCESS_RUNTIME_ONLY: &[&str] = &[
        "PATH",
        "HOME",
        "LANG",
        "LD_LIBRARY_PATH",
        "PYTHONUNBUFFERED",
        "NODE_PATH",
        "FC_FUNC_CODE_PATH",
    ];
    let fc = platform_env(cfg, spec, at);
    for (k, v) in fc
        .iter()
        .filter(|(k, _)| !PROCESS_RUNTIME_ONLY.contains(&k.as_str()))
    {
        set(&mut env, k, v);
    }
    for (k, v) in &spec.function.environment_variables {
        set(&mut env, k, v);
    }
    env
}

/// The variables carrying the role's credentials (see [`credentials`]), for an instance of `f`
/// started with `creds`. Left out when the function sets any of them itself: then it manages
/// its credentials, and a mix of its own key and the role's token would be neither.
fn credential_env(
    f: &fcd_core::model::Function,
    creds: Option<&FunctionCredentials>,
) -> Vec<(String, String)> {
    match creds {
        Some(c)
            if !credentials::ENV_NAMES
                .iter()
                .any(|n| f.environment_variables.contains_key(*n)) =>
        {
            credentials::env(c)
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The environment of a `wasm` guest: FC's variables about the function, the role's
/// credentials and the user's variables — not the process runtimes' search paths and ports,
/// which mean nothing inside a WebAssembly sandbox.
#[cfg(feature = "wasm")]
pub(crate) fn guest_env(
    cfg: &RuntimeConfig,
    spec: &FunctionSpec,
    id: &str,
    qualifier: &str,
    code_root: &std::path::Path,
    credentials: Option<&FunctionCredentials>,
) -> Vec<(String, String)> {
    const PROCESS_ONLY: &[&str] = &[
        "PATH",
        "LD_LIBRARY_PATH",
        "PYTHONUNBUFFERED",
        "NODE_PATH",
        "FC_SERVER_PORT",
        "FC_CUSTOM_LISTEN_PORT",
        "FCD_HOST_ADDR",
        "PYTHONPATH",
        "FCD_LAYERS_DIR",
    ];
    let mut env = instance_env(
        cfg,
        spec,
        &Placed {
            id,
            port: 0,
            qualifier,
            code_root,
            jailed: true,
            path_dirs: &[],
            host_addr: None,
            credentials,
        },
    );
    // The user's own variables come last in `instance_env` and may reuse these names.
    let user = spec.function.environment_variables.len();
    let split = env.len().saturating_sub(user);
    let mut head: Vec<_> = env.drain(..split).collect();
    head.retain(|(k, _)| !PROCESS_ONLY.contains(&k.as_str()));
    head.extend(env);
    head
}

/// The environment a prewarmed jail's runtime starts with, before it knows its function: only
/// what is the same for every function (the code is at `/code` in every jail), plus the pipe
/// its assignment arrives on. The function's own variables come with the assignment.
pub(crate) fn blank_env(path_dirs: &[String]) -> Vec<(String, String)> {
    let mut path = "/code:/code/bin".to_owned();
    for d in path_dirs {
        path.push(':');
        path.push_str(d);
    }
    path.push_str(":/usr/local/bin:/usr/bin:/bin");
    vec![
        ("PATH".to_owned(), path),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("HOME".to_owned(), "/tmp".to_owned()),
        ("TZ".to_owned(), "UTC".to_owned()),
        (
            "LD_LIBRARY_PATH".to_owned(),
            "/code:/code/lib:/usr/local/lib".to_owned(),
        ),
        ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
        ("NODE_PATH".to_owned(), "/code/node_modules".to_owned()),
        ("FC_FUNC_CODE_PATH".to_owned(), "/code".to_owned()),
        ("FCD_ASSIGNMENT_FD".to_owned(), "3".to_owned()),
    ]
}

/// The service name user code sees (`context.service.name`, `FC_SERVICE_NAME`): empty for a
/// native FC 3.0 function, whose hidden home service (`~F`) is fcd's bookkeeping, not a name
/// FC 3.0 has (its runtime headers carry no service name).
pub(crate) fn shown_service_name(spec: &FunctionSpec) -> &str {
    if fcd_core::fc3::is_hidden_service(&spec.service_name) {
        ""
    } else {
        &spec.service_name
    }
}

/// The `x-fc-*` headers of fc-runtime-contract.md section 2.2 that are the same for every call.
pub(crate) fn base_headers(cfg: &RuntimeConfig, spec: &FunctionSpec) -> HeaderMap {
    let f = &spec.function;
    let mut h = HeaderMap::new();
    header(&mut h, "host", &format!("127.0.0.1:{}", f.ca_port));
    header(&mut h, "content-type", "application/octet-stream");
    header(&mut h, "x-fc-function-handler", &f.handler);
    header(&mut h, "x-fc-function-memory", &f.memory_size.to_string());
    header(&mut h, "x-fc-function-timeout", &f.timeout.to_string());
    header(&mut h, "x-fc-function-initializer", &f.initializer);
    header(
        &mut h,
        "x-fc-initialization-timeout",
        &f.initialization_timeout.to_string(),
    );
    if let Some(lc) = &f.instance_lifecycle_config {
        if let Some(h2) = &lc.pre_stop {
            header(
                &mut h,
                "x-fc-instance-lifecycle-pre-stop-handler",
                &h2.handler,
            );
        }
        if let Some(h2) = &lc.pre_freeze {
            header(
                &mut h,
                "x-fc-instance-lifecycle-pre-freeze-handler",
                &h2.handler,
            );
        }
    }
    header(&mut h, "x-fc-region", &cfg.region);
    header(&mut h, "x-fc-account-id", &spec.account_id);
    header(
        &mut h,
        "x-fc-version-id",
        spec.version_id.as_deref().unwrap_or(""),
    );
    header(&mut h, "x-fc-function-name", &f.function_name);
    // FC 3.0 sends no service name (its functions have none); see [`shown_service_name`].
    if !fcd_core::fc3::is_hidden_service(&spec.service_name) {
        header(&mut h, "x-fc-service-name", &spec.service_name);
    }
    header(&mut h, "x-fc-service-logproject", &spec.log_project);
    header(&mut h, "x-fc-service-logstore", &spec.log_store);
    h
}

#[cfg(test)]
mod tests {
    use super::{credential_env, shown_service_name};
    use crate::testkit;

    #[test]
    fn native_fc3_functions_show_no_service() {
        let spec = |service: &str| crate::FunctionSpec {
            service_name: service.into(),
            ..testkit::spec_for_tests()
        };
        assert_eq!(shown_service_name(&spec("~fn")), "");
        assert_eq!(shown_service_name(&spec("svc")), "svc");
    }

    #[test]
    fn a_container_gets_the_image_env_then_fc_s_then_the_function_s() {
        use super::{Placed, container_env};
        let dir = tempfile::tempdir().unwrap();
        let cfg = testkit::config_for_tests(dir.path());
        let mut spec = testkit::spec_for_tests();
        spec.function = testkit::function(serde_json::json!({
            "runtime": "custom-container",
            "environmentVariables": {"MINE": "function", "FC_FUNCTION_NAME": "spoofed"},
        }));
        let image = |env: &[(&str, &str)]| {
            Some(std::sync::Arc::new(crate::ContainerImage {
                digest: "sha256:0".into(),
                rootfs: "/images/0/rootfs".into(),
                entrypoint: Vec::new(),
                cmd: Vec::new(),
                env: env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                working_dir: String::new(),
                user: String::new(),
                pin: None,
            }))
        };
        let placed = Placed {
            id: "i",
            port: 9000,
            qualifier: "LATEST",
            code_root: std::path::Path::new("/"),
            jailed: true,
            path_dirs: &[],
            host_addr: None,
            credentials: None,
        };
        spec.image = image(&[
            ("PATH", "/opt/app/bin:/bin"),
            ("MINE", "image"),
            ("JAVA_HOME", "/opt/jdk"),
            ("FC_REGION", "image-region"),
        ]);
        let env = container_env(&cfg, &spec, &placed);
        let get = |name: &str| {
            let hits: Vec<&str> = env
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect();
            assert!(hits.len() <= 1, "{name} set twice: {hits:?}");
            hits.first().map(|v| (*v).to_owned())
        };
        assert_eq!(get("PATH").as_deref(), Some("/opt/app/bin:/bin"));
        assert_eq!(get("JAVA_HOME").as_deref(), Some("/opt/jdk"));
        assert_eq!(get("HOME").as_deref(), Some("/tmp"));
        // FC's variables over the image's, the function's over both.
        assert_eq!(get("FC_REGION").as_deref(), Some("cn-test"));
        assert_eq!(get("MINE").as_deref(), Some("function"));
        assert_eq!(get("FC_FUNCTION_NAME").as_deref(), Some("spoofed"));
        assert_eq!(get("FC_SERVER_PORT").as_deref(), Some("9000"));
        // Nothing of fcd's process runtimes' layout.
        assert_eq!(get("FC_FUNC_CODE_PATH"), None);
        assert_eq!(get("LD_LIBRARY_PATH"), None);
        assert_eq!(get("NODE_PATH"), None);
        // An image without PATH gets Docker's default.
        spec.image = image(&[]);
        let env = container_env(&cfg, &spec, &placed);
        assert!(
            env.iter()
                .any(|(k, v)| k == "PATH" && v.contains("/usr/sbin"))
        );
    }

    #[test]
    fn layers_are_on_the_paths_at_opt_jailed_and_where_they_are_otherwise() {
        use super::{Placed, instance_env};
        use crate::{FunctionSpec, InstanceLimit, LayerTree};
        let dir = tempfile::tempdir().unwrap();
        let cfg = testkit::config_for_tests(dir.path());
        let mut spec = FunctionSpec {
            account_id: "acc".into(),
            service_name: "s".into(),
            log_project: String::new(),
            log_store: String::new(),
            function: testkit::function(
                serde_json::json!({"environmentVariables": {"PYTHONPATH": "/mine"}}),
            ),
            code_dir: "/data/code/abc".into(),
            image: None,
            layers: None,
            internet_access: true,
            version_id: None,
            limit: InstanceLimit::Unlimited,
            revision: "r".into(),
            generation: 0,
            credentials: None,
        };
        let env = |spec: &FunctionSpec, jailed: bool| {
            let code = if jailed { "/code" } else { "/data/code/abc" };
            let vars = instance_env(
                &cfg,
                spec,
                &Placed {
                    id: "i",
                    port: 9000,
                    qualifier: "LATEST",
                    code_root: std::path::Path::new(code),
                    jailed,
                    path_dirs: &[],
                    host_addr: None,
                    credentials: None,
                },
            );
            // The last value of a name is the one the process gets.
            move |name: &str| {
                vars.iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        // Without layers nothing points anywhere near them.
        let plain = env(&spec, true);
        assert_eq!(plain("FCD_LAYERS_DIR"), None);
        assert_eq!(plain("NODE_PATH").as_deref(), Some("/code/node_modules"));
        assert!(!plain("PATH").unwrap().contains("/opt"));

        spec.layers = Some(LayerTree {
            digests: vec!["l1".into()],
            dir: "/data/code/.layers/x".into(),
        });
        let jailed = env(&spec, true);
        assert_eq!(jailed("FCD_LAYERS_DIR").as_deref(), Some("/opt"));
        assert_eq!(
            jailed("NODE_PATH").as_deref(),
            Some("/code/node_modules:/opt/nodejs/node_modules")
        );
        assert!(
            jailed("PATH")
                .unwrap()
                .starts_with("/code:/code/bin:/opt:/opt/bin:")
        );
        assert!(jailed("LD_LIBRARY_PATH").unwrap().ends_with(":/opt/lib"));
        // The function's own variables still win.
        assert_eq!(jailed("PYTHONPATH").as_deref(), Some("/mine"));

        let unjailed = env(&spec, false);
        let opt = "/data/code/.layers/x";
        assert_eq!(unjailed("FCD_LAYERS_DIR").as_deref(), Some(opt));
        assert_eq!(
            unjailed("NODE_PATH"),
            Some(format!(
                "/data/code/abc/node_modules:{opt}/nodejs/node_modules"
            ))
        );
        assert!(unjailed("PATH").unwrap().contains(&format!(":{opt}/bin:")));
        spec.function.environment_variables.clear();
        assert_eq!(
            env(&spec, false)("PYTHONPATH"),
            Some(format!("{opt}/python"))
        );
    }

    #[test]
    fn credential_variables_only_with_credentials_and_never_mixed_with_the_users() {
        let plain = testkit::function(serde_json::json!({"environmentVariables": {"A": "1"}}));
        let c = testkit::creds("env", 7);
        let names = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        let got = credential_env(&plain, Some(&c));
        assert_eq!(
            names(&got),
            [
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                "ALIBABA_CLOUD_SECURITY_TOKEN",
                "accessKeyID",
                "accessKeySecret",
                "securityToken",
            ]
        );
        assert_eq!(got[0].1, "STS.env");
        assert_eq!(got[1].1, "secret-env");
        assert_eq!(got[2].1, "token-env");
        assert!(credential_env(&plain, None).is_empty());
        for own in ["ALIBABA_CLOUD_ACCESS_KEY_ID", "securityToken"] {
            let f = testkit::function(serde_json::json!({"environmentVariables": {own: "mine"}}));
            assert!(credential_env(&f, Some(&c)).is_empty(), "{own}");
        }
    }
}
