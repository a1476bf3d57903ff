//! `custom-container` instances in the jail, without a registry: an image root unpacked by hand
//! (Debian's static busybox and a shell handler served by `busybox nc`) handed to the instance
//! manager as `FunctionSpec::image`, as the control plane hands over a pulled one. Checks what
//! the jail makes of it: the image's files as the root, read-only; a writable `/tmp`; the
//! instance's own uid, or the image's `User` mapped onto it; ENTRYPOINT/CMD/Env/WorkingDir and `command`/`args`; nothing of the
//! host; `customHealthCheckConfig`.
//!
//! Needs root, a host that can jail, and `/bin/busybox` from busybox-static (scripts/test
//! installs it); it fails, naming what is missing, rather than passing without running.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fcd_runtime::sandbox::JailConfig;
use fcd_runtime::{
    ContainerImage, FunctionSpec, InstanceLimit, InstanceManager, InvokeError, InvokeRequest,
    NetworkMode, Registry, RuntimeConfig, RuntimeOptions,
};
use serde_json::{Value, json};

/// Answers every request with what the instance sees, as JSON lines the test reads.
const HANDLER: &str = r#"#!/bin/sh
IFS= read -r request
case "$request" in
  *" /never-ready "*)
    printf 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
    exit 0 ;;
esac
len=0
while IFS= read -r line; do
  line="${line%$(printf '\r')}"
  [ -z "$line" ] && break
  case "$line" in
    [Cc]ontent-[Ll]ength:*) len="${line#*: }" ;;
  esac
done
[ "$len" -gt 0 ] && head -c "$len" >/dev/null
if touch /rootfile 2>/dev/null; then root=writable; else root=readonly; fi
if echo x > /tmp/probe 2>/dev/null; then tmp=writable; else tmp=readonly; fi
if [ -e /usr/bin/python3 ] || [ -e /root ] || [ -e /home ]; then host=visible; else host=hidden; fi
body="{\"uid\":\"$(id -u)\",\"gid\":\"$(id -g)\",\"uid_map\":\"$(cat /proc/self/uid_map)\",\"root\":\"$root\",\"tmp\":\"$tmp\",\"host\":\"$host\",\"cwd\":\"$(pwd)\",\"greeting\":\"$GREETING\",\"user\":\"$USER_VAR\",\"fn\":\"$FC_FUNCTION_NAME\",\"args\":\"$ARGS\",\"resolv\":\"$([ -f /etc/resolv.conf ] && echo yes)\"}"
printf 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "${#body}" "$body"
"#;

/// An unpacked image as `fcd-image` leaves one: root-owned, the mount points and `/etc` files
/// present.
fn build_image(root: &Path) {
    for dir in ["bin", "etc", "tmp", "dev", "proc", "app", "srv"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "nc", "id", "touch", "head", "pwd", "sleep", "echo", "cat",
    ] {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    for f in ["hosts", "resolv.conf"] {
        std::fs::write(root.join("etc").join(f), "").unwrap();
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/srv:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1001:\nstaff:x:50:\n",
    )
    .unwrap();
    std::fs::write(root.join("app/handler.sh"), HANDLER).unwrap();
    // The server: `nc` runs the handler once per connection. `$ARGS` shows what came after
    // the entry point.
    std::fs::write(
        root.join("app/serve.sh"),
        "#!/bin/sh\nexport ARGS=\"$*\"\nexec nc -ll -p \"${PORT:-9000}\" -e /app/handler.sh\n",
    )
    .unwrap();
    for f in ["app/handler.sh", "app/serve.sh"] {
        std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn function(name: &str, extra: Value) -> fcd_core::model::Function {
    let mut v = json!({
        "functionId": format!("id-{name}"), "functionName": name, "description": "",
        "runtime": "custom-container", "handler": "", "timeout": 10, "memorySize": 128,
        "instanceConcurrency": 1, "environmentVariables": {"USER_VAR": "from-function"},
        "initializer": "", "initializationTimeout": 3, "caPort": 9000, "instanceType": "e1",
        "layers": [], "layersArnV2": [], "codeChecksum": "0", "codeSize": 0,
        "createdTime": "2024-01-01T00:00:00Z", "lastModifiedTime": "2024-01-01T00:00:00Z",
    });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn spec(function: fcd_core::model::Function, image: &Arc<ContainerImage>) -> FunctionSpec {
    FunctionSpec {
        account_id: "1234".into(),
        service_name: "svc".into(),
        log_project: String::new(),
        log_store: String::new(),
        revision: format!("r-{}", function.function_name),
        function,
        code_dir: "/nonexistent".into(),
        image: Some(image.clone()),
        layers: None,
        internet_access: false,
        version_id: None,
        limit: InstanceLimit::Unlimited,
        generation: 1,
        credentials: None,
    }
}

fn request(id: &str) -> InvokeRequest {
    InvokeRequest {
        request_id: id.into(),
        qualifier: "LATEST".into(),
        trace_id: None,
        body: Bytes::from_static(b"{\"hello\":1}").into(),
        log_tail: false,
        retry_count: 0,
        http: None,
    }
}

async fn answer(mgr: &InstanceManager, spec: &FunctionSpec) -> Value {
    let out = mgr
        .invoke(
            spec,
            request(&format!("req-{}", spec.function.function_name)),
        )
        .await
        .unwrap();
    assert_eq!(
        out.error_type,
        None,
        "{}",
        String::from_utf8_lossy(&out.body)
    );
    serde_json::from_slice(&out.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.body)))
}

/// A jailing instance manager (prewarming `prewarm` jails per kind) and the hand-built image.
async fn setup(prewarm: u32) -> (tempfile::TempDir, InstanceManager, Arc<ContainerImage>) {
    // The tag names the jail's cgroups, which a manager empties at start: one per manager.
    static MANAGERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MANAGERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert!(
        nix::unistd::geteuid().is_root(),
        "container_jail needs root to jail instances (run the tests as root, as scripts/test does)"
    );
    assert!(
        Path::new("/bin/busybox").is_file(),
        "container_jail needs /bin/busybox: apt-get install busybox-static (scripts/test does)"
    );
    let data = tempfile::tempdir().unwrap();
    let tag = format!("ct{:08x}{n}", std::process::id());
    let jail = JailConfig::detect(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_fcd")),
        data.path(),
        &tag,
    )
    .await
    .unwrap_or_else(|why| panic!("instances cannot be jailed here: {why}"));
    let rootfs = data.path().join("images/abc/rootfs");
    build_image(&rootfs);
    let image = Arc::new(ContainerImage {
        digest: "sha256:abc".into(),
        rootfs,
        entrypoint: vec!["/app/serve.sh".into()],
        cmd: vec!["from-cmd".into()],
        env: vec![
            ("PATH".into(), "/bin".into()),
            ("GREETING".into(), "from-image".into()),
            ("USER_VAR".into(), "from-image".into()),
        ],
        working_dir: "/srv".into(),
        user: String::new(),
        pin: None,
    });
    let mgr = InstanceManager::new(RuntimeConfig {
        region: "cn-hangzhou".into(),
        network: NetworkMode::Namespace,
        runtimes: Registry::detect(&RuntimeOptions {
            python: "python3".into(),
            node: "node".into(),
            dir: data.path().join("runtime"),
            wasm: None,
        }),
        // Busybox listens at once; the one server that never does fails within this.
        start_timeout: Duration::from_secs(3),
        max_instances: 8,
        max_memory_mb: 4096,
        idle_timeout: Duration::from_secs(3600),
        jail: Some(jail),
        jail_unavailable: None,
        egress: None,
        egress_unavailable: None,
        prewarm,
        code_store: Some(data.path().join("code")),
    });
    (data, mgr, image)
}

#[tokio::test]
async fn an_image_root_runs_read_only_as_the_instance_s_own_uid() {
    let (_data, mgr, image) = setup(0).await;

    // The image's own ENTRYPOINT + CMD, Env under the function's variables, WorkingDir.
    let got = answer(&mgr, &spec(function("plain", json!({})), &image)).await;
    assert_eq!(got["root"], "readonly", "{got}");
    assert_eq!(got["tmp"], "writable", "{got}");
    assert_eq!(got["host"], "hidden", "{got}");
    assert_eq!(got["resolv"], "yes", "{got}");
    assert_ne!(got["uid"], "0", "{got}");
    assert_eq!(got["cwd"], "/srv", "{got}");
    assert_eq!(got["greeting"], "from-image", "{got}");
    assert_eq!(got["user"], "from-function", "{got}");
    assert_eq!(got["fn"], "plain", "{got}");
    assert_eq!(got["args"], "from-cmd", "{got}");

    // `args` replaces CMD; `command` replaces ENTRYPOINT and drops CMD.
    let got = answer(
        &mgr,
        &spec(
            function(
                "args",
                json!({"customContainerConfig": {"args": "[\"a1\",\"a2\"]"}}),
            ),
            &image,
        ),
    )
    .await;
    assert_eq!(got["args"], "a1 a2", "{got}");
    let got = answer(
        &mgr,
        &spec(
            function(
                "command",
                json!({"customContainerConfig": {
                    "command": "[\"/bin/sh\",\"-c\",\"PORT=9001 exec /app/serve.sh via-command\"]"
                }, "caPort": 9001}),
            ),
            &image,
        ),
    )
    .await;
    assert_eq!(got["args"], "via-command", "{got}");
    // A port below 1024 is the instance's own to bind, as on FC.
    let got = answer(
        &mgr,
        &spec(
            function(
                "low-port",
                json!({"customContainerConfig": {
                    "command": "[\"/bin/sh\",\"-c\",\"PORT=80 exec /app/serve.sh low\"]"
                }, "caPort": 80}),
            ),
            &image,
        ),
    )
    .await;
    assert_eq!(got["args"], "low", "{got}");

    // A health check on a path the server answers is passed; one that never succeeds fails
    // the start, naming the path.
    let got = answer(
        &mgr,
        &spec(
            function(
                "healthy",
                json!({"customHealthCheckConfig": {"httpGetUrl": "/ready", "periodSeconds": 1}}),
            ),
            &image,
        ),
    )
    .await;
    assert_eq!(got["root"], "readonly", "{got}");
    match mgr
        .invoke(
            &spec(
                function(
                    "unhealthy",
                    json!({"customHealthCheckConfig": {
                        "httpGetUrl": "/never-ready", "periodSeconds": 1, "failureThreshold": 2
                    }}),
                ),
                &image,
            ),
            request("req-unhealthy"),
        )
        .await
    {
        Err(InvokeError::Start(e)) => {
            let msg = e.to_string();
            assert!(msg.contains("GET /never-ready"), "{msg}");
            assert!(msg.contains("503"), "{msg}");
        }
        other => panic!("an instance failing its health check must not start: {other:?}"),
    }
    let never = spec(
        function(
            "never-listens",
            json!({"customContainerConfig": {"command": "[\"/bin/sleep\",\"30\"]"}}),
        ),
        &image,
    );
    match mgr.invoke(&never, request("req-never")).await {
        Err(InvokeError::Start(e)) => {
            let msg = e.to_string();
            assert!(msg.contains("port 9000"), "{msg}");
        }
        other => panic!("a server that never listens must fail its start: {other:?}"),
    }
    mgr.shutdown(Duration::from_secs(10)).await;
}

/// The image's `User`, by name or number, is who the function is inside — mapped onto the
/// instance's own uid on the host, never anyone else — and `/tmp` is still its to write.
#[tokio::test]
async fn an_image_s_user_is_who_the_function_sees_mapped_onto_the_instance_s_uid() {
    let (_data, mgr, image) = setup(1).await;
    let with_user = |user: &str| {
        Arc::new(ContainerImage {
            user: user.into(),
            ..(*image).clone()
        })
    };
    for (user, uid, gid) in [("app", "1000", "1001"), ("4242:staff", "4242", "50")] {
        let img = with_user(user);
        // Two functions: the second's cold start may take a prewarmed jail of the image, which
        // maps the same.
        for i in 0..2 {
            let name = format!("user-{uid}-{i}");
            let got = answer(&mgr, &spec(function(&name, json!({})), &img)).await;
            assert_eq!(
                (got["uid"].as_str(), got["gid"].as_str()),
                (Some(uid), Some(gid)),
                "{got}"
            );
            assert_eq!(got["tmp"], "writable", "{got}");
            assert_eq!(got["root"], "readonly", "{got}");
            let map: Vec<&str> = got["uid_map"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .collect();
            assert_eq!(map.len(), 3, "one mapping line, and only one: {got}");
            assert_eq!((map[0], map[2]), (uid, "1"), "{got}");
            let host: u32 = map[1].parse().unwrap();
            // Instance uids are leased from 0x7000_0000 up (`sandbox::uids`).
            assert!(
                host >= 0x7000_0000,
                "mapped onto {host}, not an instance uid: {got}"
            );
        }
    }
    // Root is not mapped: the instance's own uid, as without a `User`.
    let got = answer(
        &mgr,
        &spec(function("user-root", json!({})), &with_user("root")),
    )
    .await;
    assert_ne!(got["uid"], "0", "{got}");
    // A user the image does not know fails the start, naming it.
    match mgr
        .invoke(
            &spec(function("user-ghost", json!({})), &with_user("ghost")),
            request("req-ghost"),
        )
        .await
    {
        Err(InvokeError::Start(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("'ghost'") && msg.contains("/etc/passwd"),
                "{msg}"
            );
        }
        other => panic!("an unknown USER must fail the start: {other:?}"),
    }
    mgr.shutdown(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_image_s_later_cold_starts_take_a_prewarmed_jail_of_it() {
    let (data, mgr, image) = setup(1).await;
    // The first start of the image makes its kind: a blank on its root is kept from then on.
    answer(&mgr, &spec(function("first", json!({})), &image)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while mgr.isolation()["prewarmed"].as_u64().unwrap_or(0) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no prewarmed jail of the image became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let marker = "assigned-not-spawned-5d1e";
    let got = answer(
        &mgr,
        &spec(
            function(
                "second",
                json!({"environmentVariables": {"USER_VAR": marker},
                       "customContainerConfig": {"args": "[\"via-blank\"]"}}),
            ),
            &image,
        ),
    )
    .await;
    assert_eq!(got["user"], marker, "{got}");
    assert_eq!(got["args"], "via-blank", "{got}");
    assert_eq!(got["cwd"], "/srv", "{got}");
    assert_eq!(got["root"], "readonly", "{got}");
    let inits = common::jail_init_environs(data.path());
    assert!(!inits.is_empty(), "no jail init of this test found");
    assert!(
        inits.iter().all(|env| !env.contains(marker)),
        "the second instance was started afresh, not from the prewarmed jail"
    );
    // An image no function names any more: its kind and blanks go, unpinning its tree.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while mgr.isolation()["prewarmed"].as_u64().unwrap_or(0) < 1 {
        assert!(std::time::Instant::now() < deadline, "no refill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mgr.keep_image_jails(&std::collections::HashSet::new());
    assert_eq!(mgr.isolation()["prewarmed"].as_u64(), Some(0));
    mgr.shutdown(Duration::from_secs(10)).await;
}
