//! Starting and stopping instance processes — the only place fcd creates processes.
//!
//! Each instance runs in its own process group (so stopping it stops everything it started),
//! dies with fcd (`PR_SET_PDEATHSIG`), and, where the kernel allows, in its own network
//! namespace with only a loopback interface: every instance can then listen on its `caPort`
//! without clashing, and fcd reaches it through sockets created inside that namespace by a
//! helper thread that joined it. Where namespaces are unavailable, instances share the host's
//! network and each gets a distinct port through `FC_SERVER_PORT` / `FC_CUSTOM_LISTEN_PORT`.
//!
//! In that mode the instance also gets its own mount namespace in which its code directory is
//! bind-mounted read-only.
//!
//! Exits are reaped with `wait4` so the peak memory of a crashed process is measured, not
//! guessed.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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
}

/// Creates TCP sockets inside an instance's network namespace.
#[derive(Debug)]
pub(crate) struct SocketFactory {
    tx: std_mpsc::Sender<oneshot::Sender<io::Result<OwnedFd>>>,
}

impl SocketFactory {
    fn start(pid: i32) -> io::Result<SocketFactory> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        let (tx, rx) = std_mpsc::channel::<oneshot::Sender<io::Result<OwnedFd>>>();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name(format!("fcd-netns-{pid}"))
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
fn loopback_up() -> io::Result<()> {
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

/// In the child's fresh mount namespace: keep mount changes private, then bind the code
/// directory onto itself read-only, so even a root function cannot change its code.
fn code_read_only(dir: &std::ffi::CStr) -> io::Result<()> {
    use nix::mount::{MsFlags, mount};
    const NONE: Option<&std::ffi::CStr> = None;
    mount(
        NONE,
        c"/",
        NONE,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        NONE,
    )
    .map_err(io::Error::from)?;
    mount(
        Some(dir),
        dir,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(io::Error::from)?;
    mount(
        NONE,
        dir,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        NONE,
    )
    .map_err(io::Error::from)
}

pub(crate) fn spawn(spec: SpawnSpec) -> io::Result<Spawned> {
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
    let own_netns = spec.network == NetworkMode::Namespace;
    // Prepared before fork: the child may not allocate.
    let read_only = match (&spec.read_only, own_netns) {
        (Some(dir), true) => Some(
            std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| io::Error::other("code path contains a NUL byte"))?,
        ),
        _ => None,
    };
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (prctl, unshare, mount, socket, ioctl, close) on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            if own_netns {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
                    .map_err(io::Error::from)?;
                loopback_up()?;
                if let Some(dir) = &read_only {
                    code_read_only(dir)?;
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
    let sockets = if own_netns {
        match SocketFactory::start(pid) {
            Ok(f) => Some(f),
            Err(e) => {
                kill_group(pid);
                return Err(e);
            }
        }
    } else {
        None
    };
    let output = pipe::Receiver::from_owned_fd(out_rx)?;
    Ok(Spawned {
        pid,
        output,
        exit: exit_rx,
        sockets,
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
