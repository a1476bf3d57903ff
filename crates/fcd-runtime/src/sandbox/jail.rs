//! The instance jail: a private root filesystem, PID, mount, IPC, UTS (and network) namespace,
//! cgroup limits and an unprivileged user, set up by a small init process before the function
//! starts.
//!
//! fcd starts itself (`/proc/self/exe __fcd-jail-init`) with a [`JailSpec`] in the environment.
//! That init joins the instance's cgroups, unshares the namespaces and forks: the child is PID 1
//! of the new PID namespace, builds the root ([`super::view`]: the allowed host trees
//! read-only, a minimal `/etc` of its own, the code read-only at `/code`, a size-capped `/tmp`
//! owned by the instance's uid, a minimal `/dev`, its own `/proc`; the data dir covered wherever
//! a shown tree would contain it), pivots into it, drops to the instance's own uid
//! ([`super::uids`]) with `no_new_privs`, installs the system-call filter ([`super::seccomp`])
//! and executes the function. The init stays outside, forwards SIGTERM,
//! and exits with the child's status. Every link of the chain dies with its parent, and when
//! PID 1 of a namespace dies the kernel kills everything left in it, so nothing a function
//! starts can outlive its instance — or fcd.
//!
//! Progress is reported on a pipe: the init writes `pid <n>` (the child's PID as fcd sees it),
//! the child `ok` once the function is about to run, or either writes `error: ...`.
//!
//! An image with a `User` ([`JailSpec::image_user`]) adds one exchange: the child unshares a
//! user namespace and says so on a pipe, the init — still root in the namespace above — writes
//! the child's `uid_map`/`gid_map` (the image's ids onto the instance's, one line each, with
//! `setgroups` denied) and answers, and the child becomes that user inside. Mapping from
//! outside works on every kernel that has user namespaces, whether or not unprivileged
//! processes may create them.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork};
use serde::{Deserialize, Serialize};

use super::view::EtcEntry;

/// First argument that makes the fcd binary act as a jail init.
pub const INIT_ARG: &str = "__fcd-jail-init";
pub(crate) const SPEC_ENV: &str = "FCD_JAIL_SPEC";

/// A host path made visible inside the jail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Bind {
    pub(crate) host: PathBuf,
    pub(crate) inside: PathBuf,
    pub(crate) writable: bool,
}

/// Everything the init needs; travels as JSON in [`SPEC_ENV`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JailSpec {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: String,
    /// An empty host directory the new root is mounted on (inside the private mount namespace).
    pub(crate) rootfs: PathBuf,
    pub(crate) binds: Vec<Bind>,
    /// Host symlinks to recreate at the root (`/bin -> usr/bin` on merged-/usr systems).
    pub(crate) links: Vec<(String, String)>,
    /// An unpacked image that is the root itself, read-only (`custom-container`); then `binds`
    /// only cover files in its `/etc`, and `links` and `etc` are empty.
    #[serde(default)]
    pub(crate) image_root: Option<PathBuf>,
    /// The uid and gid the function sees (an image's `User`): the child enters a user
    /// namespace in which they, and only they, are `uid`/`gid` on the host — mapped by the
    /// init, which stays root outside ([`map_image_user`]).
    #[serde(default)]
    pub(crate) image_user: Option<(u32, u32)>,
    /// The jail's `/etc` besides `passwd` and `group`.
    #[serde(default)]
    pub(crate) etc: Vec<EtcEntry>,
    /// A file copied to `/etc/hosts` instead of the host's (the egress network's hosts file).
    #[serde(default)]
    pub(crate) hosts: Option<PathBuf>,
    /// Host paths no jail may reach (the data dir): covered by an empty tmpfs wherever a bind
    /// would show them.
    #[serde(default)]
    pub(crate) hidden: Vec<PathBuf>,
    pub(crate) tmp_size_mb: u32,
    /// The instance's own uid (and gid), leased for its life.
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) own_network: bool,
    /// An inherited fd of a prepared network namespace to join instead of unsharing a
    /// loopback-only one (`lo` and `eth0` are up in it already).
    #[serde(default)]
    pub(crate) netns_fd: Option<i32>,
    pub(crate) cgroup_procs: Vec<PathBuf>,
    pub(crate) report_fd: i32,
    /// A prewarmed jail, handed its function later ([`super::blank`]).
    #[serde(default)]
    pub(crate) blank: Option<super::blank::BlankJail>,
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: nix::libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill is async-signal-safe and takes plain integers.
        #[allow(unsafe_code)]
        unsafe {
            nix::libc::kill(child, sig);
        }
    }
}

fn report(fd: i32, line: &str) {
    // SAFETY: `fd` is the report pipe fcd handed down; the File is forgotten, not closed.
    #[allow(unsafe_code)]
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let _ = f.write_all(line.as_bytes());
    std::mem::forget(f);
}

/// The entry point of `fcd __fcd-jail-init`. Never returns.
pub fn init_main() -> ! {
    let spec: JailSpec = match std::env::var(SPEC_ENV)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
    {
        Some(s) => s,
        None => {
            eprintln!("fcd jail: missing or invalid {SPEC_ENV}");
            std::process::exit(126);
        }
    };
    let fd = spec.report_fd;
    match init(&spec) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            report(fd, &format!("error: {e}\n"));
            std::process::exit(126);
        }
    }
}

fn init(spec: &JailSpec) -> io::Result<i32> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
    if nix::unistd::getppid() == Pid::from_raw(1) {
        return Ok(137);
    }
    let me = std::process::id().to_string();
    for procs in &spec.cgroup_procs {
        fs::write(procs, &me)
            .map_err(|e| io::Error::other(format!("joining {}: {e}", procs.display())))?;
    }
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    match spec.netns_fd {
        Some(fd) => {
            // SAFETY: fcd handed this descriptor down for exactly this; nothing else in this
            // process owns it. It is closed right after joining, so the function never sees it.
            #[allow(unsafe_code)]
            let ns = unsafe { OwnedFd::from_raw_fd(fd) };
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
                io::Error::other(format!("joining the instance's network namespace: {e}"))
            })?;
        }
        None if spec.own_network => flags |= CloneFlags::CLONE_NEWNET,
        None => {}
    }
    if let Err(e) = nix::sched::unshare(flags) {
        return Err(io::Error::other(missing_namespaces(flags, e)));
    }
    if spec.own_network && spec.netns_fd.is_none() {
        super::loopback_up()?;
    }
    // The namespace is the instance's own, so any port in it is: a server on caPort 80 (an
    // nginx image) may bind it as the unprivileged uid, as it may on FC.
    if spec.own_network || spec.netns_fd.is_some() {
        fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0").map_err(|e| {
            io::Error::other(format!("opening low ports in the instance's network: {e}"))
        })?;
    }
    // The user-namespace exchange: the child's "unshared", the init's "mapped".
    let user_sync = match spec.image_user {
        Some(_) => Some((
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?,
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?,
        )),
        None => None,
    };
    // The init's `/proc`, opened now: the child's `pivot_root` moves the root of every process
    // of this mount namespace, the init's too, onto a `/proc` of the new PID namespace.
    let host_proc = match spec.image_user {
        Some(_) => Some(OwnedFd::from(fs::File::open("/proc")?)),
        None => None,
    };
    // A prewarmed jail's function side waits on this pipe for its assignment.
    let assignment = match &spec.blank {
        Some(_) => Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?),
        None => None,
    };
    // SAFETY: this process is single-threaded (it has just started and spawned no threads), so
    // the child may run arbitrary code after fork.
    #[allow(unsafe_code)]
    let forked = unsafe { fork() }.map_err(|e| io::Error::other(format!("fork: {e}")))?;
    match forked {
        ForkResult::Child => {
            // The control socket is the init's alone.
            if let Some(b) = &spec.blank {
                // SAFETY: closing this process's copy of a descriptor it does not use.
                #[allow(unsafe_code)]
                drop(unsafe { OwnedFd::from_raw_fd(b.control_fd) });
            }
            let from_init = assignment.map(|(rd, _wr)| rd);
            drop(host_proc);
            let user_sync = user_sync.map(|((_, unshared), (mapped, _))| (unshared, mapped));
            let err = match child(spec, from_init, user_sync) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            report(spec.report_fd, &format!("error: {err}\n"));
            std::process::exit(126);
        }
        ForkResult::Parent { child } => {
            CHILD.store(child.as_raw(), Ordering::Relaxed);
            report(spec.report_fd, &format!("pid {}\n", child.as_raw()));
            if let (Some(user), Some(((unshared, childs_end), (childs_side, mapped))), Some(proc)) =
                (spec.image_user, user_sync, host_proc)
            {
                // The child's ends closed here, a child that dies early is an EOF, not a wait.
                drop((childs_end, childs_side));
                if let Err(e) = map_image_user(spec, &proc, child, user, (unshared, mapped)) {
                    report(spec.report_fd, &format!("error: {e}\n"));
                    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                }
            }
            // SAFETY: closing our copy of the report pipe; the child keeps its own.
            #[allow(unsafe_code)]
            drop(unsafe { OwnedFd::from_raw_fd(spec.report_fd) });
            let action = SigAction::new(
                SigHandler::Handler(forward),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
                // SAFETY: the handler only calls kill(2).
                #[allow(unsafe_code)]
                let _ = unsafe { sigaction(sig, &action) };
            }
            if let (Some(b), Some((rd, wr))) = (&spec.blank, assignment) {
                drop(rd);
                if let Some(code) = super::blank::await_hand_over(b, child, wr) {
                    return Ok(code);
                }
            }
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(io::Error::other(format!("wait: {e}"))),
                }
            }
        }
    }
}

/// The init's side of the user-namespace exchange: waits for the child to have unshared its
/// user namespace, maps the image's `user` onto the instance's ids in it, and lets it go on.
/// A child that ends before unsharing (it has reported why) is not an error here.
fn map_image_user(
    spec: &JailSpec,
    host_proc: &OwnedFd,
    child: Pid,
    (uid, gid): (u32, u32),
    (unshared, mapped): (OwnedFd, OwnedFd),
) -> io::Result<()> {
    let mut byte = [0u8; 1];
    if !matches!(nix::unistd::read(&unshared, &mut byte), Ok(1)) {
        return Ok(());
    }
    let write = |file: &str, line: String| {
        let path = format!("{}/{file}", child.as_raw());
        nix::fcntl::openat(
            host_proc,
            path.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .and_then(|fd| nix::unistd::write(&fd, line.as_bytes()))
        .map_err(|e| {
            io::Error::other(format!(
                "mapping the image's user {uid}:{gid} onto the instance's uid {}: {file}: {e}",
                spec.uid
            ))
        })
    };
    write("setgroups", "deny".to_owned())?;
    write("uid_map", format!("{uid} {} 1\n", spec.uid))?;
    write("gid_map", format!("{gid} {} 1\n", spec.gid))?;
    nix::unistd::write(&mapped, b"m").map_err(io::Error::from)?;
    Ok(())
}

/// The child's side: enters a user namespace of its own, waits for the init to map it, and
/// becomes the image's user inside — the instance's uid outside. Supplementary groups were
/// dropped before, and `setgroups` is denied in the namespace.
fn become_image_user(
    (uid, gid): (u32, u32),
    (unshared, mapped): (OwnedFd, OwnedFd),
) -> io::Result<()> {
    ctx(
        "user namespace",
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER),
    )?;
    nix::unistd::write(&unshared, b"u").map_err(io::Error::from)?;
    drop(unshared);
    let mut byte = [0u8; 1];
    if !matches!(nix::unistd::read(&mapped, &mut byte), Ok(1)) {
        return Err(io::Error::other(
            "the jail's init did not map the image's user",
        ));
    }
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    ctx("setresgid", nix::unistd::setresgid(gid, gid, gid))?;
    ctx("setresuid", nix::unistd::setresuid(uid, uid, uid))?;
    Ok(())
}

/// Which of the namespaces in `flags` this process cannot create, as an operator reads it.
/// Runs only on the failure path: each `unshare` that works here changes nothing that matters,
/// as the init is about to exit.
fn missing_namespaces(flags: CloneFlags, all: nix::Error) -> String {
    let kinds = [
        (CloneFlags::CLONE_NEWNS, "mount"),
        (CloneFlags::CLONE_NEWPID, "PID"),
        (CloneFlags::CLONE_NEWIPC, "IPC"),
        (CloneFlags::CLONE_NEWUTS, "UTS"),
        (CloneFlags::CLONE_NEWNET, "network"),
    ];
    let missing: Vec<String> = kinds
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .filter_map(|(f, name)| {
            nix::sched::unshare(*f)
                .err()
                .map(|e| format!("{name} namespaces ({e})"))
        })
        .collect();
    if missing.is_empty() {
        format!("cannot create the jail's namespaces: {all}")
    } else {
        format!("cannot create {}", missing.join(", "))
    }
}

fn ctx<T>(what: &str, r: nix::Result<T>) -> io::Result<T> {
    r.map_err(|e| io::Error::other(format!("{what}: {e}")))
}

/// Creates `dir` and whatever of its parents is missing, mode 0711: a directory made only to
/// reach a mount (`/root` on the way to a pyenv interpreter) can be passed through, not listed.
pub(crate) fn mkdirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(dir)
}

pub(crate) fn bind(host: &Path, target: &Path, writable: bool) -> io::Result<()> {
    let none: Option<&str> = None;
    if host.is_dir() {
        mkdirs(target)?;
    } else {
        match fs::symlink_metadata(target) {
            // A link would be followed outside the new root.
            Ok(m) if m.file_type().is_symlink() => {
                return Err(io::Error::other(format!(
                    "{} is a symbolic link; not binding over it",
                    target.display()
                )));
            }
            // Already there: mount over it.
            Ok(_) => {}
            Err(_) => {
                if let Some(p) = target.parent() {
                    mkdirs(p)?;
                }
                fs::write(target, b"")?;
            }
        }
    }
    ctx(
        &format!("bind {}", host.display()),
        mount(
            Some(host),
            target,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        ),
    )?;
    if !writable {
        ctx(
            &format!("read-only {}", host.display()),
            mount(
                none,
                target,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
                none,
            ),
        )?;
    }
    Ok(())
}

/// Binds a host file read-only over one that exists in a read-only root (an image's
/// `/etc/resolv.conf`). A symbolic link there is refused: it would be followed to wherever the
/// image points it.
fn bind_over_existing(host: &Path, target: &Path) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_file() => bind(host, target, false),
        Ok(_) => Err(io::Error::other(format!(
            "{} in the image is not a regular file; not binding over it",
            target.display()
        ))),
        Err(e) => Err(io::Error::other(format!(
            "{} is missing from the unpacked image: {e}",
            target.display()
        ))),
    }
}

/// Covers each hidden host path wherever a bind shows it with an empty, mode-0, read-only
/// tmpfs.
fn hide(spec: &JailSpec, in_root: &dyn Fn(&Path) -> PathBuf) -> io::Result<()> {
    for hidden in &spec.hidden {
        for b in &spec.binds {
            let Some(inside) = super::view::reachable_through(b, hidden) else {
                continue;
            };
            let target = in_root(&inside);
            if !target.is_dir() {
                continue;
            }
            ctx(
                &format!("hiding {}", hidden.display()),
                mount(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some("size=4k,mode=000"),
                ),
            )?;
        }
    }
    Ok(())
}

/// The jail's own `/etc` (in the root's tmpfs, read-only with it after the pivot).
fn build_etc(spec: &JailSpec, etc: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(etc)?;
    let (passwd, group) = super::view::passwd_and_group(spec.uid, spec.gid);
    fs::write(etc.join("passwd"), passwd)?;
    fs::write(etc.join("group"), group)?;
    for entry in &spec.etc {
        let target = etc.join(entry.name());
        if entry.name().contains('/')
            && let Some(p) = target.parent()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(p)?;
        }
        match entry {
            EtcEntry::Link { target: to, .. } => symlink(to, &target)?,
            EtcEntry::Bind { host, .. } => bind(host, &target, false)?,
            EtcEntry::Copy { host, .. } => {
                let host = match (entry.name(), &spec.hosts) {
                    ("hosts", Some(ours)) => ours.as_path(),
                    _ => host.as_path(),
                };
                copy_small(host, &target)?;
            }
        }
    }
    if let Some(ours) = &spec.hosts
        && !spec.etc.iter().any(|e| e.name() == "hosts")
    {
        copy_small(ours, &etc.join("hosts"))?;
    }
    Ok(())
}

/// Copies a small host file into the jail, mode 0644 (skipped if it went away or grew too big).
/// Read whole and written once: the fewest system calls for a few-KB file.
fn copy_small(host: &Path, target: &Path) -> io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = fs::File::open(host) else {
        return Ok(());
    };
    let mut data = Vec::new();
    file.take(super::view::ETC_COPY_MAX + 1)
        .read_to_end(&mut data)
        .map_err(|e| io::Error::other(format!("reading {}: {e}", host.display())))?;
    if data.len() as u64 > super::view::ETC_COPY_MAX {
        return Ok(());
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(target)?
        .write_all(&data)
}

/// A bare command name is looked up on the instance's `PATH`, as a shell would.
fn resolve_program(program: &str, env: &[(String, String)]) -> String {
    if program.contains('/') {
        return program.to_owned();
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| program.to_owned())
}

/// Runs as PID 1 of the new namespace: builds the root, drops privileges, execs the function.
fn child(
    spec: &JailSpec,
    assignment: Option<OwnedFd>,
    user_sync: Option<(OwnedFd, OwnedFd)>,
) -> io::Result<std::convert::Infallible> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
    let filters = super::seccomp::filters()?;
    let none: Option<&str> = None;
    ctx(
        "private mounts",
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none),
    )?;
    let root = &spec.rootfs;
    let in_root = |inside: &Path| root.join(inside.strip_prefix("/").unwrap_or(inside));
    match &spec.image_root {
        // The image, read-only, is the root; the mount points below exist in it already
        // (`fcd-image` makes them when it unpacks), since nothing can be created in it now.
        Some(image) => {
            ctx(
                "image root",
                mount(
                    Some(image.as_path()),
                    root,
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none,
                ),
            )?;
            ctx(
                "read-only image root",
                mount(
                    none,
                    root,
                    none,
                    MsFlags::MS_BIND
                        | MsFlags::MS_REMOUNT
                        | MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV,
                    none,
                ),
            )?;
            // Mounting through a symbolic link would land wherever it points, outside the
            // image: every mount point must be a real directory of it.
            for dir in ["etc", "tmp", "dev", "proc"] {
                if !fs::symlink_metadata(root.join(dir)).is_ok_and(|m| m.is_dir()) {
                    return Err(io::Error::other(format!(
                        "/{dir} of the unpacked image is not a directory"
                    )));
                }
            }
            for b in &spec.binds {
                bind_over_existing(&b.host, &in_root(&b.inside))?;
            }
            if let Some(hosts) = &spec.hosts {
                bind_over_existing(hosts, &root.join("etc/hosts"))?;
            }
        }
        None => {
            ctx(
                "root tmpfs",
                mount(
                    Some("tmpfs"),
                    root,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some("size=16m,mode=755"),
                ),
            )?;
            for b in &spec.binds {
                bind(&b.host, &in_root(&b.inside), b.writable)?;
            }
            hide(spec, &in_root)?;
            if let Some(b) = &spec.blank {
                super::blank::prepare_root(b, root)?;
            }
            for (name, to) in &spec.links {
                symlink(to, root.join(name))?;
            }
            build_etc(spec, &root.join("etc"))?;
        }
    }
    let image = spec.image_root.is_some();
    // The instance's writable places are its own: tmpfs of this jail, owned by its uid, closed
    // to every other.
    let owned = |size_mb: u32| {
        format!(
            "size={size_mb}m,mode=0700,uid={},gid={}",
            spec.uid, spec.gid
        )
    };
    let tmp = root.join("tmp");
    if !image {
        fs::create_dir_all(&tmp)?;
    }
    ctx(
        "/tmp",
        mount(
            Some("tmpfs"),
            &tmp,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(owned(spec.tmp_size_mb).as_str()),
        ),
    )?;
    let dev = root.join("dev");
    if !image {
        fs::create_dir_all(&dev)?;
    }
    ctx(
        "/dev",
        mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID,
            Some("size=64k,mode=755"),
        ),
    )?;
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(d);
        if host.exists() {
            bind(&host, &dev.join(d), true)?;
        }
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, dev.join(name))?;
    }
    let shm = dev.join("shm");
    fs::create_dir_all(&shm)?;
    ctx(
        "/dev/shm",
        mount(
            Some("tmpfs"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(owned(64).as_str()),
        ),
    )?;
    let proc_dir = root.join("proc");
    if !image {
        fs::create_dir_all(&proc_dir)?;
    }
    ctx(
        "/proc",
        mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            none,
        ),
    )?;
    if image {
        // A read-only root has no room for a directory to put the old root in: pivot onto
        // itself, and the old root, stacked under the new one, is detached from `/`.
        nix::unistd::chdir(root.as_path()).map_err(io::Error::from)?;
        ctx("pivot_root", nix::unistd::pivot_root(".", "."))?;
        ctx("detach old root", umount2(".", MntFlags::MNT_DETACH))?;
        nix::unistd::chdir("/").map_err(io::Error::from)?;
    } else {
        let old = root.join(".old-root");
        fs::create_dir_all(&old)?;
        ctx(
            "pivot_root",
            nix::unistd::pivot_root(root.as_path(), old.as_path()),
        )?;
        nix::unistd::chdir("/").map_err(io::Error::from)?;
        ctx(
            "detach old root",
            umount2("/.old-root", MntFlags::MNT_DETACH),
        )?;
        let _ = fs::remove_dir("/.old-root");
        fs::set_permissions("/", fs::Permissions::from_mode(0o755))?;
        ctx(
            "read-only root",
            mount(
                none,
                "/",
                none,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                none,
            ),
        )?;
    }
    let _ = nix::unistd::sethostname("fc-instance");
    ctx("setgroups", nix::unistd::setgroups(&[]))?;
    match (spec.image_user, user_sync) {
        (Some(user), Some(sync)) => become_image_user(user, sync)?,
        _ => {
            ctx("setgid", nix::unistd::setgid(Gid::from_raw(spec.gid)))?;
            ctx("setuid", nix::unistd::setuid(Uid::from_raw(spec.uid)))?;
        }
    }
    // Changing credentials clears the parent-death signal; set it again.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
    ctx("no_new_privs", nix::sys::prctl::set_no_new_privs())?;
    // From here on the function's rules hold: what follows (waiting for an assignment, chdir,
    // execve) is all allowed.
    super::seccomp::install(&filters)?;
    let (mut program, mut args, mut env, mut cwd) = (
        spec.program.clone(),
        spec.args.clone(),
        spec.env.clone(),
        spec.cwd.clone(),
    );
    let mut reported = false;
    let mut runtime_pipe = None;
    match (&spec.blank, assignment) {
        // A prewarmed `custom` jail: ready now; what to run comes with the assignment.
        (Some(b), Some(pipe)) if b.exec => {
            report(spec.report_fd, "ok\n");
            // SAFETY: closing the report pipe so fcd sees EOF: the jail is ready.
            #[allow(unsafe_code)]
            drop(unsafe { OwnedFd::from_raw_fd(spec.report_fd) });
            reported = true;
            let assigned = super::blank::read_exec_assignment(pipe)?;
            (program, args, env) = (assigned.program, assigned.args, assigned.env);
            if let Some(dir) = assigned.cwd {
                cwd = dir;
            }
        }
        // A prewarmed interpreter: it reads the assignment itself, on fd 3.
        (Some(_), Some(pipe)) => runtime_pipe = Some(pipe),
        _ => {}
    }
    nix::unistd::chdir(cwd.as_str()).map_err(|e| io::Error::other(format!("chdir {cwd}: {e}")))?;
    let cstr = |s: &str| CString::new(s).map_err(|_| io::Error::other("NUL byte in argument"));
    let program_c = cstr(&resolve_program(&program, &env))?;
    let mut argv = vec![program_c.clone()];
    for a in &args {
        argv.push(cstr(a)?);
    }
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    if !reported {
        report(spec.report_fd, "ok\n");
        // SAFETY: closing the report pipe before exec so fcd sees EOF.
        #[allow(unsafe_code)]
        drop(unsafe { OwnedFd::from_raw_fd(spec.report_fd) });
    }
    if let Some(pipe) = runtime_pipe {
        // The report pipe's number is free again; dup2 leaves the copy open across exec.
        // SAFETY: dup2 on two descriptor numbers this process owns.
        #[allow(unsafe_code)]
        let rc = unsafe {
            nix::libc::dup2(
                std::os::fd::AsRawFd::as_raw_fd(&pipe),
                super::blank::ASSIGNMENT_FD,
            )
        };
        if rc < 0 {
            return Err(io::Error::other(format!(
                "assignment pipe: {}",
                io::Error::last_os_error()
            )));
        }
    }
    let err = nix::unistd::execve(&program_c, &argv, &envp).err();
    eprintln!(
        "fcd jail: could not run {program}: {}",
        err.map(|e| e.to_string()).unwrap_or_default()
    );
    std::process::exit(127);
}
