//! `fcd serve`: build everything from configuration, bind, serve, and shut down in order —
//! stop accepting, drain in-flight requests for a grace period, then stop every instance.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use fcd_api::{AppState, Control, FrontDoor, Iam};
use fcd_control::iam::{IamConfig, MIN_SESSION_DURATION_SECS, RootKey};
use fcd_runtime::{
    InstanceManager, NetworkMode, Registry, RuntimeConfig, RuntimeOptions, WasmOptions,
};
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

/// How instances are isolated. There is no silent fallback: a server that cannot jail refuses
/// to start and says what is missing, and unjailed instances are only ever what the operator
/// asked for. `auto`, which used to fall back to unjailed instances, is kept as a spelling of
/// `jail` so that old configurations get the jail or a clear refusal, never less isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Isolation {
    /// Jail every instance (the default): private root showing an allow-list of the host, PID,
    /// mount, IPC, UTS and network namespaces, cgroup limits, a uid of its own, a system-call
    /// filter. Needs root; fcd refuses to start where it cannot jail.
    #[value(alias = "auto")]
    Jail,
    /// Reduced isolation, only on request: instances run unjailed as fcd's own user, seeing
    /// the host's files (fcd's data dir and credentials included) and processes, with no
    /// memory limit and no system-call filter. For trusted code only.
    None,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// How strongly instances are isolated from the host and from each other.
    #[arg(long, env = "FCD_ISOLATION", value_enum, default_value = "jail")]
    isolation: Isolation,
    /// Address to listen on (port 0 picks a free one; see <data-dir>/listen-addr).
    #[arg(long, env = "FCD_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The URL clients reach this server at (e.g. behind a proxy), the base of HTTP triggers'
    /// URLs. Default: http:// and the listen address (127.0.0.1 for an unspecified one).
    #[arg(long, env = "FCD_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// The metadata store shared by a cluster's nodes: `postgres://user@host:port/db`. Unset:
    /// the embedded SQLite file in the data dir (one machine).
    #[arg(long, env = "FCD_STORE", value_parser = parse_store_url)]
    store: Option<String>,
    /// The async work queue shared by a cluster's nodes: `nats://host:port[/stream]`
    /// (JetStream; the invocation records live in `--store`, which must then be PostgreSQL).
    /// Unset: the embedded queue file in the data dir, or PostgreSQL when `--store` is.
    #[arg(long, env = "FCD_QUEUE", value_parser = parse_queue_url)]
    queue: Option<String>,
    /// This node's name in its cluster (default: one generated and kept in the data dir).
    #[arg(long, env = "FCD_NODE_ID", value_parser = parse_node_id)]
    node_id: Option<String>,
    /// The URL other nodes reach this one's API at, to forward calls to its warm instances.
    /// Default: http:// and the listen address (127.0.0.1 for an unspecified one).
    #[arg(long, env = "FCD_ADVERTISE_URL", value_parser = parse_public_url)]
    advertise_url: Option<String>,
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
    /// Where the `wasm` runtime keeps compiled code (default: `<data-dir>/wasm-cache`). Several
    /// servers on one machine may share it: each file is named by the guest's digest and the
    /// engine build, and written whole before it appears.
    #[arg(long, env = "FCD_WASM_CACHE_DIR")]
    wasm_cache_dir: Option<PathBuf>,
    /// Whether the `wasm` runtime preallocates its instances' memory slots (wasmtime's pooling
    /// allocator, sized from `--max-instances`); `false` allocates per instance.
    #[arg(long, env = "FCD_WASM_POOLING", default_value_t = true, action = clap::ArgAction::Set)]
    wasm_pooling: bool,
    /// A registry reached over plain HTTP instead of HTTPS, as `HOST:PORT` (or `HOST`: every
    /// port of it), for `custom-container` images; repeat the flag for more.
    #[arg(
        long = "insecure-registry",
        env = "FCD_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    insecure_registries: Vec<String>,
    /// Credentials for image registries, per registry host, in Docker's `config.json` format
    /// (`{"auths": {"HOST:PORT": {"auth": base64("user:password")}}}`). FC 3.0 functions may
    /// bring their own (`registryConfig.authConfig`).
    #[arg(long, env = "FCD_REGISTRY_AUTH_FILE")]
    registry_auth_file: Option<PathBuf>,
    /// Where pulled images are unpacked (default `<data-dir>/images`).
    #[arg(long, env = "FCD_IMAGE_CACHE_DIR")]
    image_cache_dir: Option<PathBuf>,
    /// Most disk space, in MB, unpacked images may take; beyond it the least recently used
    /// images no instance runs are removed (and pulled again when needed).
    #[arg(long, env = "FCD_IMAGE_CACHE_MAX_MB", default_value_t = 20480)]
    image_cache_max_mb: u64,
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
    /// Most asynchronous invocations running at once, all functions together (their share of
    /// the server's capacity; each function is further held to what its instances can take).
    #[arg(long, env = "FCD_ASYNC_WORKERS", default_value_t = 64)]
    async_workers: usize,
    /// Days finished stateful async invocation records are kept.
    #[arg(long, env = "FCD_ASYNC_RETENTION_DAYS", default_value_t = 7)]
    async_retention_days: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, env = "FCD_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Most client connections open at once; over it a new connection gets 503 and is closed
    /// (default: half the open-file limit, between 64 and 16384).
    #[arg(long, env = "FCD_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: Option<u32>,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    #[arg(long, env = "FCD_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout_secs: u64,
    /// Seconds a request body may make no progress before the request fails (408).
    #[arg(long, env = "FCD_BODY_READ_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_read_timeout_secs: u64,
    /// ACS3 signature nonces remembered against replays (8 bytes plus table overhead each);
    /// when full, the window of remembered dates shrinks instead.
    #[arg(long, env = "FCD_REPLAY_CACHE_ENTRIES", default_value_t = fcd_api::replay::DEFAULT_CAPACITY as u64,
          value_parser = clap::value_parser!(u64).range(1024..=1 << 30))]
    replay_cache_entries: u64,
    /// Serve Prometheus metrics (`GET /metrics`, unsigned) on this address, e.g.
    /// 127.0.0.1:9100 (port 0 picks one; see <data-dir>/metrics-addr). Off by default; the API
    /// port never serves them.
    #[arg(long, env = "FCD_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Also serve plain web traffic on this address, e.g. 0.0.0.0:80 (port 0 picks one; see
    /// <data-dir>/http-addr): custom domains (by Host) and HTTP-trigger `/proxy/` URLs only,
    /// never the API. The API listener serves both as well.
    #[arg(long, env = "FCD_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Most megabytes of log files kept per function under <data-dir>/logs (`fcd logs`); the
    /// oldest records go first.
    #[arg(long, env = "FCD_LOG_MAX_MB_PER_FUNCTION",
          default_value_t = fcd_runtime::logstore::DEFAULT_MAX_MB_PER_FUNCTION,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    log_max_mb_per_function: u64,
    /// Hours functions' log records are kept.
    #[arg(long, env = "FCD_LOG_RETENTION_HOURS",
          default_value_t = fcd_runtime::logstore::DEFAULT_RETENTION_HOURS,
          value_parser = clap::value_parser!(u64).range(1..=24 * 365 * 10))]
    log_retention_hours: u64,
    /// Seconds between collections of code packages no function or version references.
    #[arg(long, env = "FCD_CODE_GC_INTERVAL_SECS", default_value_t = 600)]
    code_gc_interval_secs: u64,
    /// Seconds a package stays after its upload even unreferenced (a create or update that
    /// uploaded it may still be committing).
    #[arg(long, env = "FCD_CODE_GC_GRACE_SECS", default_value_t = 600)]
    code_gc_grace_secs: u64,
    /// TESTS ONLY: the lowest DurationSeconds STS AssumeRole accepts (STS's own minimum, 900,
    /// when unset), so tests can see temporary credentials expire within seconds. Hidden: it
    /// weakens nothing by default and is never needed in production.
    #[arg(long, hide = true)]
    test_sts_min_duration_secs: Option<u64>,
}

/// Raises the soft limit on open files to the hard one (as Go and most servers do), since
/// each client connection needs a descriptor; returns the limit in force.
fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    // The kernel refuses more than fs.nr_open (2^20 by default), even under an infinite hard
    // limit.
    let want = hard.min(1 << 20);
    if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
        return want;
    }
    soft
}

/// Half the descriptors for client connections; the rest are for instances (connections,
/// log pipes, cgroup files), the stores and the metrics listener.
fn default_max_connections(open_files: u64) -> usize {
    usize::try_from((open_files / 2).clamp(64, 16_384)).unwrap_or(16_384)
}

/// How long a draining cluster node keeps serving before its listener closes: more than one
/// heartbeat, so every peer has read that it is draining and sends it nothing new.
const DRAIN_ANNOUNCE: Duration = Duration::from_millis(2_500);

/// Connections the metrics listener takes at once (scrapers need one or two).
const METRICS_MAX_CONNECTIONS: usize = 16;

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
/// `--public-url`: an http(s) URL, kept without its trailing slash.
fn parse_public_url(s: &str) -> Result<String, String> {
    let ok = ["http://", "https://"]
        .iter()
        .any(|p| s.len() > p.len() && s.starts_with(p));
    if !ok || s.contains(char::is_whitespace) {
        return Err(format!("'{s}' is not an http:// or https:// URL"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// `--store`: a PostgreSQL URL.
fn parse_store_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a postgres:// URL (unset, the embedded store is used)"
        ))
    }
}

/// `--queue`: a NATS URL, `nats://host:port[/stream]`.
fn parse_queue_url(s: &str) -> Result<String, String> {
    fcd_queue::NatsConfig::from_url(s).map(|_| s.to_owned())
}

/// `--node-id`: 1 to 64 of `[A-Za-z0-9_.-]` (it travels in headers and NATS names).
fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' is not a node id: 1 to 64 letters, digits, '_', '-' or '.'"
        ))
    }
}

/// The node id from `--node-id`, else the one kept in the data dir (made on first start).
fn node_id(flag: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<String> {
    if let Some(id) = flag {
        return Ok(id.to_owned());
    }
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if parse_node_id(text.trim()).is_ok() => Ok(text.trim().to_owned()),
        Ok(_) => anyhow::bail!("{} does not hold a valid node id", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            write_atomically(data_dir, &path, &id)?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A URL as logs may show it: without the password of its user part.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn public_url(flag: Option<&str>, listen: SocketAddr) -> String {
    match flag {
        Some(u) => u.to_owned(),
        None if listen.ip().is_unspecified() => format!("http://127.0.0.1:{}", listen.port()),
        None => format!("http://{listen}"),
    }
}

fn url_secret(secret: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(format!("fcd code urls\n{secret}").as_bytes()).to_vec()
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Before anything is announced: a SIGTERM sent as soon as listen-addr exists must stop the
    // server gracefully, not kill it with the default action.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // First, so every process fcd starts (instances, prewarmed jails) sees the same limit.
    let open_files = raise_open_files_limit();
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

    if args.queue.is_some() && args.store.is_none() {
        anyhow::bail!(
            "--queue needs --store postgres://…: the async invocation records live in the shared store"
        );
    }
    let node_id = node_id(args.node_id.as_deref(), &data_dir)?;
    // The metadata store: embedded (one machine), or PostgreSQL shared by a cluster, which also
    // holds the code packages every node fetches by digest.
    let mut code = CodeStore::open(data_dir.join("code"))?;
    let store: Arc<dyn fcd_store::MetadataStore> = match &args.store {
        None => Arc::new(
            SqliteStore::open(&data_dir.join("meta.db"))
                .await
                .map_err(|e| anyhow::anyhow!("opening the metadata store: {e}"))?,
        ),
        Some(url) => {
            let pg = fcd_store::PgStore::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("opening the metadata store {}: {e}", redact(url)))?;
            code = code.with_shared(Arc::new(pg.packages()));
            Arc::new(pg)
        }
    };
    // Bound early: the address other nodes forward calls to must be known before joining.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let advertise = args
        .advertise_url
        .clone()
        .unwrap_or_else(|| public_url(None, addr));
    let cluster = Arc::new(match &args.store {
        None => fcd_cluster::Cluster::single(fcd_cluster::NodeInfo::new(&node_id, &advertise)),
        Some(url) => {
            fcd_cluster::Cluster::postgres(url, fcd_cluster::NodeInfo::new(&node_id, &advertise))
                .await
                .map_err(|e| anyhow::anyhow!("joining the cluster on {}: {e}", redact(url)))?
        }
    });
    if !cluster.is_single() {
        tracing::info!(node = %node_id, url = %advertise, "joined the cluster");
    }
    let runtime_dir = data_dir.join("runtime");
    std::fs::create_dir_all(&runtime_dir)?;
    let runtimes = Registry::detect(&RuntimeOptions {
        python: args.python.clone(),
        node: args.node.clone(),
        dir: runtime_dir.clone(),
        wasm: Some(WasmOptions {
            cache_dir: args
                .wasm_cache_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("wasm-cache")),
            max_instances: args.max_instances.unwrap_or_else(default_max_instances),
            pooling: args.wasm_pooling,
        }),
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
            tracing::warn!(
                "instances run UNJAILED (--isolation none): as fcd's own user (uid {}), seeing the host's files — fcd's data dir and credentials included — and processes, with no memory limit and no system-call filter; run only trusted code",
                nix::unistd::geteuid()
            );
            jail_unavailable = Some("disabled with --isolation none".to_owned());
            None
        }
        Isolation::Jail => {
            let exe = std::env::current_exe()?;
            let tag = data_dir_tag(&data_dir);
            match fcd_runtime::sandbox::JailConfig::detect(exe, &data_dir, &tag).await {
                Ok(j) => {
                    tracing::info!(
                        "instances run jailed: private root showing an allow-list of the host, code read-only at /code, PID/mount/IPC/UTS namespaces, {}, system-call filter, {} memory and process limits",
                        j.describe_uids(),
                        j.cgroups.describe()
                    );
                    Some(j)
                }
                Err(why) => anyhow::bail!(
                    "instances cannot be jailed on this host: {why}.\n\
                     fcd does not run functions unjailed unless asked to. To run them anyway, \
                     as fcd's own user and able to read everything fcd can (its data dir and \
                     credentials included), pass --isolation none (FCD_ISOLATION=none) — for \
                     trusted code only."
                ),
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
    // Functions' output, kept per function (written by its own thread, off the invoke path).
    let log_store = fcd_runtime::logstore::LogStore::open(
        data_dir.join("logs"),
        fcd_runtime::logstore::LogLimits {
            max_bytes_per_function: args.log_max_mb_per_function << 20,
            retention: Duration::from_secs(args.log_retention_hours * 3600),
        },
    )
    .context("opening the log store")?;
    let runtime = Arc::new(
        InstanceManager::new(RuntimeConfig {
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
        })
        .with_log_store(log_store),
    );
    tokio::spawn(runtime.clone().reclaim_idle_forever());
    runtime.start_prewarming();
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
    // `custom-container` images: pulled over HTTPS on rustls with ring (the provider the
    // rest of fcd's TLS uses), unpacked under the data dir.
    fcd_image::install_tls_provider();
    let images = Arc::new(
        fcd_image::ImageStore::open(fcd_image::ImageOptions {
            dir: args
                .image_cache_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("images")),
            max_bytes: args.image_cache_max_mb.saturating_mul(1024 * 1024),
            insecure_registries: args.insecure_registries.clone(),
            auth_file: args.registry_auth_file.clone(),
        })
        .map_err(|e| anyhow::anyhow!("image store: {e}"))?,
    );
    let control = Arc::new(
        Control::new(
            store,
            code,
            runtime.clone(),
            args.region.clone(),
            url_secret(&creds.access_key_secret),
            iam.clone(),
        )
        .with_cluster(cluster.clone())
        .with_images(images.clone()),
    );
    tokio::spawn(control.clone().apply_cluster_events_forever());
    tokio::spawn(control.clone().reconcile_provisioning_forever());
    tokio::spawn(
        control
            .clone()
            .collect_images_forever(Duration::from_secs(args.code_gc_interval_secs.max(1))),
    );
    tokio::spawn(control.clone().collect_code_forever(
        Duration::from_secs(args.code_gc_interval_secs.max(1)),
        Duration::from_secs(args.code_gc_grace_secs),
    ));
    // The async queue: embedded (one machine); in a cluster, PostgreSQL alone or NATS
    // JetStream for the work with the records in PostgreSQL.
    let queue = match (&args.store, &args.queue) {
        (None, _) => fcd_queue::Queue::embedded(&data_dir.join("queue.db")).await,
        (Some(pg), None) => fcd_queue::Queue::postgres(pg).await,
        (Some(pg), Some(nats)) => match fcd_queue::NatsConfig::from_url(nats) {
            Ok(cfg) => fcd_queue::Queue::nats_with(cfg, pg).await,
            Err(why) => anyhow::bail!("--queue: {why}"),
        },
    }
    .map_err(|e| anyhow::anyhow!("opening the async queue: {e}"))?;
    let asynchronous = Arc::new(fcd_control::asynchronous::AsyncEngine::new(
        queue,
        control.clone(),
        args.async_workers,
        Duration::from_secs(args.async_retention_days * 86_400),
        &node_id,
    ));
    asynchronous
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("starting async invocation: {e}"))?;
    if !cluster.is_single() {
        tokio::spawn(cluster_jobs(cluster.clone(), asynchronous.clone()));
    }
    // Timer triggers fire through the async engine; started before the listener is announced,
    // stopped first at shutdown.
    let timers = fcd_control::timers::spawn(
        control.clone(),
        asynchronous.clone(),
        Arc::new(fcd_control::timers::SystemClock),
    );
    let front_door = Arc::new(FrontDoor::new(
        usize::try_from(args.replay_cache_entries).unwrap_or(fcd_api::replay::DEFAULT_CAPACITY),
        Duration::from_secs(args.body_read_timeout_secs),
    ));
    let state = AppState {
        front_door: front_door.clone(),
        asynchronous: asynchronous.clone(),
        iam,
        control,
        public_url: public_url(args.public_url.as_deref(), addr).into(),
        forwarder: fcd_api::forward::Forwarder::new(&node_id)
            .map_err(|e| anyhow::anyhow!("forwarding between nodes: {e}"))?,
    };

    let max_connections = args
        .max_connections
        .map(|n| n as usize)
        .unwrap_or_else(|| default_max_connections(open_files));
    let header_read_timeout = Duration::from_secs(args.header_read_timeout_secs);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The metrics listener first, so its address is known before the API's is announced.
    let mut metrics_server = None;
    let metrics_addr_file = data_dir.join("metrics-addr");
    let _ = std::fs::remove_file(&metrics_addr_file);
    if let Some(metrics_listen) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(metrics_listen)
            .await
            .with_context(|| format!("binding the metrics listener {metrics_listen}"))?;
        let addr = listener.local_addr()?;
        write_atomically(&data_dir, &metrics_addr_file, &addr.to_string())?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
        metrics_server = Some(tokio::spawn(crate::listener::serve(
            listener,
            fcd_api::metrics_router(state.clone()),
            crate::listener::Limits {
                name: "metrics",
                max_connections: METRICS_MAX_CONNECTIONS,
                header_read_timeout,
                counters: None,
                closing: None,
            },
            stop_rx.clone(),
        )));
    }

    // The plain-web listener: its own connection cap (the API's), same accept loop.
    let mut web_server = None;
    let web_addr_file = data_dir.join("http-addr");
    let _ = std::fs::remove_file(&web_addr_file);
    if let Some(http_listen) = args.http_listen {
        let listener = tokio::net::TcpListener::bind(http_listen)
            .await
            .with_context(|| format!("binding the web listener {http_listen}"))?;
        let addr = listener.local_addr()?;
        write_atomically(&data_dir, &web_addr_file, &addr.to_string())?;
        tracing::info!(%addr, "custom domains and HTTP triggers on http://{addr}/");
        web_server = Some(tokio::spawn(crate::listener::serve(
            listener,
            fcd_api::web_router(state.clone()),
            crate::listener::Limits {
                name: "web (--max-connections)",
                max_connections,
                header_read_timeout,
                counters: None,
                closing: Some(closing.clone()),
            },
            stop_rx.clone(),
        )));
    }

    let addr_file = data_dir.join("listen-addr");
    write_atomically(&data_dir, &addr_file, &addr.to_string())?;
    tracing::info!(%addr, data_dir = %data_dir.display(), account = %creds.account_id, region = %args.region, max_connections, "fcd listening on http://{addr}");

    let server = tokio::spawn(crate::listener::serve(
        listener,
        fcd_api::router(state),
        crate::listener::Limits {
            name: "api (--max-connections)",
            max_connections,
            header_read_timeout,
            counters: Some(front_door),
            closing: Some(closing.clone()),
        },
        stop_rx.clone(),
    ));

    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    if !cluster.is_single() {
        // Leave gently: the other nodes stop forwarding calls here and take over this node's
        // provisioned share once they see it draining (their next heartbeat read), while this
        // node still serves whatever reaches it; meanwhile every response closes its
        // connection, so a load balancer holds no idle connection here when the listener
        // closes (see `listener::Limits::closing`).
        tracing::info!("draining: leaving the cluster");
        if let Err(e) = cluster.drain().await {
            tracing::warn!(error = %e, "could not mark this node draining");
        }
        closing.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_ANNOUNCE) => {},
            _ = term.recv() => tracing::warn!("second signal: stopping now"),
            _ = int.recv() => tracing::warn!("second signal: stopping now"),
        }
    }
    tracing::info!("shutting down: no new requests; draining in-flight ones");
    timers.stop().await;
    let _ = stop_tx.send(true);
    if let Some(logs) = runtime.log_store() {
        logs.close();
    }
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let clustered = !cluster.is_single();
    let drain = async {
        // A cluster node also finishes the async calls it runs, within the grace period, and
        // hands back the rest so that another node runs them now rather than after their
        // lease lapses (a single node keeps them for its own restart).
        let handed_back = async {
            if clustered {
                let deadline =
                    tokio::time::Instant::now() + grace.saturating_sub(Duration::from_millis(500));
                let n = asynchronous.drain(deadline).await;
                if n > 0 {
                    tracing::info!(calls = n, "handed back async calls still running");
                }
            }
        };
        let listeners = async {
            let _ = server.await;
            if let Some(m) = metrics_server {
                let _ = m.await;
            }
            if let Some(w) = web_server {
                let _ = w.await;
            }
        };
        tokio::join!(handed_back, listeners);
    };
    tokio::select! {
        _ = tokio::time::timeout(grace, drain) => {},
        _ = term.recv() => tracing::warn!("second signal: stopping now"),
        _ = int.recv() => tracing::warn!("second signal: stopping now"),
    }
    asynchronous.close();
    runtime.shutdown(Duration::from_millis(100)).await;
    if let Err(e) = cluster.leave().await {
        tracing::warn!(error = %e, "could not leave the cluster cleanly (its heartbeat lapses instead)");
    }
    let _ = std::fs::remove_file(&addr_file);
    let _ = std::fs::remove_file(&metrics_addr_file);
    let _ = std::fs::remove_file(&web_addr_file);
    tracing::info!("stopped");
    drop(stop_rx);
    Ok(())
}

/// A cluster node's part in the async engine's cluster life: the periodic jobs (expiry,
/// re-publishing, retention purge) run on the node holding their lease; a stop asked on
/// another node reaches the call running here at once (the lease extension would see it
/// within two seconds anyway); other nodes' config writes drop the cached configs.
async fn cluster_jobs(
    cluster: Arc<fcd_cluster::Cluster>,
    asynchronous: Arc<fcd_control::asynchronous::AsyncEngine>,
) {
    // Cached async configs are dropped in the cluster's listener, before the writer's
    // change is acknowledged (as the control plane's caches are).
    let engine = asynchronous.clone();
    cluster.add_hook(Arc::new(move |event| match event {
        fcd_cluster::ClusterEvent::Invalidate { account, service } => {
            engine.forget_cached(Some(account), service.as_deref());
        }
        fcd_cluster::ClusterEvent::Resync => engine.forget_cached(None, None),
        _ => {}
    }));
    let mut events = cluster.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                asynchronous.set_runs_jobs(cluster.holds("async-sweeper"));
            }
            event = events.recv() => match event {
                Ok(fcd_cluster::ClusterEvent::StopInvocation { account, service, function, invocation_id }) => {
                    asynchronous.cancel_local(&account, &service, &function, &invocation_id);
                }
                // Missed events (a lost listener says so with a resync, which the hooks do
                // not see; a lagging receiver by its error): every cached config goes.
                Ok(fcd_cluster::ClusterEvent::Resync)
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    asynchronous.forget_cached(None, None);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Writes `text` to `path` under a temporary name first, so a reader never sees half of it.
fn write_atomically(
    dir: &std::path::Path,
    path: &std::path::Path,
    text: &str,
) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
