//! The jail side of prewarmed instances (`process::prewarm`): a jail built before it knows its
//! function, and the hand-over that turns it into an instance of one.
//!
//! Set-up is the ordinary jail's, with two differences: instead of the function's code, the
//! whole code store is bound read-only at `/.fcd/code` under a root-only (0700) directory the
//! function's unprivileged user cannot enter, and `/code` is an empty mount point. The function
//! side then waits: an interpreter runtime is executed at once with the read end of the
//! assignment pipe on fd 3 (`FCD_ASSIGNMENT_FD`), imports what it needs and blocks on it; a
//! `custom` runtime's jail blocks on that pipe itself, before `execve`.
//!
//! The hand-over runs in the jail's init, which is root, outside the function's PID namespace
//! and — since the function's `pivot_root` moved every process of the mount namespace rooted at
//! the old root — sees the jail's root. fcd sends one line on the control socket:
//! `{"code": "<directory in the store>", "payload": "<assignment JSON>"}`. The init binds that
//! directory read-only at `/code`, detaches `/.fcd` (from then on the jail sees no other
//! code), writes the payload into the assignment pipe, closes it, and answers `ok` (or
//! `error: …`). A jail whose root is an image (`custom-container`) shows no store and gets no
//! code: its hand-over is the assignment alone. If fcd closes the socket instead, the init kills the function and exits.

use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Where a prewarmed instance's runtime reads its assignment (and `FCD_ASSIGNMENT_FD`'s value).
pub(crate) const ASSIGNMENT_FD: RawFd = 3;
/// The jail init's end of fcd's control socket.
pub(crate) const CONTROL_FD: RawFd = 7;
const HIDDEN: &str = ".fcd";
const STORE_IN_JAIL: &str = "/.fcd/code";

/// What fcd asks for when it spawns a prewarmed jail.
#[derive(Debug, Clone)]
pub(crate) struct BlankSetup {
    /// The code store's directory (each function's tree is a directory in it).
    pub(crate) store: PathBuf,
    /// The jail runs the assigned program itself (`custom`), rather than starting an
    /// interpreter that reads its assignment.
    pub(crate) exec: bool,
    /// The root is an image (`custom-container`): no code store is shown, and the hand-over
    /// brings no code, only the assignment.
    pub(crate) image: bool,
}

/// The part of [`BlankSetup`] the jail's init and function process need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BlankJail {
    pub(crate) store: PathBuf,
    pub(crate) exec: bool,
    pub(crate) control_fd: RawFd,
    #[serde(default)]
    pub(crate) image: bool,
}

/// The assignment as the function side reads it.
#[derive(Debug, Deserialize)]
struct Assignment {
    program: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    cwd: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HandOver {
    code: String,
    payload: String,
}

/// Function side, before `pivot_root` (`root` is the new root as seen before it): the hidden
/// store and the empty `/code`.
pub(crate) fn prepare_root(b: &BlankJail, root: &Path) -> io::Result<()> {
    let hidden = root.join(HIDDEN);
    let store = hidden.join("code");
    fs::create_dir_all(&store)?;
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o700))?;
    super::jail::bind(&b.store, &store, false)?;
    fs::create_dir_all(root.join("code"))
}

/// What a `custom` blank executes once assigned.
pub(crate) struct Assigned {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<String>,
}

/// Function side, after privileges are dropped, for a `custom` blank: waits for the assignment
/// and returns what to execute.
pub(crate) fn read_exec_assignment(pipe: OwnedFd) -> io::Result<Assigned> {
    let mut text = String::new();
    fs::File::from(pipe).read_to_string(&mut text)?;
    if text.is_empty() {
        // fcd dropped the blank before using it.
        std::process::exit(0);
    }
    let a: Assignment = serde_json::from_str(&text)
        .map_err(|e| io::Error::other(format!("bad assignment: {e}")))?;
    let env = a
        .env
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    Ok(Assigned {
        program: a.program,
        args: a.args,
        env,
        cwd: a.cwd,
    })
}

/// Init side, after the fork: waits for fcd's hand-over (or the function's death), performs it
/// and returns; `Some(code)` when the init must exit instead with that status.
pub(crate) fn await_hand_over(b: &BlankJail, child: Pid, to_function: OwnedFd) -> Option<i32> {
    // SAFETY: fcd handed this descriptor down for the init's sole use.
    #[allow(unsafe_code)]
    let control = unsafe { std::os::unix::net::UnixStream::from_raw_fd(b.control_fd) };
    let mut reader = io::BufReader::new(match control.try_clone() {
        Ok(c) => c,
        Err(_) => return Some(kill(child)),
    });
    let mut line = String::new();
    loop {
        match poll_readable(control.as_raw_fd(), 100) {
            Ok(true) => break,
            Ok(false) => {}
            Err(_) => return Some(kill(child)),
        }
        // The function may die while it waits; the init then ends with it.
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Some(128 + sig as i32),
            _ => {}
        }
    }
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        // fcd dropped the blank.
        return Some(kill(child));
    }
    let mut control = control;
    match hand_over(&line, to_function, b.image) {
        Ok(()) => {
            let _ = control.write_all(b"ok\n");
            None
        }
        Err(e) => {
            let _ = control.write_all(format!("error: {e}\n").as_bytes());
            Some(kill(child))
        }
    }
}

fn hand_over(line: &str, to_function: OwnedFd, image: bool) -> io::Result<()> {
    let h: HandOver = serde_json::from_str(line.trim_end())
        .map_err(|e| io::Error::other(format!("bad hand-over: {e}")))?;
    // An image's jail has its files already, and no store to take code from.
    if image {
        if !h.code.is_empty() {
            return Err(io::Error::other("an image's jail takes no code directory"));
        }
        return fs::File::from(to_function).write_all(h.payload.as_bytes());
    }
    if h.code.is_empty() || h.code.contains('/') || h.code.starts_with('.') {
        return Err(io::Error::other("bad code directory name"));
    }
    let none: Option<&str> = None;
    let src = Path::new(STORE_IN_JAIL).join(&h.code);
    mount(
        Some(&src),
        "/code",
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| io::Error::other(format!("bind /code: {e}")))?;
    mount(
        none,
        "/code",
        none,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        none,
    )
    .map_err(|e| io::Error::other(format!("read-only /code: {e}")))?;
    umount2(STORE_IN_JAIL, MntFlags::MNT_DETACH)
        .map_err(|e| io::Error::other(format!("detach the store: {e}")))?;
    let mut pipe = fs::File::from(to_function);
    pipe.write_all(h.payload.as_bytes())?;
    Ok(())
}

fn kill(child: Pid) -> i32 {
    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
    let _ = waitpid(child, None);
    137
}

fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = nix::libc::pollfd {
        fd,
        events: nix::libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack, valid for the call.
    #[allow(unsafe_code)]
    let rc = unsafe { nix::libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}

/// fcd side: hands a prewarmed jail its function — the code directory's name in the store and
/// the assignment its runtime reads — and waits for the init's answer.
pub(crate) async fn assign(
    control: std::os::unix::net::UnixStream,
    code: &str,
    payload: String,
    limit: std::time::Duration,
) -> io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    control.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(control)?;
    let mut line = serde_json::json!({ "code": code, "payload": payload }).to_string();
    line.push('\n');
    let talk = async move {
        let (rd, mut wr) = stream.into_split();
        wr.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        tokio::io::BufReader::new(rd).read_line(&mut answer).await?;
        match answer.trim_end() {
            "ok" => Ok(()),
            "" => Err(io::Error::other("the jail ended during the hand-over")),
            other => Err(io::Error::other(other.to_owned())),
        }
    };
    tokio::time::timeout(limit, talk)
        .await
        .map_err(|_| io::Error::other("the jail did not take its assignment in time"))?
}
