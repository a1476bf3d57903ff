//! Per-instance cgroups: a memory limit equal to the function's `memorySize` (so an instance
//! that eats memory is OOM-killed alone) and a process limit, on cgroup v2 or v1 — whichever
//! the host has. Also the authoritative peak-memory figure of an instance.
//!
//! All of one server's cgroups live under one parent named after its data dir, so a restarted
//! server finds and cleans up what a killed predecessor left, without touching other servers.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Which cgroup layout the host offers.
#[derive(Debug, Clone)]
pub enum Cgroups {
    V2 {
        parent: PathBuf,
    },
    V1 {
        memory: PathBuf,
        pids: Option<PathBuf>,
    },
}

/// One instance's cgroup directories.
#[derive(Debug)]
pub(crate) struct InstanceCgroup {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` files the instance's first process writes itself into.
    pub(crate) procs: Vec<PathBuf>,
    peak: Option<fs::File>,
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

/// Kills every process in a cgroup directory and removes it (best effort, bounded).
fn clean_dir(dir: &Path) {
    for _ in 0..50 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = fs::remove_dir(dir);
}

fn clean_children(parent: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(parent) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                clean_dir(&e.path());
                n += 1;
            }
        }
    }
    n
}

impl Cgroups {
    /// Finds a usable cgroup hierarchy, creates this server's parent (`fcd-<tag>`) and removes
    /// instances a previous run with the same tag left behind. `None` where the host gives no
    /// writable memory controller.
    pub fn detect(tag: &str) -> Option<Cgroups> {
        let name = format!("fcd-{tag}");
        let root = Path::new("/sys/fs/cgroup");
        let v2_controllers = fs::read_to_string(root.join("cgroup.subtree_control")).ok();
        if let Some(ctl) = v2_controllers.filter(|c| c.split_whitespace().any(|w| w == "memory")) {
            let parent = root.join(&name);
            fs::create_dir_all(&parent).ok()?;
            let _ = write(&parent.join("cgroup.subtree_control"), "+memory +pids");
            let left = clean_children(&parent);
            if left > 0 {
                tracing::warn!(count = left, "removed instances left by a previous fcd run");
            }
            let _ = ctl;
            return Some(Cgroups::V2 { parent });
        }
        let memory_root = root.join("memory");
        if memory_root.join("memory.limit_in_bytes").exists() {
            let memory = memory_root.join(&name);
            fs::create_dir_all(&memory).ok()?;
            let pids_root = root.join("pids");
            let pids = pids_root
                .join("cgroup.procs")
                .exists()
                .then(|| pids_root.join(&name))
                .filter(|p| fs::create_dir_all(p).is_ok());
            let mut left = clean_children(&memory);
            if let Some(p) = &pids {
                left += clean_children(p);
            }
            if left > 0 {
                tracing::warn!(count = left, "removed instances left by a previous fcd run");
            }
            return Some(Cgroups::V1 { memory, pids });
        }
        None
    }

    /// Removes this server's (empty) parent cgroups; called once every instance has stopped.
    pub fn remove(&self) {
        let dirs: Vec<&PathBuf> = match self {
            Cgroups::V2 { parent } => vec![parent],
            Cgroups::V1 { memory, pids } => std::iter::once(memory).chain(pids.as_ref()).collect(),
        };
        for d in dirs {
            clean_children(d);
            let _ = fs::remove_dir(d);
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Cgroups::V2 { .. } => "cgroup v2",
            Cgroups::V1 { .. } => "cgroup v1",
        }
    }

    /// Creates the cgroup of one instance with its memory and process limits.
    pub(crate) fn create(
        &self,
        id: &str,
        memory_mb: u32,
        pids_max: u32,
    ) -> io::Result<InstanceCgroup> {
        let bytes = u64::from(memory_mb) * 1024 * 1024;
        match self {
            Cgroups::V2 { parent } => {
                let dir = parent.join(id);
                fs::create_dir_all(&dir)?;
                write(&dir.join("memory.max"), &bytes.to_string())?;
                let _ = write(&dir.join("memory.swap.max"), "0");
                let _ = write(&dir.join("pids.max"), &pids_max.to_string());
                let peak = fs::File::open(dir.join("memory.peak")).ok();
                Ok(InstanceCgroup {
                    procs: vec![dir.join("cgroup.procs")],
                    dirs: vec![dir],
                    peak,
                })
            }
            Cgroups::V1 { memory, pids } => {
                let mem = memory.join(id);
                fs::create_dir_all(&mem)?;
                write(&mem.join("memory.limit_in_bytes"), &bytes.to_string())?;
                // Without swap accounting this file is absent; the limit above still holds RAM.
                let _ = write(&mem.join("memory.memsw.limit_in_bytes"), &bytes.to_string());
                let peak = fs::File::open(mem.join("memory.max_usage_in_bytes")).ok();
                let mut cg = InstanceCgroup {
                    procs: vec![mem.join("cgroup.procs")],
                    dirs: vec![mem],
                    peak,
                };
                if let Some(p) = pids {
                    let dir = p.join(id);
                    if fs::create_dir_all(&dir).is_ok()
                        && write(&dir.join("pids.max"), &pids_max.to_string()).is_ok()
                    {
                        cg.procs.push(dir.join("cgroup.procs"));
                        cg.dirs.push(dir);
                    }
                }
                Ok(cg)
            }
        }
    }
}

impl InstanceCgroup {
    /// Peak memory of everything in the instance, in KiB.
    pub(crate) fn peak_kib(&self) -> Option<u64> {
        let f = self.peak.as_ref()?;
        let mut buf = [0u8; 32];
        let n = f.read_at(&mut buf, 0).ok()?;
        let bytes: u64 = std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()?;
        Some(bytes / 1024)
    }
}

impl Drop for InstanceCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            clean_dir(d);
        }
    }
}
