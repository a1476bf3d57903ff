//! Outbound network for instances, like Function Compute's default `internetAccess = true`.
//!
//! Every instance keeps a private network namespace (so each listens on its `caPort` without
//! clashes). With egress, that namespace also has an `eth0`: one end of a veth pair whose other
//! end is an *isolated* port of a bridge this server owns, an address from the server's subnet
//! and a default route via the bridge's address (the *host address*). The host routes and
//! masquerades whatever instances send, so they reach everything the host reaches; traffic to
//! the host address is rewritten to `127.0.0.1`, so services bound on the host's loopback are
//! reachable too, at the host address (and as `fcd-host` through the instances' `/etc/hosts`).
//! Instances cannot reach each other: bridge ports are isolated, and forwarding from the bridge
//! into any `fcd-*` bridge (this server's or another's), or into the bridge from anywhere
//! except as a reply, is dropped.
//!
//! # What one server sets up ([`Egress::setup`])
//!
//! - A bridge `fcd-<tag>` (cut to 15 characters) with the subnet's first address and a fixed
//!   MAC (so instances' ARP entries stay valid as ports come and go).
//! - An nftables table (family `ip`) of the same name: `prerouting` DNATs what arrives on the
//!   bridge for the host address to `127.0.0.1` (with `route_localnet` on the bridge),
//!   `postrouting` masquerades the subnet leaving by any other interface (with
//!   `net.ipv4.ip_forward = 1`), and `forward` keeps instances apart.
//! - A subnet: the explicit one given, or the first /20 in `10.234.0.0/16` — then, when a
//!   machine runs more servers than that holds (a parallel test suite), the first /24 in
//!   `10.235.0.0/16` — that overlaps no address or route of the host (catch-alls shorter than
//!   /8, like a VPN's `0.0.0.0/1`, are ignored) and no other server's subnet. The choice is made
//!   under an exclusive `flock` of `/run/fcd/net.lock`, so servers started in parallel never
//!   pick the same one.
//! - A record `/run/fcd/net/<bridge>.json` (tag, bridge, subnet, pid and the pid's start time,
//!   a unique id), written before anything else exists. Setup first removes the bridge, table
//!   and record of every record whose process is gone (a SIGKILLed server) or that has the
//!   same tag (a previous run on the same data dir).
//! - `<runtime_dir>/hosts`: the host's `/etc/hosts` plus `<host address> fcd-host`.
//!
//! Setup needs root, `ip` (iproute2) and `nft`; it shells out to them once and writes
//! `/proc/sys`. Any failure undoes what was done and is returned as `Err(String)` saying why
//! egress is unavailable; the caller then runs instances loopback-only.
//!
//! Limits: IPv4 only (instances have no IPv6 route). `ip_forward = 1` is host-wide; what else
//! the host forwards stays up to its firewall. A firewall that drops forwarded traffic in a
//! table of its own (Docker sets the `FORWARD` policy to drop) also drops the instances'
//! traffic to other machines — an nftables `accept` here cannot overrule another table's
//! `drop` — so such hosts need a rule letting `fcd-*` through (e.g. in `DOCKER-USER`).
//! Instances use the host's `/etc/resolv.conf`: a resolver on the host's loopback
//! (systemd-resolved's `127.0.0.53`) is not reachable from them.
//!
//! # Per instance ([`Egress::prepare`])
//!
//! A `PreparedNet` is a network namespace (its fd) with `lo` and `eth0` up, an address and a
//! default route. Namespaces are made ahead by a background thread that keeps
//! [`POOL_TARGET`] ready, so taking one costs microseconds; when the pool is empty, one is made
//! on the spot (a couple of milliseconds) on a short-lived thread. Each is made on a fresh
//! thread that `unshare(CLONE_NEWNET)`s, opens `/proc/thread-self/ns/net`, and configures it
//! over rtnetlink (no process is started): the veth is created from the host's side with its
//! peer moved into the namespace as `eth0`, attached to the bridge and isolated. Addresses are
//! handed out round-robin, so a released one is not reused soon. Dropping a `PreparedNet`
//! closes its fd: the kernel destroys the namespace, and the veth with it, once nothing else
//! holds it (the instance's processes, fcd's sockets into it); its address is reused only after
//! that.
//!
//! # On exit
//!
//! [`Egress::teardown`] (also run on drop) removes the bridge, the table and the record. If
//! fcd is SIGKILLed, instances die with it (`PR_SET_PDEATHSIG`), their namespaces with them and
//! their veths with the namespaces; the bridge, table and record stay until the next server
//! starts on this machine and removes them.
//!
//! # Use
//!
//! ```text
//! let egress = Egress::setup(tag, &data_dir.join("runtime"), cli.subnet.as_deref())?;
//! log(egress.describe());
//! // per instance (from spawn_blocking: may take a few ms when the pool is empty):
//! let net = egress.prepare()?;                  // keep it as long as the instance lives
//! spec.netns = Some(net.netns.try_clone()?);    // join it instead of a loopback-only one
//! spec.hosts = Some(egress.hosts_file().to_owned());
//! env FCD_HOST_ADDR = egress.host_addr()
//! // at shutdown, after instances stopped:
//! egress.teardown();
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

/// Where servers record their networks.
const STATE_DIR: &str = "/run/fcd/net";
/// Held while choosing a subnet, creating or removing networks.
const LOCK_FILE: &str = "/run/fcd/net.lock";
/// How many namespaces are kept ready.
pub const POOL_TARGET: usize = 4;
/// The instance's side of its veth.
const INSTANCE_IF: &str = "eth0";
/// The name instances reach the host by.
pub const HOST_NAME: &str = "fcd-host";

/// An IPv4 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    base: u32,
    prefix: u8,
}

impl Net {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    fn last(self) -> u32 {
        self.base | !self.mask()
    }

    fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    fn overlaps(self, other: Net) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    fn addr(self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + offset)
    }

    /// The network containing `addr/prefix` (`a.b.c.d` alone is a /32).
    fn containing(text: &str) -> Option<Net> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().ok()?),
            None => (text, 32),
        };
        if prefix > 32 {
            return None;
        }
        let addr: Ipv4Addr = addr.parse().ok()?;
        let mut n = Net { base: 0, prefix };
        n.base = u32::from(addr) & n.mask();
        Some(n)
    }

    /// A subnet given by the operator: a network address and a prefix of /16 to /28.
    fn parse_subnet(text: &str) -> Result<Net, String> {
        let bad = || format!("invalid subnet {text:?}: expected an IPv4 CIDR such as 10.99.0.0/20");
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(16..=28).contains(&prefix) {
            return Err(format!(
                "invalid subnet {text:?}: the prefix must be between /16 and /28"
            ));
        }
        let mut n = Net { base: 0, prefix };
        n.base = u32::from(addr) & n.mask();
        if n.base != u32::from(addr) {
            return Err(format!(
                "invalid subnet {text:?}: not a network address (did you mean {n}?)"
            ));
        }
        Ok(n)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

/// The default candidates, in order of preference.
fn candidates() -> impl Iterator<Item = Net> {
    let wide = u32::from(Ipv4Addr::new(10, 234, 0, 0));
    let narrow = u32::from(Ipv4Addr::new(10, 235, 0, 0));
    (0..16u32)
        .map(move |i| Net {
            base: wide + (i << 12),
            prefix: 20,
        })
        .chain((0..256u32).map(move |i| Net {
            base: narrow + (i << 8),
            prefix: 24,
        }))
}

/// What a server writes about its network, so a later server can remove it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    tag: String,
    bridge: String,
    subnet: String,
    pid: u32,
    /// The process's start time (`/proc/<pid>/stat` field 22), against pid reuse.
    start: u64,
    /// Unique per setup, so a stale `Egress` never removes its successor's network.
    id: String,
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain anything, even `)`; the fields follow the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Record {
    fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    fn path(bridge: &str) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{bridge}.json"))
    }
}

fn records() -> Vec<Record> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(STATE_DIR) else {
        return out;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
        match ext.as_deref() {
            Some("json") => {}
            // Records are written under the lock: a temporary one seen under it was left by a
            // writer that died.
            Some(e) if e.starts_with("tmp") => {
                let _ = fs::remove_file(&path);
                continue;
            }
            _ => continue,
        }
        match fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
        {
            Some(r) => out.push(r),
            None => {
                // Half-written by a server killed mid-write (it is written before anything
                // else exists), or not ours: nothing to clean but the file.
                let _ = fs::remove_file(&path);
            }
        }
    }
    out
}

fn write_atomically(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    drop(f);
    fs::rename(&tmp, path)
}

/// The machine-wide lock around network changes.
fn lock() -> Result<nix::fcntl::Flock<fs::File>, String> {
    fs::create_dir_all(STATE_DIR).map_err(|e| format!("creating {STATE_DIR}: {e}"))?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .map_err(|e| format!("opening {LOCK_FILE}: {e}"))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("locking {LOCK_FILE}: {e}"))
}

/// `ip` and `nft`, found once.
#[derive(Debug, Clone)]
struct Tools {
    ip: PathBuf,
    nft: PathBuf,
}

fn find_tool(name: &str, package: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| format!("`{name}` is not installed (package {package})"))
}

impl Tools {
    fn find() -> Result<Tools, String> {
        Ok(Tools {
            ip: find_tool("ip", "iproute2")?,
            nft: find_tool("nft", "nftables")?,
        })
    }

    fn run(&self, tool: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let what = || format!("`{} {}`", tool.display(), args.join(" "));
        let mut child = Command::new(tool)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", what()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{}: {e}", what()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{} failed: {}",
                what(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        self.run(&self.ip, args, None)
    }

    fn nft_script(&self, script: &str) -> Result<String, String> {
        self.run(&self.nft, &["-f", "-"], Some(script))
    }

    /// Every IPv4 network the host has an address in or a route to.
    fn host_networks(&self) -> Result<Vec<Net>, String> {
        let parse = |text: String| -> Result<serde_json::Value, String> {
            serde_json::from_str(&text).map_err(|e| format!("reading `ip -j` output: {e}"))
        };
        let mut nets = Vec::new();
        let routes = parse(self.ip(&["-j", "-4", "route", "show", "table", "all"])?)?;
        for r in routes.as_array().into_iter().flatten() {
            let Some(dst) = r.get("dst").and_then(|d| d.as_str()) else {
                continue;
            };
            // Catch-alls (the default route, a VPN's two halves) would exclude everything;
            // a more specific route of ours wins over them anyway.
            if let Some(n) = Net::containing(dst).filter(|n| n.prefix >= 8) {
                nets.push(n);
            }
        }
        let links = parse(self.ip(&["-j", "-4", "addr", "show"])?)?;
        for link in links.as_array().into_iter().flatten() {
            let infos = link.get("addr_info").and_then(|a| a.as_array());
            for a in infos.into_iter().flatten() {
                let local = a.get("local").and_then(|l| l.as_str());
                let len = a.get("prefixlen").and_then(|l| l.as_u64());
                if let (Some(local), Some(len)) = (local, len)
                    && let Some(n) = Net::containing(&format!("{local}/{len}"))
                {
                    nets.push(n);
                }
            }
        }
        Ok(nets)
    }

    /// Removes a server's bridge and table (best effort: either may be gone already).
    fn remove_network(&self, bridge: &str) {
        if nix::net::if_::if_nametoindex(bridge).is_ok() {
            let _ = self.ip(&["link", "del", "dev", bridge]);
        }
        let _ = self.run(&self.nft, &["delete", "table", "ip", bridge], None);
    }
}

/// The address allocator: round-robin over the subnet's instance addresses.
#[derive(Debug)]
struct Addrs {
    used: Vec<bool>,
    /// Where the next search starts.
    next: usize,
    /// Released addresses whose namespace the kernel has not destroyed yet (host-side veth
    /// name, offset): free once the veth is gone.
    dying: Vec<(String, u32)>,
}

impl Addrs {
    /// Offsets 0 (network), 1 (host) and the last (broadcast) are never handed out.
    const FIRST: usize = 2;

    fn new(net: Net) -> Addrs {
        Addrs {
            used: vec![false; net.size() as usize],
            next: Self::FIRST,
            dying: Vec::new(),
        }
    }

    /// The next free address. Call in the host's network namespace (veths are looked up).
    fn take(&mut self) -> Option<u32> {
        let used = &mut self.used;
        self.dying.retain(|(veth, off)| {
            let alive = nix::net::if_::if_nametoindex(veth.as_str()).is_ok();
            if !alive {
                used[*off as usize] = false;
            }
            alive
        });
        let end = self.used.len() - 1;
        let span = end - Self::FIRST;
        for i in 0..span {
            let off = Self::FIRST + (self.next - Self::FIRST + i) % span;
            if !self.used[off] {
                self.used[off] = true;
                self.next = if off + 1 >= end { Self::FIRST } else { off + 1 };
                return Some(off as u32);
            }
        }
        None
    }

    fn free(&mut self, off: u32) {
        if let Some(u) = self.used.get_mut(off as usize) {
            *u = false;
        }
    }
}

/// State shared by the server, its pool thread and every [`PreparedNet`].
struct Shared {
    /// A few bits of the setup's id, for veth names.
    setup: u16,
    bridge: String,
    bridge_index: u32,
    net: Net,
    host: Ipv4Addr,
    /// The host's network namespace (that of the thread that ran setup).
    host_ns: OwnedFd,
    /// An rtnetlink socket in the host's namespace (sockets keep the namespace they were made
    /// in, whatever thread uses them).
    host_nl: Mutex<Netlink>,
    addrs: Mutex<Addrs>,
    pool: Mutex<Pool>,
    wake: Condvar,
}

#[derive(Default)]
struct Pool {
    ready: VecDeque<PreparedNet>,
    stop: bool,
    /// How many namespaces to keep ready.
    target: usize,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A network namespace ready for one instance: `lo` and `eth0` up, an address, a default
/// route via the host address. Keep it for as long as the instance lives; dropping it releases
/// the address once the namespace is gone.
pub(crate) struct PreparedNet {
    /// The namespace (`/proc/thread-self/ns/net` of the thread that made it).
    pub(crate) netns: OwnedFd,
    /// The instance's address.
    pub(crate) addr: Ipv4Addr,
    veth: String,
    owner: Arc<Shared>,
}

impl fmt::Debug for PreparedNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedNet")
            .field("netns", &self.netns.as_raw_fd())
            .field("addr", &self.addr)
            .field("veth", &self.veth)
            .finish()
    }
}

impl Drop for PreparedNet {
    fn drop(&mut self) {
        // Closing the fd (right after this) lets the kernel destroy the namespace, and the
        // veth with it, once nothing else holds it (processes, sockets, fcd's helper thread);
        // that happens in the kernel's own time, so the address is reused only once the veth
        // is gone. (Deleting the veth here instead costs tens of milliseconds.)
        let off = u32::from(self.addr) - self.owner.net.base;
        let veth = std::mem::take(&mut self.veth);
        locked(&self.owner.addrs).dying.push((veth, off));
    }
}

/// One server's outbound network. See the module documentation.
pub struct Egress {
    shared: Arc<Shared>,
    tools: Tools,
    record: Record,
    hosts: PathBuf,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    torn_down: AtomicBool,
}

impl fmt::Debug for Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn bridge_name(tag: &str) -> String {
    let mut name = format!("fcd-{tag}");
    name.truncate(15);
    name
}

/// The host's side of an instance's veth: unique on the machine, since live servers' subnets
/// never overlap; the setup's id tells apart a replaced server's leftovers on the same subnet.
fn veth_name(setup: u16, addr: Ipv4Addr) -> String {
    format!("fcv{setup:04x}{:08x}", u32::from(addr))
}

impl Egress {
    /// Sets up this server's bridge, NAT and hosts file (see the module documentation) and
    /// starts keeping namespaces ready. `tag` names the server's network (fcd passes a hash of
    /// its data dir: a restarted server replaces what its predecessor left); `runtime_dir`
    /// receives the instances' `hosts` file; `subnet` overrides the automatic choice (an IPv4
    /// CIDR, /16 to /28). `Err` says why egress is unavailable.
    pub fn setup(
        tag: &str,
        runtime_dir: &Path,
        subnet: Option<&str>,
    ) -> Result<Arc<Egress>, String> {
        Self::setup_with_pool(tag, runtime_dir, subnet, POOL_TARGET)
    }

    fn setup_with_pool(
        tag: &str,
        runtime_dir: &Path,
        subnet: Option<&str>,
        pool_target: usize,
    ) -> Result<Arc<Egress>, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("fcd is not running as root".into());
        }
        if tag.is_empty()
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "invalid network tag {tag:?}: use letters, digits, - and _"
            ));
        }
        let explicit = subnet.map(Net::parse_subnet).transpose()?;
        let tools = Tools::find()?;
        let bridge = bridge_name(tag);
        let guard = lock()?;

        // Leftovers: networks of servers that are gone, and of a previous run with this tag.
        let mut taken = Vec::new();
        for r in records() {
            let ours = r.tag == tag;
            if ours || !r.alive() {
                tools.remove_network(&r.bridge);
                let _ = fs::remove_file(Record::path(&r.bridge));
                if !ours {
                    tracing::warn!(bridge = %r.bridge, subnet = %r.subnet, pid = r.pid,
                        "removed the network of an fcd server that is gone");
                }
            } else if r.bridge == bridge {
                return Err(format!(
                    "bridge name {bridge} is in use by the fcd server with pid {} (tag {})",
                    r.pid, r.tag
                ));
            } else if let Some(n) = Net::containing(&r.subnet) {
                taken.push((n, r));
            }
        }

        let host_nets = tools.host_networks()?;
        let net = match explicit {
            Some(n) => {
                if let Some((_, r)) = taken.iter().find(|(t, _)| t.overlaps(n)) {
                    return Err(format!(
                        "subnet {n} overlaps {} of the fcd server with pid {}",
                        r.subnet, r.pid
                    ));
                }
                if let Some(h) = host_nets.iter().find(|h| h.overlaps(n)) {
                    return Err(format!(
                        "subnet {n} overlaps {h}, which the host already uses"
                    ));
                }
                n
            }
            None => candidates()
                .find(|c| {
                    !taken.iter().any(|(t, _)| t.overlaps(*c))
                        && !host_nets.iter().any(|h| h.overlaps(*c))
                })
                .ok_or("no free subnet in 10.234.0.0/16 or 10.235.0.0/16 (every one overlaps an address or route of the host, or another fcd server's); pass one explicitly")?,
        };
        let host = net.addr(1);

        let (pid, start) = (
            std::process::id(),
            start_time(std::process::id()).unwrap_or(0),
        );
        let record = Record {
            tag: tag.to_owned(),
            bridge: bridge.clone(),
            subnet: net.to_string(),
            pid,
            start,
            id: uuid::Uuid::new_v4().simple().to_string(),
        };
        // The record first: whatever exists after this point, a later server can remove.
        let record_path = Record::path(&bridge);
        let json = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        write_atomically(&record_path, &json, 0o644)
            .map_err(|e| format!("writing {}: {e}", record_path.display()))?;

        let built = build(&tools, &bridge, net, host).and_then(|index| {
            let hosts = write_hosts(runtime_dir, host)?;
            Ok((index, hosts))
        });
        let (bridge_index, hosts) = match built {
            Ok(v) => v,
            Err(e) => {
                tools.remove_network(&bridge);
                let _ = fs::remove_file(&record_path);
                return Err(e);
            }
        };
        let opened = fs::File::open("/proc/thread-self/ns/net")
            .map(OwnedFd::from)
            .and_then(|ns| Ok((ns, Netlink::open()?)));
        let (host_ns, host_nl) = match opened {
            Ok(v) => v,
            Err(e) => {
                tools.remove_network(&bridge);
                let _ = fs::remove_file(&record_path);
                return Err(format!("opening the host's network namespace: {e}"));
            }
        };
        drop(guard);

        let shared = Arc::new(Shared {
            setup: u16::from_str_radix(&record.id[..4], 16).unwrap_or(0),
            bridge,
            bridge_index,
            net,
            host,
            host_ns,
            host_nl: Mutex::new(host_nl),
            addrs: Mutex::new(Addrs::new(net)),
            pool: Mutex::new(Pool {
                target: pool_target,
                ..Pool::default()
            }),
            wake: Condvar::new(),
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("fcd-netns-pool".into())
                .stack_size(128 * 1024)
                .spawn(move || refill_forever(&shared))
                .map_err(|e| format!("starting the namespace pool: {e}"))?
        };
        Ok(Arc::new(Egress {
            shared,
            tools,
            record,
            hosts,
            worker: Mutex::new(Some(worker)),
            torn_down: AtomicBool::new(false),
        }))
    }

    /// The address instances reach the host at (its loopback services included).
    pub fn host_addr(&self) -> Ipv4Addr {
        self.shared.host
    }

    /// The instances' `/etc/hosts`: the host's plus `<host address> fcd-host`.
    pub fn hosts_file(&self) -> &Path {
        &self.hosts
    }

    /// The server's subnet, e.g. `10.234.16.0/20`.
    pub fn subnet(&self) -> String {
        self.shared.net.to_string()
    }

    /// The bridge (and nftables table) name.
    pub fn bridge(&self) -> &str {
        &self.shared.bridge
    }

    /// One line for the server's start-up log.
    pub fn describe(&self) -> String {
        format!(
            "bridge {} {}, host at {} (also `{HOST_NAME}`), NAT via nftables",
            self.shared.bridge, self.shared.net, self.shared.host
        )
    }

    /// A ready namespace: from the pool, or made now on a short-lived thread (a few
    /// milliseconds; call from a blocking context). Either way the pool thread is woken to
    /// refill.
    pub(crate) fn prepare(&self) -> io::Result<PreparedNet> {
        if self.torn_down.load(Ordering::Acquire) {
            return Err(io::Error::other("the server's network has been removed"));
        }
        let taken = locked(&self.shared.pool).ready.pop_front();
        self.shared.wake.notify_all();
        match taken {
            Some(net) => Ok(net),
            None => make_on_fresh_thread(&self.shared),
        }
    }

    /// How many namespaces are ready right now.
    #[cfg(test)]
    fn ready(&self) -> usize {
        locked(&self.shared.pool).ready.len()
    }

    /// Removes the bridge, the table and the record (graceful shutdown; also run on drop).
    /// Instances still running lose their network.
    pub fn teardown(&self) {
        if self.torn_down.swap(true, Ordering::AcqRel) {
            return;
        }
        locked(&self.shared.pool).stop = true;
        self.shared.wake.notify_all();
        if let Some(w) = locked(&self.worker).take() {
            let _ = w.join();
        }
        let ready: Vec<PreparedNet> = locked(&self.shared.pool).ready.drain(..).collect();
        drop(ready);
        let Ok(_guard) = lock() else {
            return;
        };
        // Only if the network is still ours: a later setup with the same tag replaces it.
        let path = Record::path(&self.record.bridge);
        let current = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        if current.is_some_and(|r| r.id == self.record.id) {
            self.tools.remove_network(&self.record.bridge);
            let _ = fs::remove_file(&path);
        }
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Creates and configures the bridge, the sysctls and the nftables table. Returns the
/// bridge's interface index.
fn build(tools: &Tools, bridge: &str, net: Net, host: Ipv4Addr) -> Result<u32, String> {
    if nix::net::if_::if_nametoindex(bridge).is_ok() {
        tools.ip(&["link", "del", "dev", bridge])?;
    }
    let o = host.octets();
    // A fixed MAC: a bridge otherwise takes its lowest port's, which changes as instances
    // come and go and leaves their ARP entries for the host stale.
    let mac = format!("02:fc:d0:{:02x}:{:02x}:{:02x}", o[1], o[2], o[3]);
    let host_cidr = format!("{host}/{}", net.prefix);
    tools.ip(&[
        "link", "add", "name", bridge, "address", &mac, "type", "bridge",
    ])?;
    tools.ip(&["addr", "add", &host_cidr, "dev", bridge])?;
    tools.ip(&["link", "set", "dev", bridge, "up"])?;
    // Written only where needed: /proc/sys may be read-only with forwarding already on.
    let sysctl = |path: String| match fs::read_to_string(&path) {
        Ok(v) if v.trim() == "1" => Ok(()),
        _ => fs::write(&path, "1").map_err(|e| format!("setting {path} to 1: {e}")),
    };
    sysctl(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"))?;
    sysctl("/proc/sys/net/ipv4/ip_forward".into())?;
    let script = format!(
        r#"table ip {bridge}
delete table ip {bridge}
table ip {bridge} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "{bridge}" ip daddr {host} dnat to 127.0.0.1
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {net} oifname != "{bridge}" masquerade
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{bridge}" oifname "fcd-*" drop
        oifname "{bridge}" ct state established,related accept
        oifname "{bridge}" drop
    }}
}}
"#
    );
    tools.nft_script(&script)?;
    nix::net::if_::if_nametoindex(bridge).map_err(|e| format!("bridge {bridge}: {e}"))
}

fn write_hosts(runtime_dir: &Path, host: Ipv4Addr) -> Result<PathBuf, String> {
    fs::create_dir_all(runtime_dir)
        .map_err(|e| format!("creating {}: {e}", runtime_dir.display()))?;
    let mut text = fs::read_to_string("/etc/hosts")
        .unwrap_or_else(|_| "127.0.0.1 localhost\n::1 localhost\n".into());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "# Added by fcd: the host, as instances reach it.\n{host} {HOST_NAME}\n"
    ));
    let path = runtime_dir.join("hosts");
    write_atomically(&path, text.as_bytes(), 0o644)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// The pool thread: keeps `target` namespaces ready until told to stop.
fn refill_forever(shared: &Arc<Shared>) {
    let mut failing = false;
    loop {
        {
            let mut pool = locked(&shared.pool);
            while !pool.stop && pool.ready.len() >= pool.target {
                pool = shared.wake.wait(pool).unwrap_or_else(|p| p.into_inner());
            }
            if pool.stop {
                return;
            }
        }
        match make_on_fresh_thread(shared) {
            Ok(net) => {
                failing = false;
                let mut pool = locked(&shared.pool);
                if pool.stop {
                    return;
                }
                pool.ready.push_back(net);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "preparing an instance network failed; retrying");
                    failing = true;
                }
                // Wait for a release (addresses exhausted) or a second, whichever comes first.
                let pool = locked(&shared.pool);
                if pool.stop {
                    return;
                }
                let _ = shared.wake.wait_timeout(pool, Duration::from_secs(1));
            }
        }
    }
}

/// Makes a namespace on a thread of its own: the thread has to enter the namespace to create
/// it, and must not hold on to it afterwards (a thread keeps its namespace alive).
fn make_on_fresh_thread(shared: &Arc<Shared>) -> io::Result<PreparedNet> {
    let shared = shared.clone();
    std::thread::Builder::new()
        .name("fcd-netns-make".into())
        .stack_size(128 * 1024)
        .spawn(move || make(shared))?
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// Runs on a thread that exits afterwards: creates a namespace and configures it.
fn make(shared: Arc<Shared>) -> io::Result<PreparedNet> {
    // Start from the host's namespace whoever asked (the address allocator looks up veths).
    nix::sched::setns(&shared.host_ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("entering the host's network namespace: {e}")))?;
    let off = locked(&shared.addrs)
        .take()
        .ok_or_else(|| io::Error::other(format!("no free address left in {}", shared.net)))?;
    let addr = shared.net.addr(off);
    let veth = veth_name(shared.setup, addr);
    // From here on, dropping `net` releases the address (and deletes the veth if made).
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
        locked(&shared.addrs).free(off);
        io::Error::other(format!("unshare(CLONE_NEWNET): {e}"))
    })?;
    let netns = match fs::File::open("/proc/thread-self/ns/net") {
        Ok(f) => OwnedFd::from(f),
        Err(e) => {
            locked(&shared.addrs).free(off);
            return Err(e);
        }
    };
    let net = PreparedNet {
        netns,
        addr,
        veth,
        owner: shared.clone(),
    };
    configure(&shared, &net).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", net.veth)))?;
    Ok(net)
}

fn configure(shared: &Shared, net: &PreparedNet) -> io::Result<()> {
    // This thread is in the new namespace: a socket made now talks to it.
    let mut inside = Netlink::open()?;
    inside.set_up(1)?; // `lo` is always interface 1
    {
        let mut host = locked(&shared.host_nl);
        match host.add_veth(&net.veth, shared.bridge_index, INSTANCE_IF, &net.netns) {
            Err(e) if e.raw_os_error() == Some(nix::libc::EEXIST) => {
                // A namespace that used this address is still being destroyed.
                host.del_link(&net.veth)?;
                host.add_veth(&net.veth, shared.bridge_index, INSTANCE_IF, &net.netns)?;
            }
            other => other?,
        }
        host.isolate_and_up(&net.veth)?;
    }
    let eth = nix::net::if_::if_nametoindex(INSTANCE_IF).map_err(io::Error::from)?;
    inside.set_up(eth)?;
    inside.add_addr(eth, net.addr, shared.net.prefix)?;
    inside.add_default_route(eth, shared.host)?;
    Ok(())
}

// rtnetlink, by hand: a handful of requests, each acknowledged.

/// `VETH_INFO_PEER` from `linux/veth.h`.
const VETH_INFO_PEER: u16 = 1;
/// `IFLA_BRPORT_ISOLATED` from `linux/if_link.h`.
const IFLA_BRPORT_ISOLATED: u16 = 33;

struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

/// One rtnetlink message being built: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let flags = flags | (nix::libc::NLM_F_REQUEST | nix::libc::NLM_F_ACK) as u16;
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        Msg { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.raw(data)
    }

    fn str_attr(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    /// Opens a nested attribute; close it with [`Msg::end`].
    fn nest(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | nix::libc::NLA_F_NESTED as u16).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// `struct ifinfomsg`.
fn ifinfomsg(family: u8, index: u32, up: bool) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = family;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    if up {
        let flag = nix::libc::IFF_UP as u32;
        b[8..12].copy_from_slice(&flag.to_ne_bytes());
        b[12..16].copy_from_slice(&flag.to_ne_bytes());
    }
    b
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    fn open() -> io::Result<Netlink> {
        use nix::sys::socket::{
            AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, socket,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, mut msg: Msg) -> io::Result<()> {
        use nix::sys::socket::{MsgFlags, NetlinkAddr, recv, sendto};
        self.seq = self.seq.wrapping_add(1);
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        msg.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        sendto(
            self.fd.as_raw_fd(),
            &msg.buf,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            let mut at = 0;
            while at + 16 <= n {
                let word =
                    |o: usize| u32::from_ne_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
                let len = word(at) as usize;
                let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                let seq = word(at + 8);
                if len < 16 {
                    break;
                }
                if kind == nix::libc::NLMSG_ERROR as u16 && seq == self.seq && at + 20 <= n {
                    let err = word(at + 16) as i32;
                    return if err == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-err))
                    };
                }
                at += len.next_multiple_of(4);
            }
        }
    }

    fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut m = Msg::new(nix::libc::RTM_NEWLINK, 0);
        m.raw(&ifinfomsg(nix::libc::AF_UNSPEC as u8, index, true));
        self.request(m)
    }

    /// A veth `name` (down, a port of `master`) whose peer `peer` is in namespace `netns`.
    fn add_veth(&mut self, name: &str, master: u32, peer: &str, netns: &OwnedFd) -> io::Result<()> {
        use nix::libc::{
            IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MASTER,
            IFLA_NET_NS_FD, NLM_F_CREATE, NLM_F_EXCL, RTM_NEWLINK,
        };
        let mut m = Msg::new(RTM_NEWLINK, (NLM_F_CREATE | NLM_F_EXCL) as u16);
        m.raw(&ifinfomsg(nix::libc::AF_UNSPEC as u8, 0, false));
        m.str_attr(IFLA_IFNAME, name);
        m.attr(IFLA_MASTER, &master.to_ne_bytes());
        let info = m.nest(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "veth");
        let data = m.nest(IFLA_INFO_DATA);
        let p = m.nest(VETH_INFO_PEER);
        m.raw(&ifinfomsg(nix::libc::AF_UNSPEC as u8, 0, false));
        m.str_attr(IFLA_IFNAME, peer);
        m.attr(IFLA_NET_NS_FD, &(netns.as_raw_fd() as u32).to_ne_bytes());
        m.end(p);
        m.end(data);
        m.end(info);
        self.request(m)
    }

    /// Makes the bridge port `name` isolated (it can talk to the bridge, not to other isolated
    /// ports) and brings it up.
    fn isolate_and_up(&mut self, name: &str) -> io::Result<()> {
        use nix::libc::{IFLA_IFNAME, IFLA_INFO_SLAVE_DATA, IFLA_INFO_SLAVE_KIND, IFLA_LINKINFO};
        let mut m = Msg::new(nix::libc::RTM_NEWLINK, 0);
        m.raw(&ifinfomsg(nix::libc::AF_UNSPEC as u8, 0, true));
        m.str_attr(IFLA_IFNAME, name);
        let info = m.nest(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_SLAVE_KIND, "bridge");
        let data = m.nest(IFLA_INFO_SLAVE_DATA);
        m.attr(IFLA_BRPORT_ISOLATED, &[1]);
        m.end(data);
        m.end(info);
        self.request(m)
    }

    fn del_link(&mut self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(nix::libc::RTM_DELLINK, 0);
        m.raw(&ifinfomsg(nix::libc::AF_UNSPEC as u8, 0, false));
        m.str_attr(nix::libc::IFLA_IFNAME, name);
        match self.request(m) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(()),
            other => other,
        }
    }

    fn add_addr(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        use nix::libc::{IFA_ADDRESS, IFA_BROADCAST, IFA_LOCAL, NLM_F_CREATE, NLM_F_EXCL};
        let mut m = Msg::new(nix::libc::RTM_NEWADDR, (NLM_F_CREATE | NLM_F_EXCL) as u16);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut ifa = [0u8; 8];
        ifa[0] = nix::libc::AF_INET as u8;
        ifa[1] = prefix;
        ifa[4..8].copy_from_slice(&index.to_ne_bytes());
        m.raw(&ifa);
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        let n = Net::containing(&format!("{addr}/{prefix}")).unwrap_or(Net { base: 0, prefix });
        m.attr(IFA_BROADCAST, &Ipv4Addr::from(n.last()).octets());
        self.request(m)
    }

    fn add_default_route(&mut self, index: u32, via: Ipv4Addr) -> io::Result<()> {
        use nix::libc::{
            NLM_F_CREATE, NLM_F_EXCL, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTA_GATEWAY, RTA_OIF,
            RTN_UNICAST, RTPROT_BOOT,
        };
        let mut m = Msg::new(nix::libc::RTM_NEWROUTE, (NLM_F_CREATE | NLM_F_EXCL) as u16);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let rtm = [
            nix::libc::AF_INET as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        m.raw(&rtm);
        m.attr(RTA_GATEWAY, &via.octets());
        m.attr(RTA_OIF, &index.to_ne_bytes());
        self.request(m)
    }
}

#[cfg(test)]
mod tests {
    //! Root-only: they create bridges, nftables tables and namespaces (and remove them). All
    //! traffic stays on this machine: the host's loopback and the namespaces' own addresses.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::sandbox::{self, JailConfig, JailPlan, NetworkMode, SpawnSpec};
    use std::io::{BufRead, Read};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// Lets the test binary stand in for fcd as the jail's init (`<exe> __fcd-jail-init`),
    /// before libtest's `main` sees the argument.
    // SAFETY: a plain function pointer in `.init_array`, which the loader calls once at start
    // with no arguments, as for any constructor.
    #[used]
    #[unsafe(link_section = ".init_array")]
    static JAIL_INIT: extern "C" fn() = jail_init_if_asked;

    extern "C" fn jail_init_if_asked() {
        let Ok(cmdline) = fs::read("/proc/self/cmdline") else {
            return;
        };
        if cmdline.split(|b| *b == 0).nth(1) == Some(sandbox::INIT_ARG.as_bytes()) {
            sandbox::jail::init_main();
        }
    }

    /// Whether this test cannot run here; says so on stderr.
    fn skip(test: &str) -> bool {
        if !nix::unistd::geteuid().is_root() {
            say_skip(
                test,
                "needs root (creates bridges, nftables tables, namespaces)",
            );
            return true;
        }
        if let Err(e) = Tools::find() {
            say_skip(test, &e);
            return true;
        }
        false
    }

    /// Straight to stderr: libtest captures `eprintln!` of passing tests, and a skip must show.
    fn say_skip(test: &str, why: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: sandbox::net::tests::{test}: {why}"
        );
    }

    /// A fresh tag: bridge `fcd-<tag>` fits 15 characters exactly.
    fn tag() -> String {
        format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
    }

    /// A server on the host's 127.0.0.1 answering every connection with `hello <peer ip>`.
    fn host_loopback_server() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || answer_forever(l));
        port
    }

    fn answer_forever(l: TcpListener) {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let peer = c
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = c.write_all(format!("hello {peer}\n").as_bytes());
        }
    }

    /// Runs `f` on a thread inside the namespace `ns`.
    fn in_netns<T: Send + 'static>(ns: &OwnedFd, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = ns.try_clone().unwrap();
        std::thread::spawn(move || {
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    fn shell(script: &str, netns: Option<OwnedFd>, hosts: Option<&Path>) -> SpawnSpec {
        SpawnSpec {
            program: "/bin/bash".into(),
            args: vec!["-c".into(), script.into()],
            cwd: "/".into(),
            env: vec![("PATH".into(), "/usr/bin:/bin:/usr/sbin:/sbin".into())],
            network: NetworkMode::Namespace,
            read_only: None,
            jail: None,
            cgroup_procs: Vec::new(),
            blank: None,
            netns,
            hosts: hosts.map(Path::to_path_buf),
        }
    }

    /// Spawns, waits for the end, returns everything it printed.
    async fn run(spec: SpawnSpec) -> String {
        use tokio::io::AsyncReadExt;
        let mut spawned = sandbox::spawn(spec).unwrap();
        if let Some(report) = spawned.report.take() {
            sandbox::await_jail(report, Duration::from_secs(20))
                .await
                .unwrap();
        }
        let mut out = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            spawned.output.read_to_end(&mut out),
        )
        .await
        .expect("the instance ran too long")
        .unwrap();
        let _ = spawned.exit.await;
        String::from_utf8_lossy(&out).into_owned()
    }

    fn bridge_exists(name: &str) -> bool {
        Path::new("/sys/class/net").join(name).exists()
    }

    fn table_exists(name: &str) -> bool {
        Command::new("nft")
            .args(["list", "table", "ip", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The host-side veths of one server's namespaces (named after its setup).
    fn veths_of(setup: u16) -> Vec<String> {
        let prefix = format!("fcv{setup:04x}");
        fs::read_dir("/sys/class/net")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect()
    }

    /// Waits (up to 10 s) for the kernel to destroy the namespaces, then lists what is left.
    fn veths_gone(setup: u16) -> Vec<String> {
        let t = Instant::now();
        while !veths_of(setup).is_empty() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        veths_of(setup)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn instance_reaches_host_loopback_at_host_addr_and_by_name() {
        if skip("instance_reaches_host_loopback_at_host_addr_and_by_name") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let egress = Egress::setup(&tag(), &dir.path().join("runtime"), None).unwrap();
        let port = host_loopback_server();
        let host = egress.host_addr();
        let hosts = fs::read_to_string(egress.hosts_file()).unwrap();
        assert!(hosts.contains(&format!("{host} fcd-host")), "{hosts}");

        let net = egress.prepare().unwrap();
        let script = format!(
            "getent hosts fcd-host; exec 3<>/dev/tcp/{host}/{port} && cat <&3; \
             exec 4<>/dev/tcp/fcd-host/{port} && cat <&4; exec 3<&- 4<&-; \
             echo fds: $(ls -l /proc/self/fd)"
        );
        let spec = shell(
            &script,
            Some(net.netns.try_clone().unwrap()),
            Some(egress.hosts_file()),
        );
        let out = run(spec).await;
        // The host's loopback service saw the instance's own address.
        let hello = format!("hello {}", net.addr);
        assert_eq!(out.matches(&hello).count(), 2, "{out}");
        assert!(
            out.contains(&format!("{host}")) && out.contains("fcd-host"),
            "{out}"
        );
        assert!(out.contains("fds: ") && !out.contains("net:["), "{out}");
        drop(net);
        egress.teardown();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn loopback_only_instance_reaches_nothing() {
        if skip("loopback_only_instance_reaches_nothing") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let egress = Egress::setup(&tag(), &dir.path().join("runtime"), None).unwrap();
        let port = host_loopback_server();
        let host = egress.host_addr();
        // The sleep: fcd opens an unprepared namespace through `/proc/<pid>`, which must still
        // be there (a real instance is a server that stays).
        let script = format!(
            "sleep 0.5; exec 3<>/dev/tcp/{host}/{port} && cat <&3 || echo no-host; \
             exec 4<>/dev/tcp/127.0.0.1/{port} && cat <&4 || echo no-loopback"
        );
        let out = run(shell(&script, None, None)).await;
        assert!(!out.contains("hello"), "{out}");
        assert!(
            out.contains("no-host") && out.contains("no-loopback"),
            "{out}"
        );
        egress.teardown();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn instances_cannot_reach_each_other() {
        if skip("instances_cannot_reach_each_other") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let egress = Egress::setup(&tag(), &dir.path().join("runtime"), None).unwrap();
        let other = Egress::setup(&tag(), &dir.path().join("runtime2"), None).unwrap();
        let host_port = host_loopback_server();
        let a = egress.prepare().unwrap();
        let b = egress.prepare().unwrap();
        let c = other.prepare().unwrap();
        // A listens on all its addresses, as a function on its caPort.
        let listener = in_netns(&a.netns, || TcpListener::bind("0.0.0.0:0").unwrap());
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || answer_forever(listener));

        // Controls: A is listening (the host reaches it over the bridge, fcd through its
        // socket factory), and B and C are connected to their hosts.
        let mut s = String::new();
        TcpStream::connect((a.addr, port))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert!(s.starts_with("hello "), "{s}");
        let factory = sandbox::SocketFactory::for_netns(a.netns.try_clone().unwrap()).unwrap();
        let fd = factory.socket().await.unwrap();
        let sock = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        let mut conn = sock
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut s)
            .await
            .unwrap();
        assert_eq!(s, "hello 127.0.0.1\n");

        let script = |host: Ipv4Addr| {
            format!(
                "exec 3<>/dev/tcp/{host}/{host_port} && cat <&3; \
                 timeout 3 bash -c 'exec 4<>/dev/tcp/{}/{port} && cat <&4' || echo blocked",
                a.addr
            )
        };
        let from_b = run(shell(
            &script(egress.host_addr()),
            Some(b.netns.try_clone().unwrap()),
            None,
        ));
        let from_c = run(shell(
            &script(other.host_addr()),
            Some(c.netns.try_clone().unwrap()),
            None,
        ));
        let (from_b, from_c) = tokio::join!(from_b, from_c);
        assert!(from_b.contains(&format!("hello {}", b.addr)), "{from_b}");
        assert!(from_b.contains("blocked"), "{from_b}");
        assert!(from_c.contains(&format!("hello {}", c.addr)), "{from_c}");
        assert!(from_c.contains("blocked"), "{from_c}");
        assert_eq!(from_b.matches("hello").count(), 1, "{from_b}");
        assert_eq!(from_c.matches("hello").count(), 1, "{from_c}");
        drop((a, b, c));
        egress.teardown();
        other.teardown();
    }

    #[test]
    fn same_tag_replaces_and_teardown_removes_everything() {
        if skip("same_tag_replaces_and_teardown_removes_everything") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tag = tag();
        let first = Egress::setup(&tag, dir.path(), None).unwrap();
        let bridge = first.bridge().to_owned();
        let held = first.prepare().unwrap();
        let second = Egress::setup(&tag, dir.path(), None).unwrap();
        assert_eq!(second.bridge(), bridge);
        let record: Record =
            serde_json::from_slice(&fs::read(Record::path(&bridge)).unwrap()).unwrap();
        assert_eq!(record.id, second.record.id);
        let count = records().iter().filter(|r| r.tag == tag).count();
        assert_eq!(count, 1);
        // The first server's leftovers go without touching its successor.
        drop(held);
        first.teardown();
        assert!(bridge_exists(&bridge) && table_exists(&bridge));
        assert!(Record::path(&bridge).exists());
        let net = second.prepare().unwrap();
        let setup = second.shared.setup;
        let t = Instant::now();
        while second.ready() < POOL_TARGET && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            veths_of(setup).len(),
            1 + POOL_TARGET,
            "{:?}",
            veths_of(setup)
        );
        drop(net);
        second.teardown();
        assert!(!bridge_exists(&bridge), "bridge {bridge} left");
        assert!(!table_exists(&bridge), "table {bridge} left");
        assert!(!Record::path(&bridge).exists(), "record left");
        assert_eq!(veths_gone(setup), Vec::<String>::new());
    }

    #[test]
    fn parallel_setups_get_distinct_subnets() {
        if skip("parallel_setups_get_distinct_subnets") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let runtime = dir.path().join(format!("r{i}"));
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    Egress::setup(&tag(), &runtime, None).unwrap()
                })
            })
            .collect();
        let all: Vec<Arc<Egress>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                let (nx, ny) = (x.shared.net, y.shared.net);
                assert!(!nx.overlaps(ny), "{nx} and {ny}");
            }
        }
        for e in &all {
            e.teardown();
        }
    }

    #[test]
    fn explicit_subnets_are_checked() {
        if skip("explicit_subnets_are_checked") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(Net::parse_subnet("10.9.0.1/24").is_err());
        assert!(Net::parse_subnet("10.9.0.0/8").is_err());
        let loopback = Egress::setup(&tag(), dir.path(), Some("127.0.0.0/16")).unwrap_err();
        assert!(loopback.contains("overlaps"), "{loopback}");
        let auto = Egress::setup(&tag(), dir.path(), None).unwrap();
        let clash = Egress::setup(&tag(), dir.path(), Some(&auto.subnet())).unwrap_err();
        assert!(clash.contains("fcd server"), "{clash}");
        auto.teardown();
    }

    /// Run by `leftovers_of_a_killed_server_are_removed` in a process of its own.
    #[test]
    #[ignore = "helper: runs only as a child of leftovers_of_a_killed_server_are_removed"]
    fn killed_server_helper() {
        let Ok(tag) = std::env::var("FCD_NET_TEST_HELPER_TAG") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let egress = Egress::setup(&tag, dir.path(), None).unwrap();
        let held = [egress.prepare().unwrap(), egress.prepare().unwrap()];
        while egress.ready() < POOL_TARGET {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("ready {} {}", egress.bridge(), egress.shared.setup);
        std::thread::sleep(Duration::from_secs(120));
        drop(held);
    }

    #[test]
    fn leftovers_of_a_killed_server_are_removed() {
        if skip("leftovers_of_a_killed_server_are_removed") {
            return;
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sandbox::net::tests::killed_server_helper",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FCD_NET_TEST_HELPER_TAG", tag())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let ready = stdout
            .lines()
            .map_while(Result::ok)
            // libtest prints `test <name> ... ` before it, on the same line.
            .find_map(|l| l.split_once("ready ").map(|(_, r)| r.to_owned()))
            .expect("the helper did not get ready");
        let (bridge, setup) = ready.split_once(' ').unwrap();
        let setup: u16 = setup.trim().parse().unwrap();
        assert_eq!(veths_of(setup).len(), 2 + POOL_TARGET);
        child.kill().unwrap();
        child.wait().unwrap();

        // The namespaces died with the process, and their veths with them.
        let t = Instant::now();
        assert_eq!(veths_gone(setup), Vec::<String>::new());
        eprintln!("veths gone {:?} after SIGKILL", t.elapsed());
        // The bridge, table and record stay until the next server starts.
        assert!(bridge_exists(bridge) && table_exists(bridge));
        assert!(Record::path(bridge).exists());
        let dir = tempfile::tempdir().unwrap();
        let next = Egress::setup(&tag(), dir.path(), None).unwrap();
        assert!(!bridge_exists(bridge), "bridge {bridge} left");
        assert!(!table_exists(bridge), "table {bridge} left");
        assert!(!Record::path(bridge).exists(), "record left");
        next.teardown();
    }

    #[test]
    fn timings() {
        if skip("timings") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let egress = Egress::setup_with_pool(&tag(), dir.path(), None, 0).unwrap();
        let setup = t.elapsed();
        let mut empty = Vec::new();
        let mut held = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            held.push(egress.prepare().unwrap());
            empty.push(t.elapsed());
        }
        let t = Instant::now();
        held.clear();
        let release = t.elapsed() / 20;
        locked(&egress.shared.pool).target = 1;
        let mut pooled = Vec::new();
        for _ in 0..20 {
            egress.shared.wake.notify_all();
            while egress.ready() < 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let t = Instant::now();
            held.push(egress.prepare().unwrap());
            pooled.push(t.elapsed());
        }
        held.clear();
        let t = Instant::now();
        egress.teardown();
        let teardown = t.elapsed();
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        eprintln!(
            "egress timings: setup {setup:?}, prepare with the pool empty: median {:?} (max {:?}), \
             with one ready: median {:?} (max {:?}), release {release:?}, teardown {teardown:?}",
            median(&mut empty),
            empty.iter().max().unwrap(),
            median(&mut pooled),
            pooled.iter().max().unwrap(),
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn jailed_instance_reaches_host_by_name() {
        if skip("jailed_instance_reaches_host_by_name") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tag = tag();
        let exe = std::env::current_exe().unwrap();
        let jail = match JailConfig::detect(exe, dir.path(), &tag).await {
            Ok(j) => j,
            Err(e) => {
                say_skip(
                    "jailed_instance_reaches_host_by_name",
                    &format!("no jail here: {e}"),
                );
                return;
            }
        };
        let egress = Egress::setup(&tag, &dir.path().join("runtime"), None).unwrap();
        let port = host_loopback_server();
        let code = dir.path().join("code");
        fs::create_dir_all(&code).unwrap();
        let net = egress.prepare().unwrap();
        let mut spec = shell(
            &format!(
                "getent hosts fcd-host; exec 3<>/dev/tcp/fcd-host/{port} && cat <&3; id -u; \
                 exec 3<&-; echo fds: $(ls -l /proc/self/fd)"
            ),
            Some(net.netns.try_clone().unwrap()),
            Some(egress.hosts_file()),
        );
        spec.cwd = "/code".into();
        let uid = jail.uids.lease().unwrap();
        spec.jail = Some(JailPlan {
            config: jail.clone(),
            code_dir: Some(code),
            layers_dir: None,
            mounts: Vec::new(),
            uid: uid.uid(),
            image_root: None,
            image_user: None,
        });
        let mut spawned = sandbox::spawn(spec).unwrap();
        assert!(
            spawned.sockets.is_some(),
            "sockets from the prepared namespace"
        );
        let report = spawned.report.take().unwrap();
        sandbox::await_jail(report, Duration::from_secs(20))
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            tokio::io::AsyncReadExt::read_to_end(&mut spawned.output, &mut out),
        )
        .await
        .unwrap()
        .unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains(&format!("hello {}", net.addr)), "{out}");
        assert!(out.contains(&egress.host_addr().to_string()), "{out}");
        assert!(out.contains(&uid.uid().to_string()), "{out}");
        // The namespace's fd does not leak into the function.
        assert!(out.contains("fds: ") && !out.contains("net:["), "{out}");
        drop(net);
        egress.teardown();
        jail.cgroups.remove();
    }
}
