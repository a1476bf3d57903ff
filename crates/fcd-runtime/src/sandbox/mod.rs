//! Starting and stopping instance processes — the only place fcd creates processes.
//!
//! Each instance runs in its own process group (so stopping it stops everything it started),
//! dies with fcd (`PR_SET_PDEATHSIG`), and, where the kernel allows, in its own network
//! namespace with only a loopback interface: every instance can then listen on its `caPort`
//! without clashing, and fcd reaches it through sockets created inside that namespace by a
//! helper thread that joined it. Where namespaces are unavailable, instances share the host's
//! network and each gets a distinct port through `FC_SERVER_PORT` / `FC_CUSTOM_LISTEN_PORT`.
//!
//! With outbound network ([`net::Egress`], FC's `internetAccess`), an instance instead joins a
//! namespace prepared ahead (`SpawnSpec::netns`) that also has an `eth0` on the server's bridge,
//! and sees an `/etc/hosts` naming the host (`SpawnSpec::hosts`).
//!
//! In that mode the instance also gets its own mount namespace in which its code directory is
//! bind-mounted read-only.
//!
//! Where fcd runs as root with namespaces available, instances go further: each runs in a
//! [`jail`] (a private root showing an allow-list of the host ([`view`]) and `/code`,
//! PID/mount/IPC/UTS namespaces, cgroup memory and process limits, a uid of its own ([`uids`]),
//! a system-call filter ([`seccomp`])). `RuntimeConfig::jail` is `None` only where the operator
//! asked for that (`fcd serve --isolation none`): a server that cannot jail refuses to start.
//!
//! Exits are reaped with `wait4` so the peak memory of a crashed process is measured, not
//! guessed.
#![allow(unsafe_code)]

pub(crate) mod blank;
pub mod cgroup;
pub mod jail;
pub mod net;
pub(crate) mod seccomp;
pub mod uids;
pub(crate) mod view;

pub(crate) use blank::{BlankSetup, assign};
pub use cgroup::Cgroups;
pub(crate) use jail::Bind;
pub use jail::INIT_ARG;
use jail::JailSpec;
pub use net::Egress;
pub use uids::InstanceUids;

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

/// How instances get their network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// A private network namespace per instance (loopback only); the instance listens on its
    /// `caPort` as on FC.
    Namespace,
    /// The host's network; each instance gets a distinct port. Reduced isolation.
    Host,
}

impl NetworkMode {
    /// Whether this process may create network namespaces; probed on a throwaway thread so
    /// no other thread's namespace changes.
    pub fn detect() -> NetworkMode {
        let probe = std::thread::spawn(|| nix::sched::unshare(CloneFlags::CLONE_NEWNET).is_ok());
        match probe.join() {
            Ok(true) => NetworkMode::Namespace,
            _ => NetworkMode::Host,
        }
    }
}

pub(crate) struct SpawnSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: PathBuf,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) network: NetworkMode,
    /// A directory to make read-only for the instance (its code), where the instance gets its
    /// own mount namespace (together with its own network namespace).
    pub(crate) read_only: Option<PathBuf>,
    /// Run inside a jail instead (then `program`, `cwd` and `env` are as seen inside it).
    pub(crate) jail: Option<JailPlan>,
    /// `cgroup.procs` files the jailed instance joins.
    pub(crate) cgroup_procs: Vec<PathBuf>,
    /// Build a prewarmed jail that gets its function later (jailed only; see [`blank`]).
    pub(crate) blank: Option<BlankSetup>,
    /// A prepared network namespace ([`net::PreparedNet::netns`]) to join instead of creating a
    /// loopback-only one; implies a namespaced network whatever `network` says. The caller
    /// keeps the `PreparedNet` for the instance's life.
    pub(crate) netns: Option<OwnedFd>,
    /// A file shown as `/etc/hosts` to the instance: jailed, copied into its `/etc`; unjailed,
    /// bound read-only over the host's where the instance has its own network (and so mount)
    /// namespace.
    pub(crate) hosts: Option<PathBuf>,
}

/// Server-wide jail settings, detected once at start.
#[derive(Debug, Clone)]
pub struct JailConfig {
    /// The fcd binary, started as the jail's init.
    pub exe: PathBuf,
    /// An empty directory each jail mounts its private root on.
    pub rootfs: PathBuf,
    /// The system trees every jail shows read-only (see [`view`]).
    binds: Vec<Bind>,
    links: Vec<(String, String)>,
    /// What of the host's `/etc` every jail gets.
    etc: Vec<view::EtcEntry>,
    /// Host paths no jail may reach, wherever they are (the data dir).
    hidden: Vec<PathBuf>,
    pub tmp_size_mb: u32,
    pub pids_max: u32,
    pub cgroups: Cgroups,
    /// The uids instances run as, one each.
    pub uids: Arc<InstanceUids>,
}

/// One instance's jail: the server settings plus what is specific to the instance.
#[derive(Debug)]
pub(crate) struct JailPlan {
    pub(crate) config: JailConfig,
    /// The function's code, shown at `/code`; `None` for a prewarmed jail.
    pub(crate) code_dir: Option<PathBuf>,
    /// The function's merged layers, shown at `/opt`; `None` without layers.
    pub(crate) layers_dir: Option<PathBuf>,
    /// What the instance's runtime needs besides the system directories (its interpreter's
    /// prefix, its bootstrap), read-only.
    pub(crate) mounts: Vec<Bind>,
    /// The uid (and gid) the instance runs as, leased by the caller for the instance's life.
    pub(crate) uid: u32,
    /// An unpacked image to use as the root instead of the host's trees (`custom-container`).
    pub(crate) image_root: Option<PathBuf>,
    /// The uid and gid the image's `User` names, mapped onto `uid` in a user namespace.
    pub(crate) image_user: Option<(u32, u32)>,
}

impl JailConfig {
    /// Works out what a jail needs on this host and proves it works by running `true` in one.
    /// `Err` names everything that is missing, as an operator reads it. `data_dir` is hidden
    /// from every jail wherever it is.
    pub async fn detect(
        exe: PathBuf,
        data_dir: &std::path::Path,
        tag: &str,
    ) -> Result<JailConfig, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err(
                "fcd is not running as root (jails need it: namespaces, cgroups, a uid per instance)"
                    .into(),
            );
        }
        let mut missing = Vec::new();
        for (ns, name) in [
            ("mnt", "mount"),
            ("pid", "PID"),
            ("ipc", "IPC"),
            ("uts", "UTS"),
        ] {
            if !std::path::Path::new("/proc/self/ns").join(ns).exists() {
                missing.push(format!("this kernel has no {name} namespaces"));
            }
        }
        let seccomp = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")));
        if !seccomp {
            missing.push("this kernel has no seccomp (system-call filters)".to_owned());
        }
        let cgroups = Cgroups::detect(tag);
        if cgroups.is_none() {
            missing.push(
                "no writable cgroup memory controller under /sys/fs/cgroup (memorySize could not be enforced)"
                    .to_owned(),
            );
        }
        let uids = InstanceUids::claim().map_err(|e| missing.push(format!("instance uids: {e}")));
        let (Some(cgroups), Ok(uids), true) = (cgroups.clone(), uids, missing.is_empty()) else {
            if let Some(c) = cgroups {
                c.remove();
            }
            return Err(missing.join("; "));
        };
        let rootfs = data_dir.join("runtime").join("jail-root");
        std::fs::create_dir_all(&rootfs)
            .map_err(|e| format!("creating {}: {e}", rootfs.display()))?;
        let (binds, links) = view::system_view();
        let cfg = JailConfig {
            exe,
            rootfs,
            binds,
            links,
            etc: view::etc_entries(std::path::Path::new("/etc")),
            hidden: vec![data_dir.to_path_buf()],
            tmp_size_mb: 512,
            pids_max: 1024,
            cgroups,
            uids,
        };
        if let Err(e) = cfg.probe().await {
            cfg.cgroups.remove();
            return Err(e);
        }
        Ok(cfg)
    }

    async fn probe(&self) -> Result<(), String> {
        let truth = ["/usr/bin/true", "/bin/true"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or("no `true` binary to probe with")?;
        let lease = self.uids.lease().map_err(|e| format!("jail probe: {e}"))?;
        let plan = JailPlan {
            config: self.clone(),
            code_dir: self.rootfs.parent().map(|p| p.to_path_buf()),
            layers_dir: None,
            mounts: Vec::new(),
            uid: lease.uid(),
            image_root: None,
            image_user: None,
        };
        let spec = SpawnSpec {
            program: truth.into(),
            args: Vec::new(),
            cwd: "/".into(),
            env: Vec::new(),
            network: NetworkMode::Namespace,
            read_only: None,
            jail: Some(plan),
            cgroup_procs: Vec::new(),
            blank: None,
            netns: None,
            hosts: None,
        };
        let mut spawned = spawn(spec).map_err(|e| format!("jail probe: {e}"))?;
        let report = spawned.report.take().ok_or("jail probe: no report pipe")?;
        let setup = await_jail(report, std::time::Duration::from_secs(10)).await;
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), spawned.exit)
            .await
            .map_err(|_| "jail probe did not exit".to_owned())?
            .map_err(|e| e.to_string())?;
        drop(lease);
        match setup {
            Ok(_) if exit.description == "exit code 0" => Ok(()),
            Ok(_) => Err(format!(
                "jail probe: `true` ended with {}",
                exit.description
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Describes the uids instances get (for logs and `GET /status`).
    pub fn describe_uids(&self) -> String {
        format!(
            "a uid of its own per instance, from {}..{}",
            self.uids.first(),
            u64::from(self.uids.first()) + u64::from(self.uids.count())
        )
    }

    pub(crate) fn instance_binds(
        &self,
        code_dir: Option<&std::path::Path>,
        layers_dir: Option<&std::path::Path>,
        mounts: &[Bind],
    ) -> Vec<Bind> {
        let mut b = self.binds.clone();
        if let Some(code_dir) = code_dir {
            b.push(Bind {
                host: code_dir.to_path_buf(),
                inside: "/code".into(),
                writable: false,
            });
        }
        if let Some(layers_dir) = layers_dir {
            b.push(Bind {
                host: layers_dir.to_path_buf(),
                inside: "/opt".into(),
                writable: false,
            });
        }
        b.extend(mounts.iter().cloned());
        b
    }
}

/// How an instance process ended.
#[derive(Debug, Clone)]
pub(crate) struct ExitInfo {
    pub(crate) description: String,
    /// Peak resident memory of the process, in KiB.
    pub(crate) max_rss_kib: u64,
}

pub(crate) struct Spawned {
    pub(crate) pid: i32,
    pub(crate) output: pipe::Receiver,
    pub(crate) exit: oneshot::Receiver<ExitInfo>,
    pub(crate) sockets: Option<SocketFactory>,
    /// A jail's progress reports (see [`jail`]); read with [`await_jail`].
    pub(crate) report: Option<pipe::Receiver>,
    /// A prewarmed jail's control socket (see [`blank`]).
    pub(crate) control: Option<std::os::unix::net::UnixStream>,
}

/// Waits for a jail to report that its function is about to run. Returns the PID (as fcd sees
/// it) of the jail's first process.
pub(crate) async fn await_jail(
    report: pipe::Receiver,
    limit: std::time::Duration,
) -> io::Result<i32> {
    use tokio::io::AsyncReadExt;
    let mut report = report;
    let mut text = String::new();
    let read = tokio::time::timeout(limit, report.read_to_string(&mut text)).await;
    if read.is_err() {
        return Err(io::Error::other(
            "the jail did not finish setting up in time",
        ));
    }
    if let Some(err) = text.lines().find_map(|l| l.strip_prefix("error: ")) {
        return Err(io::Error::other(format!("jail setup failed: {err}")));
    }
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("pid ").and_then(|p| p.trim().parse().ok()));
    match (pid, text.lines().any(|l| l == "ok")) {
        (Some(pid), true) => Ok(pid),
        _ => Err(io::Error::other(format!(
            "the jail exited during setup: {}",
            text.trim()
        ))),
    }
}

/// Creates TCP sockets inside an instance's network namespace.
#[derive(Debug)]
pub(crate) struct SocketFactory {
    tx: std_mpsc::Sender<oneshot::Sender<io::Result<OwnedFd>>>,
}

impl SocketFactory {
    fn start(pid: i32) -> io::Result<SocketFactory> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        Self::in_namespace(ns.into(), &pid.to_string())
    }

    /// Sockets in the namespace `ns` refers to (e.g. a dup of [`net::PreparedNet::netns`]).
    pub(crate) fn for_netns(ns: OwnedFd) -> io::Result<SocketFactory> {
        let label = format!("fd{}", std::os::fd::AsRawFd::as_raw_fd(&ns));
        Self::in_namespace(ns, &label)
    }

    fn in_namespace(ns: OwnedFd, label: &str) -> io::Result<SocketFactory> {
        let (tx, rx) = std_mpsc::channel::<oneshot::Sender<io::Result<OwnedFd>>>();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name(format!("fcd-netns-{label}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                // This thread lives in the instance's namespace for good; it exits when the
                // instance is dropped, so no thread ever goes back to serving anything else.
                let joined = nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET);
                let _ = ready_tx.send(joined.map_err(io::Error::from));
                if joined.is_err() {
                    return;
                }
                while let Ok(reply) = rx.recv() {
                    let sock = nix::sys::socket::socket(
                        nix::sys::socket::AddressFamily::Inet,
                        nix::sys::socket::SockType::Stream,
                        nix::sys::socket::SockFlag::SOCK_CLOEXEC
                            | nix::sys::socket::SockFlag::SOCK_NONBLOCK,
                        None,
                    )
                    .map_err(io::Error::from);
                    let _ = reply.send(sock);
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("namespace helper thread died"))??;
        Ok(SocketFactory { tx })
    }

    /// An unconnected, non-blocking TCP socket in the instance's namespace.
    pub(crate) async fn socket(&self) -> io::Result<OwnedFd> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| io::Error::other("namespace helper thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("namespace helper thread is gone"))?
    }
}

/// Brings up `lo` in the current (fresh) network namespace. Runs between fork and exec, so it
/// only makes raw system calls.
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: plain syscalls on a socket this function owns; `ifreq` is zero-initialised and the
    // interface name fits with its terminating NUL.
    unsafe {
        let fd = nix::libc::socket(
            nix::libc::AF_INET,
            nix::libc::SOCK_DGRAM | nix::libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: nix::libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as nix::libc::c_char;
        }
        let mut rc = nix::libc::ioctl(fd, nix::libc::SIOCGIFFLAGS as _, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= nix::libc::IFF_UP as nix::libc::c_short;
            rc = nix::libc::ioctl(fd, nix::libc::SIOCSIFFLAGS as _, &req);
        }
        let err = io::Error::last_os_error();
        nix::libc::close(fd);
        if rc != 0 { Err(err) } else { Ok(()) }
    }
}

/// In the child's fresh mount namespace: keep mount changes private.
fn private_mounts() -> io::Result<()> {
    use nix::mount::{MsFlags, mount};
    const NONE: Option<&std::ffi::CStr> = None;
    mount(
        NONE,
        c"/",
        NONE,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        NONE,
    )
    .map_err(io::Error::from)
}

/// In the child's private mount namespace: binds `src` onto `dst` read-only — the code
/// directory onto itself, so even a root function cannot change its code; the instances'
/// hosts file over `/etc/hosts`.
fn bind_read_only(src: &std::ffi::CStr, dst: &std::ffi::CStr) -> io::Result<()> {
    use nix::mount::{MsFlags, mount};
    const NONE: Option<&std::ffi::CStr> = None;
    mount(
        Some(src),
        dst,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(io::Error::from)?;
    mount(
        NONE,
        dst,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        NONE,
    )
    .map_err(io::Error::from)
}

/// A duplicate of `fd` numbered 10 or above (close-on-exec), so that `dup2`s onto low fixed
/// numbers in the child cannot overwrite it first.
fn dup_high(fd: &OwnedFd) -> io::Result<OwnedFd> {
    let raw = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: fcntl just returned this new descriptor; nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// What an image's root shows of the host: its resolver configuration, and its hosts file
/// unless the instance's network brings one (read-only, over the empty files `fcd-image`
/// leaves in every unpacked root).
fn image_binds(host_hosts: bool) -> Vec<Bind> {
    let mut files = vec!["/etc/resolv.conf"];
    if host_hosts {
        files.push("/etc/hosts");
    }
    files
        .into_iter()
        .filter(|f| Path::new(f).is_file())
        .map(|f| Bind {
            host: f.into(),
            inside: f.into(),
            writable: false,
        })
        .collect()
}

fn spawn_jailed(spec: SpawnSpec, plan: JailPlan) -> io::Result<Spawned> {
    let (out_rx, out_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let err_tx = out_tx.try_clone()?;
    let (report_rx, report_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    const REPORT_FD: i32 = 3;
    // A prepared namespace reaches the init as this fd; it joins it instead of unsharing one.
    const NETNS_FD: i32 = 4;
    let netns = spec.netns.as_ref().map(dup_high).transpose()?;
    // fcd's sockets into the instance can be made right away, not after the jail reports.
    let sockets = match &spec.netns {
        Some(ns) => Some(SocketFactory::for_netns(ns.try_clone()?)?),
        None => None,
    };
    // An image is the whole root: nothing of the host is shown but its name resolution.
    let (binds, links, etc) = match &plan.image_root {
        Some(_) => (image_binds(spec.hosts.is_none()), Vec::new(), Vec::new()),
        None => (
            plan.config.instance_binds(
                plan.code_dir.as_deref(),
                plan.layers_dir.as_deref(),
                &plan.mounts,
            ),
            plan.config.links.clone(),
            plan.config.etc.clone(),
        ),
    };
    let jail_spec = JailSpec {
        program: spec.program.display().to_string(),
        args: spec.args.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.display().to_string(),
        rootfs: plan.config.rootfs.clone(),
        binds,
        links,
        etc,
        image_root: plan.image_root.clone(),
        image_user: plan.image_root.as_ref().and(plan.image_user),
        hosts: spec.hosts.clone(),
        hidden: plan.config.hidden.clone(),
        tmp_size_mb: plan.config.tmp_size_mb,
        uid: plan.uid,
        gid: plan.uid,
        own_network: spec.network == NetworkMode::Namespace || netns.is_some(),
        netns_fd: netns.as_ref().map(|_| NETNS_FD),
        cgroup_procs: spec.cgroup_procs.clone(),
        report_fd: REPORT_FD,
        blank: spec.blank.as_ref().map(|b| blank::BlankJail {
            store: b.store.clone(),
            exec: b.exec,
            image: b.image,
            control_fd: blank::CONTROL_FD,
        }),
    };
    // A prewarmed jail's init is handed its function over this socket.
    let (control, control_theirs) = match &spec.blank {
        Some(_) => {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
            (Some(ours), Some(theirs))
        }
        None => (None, None),
    };
    let control_raw = control_theirs.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let json = serde_json::to_string(&jail_spec).map_err(io::Error::other)?;
    let mut cmd = Command::new(&plan.config.exe);
    cmd.arg(jail::INIT_ARG)
        .env_clear()
        .env(jail::SPEC_ENV, json)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_tx))
        .stderr(Stdio::from(err_tx))
        .process_group(0);
    let report_raw = std::os::fd::AsRawFd::as_raw_fd(&report_tx);
    let netns_raw = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    // SAFETY: between fork and exec the closure only calls prctl and dup2, both
    // async-signal-safe, on integers prepared before the fork. `netns_raw` is 10 or above, so
    // the dup2s before it cannot overwrite it.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            if nix::libc::dup2(report_raw, REPORT_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = control_raw
                && nix::libc::dup2(fd, blank::CONTROL_FD) < 0
            {
                return Err(io::Error::last_os_error());
            }
            if let Some(ns) = netns_raw
                && nix::libc::dup2(ns, NETNS_FD) < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(report_tx);
    drop(control_theirs);
    drop(netns);
    let pid = child.id() as i32;
    drop(child);
    let (exit_tx, exit_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("fcd-reap-{pid}"))
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = exit_tx.send(reap(pid));
        })?;
    let output = pipe::Receiver::from_owned_fd(out_rx)?;
    let report = pipe::Receiver::from_owned_fd(report_rx)?;
    Ok(Spawned {
        pid,
        output,
        exit: exit_rx,
        sockets,
        report: Some(report),
        control,
    })
}

/// For a jailed instance, once its namespace exists: sockets into it. (Not needed with a
/// prepared namespace: then `Spawned::sockets` is set already.)
pub(crate) fn sockets_for(pid: i32) -> io::Result<SocketFactory> {
    SocketFactory::start(pid)
}

pub(crate) fn spawn(mut spec: SpawnSpec) -> io::Result<Spawned> {
    if let Some(plan) = spec.jail.take() {
        return spawn_jailed(spec, plan);
    }
    let (out_rx, out_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let err_tx = out_tx.try_clone()?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(
            spec.env
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_tx))
        .stderr(Stdio::from(err_tx))
        .process_group(0);
    // A prepared namespace to join (moved into the child's hook, closed here after spawning).
    let joined = spec.netns.take();
    let own_netns = spec.network == NetworkMode::Namespace || joined.is_some();
    // Prepared before fork: the child may not allocate.
    let c_path = |p: &std::path::Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::other(format!("{} contains a NUL byte", p.display())))
    };
    let read_only = match (&spec.read_only, own_netns) {
        (Some(dir), true) => Some(c_path(dir)?),
        _ => None,
    };
    let hosts = match (&spec.hosts, own_netns) {
        (Some(file), true) => Some(c_path(file)?),
        _ => None,
    };
    let sockets = match &joined {
        Some(ns) => Some(SocketFactory::for_netns(ns.try_clone()?)?),
        None => None,
    };
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (prctl, setns, unshare, mount, socket, ioctl, close) on
    // data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            if own_netns {
                match &joined {
                    // Prepared: `lo` and `eth0` are up already.
                    Some(ns) => {
                        nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                        nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
                    }
                    None => {
                        nix::sched::unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
                            .map_err(io::Error::from)?;
                        loopback_up()?;
                    }
                }
                if read_only.is_some() || hosts.is_some() {
                    private_mounts()?;
                }
                if let Some(dir) = &read_only {
                    bind_read_only(dir, dir)?;
                }
                if let Some(file) = &hosts {
                    bind_read_only(file, c"/etc/hosts")?;
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // The reaper below owns the child's exit; std's handle must not wait on it too.
    drop(child);
    let (exit_tx, exit_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("fcd-reap-{pid}"))
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = exit_tx.send(reap(pid));
        })?;
    let sockets = match sockets {
        Some(f) => Some(f),
        None if own_netns => match SocketFactory::start(pid) {
            Ok(f) => Some(f),
            Err(e) => {
                kill_group(pid);
                return Err(e);
            }
        },
        None => None,
    };
    let output = pipe::Receiver::from_owned_fd(out_rx)?;
    Ok(Spawned {
        pid,
        output,
        exit: exit_rx,
        sockets,
        report: None,
        control: None,
    })
}

fn reap(pid: i32) -> ExitInfo {
    let mut status: nix::libc::c_int = 0;
    // SAFETY: rusage is plain data, zero is a valid value; wait4 writes into both out-params.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pointers are to live locals of the right types.
        let rc = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
    let description = if nix::libc::WIFEXITED(status) {
        format!("exit code {}", nix::libc::WEXITSTATUS(status))
    } else if nix::libc::WIFSIGNALED(status) {
        let sig = nix::libc::WTERMSIG(status);
        let name = Signal::try_from(sig)
            .map(|s| s.as_str())
            .unwrap_or("unknown signal");
        format!("killed by {name}")
    } else {
        "exited".to_owned()
    };
    ExitInfo {
        description,
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    }
}

/// Kills the instance's whole process group at once.
pub(crate) fn kill_group(pid: i32) {
    let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Asks the instance's process group to stop.
pub(crate) fn terminate_group(pid: i32) {
    let _ = nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGTERM);
}

/// Whether a process has a handler for SIGTERM (`SigCgt` in `/proc/<pid>/status`).
pub(crate) fn catches_sigterm(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (nix::libc::SIGTERM - 1)) != 0)
}

/// A free port on the host's loopback, for instances without their own namespace.
pub(crate) fn free_port() -> io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Peak resident memory of a live process in KiB (`VmHWM`), read through a kept-open handle so
/// the hot path does no `open`.
#[derive(Debug)]
pub(crate) struct MemoryProbe {
    status: std::fs::File,
}

impl MemoryProbe {
    pub(crate) fn open(pid: i32) -> io::Result<MemoryProbe> {
        Ok(MemoryProbe {
            status: std::fs::File::open(format!("/proc/{pid}/status"))?,
        })
    }

    pub(crate) fn peak_kib(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 4096];
        let n = self.status.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}
