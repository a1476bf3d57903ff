//! `fcd serve`: build everything from configuration, bind, serve, and shut down in order —
//! stop accepting, drain in-flight requests for a grace period, then stop every instance.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use fcd_api::{AppState, Control, Iam};
use fcd_control::iam::{IamConfig, MIN_SESSION_DURATION_SECS, RootKey};
use fcd_runtime::{InstanceManager, NetworkMode, Registry, RuntimeConfig, RuntimeOptions};
use fcd_store::SqliteStore;
use fcd_store::code::CodeStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Network {
    /// A private network namespace per instance where the kernel allows it, else host.
    Auto,
    /// Always a private namespace; fail if unavailable.
    Namespace,
    /// The host's network, a distinct port per instance.
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Isolation {
    /// Jail instances where the host allows it (root, namespaces), else run them unjailed.
    Auto,
    /// Always jail instances; refuse to start if the host cannot.
    Jail,
    /// Never jail instances (they still get their own network namespace where possible).
    None,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// How strongly instances are isolated from the host and from each other.
    #[arg(long, env = "FCD_ISOLATION", value_enum, default_value = "auto")]
    isolation: Isolation,
    /// Address to listen on (port 0 picks a free one; see <data-dir>/listen-addr).
    #[arg(long, env = "FCD_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Where fcd keeps its metadata, code packages and credentials.
    #[arg(long, env = "FCD_DATA_DIR", default_value = "./fcd-data")]
    data_dir: PathBuf,
    /// Region reported to functions and clients.
    #[arg(long, env = "FCD_REGION", default_value = "cn-hangzhou")]
    region: String,
    /// How instances get their network.
    #[arg(long, env = "FCD_INSTANCE_NETWORK", value_enum, default_value = "auto")]
    instance_network: Network,
    /// Python interpreter for the python3* runtimes.
    #[arg(long, env = "FCD_PYTHON", default_value = "python3")]
    python: String,
    /// Node.js for the nodejs* runtimes.
    #[arg(long, env = "FCD_NODE", default_value = "node")]
    node: String,
    /// The subnet of instances' outbound network (default: a free /20 in 10.234.0.0/16).
    #[arg(long, env = "FCD_INSTANCE_SUBNET")]
    instance_subnet: Option<String>,
    /// Prewarmed jails kept ready per kind of instance (runtime and memory size), so a cold
    /// start skips the jail's set-up and the runtime's own start (0 turns it off; jailed only).
    #[arg(long, env = "FCD_PREWARM", default_value_t = 1)]
    prewarm: u32,
    /// Seconds a new instance may take to start listening.
    #[arg(long, env = "FCD_INSTANCE_START_TIMEOUT_SECS", default_value_t = 20)]
    instance_start_timeout_secs: u64,
    /// Most instances running at once (default: 64 per CPU).
    #[arg(long, env = "FCD_MAX_INSTANCES")]
    max_instances: Option<u32>,
    /// Most memory, in MB, handed to instances (sum of their memorySize; default: 80% of RAM).
    #[arg(long, env = "FCD_MAX_MEMORY_MB")]
    max_memory_mb: Option<u64>,
    /// Seconds an on-demand instance may stay idle before it is stopped (FC: 2 to 5 minutes).
    #[arg(long, env = "FCD_IDLE_TIMEOUT_SECS", default_value_t = 180)]
    idle_timeout_secs: u64,
    /// Workers running asynchronous invocations (their share of the server's capacity).
    #[arg(long, env = "FCD_ASYNC_WORKERS", default_value_t = 8)]
    async_workers: usize,
    /// Days finished stateful async invocation records are kept.
    #[arg(long, env = "FCD_ASYNC_RETENTION_DAYS", default_value_t = 7)]
    async_retention_days: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "FCD_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// TESTS ONLY: the lowest DurationSeconds STS AssumeRole accepts (STS's own minimum, 900,
    /// when unset), so tests can see temporary credentials expire within seconds. Hidden: it
    /// weakens nothing by default and is never needed in production.
    #[arg(long, hide = true)]
    test_sts_min_duration_secs: Option<u64>,
}

/// A short, stable name for this data dir, so each server's cgroups are its own.
fn data_dir_tag(dir: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(dir.as_os_str().as_encoded_bytes())[..6])
}

fn default_max_instances() -> u32 {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (cpus as u32).saturating_mul(64)
}

/// 80 % of the machine's memory, so instances can never take all of it.
fn default_max_memory_mb() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(4 * 1024 * 1024);
    total_kib / 1024 * 4 / 5
}

/// The key that seals STS security tokens and derives temporary secrets: derived from the root
/// secret, so every node configured with the same credentials accepts the others' tokens, and
/// rotating the secret revokes every temporary credential.
fn sts_token_key(secret: &str) -> fcd_iam::TokenKey {
    fcd_iam::TokenKey::derive(format!("fcd sts token key\n{secret}").as_bytes())
}

/// A key for signing code-download URLs, derived so it changes when the secret does.
fn url_secret(secret: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(format!("fcd code urls\n{secret}").as_bytes()).to_vec()
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let (creds, generated) = crate::credentials::load(&data_dir)?;
    if generated {
        println!(
            "fcd generated credentials (saved in {}):",
            data_dir.join("credentials.json").display()
        );
        println!("  AccessKeyId:     {}", creds.access_key_id);
        println!("  AccessKeySecret: {}", creds.access_key_secret);
        println!("  AccountId:       {}", creds.account_id);
    }

    let store = SqliteStore::open(&data_dir.join("meta.db"))
        .await
        .map_err(|e| anyhow::anyhow!("opening the metadata store: {e}"))?;
    let code = CodeStore::open(data_dir.join("code"))?;
    let runtime_dir = data_dir.join("runtime");
    std::fs::create_dir_all(&runtime_dir)?;
    let runtimes = Registry::detect(&RuntimeOptions {
        python: args.python.clone(),
        node: args.node.clone(),
        dir: runtime_dir.clone(),
    });
    for (family, why) in runtimes.missing() {
        tracing::warn!("{family} functions cannot run on this server: {why}");
    }
    tracing::info!(runtimes = %runtimes.runnable().join(", "), "runtimes");

    let network = match args.instance_network {
        Network::Host => NetworkMode::Host,
        Network::Namespace | Network::Auto => NetworkMode::detect(),
    };
    if args.instance_network == Network::Namespace && network != NetworkMode::Namespace {
        anyhow::bail!(
            "--instance-network namespace: this process may not create network namespaces"
        );
    }
    match network {
        NetworkMode::Namespace => tracing::info!("instances run in private network namespaces"),
        NetworkMode::Host => tracing::warn!(
            "instances share the host network (reduced isolation): each listens on its own port from FC_SERVER_PORT / FC_CUSTOM_LISTEN_PORT instead of caPort"
        ),
    }
    let mut jail_unavailable = None;
    let jail = match args.isolation {
        Isolation::None => {
            jail_unavailable = Some("disabled with --isolation none".to_owned());
            None
        }
        Isolation::Auto | Isolation::Jail => {
            let exe = std::env::current_exe()?;
            let tag = data_dir_tag(&data_dir);
            match fcd_runtime::sandbox::JailConfig::detect(exe, &data_dir, &tag).await {
                Ok(j) => {
                    let limits = match &j.cgroups {
                        Some(c) => format!("{} memory and process limits", c.describe()),
                        None => "no cgroup limits (no writable memory controller)".to_owned(),
                    };
                    tracing::info!(
                        "instances run jailed: private root with /code, PID/mount/IPC/UTS namespaces, uid {}, {limits}",
                        j.uid
                    );
                    Some(j)
                }
                Err(why) if args.isolation == Isolation::Jail => {
                    anyhow::bail!("--isolation jail: instances cannot be jailed here: {why}")
                }
                Err(why) => {
                    tracing::warn!(
                        "instances run WITHOUT a jail ({why}): they can see the host's files and processes, and memorySize is not enforced"
                    );
                    jail_unavailable = Some(why);
                    None
                }
            }
        }
    };
    // Outbound network for instances with internetAccess (FC's default): a bridge with NAT and
    // the host's loopback at a documented address.
    let (egress, egress_unavailable) = match network {
        NetworkMode::Host => (None, None),
        NetworkMode::Namespace => {
            let tag = data_dir_tag(&data_dir);
            let subnet = args.instance_subnet.clone();
            let dir = runtime_dir.clone();
            match tokio::task::spawn_blocking(move || {
                fcd_runtime::sandbox::Egress::setup(&tag, &dir, subnet.as_deref())
            })
            .await?
            {
                Ok(e) => {
                    tracing::info!(
                        "instances with internetAccess get outbound network: {}; the host is at {} (FCD_HOST_ADDR, `fcd-host`)",
                        e.describe(),
                        e.host_addr()
                    );
                    (Some(e), None)
                }
                Err(why) if args.instance_subnet.is_some() => {
                    anyhow::bail!("--instance-subnet: outbound network cannot be set up: {why}")
                }
                Err(why) => {
                    tracing::warn!(
                        "instances get NO outbound network ({why}): they reach only themselves, whatever internetAccess says"
                    );
                    (None, Some(why))
                }
            }
        }
    };
    let runtime = Arc::new(InstanceManager::new(RuntimeConfig {
        region: args.region.clone(),
        network,
        runtimes,
        start_timeout: Duration::from_secs(args.instance_start_timeout_secs),
        max_instances: args.max_instances.unwrap_or_else(default_max_instances),
        max_memory_mb: args.max_memory_mb.unwrap_or_else(default_max_memory_mb),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
        jail,
        jail_unavailable,
        egress,
        egress_unavailable,
        prewarm: args.prewarm,
        code_store: Some(data_dir.join("code")),
    }));
    tokio::spawn(runtime.clone().reclaim_idle_forever());
    runtime.start_prewarming();
    let store: Arc<dyn fcd_store::MetadataStore> = Arc::new(store);
    if let Some(secs) = args.test_sts_min_duration_secs {
        tracing::warn!(
            "--test-sts-min-duration-secs {secs}: AssumeRole accepts sessions shorter than STS's {MIN_SESSION_DURATION_SECS} s (tests only)"
        );
    }
    let iam = Arc::new(Iam::new(
        store.clone(),
        IamConfig {
            region: args.region.clone(),
            root_keys: vec![RootKey {
                access_key_id: creds.access_key_id.clone(),
                access_key_secret: creds.access_key_secret.clone(),
                account_id: creds.account_id.clone(),
            }],
            token_key: sts_token_key(&creds.access_key_secret),
            min_session_duration_secs: args
                .test_sts_min_duration_secs
                .unwrap_or(MIN_SESSION_DURATION_SECS),
        },
    ));
    let control = Arc::new(Control::new(
        store,
        code,
        runtime.clone(),
        args.region.clone(),
        url_secret(&creds.access_key_secret),
    ));
    tokio::spawn(control.clone().reconcile_provisioning_forever());
    let queue = fcd_queue::SqliteQueue::open(&data_dir.join("queue.db"))
        .await
        .map_err(|e| anyhow::anyhow!("opening the async queue: {e}"))?;
    let asynchronous = Arc::new(fcd_control::asynchronous::AsyncEngine::new(
        Arc::new(queue),
        control.clone(),
        args.async_workers,
        Duration::from_secs(args.async_retention_days * 86_400),
    ));
    asynchronous
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("starting async invocation: {e}"))?;
    let state = AppState {
        asynchronous: asynchronous.clone(),
        iam,
        control,
    };

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let addr_file = data_dir.join("listen-addr");
    let tmp = data_dir.join(".listen-addr.tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, &addr_file)?;
    tracing::info!(%addr, data_dir = %data_dir.display(), account = %creds.account_id, region = %args.region, "fcd listening on http://{addr}");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = fcd_api::router(state);
    let mut stop_rx_server = stop_rx.clone();
    let server = tokio::spawn(async move {
        // `tap_io` (a no-op here) is what lets axum hand each request its peer address.
        let incoming = axum::serve::ListenerExt::tap_io(NoDelayListener(listener), |_| ());
        // The TCP peer goes into every request's extensions (`acs:SourceIp`).
        axum::serve(
            incoming,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop_rx_server.wait_for(|s| *s).await;
        })
        .await
    });

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down: no new requests; draining in-flight ones");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let drain = async {
        let _ = server.await;
    };
    tokio::select! {
        _ = tokio::time::timeout(grace, drain) => {},
        _ = term.recv() => tracing::warn!("second signal: stopping now"),
        _ = int.recv() => tracing::warn!("second signal: stopping now"),
    }
    asynchronous.close();
    runtime.shutdown(Duration::from_millis(100)).await;
    let _ = std::fs::remove_file(&addr_file);
    tracing::info!("stopped");
    drop(stop_rx);
    Ok(())
}

/// Accepts connections with `TCP_NODELAY` set: without it, small responses wait ~40 ms for
/// delayed ACKs.
struct NoDelayListener(tokio::net::TcpListener);

impl axum::serve::Listener for NoDelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (stream, addr);
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}
