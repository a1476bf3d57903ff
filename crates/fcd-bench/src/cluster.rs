//! The cluster scenario: fcd on its embedded store and queue (one node, the reference) against
//! fcd on PostgreSQL + NATS JetStream as one node, as one node behind nginx, as three
//! nodes behind nginx round-robin, and as three nodes where every sync call enters a node
//! without a warm instance and is forwarded to the one that has it, in one run, on the same
//! machine.
//!
//! This module owns what the harness needs of the engines — a fresh database per setup
//! (`CREATE DATABASE` through the `psql` client, dropped afterwards), a JetStream stream name
//! per setup (the `--queue` URL's path), and finding the engines' processes to count their
//! CPU time — and each setup's life cycle: start the nodes (each its own data dir, the same
//! credentials, `--store`, `--queue`, `--node-id`, `--advertise-url`), the balancer, deploy,
//! measure, delete, stop. Nothing is pinned: the nodes, the engines, nginx and the load
//! generator share the machine's CPUs, which is the point of the measurement.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;

use crate::http::{FcdInvoke, Target, send};
use crate::load::{self, CpuShare, LoadSpec, cpu_shares};
use crate::nginx::{self, Nginx};
use crate::report::{ClusterResult, ClusterSetup, ClusterSync};
use crate::scenarios::{self, Bench, WARM_INSTANCE_CONCURRENCY};
use crate::server::{self, Api, FcdServer, SERVICE};
use crate::sys::{self, CpuGroup, Pinning};

/// The admin database URL (`postgres://user@host:port/db`) a fresh database is created next to.
pub(crate) const POSTGRES_ENV: &str = "FCD_TEST_POSTGRES";
/// The NATS server (`nats://host:port`); each setup gets its own stream on it.
pub(crate) const NATS_ENV: &str = "FCD_TEST_NATS";

/// The synchronous function (the custom fixture, a no-op).
const CLUSTER_SYNC: &str = "cluster-sync";
/// The asynchronous function, of its own so its backlog never meets the sync calls.
const CLUSTER_ASYNC: &str = "cluster-async";
/// The sync concurrencies.
const SYNC_CONCURRENCY: [usize; 2] = [8, 32];
/// The concurrency of the async accept measurement (and of the backlog's accepts).
const ASYNC_CONCURRENCY: usize = 64;
/// The gauge of instances holding a share of a node's budget.
const INSTANCES_USED: &str = "fcd_budget_instances_used";
/// How long the forwarded setup waits after warming one node: a few heartbeats
/// (`fcd_cluster::HEARTBEAT`, 1 s), so every peer has seen that node warm.
const HEARTBEATS_SETTLE: Duration = Duration::from_secs(3);
/// In the forwarded setup, the share of the calls the entry nodes may run themselves before
/// the setup is not what it claims to be (a node whose heartbeat read was late may run a
/// call or two locally at the start).
const FORWARD_TOLERANCE: f64 = 0.01;

/// The CPU groups, in the order the report shows them.
pub(crate) const FCD: &str = "fcd";
pub(crate) const NGINX: &str = "nginx";
pub(crate) const POSTGRES: &str = "PostgreSQL";
pub(crate) const NATS: &str = "NATS";
pub(crate) const GENERATOR: &str = "load generator";

/// Where the engines are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Engines {
    pub(crate) postgres: String,
    pub(crate) nats: String,
}

impl Engines {
    /// From `FCD_TEST_POSTGRES` and `FCD_TEST_NATS`; `Err` says what is missing or wrong.
    pub(crate) fn from_env() -> Result<Engines, String> {
        Engines::from_vars(
            std::env::var(POSTGRES_ENV).ok(),
            std::env::var(NATS_ENV).ok(),
        )
    }

    fn from_vars(pg: Option<String>, nats: Option<String>) -> Result<Engines, String> {
        let pg = pg.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let nats = nats.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let missing: Vec<&str> = [(POSTGRES_ENV, pg.is_none()), (NATS_ENV, nats.is_none())]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
        let (Some(pg), Some(nats)) = (pg, nats) else {
            return Err(format!(
                "{} not set: the cluster scenario needs {POSTGRES_ENV}=postgres://user@host:port/admin-db and \
                 {NATS_ENV}=nats://host:port (`eval \"$(scripts/services start)\"` starts both on loopback)",
                missing.join(" and ")
            ));
        };
        if !(pg.starts_with("postgres://") || pg.starts_with("postgresql://")) {
            return Err(format!("{POSTGRES_ENV} is not a postgres:// URL"));
        }
        if !nats.starts_with("nats://") {
            return Err(format!("{NATS_ENV} is not a nats:// URL"));
        }
        Ok(Engines { postgres: pg, nats })
    }
}

/// `scheme://authority` of `url` and what follows its path (`?query`), if anything.
fn split_url(url: &str) -> Result<(&str, &str, Option<&str>)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("not a URL (no ://)"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = before_query
        .split_once('/')
        .map_or(before_query, |(a, _)| a);
    if authority.is_empty() {
        bail!("no host in the URL");
    }
    Ok((scheme, authority, query))
}

/// `admin` with its database replaced by `db` (user, host, port and parameters kept).
pub(crate) fn database_url(admin: &str, db: &str) -> Result<String> {
    let (scheme, authority, query) = split_url(admin)?;
    Ok(match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    })
}

/// The `--queue` URL of the stream `stream` on the NATS server `nats` (its path, if any, is
/// replaced).
pub(crate) fn stream_url(nats: &str, stream: &str) -> Result<String> {
    let (scheme, authority, _) = split_url(nats)?;
    Ok(format!("{scheme}://{authority}/{stream}"))
}

/// The port of `url`'s authority, if it names one.
pub(crate) fn port_of(url: &str) -> Option<u16> {
    let (_, authority, _) = split_url(url).ok()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = host_port.rsplit_once(':')?;
    // `[::1]` alone has colons but no port.
    if host.starts_with('[') && !host.ends_with(']') {
        return None;
    }
    port.parse().ok()
}

/// `scheme://host:port` of `url`, without credentials or path: what the report may show.
fn public_part(url: &str) -> String {
    match split_url(url) {
        Ok((scheme, authority, _)) => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        Err(_) => "?".into(),
    }
}

/// 12 hex digits, for database and stream names no other run uses.
fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Runs one SQL statement with `psql` against `url`.
fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("running psql (the PostgreSQL client; Debian: postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql: {sql}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One request over NATS's text protocol (a fresh connection, an inbox of its own): the
/// reply's payload. Enough for JetStream's API (`$JS.API.…`), so the harness needs no NATS
/// client library for the two calls it makes.
fn nats_request(nats_url: &str, subject: &str, payload: &str) -> Result<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let (_, authority, _) = split_url(nats_url)?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .with_context(|| format!("resolving {host_port}"))?
        .next()
        .ok_or_else(|| anyhow!("{host_port} resolves to nothing"))?;
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to NATS at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let inbox = format!("_INBOX.fcdbench.{}", suffix());
    write!(
        writer,
        "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {inbox} 1\r\nPUB {subject} {inbox} {}\r\n{payload}\r\n",
        payload.len()
    )?;
    writer.flush()?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("NATS closed the connection before answering {subject}");
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["PING"] => {
                writer.write_all(b"PONG\r\n")?;
            }
            ["MSG", subj, _sid, len] | ["MSG", subj, _sid, _, len] if *subj == inbox => {
                let len: usize = len.parse().context("NATS MSG length")?;
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body)?;
                body.truncate(len);
                return Ok(String::from_utf8_lossy(&body).into_owned());
            }
            [err, ..] if err.starts_with("-ERR") => bail!("NATS: {}", line.trim()),
            // INFO, +OK, PONG.
            _ => {}
        }
    }
}

/// A JetStream stream's message counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamState {
    /// Messages in the stream now.
    messages: u64,
    /// The sequence of the last message ever stored: how many were published.
    last_seq: u64,
}

/// The state of the stream `name`, or `None` when there is no such stream.
fn stream_state(nats_url: &str, name: &str) -> Result<Option<StreamState>> {
    let reply = nats_request(nats_url, &format!("$JS.API.STREAM.INFO.{name}"), "")?;
    parse_stream_info(&reply)
}

fn parse_stream_info(reply: &str) -> Result<Option<StreamState>> {
    let v: serde_json::Value =
        serde_json::from_str(reply).with_context(|| format!("STREAM.INFO answered {reply}"))?;
    if let Some(err) = v.get("error") {
        if err["code"].as_u64() == Some(404) {
            return Ok(None);
        }
        bail!("STREAM.INFO: {err}");
    }
    let state = &v["state"];
    Ok(Some(StreamState {
        messages: state["messages"].as_u64().unwrap_or(0),
        last_seq: state["last_seq"].as_u64().unwrap_or(0),
    }))
}

/// Deletes the stream `name` (a setup's, once its nodes are gone).
fn delete_stream(nats_url: &str, name: &str) -> Result<()> {
    let reply = nats_request(nats_url, &format!("$JS.API.STREAM.DELETE.{name}"), "")?;
    let v: serde_json::Value =
        serde_json::from_str(&reply).with_context(|| format!("STREAM.DELETE answered {reply}"))?;
    if v["success"].as_bool() == Some(true) || v["error"]["code"].as_u64() == Some(404) {
        Ok(())
    } else {
        bail!("STREAM.DELETE {name}: {reply}")
    }
}

/// A database's activity counters (`pg_stat_database`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PgCounters {
    commits: u64,
    inserted: u64,
    updated: u64,
    deleted: u64,
}

/// What the database did per call between two readings.
fn pg_per_call(a: PgCounters, b: PgCounters, calls: usize) -> crate::report::PgPerCall {
    let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / calls.max(1) as f64;
    crate::report::PgPerCall {
        commits: per(a.commits, b.commits),
        rows_inserted: per(a.inserted, b.inserted),
        rows_updated: per(a.updated, b.updated),
        rows_deleted: per(a.deleted, b.deleted),
    }
}

fn parse_pg_counters(line: &str) -> Result<PgCounters> {
    let v: Vec<u64> = line
        .trim()
        .split('|')
        .map(|f| f.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("pg_stat_database answered {line:?}"))?;
    match v.as_slice() {
        [commits, inserted, updated, deleted] => Ok(PgCounters {
            commits: *commits,
            inserted: *inserted,
            updated: *updated,
            deleted: *deleted,
        }),
        _ => bail!("pg_stat_database answered {line:?}"),
    }
}

/// `db`'s counters. A backend reports its statistics when idle at most once a second, so a
/// reading right after activity misses up to a second of it: callers wait first.
fn pg_counters(admin: &str, db: &str) -> Result<PgCounters> {
    parse_pg_counters(&psql(
        admin,
        &format!(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = '{db}'"
        ),
    )?)
}

/// A database made for one setup, dropped (with whatever still holds a connection to it)
/// when this is dropped.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin: &str) -> Result<Database> {
        let name = format!("bench_{}", suffix());
        psql(admin, &format!("CREATE DATABASE \"{name}\""))?;
        Ok(Database {
            admin: admin.to_owned(),
            url: database_url(admin, &name)?,
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        ) {
            eprintln!("cluster: could not drop database {}: {e:#}", self.name);
        }
    }
}

/// Whether a PostgreSQL server process with command line `cmdline` works for the database
/// `db`: a client backend (`postgres: user db host(port) state`) only when it serves `db`;
/// the server's own processes (checkpointer, WAL writer, …) always — they write what every
/// database's commits produce. Other databases' backends (other test runs sharing the
/// server) are left out.
pub(crate) fn pg_process_serves(cmdline: &str, db: &str) -> bool {
    let Some(rest) = cmdline.strip_prefix("postgres: ") else {
        // The postmaster itself (its command line is the binary's).
        return true;
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let is_backend = words
        .get(2)
        .is_some_and(|w| w.contains('(') || *w == "[local]");
    !is_backend || words.get(1) == Some(&db)
}

/// The server process named `comm` whose parent is not one too (PostgreSQL's postmaster,
/// not its children), preferring one whose command line names `port`.
fn find_server(comm: &str, port: Option<u16>) -> Option<u32> {
    let candidates: Vec<u32> = sys::all_pids()
        .into_iter()
        .filter(|&p| sys::comm(p).as_deref() == Some(comm))
        .filter(|&p| sys::ppid(p).and_then(sys::comm).as_deref() != Some(comm))
        .collect();
    if let Some(port) = port {
        let port = port.to_string();
        let named = candidates.iter().copied().find(|&p| {
            sys::cmdline(p).is_some_and(|c| {
                c.split(|ch: char| ch.is_whitespace() || ch == '=' || ch == ':')
                    .any(|w| w == port)
            })
        });
        if named.is_some() {
            return named;
        }
    }
    match candidates.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The engines' processes on this machine, for their CPU time.
struct EngineProcs {
    postmaster: Option<u32>,
    nats: Option<u32>,
}

impl EngineProcs {
    fn find(engines: &Engines) -> EngineProcs {
        EngineProcs {
            postmaster: find_server("postgres", port_of(&engines.postgres)),
            nats: find_server("nats-server", port_of(&engines.nats)),
        }
    }

    /// The postmaster and those of its children that work for `db` (see
    /// [`pg_process_serves`]), as they are now.
    fn postgres_pids(&self, db: &str) -> Vec<u32> {
        let Some(pm) = self.postmaster else {
            return Vec::new();
        };
        let mut pids = vec![pm];
        pids.extend(
            sys::children(pm)
                .into_iter()
                .filter(|&p| sys::cmdline(p).is_some_and(|c| pg_process_serves(&c, db))),
        );
        pids
    }
}

/// One way of running fcd.
#[derive(Debug, Clone, Copy)]
struct Topology {
    id: &'static str,
    label: &'static str,
    engines: bool,
    nodes: usize,
    balanced: bool,
    /// Sync calls only, warm on one node and sent to the others (no balancer): every call
    /// forwarded.
    forwarded: bool,
}

const TOPOLOGIES: [Topology; 5] = [
    Topology {
        id: "embedded-1",
        label: "1 node, embedded (SQLite store and queue)",
        engines: false,
        nodes: 1,
        balanced: false,
        forwarded: false,
    },
    Topology {
        id: "engines-1",
        label: "1 node, PostgreSQL + NATS",
        engines: true,
        nodes: 1,
        balanced: false,
        forwarded: false,
    },
    Topology {
        id: "engines-1-nginx",
        label: "1 node, PostgreSQL + NATS, behind nginx",
        engines: true,
        nodes: 1,
        balanced: true,
        forwarded: false,
    },
    Topology {
        id: "engines-3-nginx",
        label: "3 nodes, PostgreSQL + NATS, nginx round-robin",
        engines: true,
        nodes: 3,
        balanced: true,
        forwarded: false,
    },
    Topology {
        id: "engines-3-forwarded",
        label: "3 nodes, PostgreSQL + NATS, every call forwarded (warm on one node, load at the other two)",
        engines: true,
        nodes: 3,
        balanced: false,
        forwarded: true,
    },
];

/// A setup's JetStream stream, deleted when this is dropped.
struct Stream {
    nats: String,
    name: String,
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Err(e) = delete_stream(&self.nats, &self.name) {
            eprintln!("cluster: could not delete NATS stream {}: {e:#}", self.name);
        }
    }
}

/// A setup while it runs. Fields drop in order: the balancer, then the nodes, then the
/// database and the stream (nothing uses them any more).
struct Live {
    balancer: Option<Nginx>,
    apis: Vec<Api>,
    nodes: Vec<FcdServer>,
    db: Option<Database>,
    stream: Option<Stream>,
    entry: SocketAddr,
}

impl Live {
    /// The processes whose CPU time the report splits, as they are now.
    fn cpu_groups(&self, procs: &EngineProcs) -> Vec<CpuGroup> {
        let mut groups = vec![CpuGroup {
            label: FCD.into(),
            pids: self.nodes.iter().map(|n| n.pid).collect(),
            descendants: true,
        }];
        if let Some(b) = &self.balancer {
            groups.push(CpuGroup {
                label: NGINX.into(),
                pids: vec![b.pid()],
                descendants: false,
            });
        }
        if let Some(db) = &self.db {
            groups.push(CpuGroup {
                label: POSTGRES.into(),
                pids: procs.postgres_pids(&db.name),
                descendants: false,
            });
            groups.push(CpuGroup {
                label: NATS.into(),
                pids: procs.nats.into_iter().collect(),
                descendants: false,
            });
        }
        groups.push(CpuGroup {
            label: GENERATOR.into(),
            pids: vec![std::process::id()],
            descendants: false,
        });
        groups
    }

    /// `fcd_invocations_total` of each node.
    async fn calls_per_node(&mut self) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for api in &mut self.apis {
            out.push(api.invocations_total().await?);
        }
        Ok(out)
    }

    async fn instances_per_node(&mut self) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for api in &mut self.apis {
            out.push(api.metric(INSTANCES_USED).await?);
        }
        Ok(out)
    }
}

fn minus(after: &[f64], before: &[f64]) -> Vec<f64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

impl Bench {
    /// The cluster scenario. Without the engines it says so and fails (it only runs when
    /// asked for by name).
    pub(crate) async fn cluster(&mut self) -> Result<()> {
        let engines = match Engines::from_env() {
            Ok(e) => e,
            Err(why) => {
                println!("cluster: SKIPPED: {why}");
                self.report.skipped.push(format!("cluster: {why}"));
                bail!("the cluster scenario cannot run: {why}");
            }
        };
        let nginx_bin = nginx::find().ok_or_else(|| {
            anyhow!(
                "the cluster scenario needs nginx (the balancer), at /usr/sbin/nginx or on PATH"
            )
        })?;
        let pg_version = psql(&engines.postgres, "SHOW server_version")
            .context("reaching PostgreSQL at FCD_TEST_POSTGRES")?;
        let nats_version = sys::output_of("nats-server", &["--version"]);
        let procs = EngineProcs::find(&engines);
        let mut result = ClusterResult {
            postgres: format!(
                "PostgreSQL {pg_version} at {}",
                public_part(&engines.postgres)
            ),
            nats: format!(
                "{} at {}",
                nats_version.unwrap_or_else(|| "NATS (version unknown)".into()),
                public_part(&engines.nats)
            ),
            cpu_note: cpu_note(&procs),
            engines_cpu_s: 0.0,
            setups: Vec::new(),
            failures: Vec::new(),
        };
        for topo in TOPOLOGIES {
            println!("cluster: {}…", topo.label);
            match self
                .cluster_setup(&topo, &engines, &procs, &nginx_bin)
                .await
            {
                Ok(setup) => result.setups.push(setup),
                Err(e) => {
                    let msg = format!("{}: {e:#}", topo.label);
                    eprintln!("cluster: {msg}");
                    result.failures.push(msg);
                }
            }
        }
        result.engines_cpu_s = result.setups.iter().map(engines_cpu_s).sum();
        let failed = !result.failures.is_empty();
        let first = result.failures.first().cloned();
        self.report.cluster = Some(result);
        if failed {
            bail!(
                "{}",
                first.unwrap_or_else(|| "a cluster setup failed".into())
            );
        }
        Ok(())
    }

    /// Starts `topo`, measures it and takes it down again.
    async fn cluster_setup(
        &mut self,
        topo: &Topology,
        engines: &Engines,
        procs: &EngineProcs,
        nginx_bin: &Path,
    ) -> Result<ClusterSetup> {
        let mut live = self.start_topology(topo, engines, nginx_bin)?;
        let res = self.measure_topology(topo, &mut live, procs).await;
        if res.is_err() {
            for (i, n) in live.nodes.iter().enumerate() {
                eprintln!("node{i} log tail:\n{}", n.log_tail());
            }
        }
        let cleaned = async {
            live.apis[0].delete_function(CLUSTER_SYNC).await?;
            live.apis[0].delete_function(CLUSTER_ASYNC).await
        }
        .await;
        drop(live);
        let setup = res?;
        cleaned.context("deleting the cluster functions")?;
        Ok(setup)
    }

    fn start_topology(&self, topo: &Topology, engines: &Engines, nginx_bin: &Path) -> Result<Live> {
        let base = self.dir.path().join(format!("cluster-{}", topo.id));
        let db = if topo.engines {
            Some(Database::create(&engines.postgres).context("creating the setup's database")?)
        } else {
            None
        };
        let stream_name = format!("bench_{}", suffix());
        let queue = stream_url(&engines.nats, &stream_name)?;
        let stream = topo.engines.then(|| Stream {
            nats: engines.nats.clone(),
            name: stream_name,
        });
        let unpinned = Pinning::none("cluster: not pinned");
        let mut nodes = Vec::new();
        // One after the other: the first node creates the schema the others find.
        for i in 0..topo.nodes {
            let port = sys::free_port()?;
            let listen = format!("127.0.0.1:{port}");
            let mut args = self.node_args();
            if let Some(db) = &db {
                args.extend(cluster_args(&db.url, &queue, i, &listen));
            }
            let dir = base.join(format!("node{i}"));
            std::fs::create_dir_all(&dir)?;
            let node = FcdServer::start_on(&self.fcd_bin, &dir, &unpinned, &listen, &args)
                .with_context(|| format!("starting node{i}"))?;
            nodes.push(node);
        }
        if let Some(db) = &db {
            // An fcd that parses the cluster flags but keeps its embedded store would be
            // measured as the reference again, under the wrong name.
            let tables = psql(
                &db.url,
                "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
            )?;
            if tables.trim() == "0" {
                bail!(
                    "the nodes started, but the database {} has no tables: this fcd does not keep its metadata in --store",
                    db.name
                );
            }
        }
        let apis = nodes.iter().map(Api::new).collect::<Result<Vec<_>>>()?;
        let balancer = if topo.balanced {
            let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
            Some(
                Nginx::start_balancer(nginx_bin, &base.join("nginx"), &addrs, &unpinned)
                    .context("starting the nginx balancer")?,
            )
        } else {
            None
        };
        let entry = balancer.as_ref().map_or_else(|| nodes[0].addr, |b| b.addr);
        Ok(Live {
            balancer,
            apis,
            nodes,
            db,
            stream,
            entry,
        })
    }

    async fn measure_topology(
        &mut self,
        topo: &Topology,
        live: &mut Live,
        procs: &EngineProcs,
    ) -> Result<ClusterSetup> {
        let api = &mut live.apis[0];
        api.create_service().await?;
        api.create_function(&self.custom_def(CLUSTER_SYNC, WARM_INSTANCE_CONCURRENCY))
            .await?;
        api.create_function(&self.custom_def(CLUSTER_ASYNC, WARM_INSTANCE_CONCURRENCY))
            .await?;
        let (sync_target, warm_node) = if topo.forwarded {
            let (target, warm) = warm_one_node(live).await?;
            (target, Some(warm))
        } else {
            // Every node answers a call of the new function before load starts (one that
            // learns of functions late would otherwise fail the first measured requests).
            for node in &live.nodes {
                let t = FcdInvoke::new(node.addr, &server::creds(), SERVICE, CLUSTER_SYNC);
                first_success(&t, Duration::from_secs(15))
                    .await
                    .with_context(|| format!("the first call through {}", node.addr))?;
            }
            (
                FcdInvoke::new(live.entry, &server::creds(), SERVICE, CLUSTER_SYNC),
                None,
            )
        };
        let mut sync = Vec::new();
        for c in SYNC_CONCURRENCY {
            let spec = LoadSpec {
                concurrency: c,
                warmup: self.plan.warmup(),
                limit: self.plan.warm_limit(),
                body: Bytes::new(),
                echo: false,
                cpu_of: Vec::new(),
                cpu_split: live.cpu_groups(procs),
            };
            let before = live.calls_per_node().await?;
            let stats = load::run(&Target::Fcd(sync_target.clone()), &spec)
                .await
                .with_context(|| format!("sync c={c}"))?;
            let after = live.calls_per_node().await?;
            let row = ClusterSync {
                concurrency: c,
                stats,
                calls_per_node: minus(&after, &before),
                instances_per_node: live.instances_per_node().await?,
            };
            if let Some(w) = warm_node {
                check_forwarded(&row, w).with_context(|| format!("sync c={c}"))?;
            }
            sync.push(row);
        }
        if topo.forwarded {
            // Async calls are queued, not routed by warm instances: nothing to add here.
            return Ok(ClusterSetup {
                id: topo.id.into(),
                label: topo.label.into(),
                nodes: topo.nodes,
                sync,
                accept_c64: None,
                drain: None,
                drain_cpu_us: Vec::new(),
                drain_machine_busy_cpus: None,
                drain_calls_per_node: Vec::new(),
                queue: "not measured (sync calls only)".into(),
                drain_postgres: None,
            });
        }

        let mut async_target = FcdInvoke::new(live.entry, &server::creds(), SERVICE, CLUSTER_ASYNC);
        async_target.asynchronous = true;
        let spec = LoadSpec {
            concurrency: ASYNC_CONCURRENCY,
            warmup: self.plan.warmup(),
            limit: self.plan.warm_limit(),
            body: Bytes::new(),
            echo: false,
            cpu_of: Vec::new(),
            cpu_split: live.cpu_groups(procs),
        };
        let accept = load::run(&Target::Fcd(async_target.clone()), &spec)
            .await
            .context("async accepts at c=64")?;
        // What those accepts left runs first: the backlog starts from an empty queue.
        scenarios::wait_drained(&mut live.apis, Duration::from_secs(300)).await?;
        let n = self.plan.cluster_backlog();
        // Statistics reach pg_stat_database up to a second late (see `pg_counters`).
        let settle = Duration::from_millis(1500);
        let pg_before = match &live.db {
            Some(db) => {
                tokio::time::sleep(settle).await;
                Some(pg_counters(&db.admin, &db.name)?)
            }
            None => None,
        };
        let groups = live.cpu_groups(procs);
        let cpu_before: Vec<u64> = groups.iter().map(CpuGroup::cpu_ns).collect();
        let busy_before = sys::busy_ticks();
        let calls_before = live.calls_per_node().await?;
        let drain = scenarios::drain_backlog(&mut live.apis, &async_target, n)
            .await
            .with_context(|| format!("a backlog of {n} async calls"))?;
        let cpu_after: Vec<u64> = groups.iter().map(CpuGroup::cpu_ns).collect();
        let busy_after = sys::busy_ticks();
        let calls_after = live.calls_per_node().await?;
        let drain_cpu: Vec<CpuShare> = cpu_shares(&groups, &cpu_before, &cpu_after, drain.accepted);
        let drain_busy = match (busy_before, busy_after) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 100.0 / drain.end_to_end_s),
            _ => None,
        };
        let pg = match (&live.db, pg_before) {
            (Some(db), Some(before)) => {
                scenarios::wait_drained(&mut live.apis, Duration::from_secs(60)).await?;
                tokio::time::sleep(settle).await;
                let after = pg_counters(&db.admin, &db.name)?;
                Some(pg_per_call(before, after, drain.accepted))
            }
            _ => None,
        };
        // Whether the async calls really went through the NATS stream of `--queue`.
        let queue = match &live.stream {
            None => "embedded (the node's SQLite queue)".to_owned(),
            Some(st) => match stream_state(&st.nats, &st.name) {
                Ok(Some(state)) => format!(
                    "NATS stream {}: {} messages published over the setup, {} left after the backlog",
                    st.name, state.last_seq, state.messages
                ),
                Ok(None) => format!(
                    "**not NATS**: no stream {} exists after the async runs (this fcd did not queue on --queue)",
                    st.name
                ),
                Err(e) => format!("NATS stream {}: state unknown ({e:#})", st.name),
            },
        };
        Ok(ClusterSetup {
            id: topo.id.into(),
            label: topo.label.into(),
            nodes: topo.nodes,
            sync,
            accept_c64: Some(accept),
            drain: Some(drain),
            drain_cpu_us: drain_cpu,
            drain_machine_busy_cpus: drain_busy,
            drain_calls_per_node: minus(&calls_after, &calls_before),
            queue,
            drain_postgres: pg,
        })
    }
}

/// The flags that make node `i` listening on `listen` a member of the cluster on `store` and
/// `queue` (the contract of `fcd serve`'s cluster mode).
fn cluster_args(store: &str, queue: &str, i: usize, listen: &str) -> Vec<OsString> {
    [
        "--store".to_owned(),
        store.to_owned(),
        "--queue".to_owned(),
        queue.to_owned(),
        "--node-id".to_owned(),
        format!("node{i}"),
        "--advertise-url".to_owned(),
        format!("http://{listen}"),
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

/// Warms the sync function on exactly one node and returns a target that enters only the
/// others, with that node's index. The first calls go through node 0: with nobody warm a
/// call runs on the function's home node (node 0 itself, or forwarded there), which starts
/// the one instance. After a few heartbeats every peer sees that node warm with free slots,
/// so a call entering a peer (which has no free slot of its own) is forwarded to it.
async fn warm_one_node(live: &mut Live) -> Result<(FcdInvoke, usize)> {
    let creds = server::creds();
    let first = FcdInvoke::new(live.nodes[0].addr, &creds, SERVICE, CLUSTER_SYNC);
    first_success(&first, Duration::from_secs(15))
        .await
        .context("the first call through node0")?;
    let instances = live.instances_per_node().await?;
    let warm: Vec<usize> = (0..instances.len())
        .filter(|&i| instances[i] > 0.0)
        .collect();
    let [w] = warm.as_slice() else {
        bail!("warming through node0 left instances per node {instances:?}, not one node warm");
    };
    let w = *w;
    tokio::time::sleep(HEARTBEATS_SETTLE).await;
    let entries: Vec<SocketAddr> = (0..live.nodes.len())
        .filter(|&i| i != w)
        .map(|i| live.nodes[i].addr)
        .collect();
    for &addr in &entries {
        let t = FcdInvoke::new(addr, &creds, SERVICE, CLUSTER_SYNC);
        first_success(&t, Duration::from_secs(15))
            .await
            .with_context(|| format!("the first call through {addr}"))?;
    }
    let after = live.instances_per_node().await?;
    if after != instances {
        bail!(
            "calls entering the other nodes started instances: per node {instances:?} before, {after:?} after"
        );
    }
    let mut target = FcdInvoke::new(entries[0], &creds, SERVICE, CLUSTER_SYNC);
    target.spread = entries;
    Ok((target, w))
}

/// That `row` was measured as the forwarded setup claims: the node `warm` ran the calls
/// (the entry nodes at most [`FORWARD_TOLERANCE`] of them) on its one instance, and no other
/// node started one.
fn check_forwarded(row: &ClusterSync, warm: usize) -> Result<()> {
    let ran_warm = row.calls_per_node.get(warm).copied().unwrap_or(0.0);
    let ran_entries: f64 = (0..row.calls_per_node.len())
        .filter(|&i| i != warm)
        .map(|i| row.calls_per_node[i])
        .sum();
    let cold_elsewhere =
        (0..row.instances_per_node.len()).any(|i| i != warm && row.instances_per_node[i] > 0.0);
    if ran_warm < row.stats.requests as f64
        || ran_entries > FORWARD_TOLERANCE * ran_warm
        || cold_elsewhere
        || row.instances_per_node.get(warm).copied() != Some(1.0)
    {
        bail!(
            "not every call was forwarded to node{warm}: calls per node {:?} ({} measured), instances per node {:?}",
            row.calls_per_node,
            row.stats.requests,
            row.instances_per_node
        );
    }
    Ok(())
}

/// Sends `target` until it succeeds (fresh connections; a node may learn of a new function a
/// moment after another stored it), or fails with the last answer after `limit`.
async fn first_success(target: &FcdInvoke, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let t = Target::Fcd(target.clone());
    loop {
        let attempt = async {
            let mut sender = crate::http::connect(target.addr).await?;
            let reply = send(&mut sender, target.request(&Bytes::new())?).await?;
            t.check(&reply, &Bytes::new(), false)
        }
        .await;
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What the report says about whose CPU is counted.
fn cpu_note(procs: &EngineProcs) -> String {
    let pg = match procs.postmaster {
        Some(p) => format!(
            "PostgreSQL: the postmaster (pid {p}), its own processes (checkpointer, WAL writer, …) and the backends serving the setup's database; other databases' backends left out"
        ),
        None => "PostgreSQL: its processes were not found, its CPU is not counted".into(),
    };
    let nats = match procs.nats {
        Some(p) => format!("NATS: nats-server (pid {p}), shared with anything else using it"),
        None => "NATS: nats-server was not found, its CPU is not counted".into(),
    };
    format!(
        "fcd: every node and its instances; nginx: the balancer; {pg}; {nats}; load generator: this harness (one thread)"
    )
}

/// CPU-seconds PostgreSQL and NATS spent in `setup`'s measured phases (its shares times its
/// requests): the harness's *other load* counts them, since they are not its children.
fn engines_cpu_s(setup: &ClusterSetup) -> f64 {
    let engines = |shares: &[CpuShare], n: f64| {
        (share(shares, POSTGRES).unwrap_or(0.0) + share(shares, NATS).unwrap_or(0.0)) * n / 1e6
    };
    setup
        .sync
        .iter()
        .map(|r| engines(&r.stats.cpu_split_us, r.stats.requests as f64))
        .sum::<f64>()
        + setup
            .accept_c64
            .as_ref()
            .map_or(0.0, |a| engines(&a.cpu_split_us, a.requests as f64))
        + setup
            .drain
            .as_ref()
            .map_or(0.0, |d| engines(&setup.drain_cpu_us, d.accepted as f64))
}

/// The CPU share of `label` in `shares`, if counted.
pub(crate) fn share(shares: &[CpuShare], label: &str) -> Option<f64> {
    shares
        .iter()
        .find(|s| s.label == label)
        .map(|s| s.us_per_request)
}

/// The sum of the shares of the server side (everything but the load generator).
pub(crate) fn server_side(shares: &[CpuShare]) -> f64 {
    shares
        .iter()
        .filter(|s| s.label != GENERATOR)
        .map(|s| s.us_per_request)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_need_both_variables() {
        let e = Engines::from_vars(
            Some("postgres://postgres@127.0.0.1:55432/postgres".into()),
            Some("nats://127.0.0.1:14222".into()),
        );
        assert_eq!(
            e,
            Ok(Engines {
                postgres: "postgres://postgres@127.0.0.1:55432/postgres".into(),
                nats: "nats://127.0.0.1:14222".into(),
            })
        );
        let err = Engines::from_vars(None, Some("nats://127.0.0.1:14222".into())).unwrap_err();
        assert!(
            err.contains(POSTGRES_ENV) && err.starts_with(POSTGRES_ENV),
            "{err}"
        );
        let err = Engines::from_vars(Some(" ".into()), None).unwrap_err();
        assert!(
            err.starts_with(&format!("{POSTGRES_ENV} and {NATS_ENV} not set")),
            "{err}"
        );
        assert!(Engines::from_vars(Some("mysql://x/y".into()), Some("nats://h:1".into())).is_err());
        assert!(
            Engines::from_vars(Some("postgres://h/db".into()), Some("tcp://h:1".into())).is_err()
        );
    }

    #[test]
    fn a_database_url_keeps_everything_but_the_database() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:55432/postgres", "bench_1").unwrap(),
            "postgres://postgres@127.0.0.1:55432/bench_1"
        );
        assert_eq!(
            database_url("postgresql://u:p@h:5432/admin?sslmode=disable", "b").unwrap(),
            "postgresql://u:p@h:5432/b?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h", "b").unwrap(), "postgres://h/b");
        assert!(database_url("postgres:///admin", "b").is_err());
        assert!(database_url("h:5432/admin", "b").is_err());
    }

    #[test]
    fn a_stream_is_the_queue_urls_path() {
        assert_eq!(
            stream_url("nats://127.0.0.1:14222", "bench_ab").unwrap(),
            "nats://127.0.0.1:14222/bench_ab"
        );
        assert_eq!(
            stream_url("nats://127.0.0.1:14222/", "s").unwrap(),
            "nats://127.0.0.1:14222/s"
        );
        assert_eq!(
            stream_url("nats://127.0.0.1:14222/other", "s").unwrap(),
            "nats://127.0.0.1:14222/s"
        );
    }

    #[test]
    fn ports_and_what_the_report_shows() {
        assert_eq!(
            port_of("postgres://postgres@127.0.0.1:55432/postgres"),
            Some(55432)
        );
        assert_eq!(port_of("nats://127.0.0.1:14222"), Some(14222));
        assert_eq!(port_of("nats://[::1]:4222/s"), Some(4222));
        assert_eq!(port_of("postgres://localhost/db"), None);
        assert_eq!(
            public_part("postgres://user:secret@127.0.0.1:55432/postgres"),
            "postgres://127.0.0.1:55432"
        );
    }

    #[test]
    fn only_the_setups_backends_count_among_postgres_processes() {
        let db = "bench_0123456789ab";
        assert!(pg_process_serves("postgres: checkpointer", db));
        assert!(pg_process_serves("postgres: walwriter", db));
        assert!(pg_process_serves(
            "/usr/lib/postgresql/15/bin/postgres -D /data -p 55432",
            db
        ));
        assert!(pg_process_serves(
            "postgres: postgres bench_0123456789ab 127.0.0.1(43210) idle",
            db
        ));
        assert!(!pg_process_serves(
            "postgres: postgres t_other 127.0.0.1(43211) idle",
            db
        ));
        assert!(!pg_process_serves(
            "postgres: postgres t_other [local] idle",
            db
        ));
        assert!(pg_process_serves(
            "postgres: postgres bench_0123456789ab [local] SELECT",
            db
        ));
    }

    #[test]
    fn postgres_counters_per_call() {
        let a = parse_pg_counters("100|10|20|0\n").unwrap();
        assert_eq!(
            a,
            PgCounters {
                commits: 100,
                inserted: 10,
                updated: 20,
                deleted: 0
            }
        );
        let b = parse_pg_counters("400|110|220|50").unwrap();
        let p = pg_per_call(a, b, 100);
        assert_eq!(
            (p.commits, p.rows_inserted, p.rows_updated, p.rows_deleted),
            (3.0, 1.0, 2.0, 0.5)
        );
        assert!(parse_pg_counters("").is_err());
        assert!(parse_pg_counters("1|2|3").is_err());
        assert!(parse_pg_counters("1|x|3|4").is_err());
    }

    #[test]
    fn stream_info_replies() {
        let found = r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","config":{"name":"bench_x"},"state":{"messages":3,"bytes":90,"first_seq":8,"last_seq":10,"consumer_count":1}}"#;
        assert_eq!(
            parse_stream_info(found).unwrap(),
            Some(StreamState {
                messages: 3,
                last_seq: 10
            })
        );
        let missing = r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#;
        assert_eq!(parse_stream_info(missing).unwrap(), None);
        let other = r#"{"error":{"code":503,"description":"JetStream not enabled"}}"#;
        assert!(parse_stream_info(other).is_err());
        assert!(parse_stream_info("not json").is_err());
    }

    /// Against the NATS of `FCD_TEST_NATS` when set: a stream that does not exist is `None`,
    /// and deleting it is not an error.
    #[test]
    fn nats_requests_reach_jetstream() {
        let Ok(nats) = std::env::var(NATS_ENV) else {
            eprintln!("SKIPPED (set {NATS_ENV}; scripts/services starts one)");
            if std::env::var("FCD_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{NATS_ENV} is not set and FCD_REQUIRE_SERVICES=1");
            }
            return;
        };
        let name = format!("bench_absent_{}", suffix());
        assert_eq!(stream_state(&nats, &name).unwrap(), None);
        delete_stream(&nats, &name).unwrap();

        // A stream of this test's own: created, one message stored, counted, deleted.
        let name = format!("bench_test_{}", suffix());
        let subject = format!("fcdbench.test.{name}");
        let config = serde_json::json!({
            "name": name, "subjects": [subject], "storage": "memory",
        });
        let created = nats_request(
            &nats,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &config.to_string(),
        )
        .unwrap();
        assert!(!created.contains("\"error\""), "{created}");
        // A request on the stream's subject: JetStream answers with the stored ack.
        let ack = nats_request(&nats, &subject, "hello").unwrap();
        assert!(ack.contains("\"seq\":1"), "{ack}");
        assert_eq!(
            stream_state(&nats, &name).unwrap(),
            Some(StreamState {
                messages: 1,
                last_seq: 1
            })
        );
        delete_stream(&nats, &name).unwrap();
        assert_eq!(stream_state(&nats, &name).unwrap(), None);
    }

    #[test]
    fn nodes_get_the_cluster_flags_of_the_contract() {
        let args = cluster_args(
            "postgres://p@h:1/db",
            "nats://h:2/bench_x",
            2,
            "127.0.0.1:7002",
        );
        let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
        assert_eq!(
            args,
            [
                "--store",
                "postgres://p@h:1/db",
                "--queue",
                "nats://h:2/bench_x",
                "--node-id",
                "node2",
                "--advertise-url",
                "http://127.0.0.1:7002"
            ]
        );
    }

    fn sync_row(requests: usize, calls: &[f64], instances: &[f64]) -> ClusterSync {
        ClusterSync {
            concurrency: 8,
            stats: crate::load::LoadStats {
                concurrency: 8,
                requests,
                seconds: 1.0,
                rps: requests as f64,
                p50_us: 0.0,
                p90_us: 0.0,
                p99_us: 0.0,
                mean_us: 0.0,
                max_us: 0.0,
                mb_per_s: 0.0,
                server_cpu_us: None,
                cpu_split_us: Vec::new(),
                machine_busy_cpus: None,
            },
            calls_per_node: calls.to_vec(),
            instances_per_node: instances.to_vec(),
        }
    }

    #[test]
    fn a_forwarded_run_is_checked_against_the_nodes_counters() {
        // Node 1 warm, ran every call (warm-up included), the others none.
        let ok = sync_row(1000, &[0.0, 1100.0, 0.0], &[0.0, 1.0, 0.0]);
        assert!(check_forwarded(&ok, 1).is_ok());
        // A call or two run where it entered (a late heartbeat read) is tolerated.
        let few = sync_row(1000, &[2.0, 1100.0, 0.0], &[0.0, 1.0, 0.0]);
        assert!(check_forwarded(&few, 1).is_ok());
        // An entry node that ran a share of the calls: not "every call forwarded".
        let local = sync_row(1000, &[400.0, 700.0, 0.0], &[0.0, 1.0, 0.0]);
        let err = check_forwarded(&local, 1).unwrap_err().to_string();
        assert!(err.contains("[400.0, 700.0, 0.0]"), "{err}");
        // An entry node that started an instance of its own.
        let cold = sync_row(1000, &[0.0, 1100.0, 0.0], &[1.0, 1.0, 0.0]);
        assert!(check_forwarded(&cold, 1).is_err());
        // The warm node ran fewer calls than were measured: they went somewhere else.
        let lost = sync_row(1000, &[0.0, 500.0, 0.0], &[0.0, 1.0, 0.0]);
        assert!(check_forwarded(&lost, 1).is_err());
        // A second instance on the warm node is no longer one warm instance.
        let two = sync_row(1000, &[0.0, 1100.0, 0.0], &[0.0, 2.0, 0.0]);
        assert!(check_forwarded(&two, 1).is_err());
    }

    #[test]
    fn load_spreads_over_the_entries_of_a_target() {
        let a: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1002".parse().unwrap();
        let mut t = FcdInvoke::new(a, &server::creds(), SERVICE, CLUSTER_SYNC);
        let one = Target::Fcd(t.clone());
        assert_eq!((one.addr_for(0), one.addr_for(3)), (a, a));
        t.spread = vec![a, b];
        let two = Target::Fcd(t);
        let got: Vec<SocketAddr> = (0..4).map(|i| two.addr_for(i)).collect();
        assert_eq!(got, [a, b, a, b]);
    }

    #[test]
    fn shares_split_server_side_from_the_generator() {
        let s = |label: &str, us: f64| CpuShare {
            label: label.into(),
            us_per_request: us,
        };
        let shares = [s(FCD, 50.0), s(POSTGRES, 20.0), s(GENERATOR, 15.0)];
        assert_eq!(server_side(&shares), 70.0);
        assert_eq!(share(&shares, POSTGRES), Some(20.0));
        assert_eq!(share(&shares, NGINX), None);
    }
}
