//! CPU pinning, process start-up and what `/proc` tells about processes.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// Where the benchmark's processes run.
///
/// With pinning, the fcd server (and so every instance it starts) and the standalone floor
/// processes run on one CPU and the load generator on another, so the generator's own work
/// does not compete with what is measured. Processes are pinned by starting them from a
/// short-lived thread whose affinity is the server CPU: a child inherits the mask of the
/// thread that forked it, from its first instruction on.
#[derive(Debug, Clone)]
pub(crate) struct Pinning {
    server_cpu: Option<usize>,
    /// What was pinned, or why nothing was.
    pub(crate) note: String,
}

fn cpu_set(cpu: usize) -> Result<CpuSet> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CPU {cpu} is out of range"))?;
    Ok(set)
}

/// The calling thread's allowed CPUs.
fn allowed_cpus() -> Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

/// Pins the calling thread to `cpu`.
fn pin_current_thread(cpu: usize) -> Result<()> {
    sched_setaffinity(Pid::from_raw(0), &cpu_set(cpu)?)
        .with_context(|| format!("sched_setaffinity to CPU {cpu}"))
}

impl Pinning {
    /// No pinning: for processes that share the machine's CPUs on purpose.
    pub(crate) fn none(note: &str) -> Pinning {
        Pinning {
            server_cpu: None,
            note: note.to_owned(),
        }
    }

    /// Sets pinning up if `requested` and the machine allows it. Must run on the thread that
    /// will drive the load generator, before its runtime starts threads.
    pub(crate) fn setup(requested: bool) -> Pinning {
        let cpus = allowed_cpus().unwrap_or_default();
        if !requested {
            return Pinning {
                server_cpu: None,
                note: format!(
                    "not pinned (--pin not given): server, instances, floor processes and load generator share the {} allowed CPU(s)",
                    cpus.len()
                ),
            };
        }
        let unpinned = |why: String| Pinning {
            server_cpu: None,
            note: format!("not pinned: {why}"),
        };
        let (server, generator) = match cpus.as_slice() {
            [a, b, ..] => (*a, *b),
            _ => {
                return unpinned(format!(
                    "needs at least 2 allowed CPUs, this process may use {}",
                    cpus.len()
                ));
            }
        };
        // Prove both masks can be set before relying on either.
        let probe = std::thread::spawn(move || pin_current_thread(server));
        match probe.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return unpinned(format!("{e:#}")),
            Err(_) => return unpinned("the probe thread panicked".into()),
        }
        if let Err(e) = pin_current_thread(generator) {
            return unpinned(format!("{e:#}"));
        }
        Pinning {
            server_cpu: Some(server),
            note: format!(
                "pinned with sched_setaffinity: fcd server (and the instances it starts) and the standalone floor processes to CPU {server}; load generator (the harness, one thread) to CPU {generator}"
            ),
        }
    }

    pub(crate) fn pinned(&self) -> bool {
        self.server_cpu.is_some()
    }

    /// Starts `cmd` on the server CPU (when pinned). Returns the child and the instant just
    /// before the spawn, for start-up timings.
    pub(crate) fn spawn(&self, cmd: &mut Command) -> Result<(Child, Instant)> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let spawned = match self.server_cpu {
            None => {
                let t = Instant::now();
                cmd.spawn().map(|c| (c, t))
            }
            Some(cpu) => std::thread::scope(|s| {
                s.spawn(|| {
                    pin_current_thread(cpu).map_err(std::io::Error::other)?;
                    let t = Instant::now();
                    cmd.spawn().map(|c| (c, t))
                })
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("spawn thread panicked")))
            }),
        };
        spawned.with_context(|| format!("starting {program}"))
    }
}

/// A field of `/proc/<pid>/status` such as `VmRSS` or `Cpus_allowed_list`.
pub(crate) fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == field).then(|| v.trim().to_owned())
    })
}

/// Resident memory in MiB.
pub(crate) fn rss_mib(pid: u32) -> Result<f64> {
    let v = proc_status(pid, "VmRSS").ok_or_else(|| anyhow!("no VmRSS for pid {pid}"))?;
    let kib: f64 = v
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("VmRSS {v:?}"))?;
    Ok(kib / 1024.0)
}

/// Direct children of `pid` (all its threads').
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Waits until `pid` has at most `max` child processes, and returns them.
///
/// A count, not a set: with prewarming, fcd starts a replacement prewarmed jail whenever a
/// cold start claims one, so the processes after a sample are not the ones before it.
pub(crate) fn wait_children_count(pid: u32, max: usize, limit: Duration) -> Result<Vec<u32>> {
    let deadline = Instant::now() + limit;
    loop {
        let now = children(pid);
        if now.len() <= max {
            return Ok(now);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "fcd still has {} child processes {now:?} after {limit:?} (at most {max} expected)",
                now.len()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `pid` and every process below it.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        for k in children(out[i]) {
            if !out.contains(&k) {
                out.push(k);
            }
        }
        i += 1;
    }
    out
}

/// Nanoseconds on a CPU so far of every thread of every process in `pid`'s tree
/// (`/proc/<pid>/task/<tid>/schedstat`).
fn tree_cpu_ns(pid: u32) -> u64 {
    let mut total = 0;
    for p in tree(pid) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

/// CPU time so far of `pid` and every process below it, in nanoseconds: `utime + stime` of
/// `/proc/<pid>/stat`, which (unlike the per-thread schedstat) keeps the time of threads that
/// have exited — a runtime's per-connection threads end with their connections. USER_HZ
/// ticks: 10 ms resolution.
pub(crate) fn tree_cpu_total_ns(pid: u32) -> u64 {
    tree(pid).into_iter().map(proc_cpu_total_ns).sum()
}

/// `utime + stime` of one process (all its threads, live and exited), in nanoseconds; 0 for
/// a process that is gone or unreadable.
fn proc_cpu_total_ns(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let after_comm: Vec<&str> = rest.split_whitespace().collect();
    ticks(&after_comm, &[11, 12]) * 10_000_000
}

/// Processes whose CPU time is counted together under one name (fcd's nodes, nginx, the
/// database's processes, …).
#[derive(Debug, Clone)]
pub(crate) struct CpuGroup {
    pub(crate) label: String,
    pub(crate) pids: Vec<u32>,
    /// Count every process below each pid too (a server's instances).
    pub(crate) descendants: bool,
}

impl CpuGroup {
    /// CPU time so far, in nanoseconds (10 ms ticks).
    pub(crate) fn cpu_ns(&self) -> u64 {
        self.pids
            .iter()
            .map(|&p| {
                if self.descendants {
                    tree_cpu_total_ns(p)
                } else {
                    proc_cpu_total_ns(p)
                }
            })
            .sum()
    }
}

/// Every process id in `/proc`.
pub(crate) fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// `/proc/<pid>/comm`, trimmed.
pub(crate) fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_owned())
}

/// `/proc/<pid>/cmdline` with its NULs as spaces (a process may rewrite it, as PostgreSQL's
/// backends do to say what they serve).
pub(crate) fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some(text.trim().to_owned())
}

/// The parent of `pid`.
pub(crate) fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    after_comm.get(1)?.parse().ok()
}

/// The machine's busy time so far (every CPU, steal excluded), in USER_HZ ticks.
pub(crate) fn busy_ticks() -> Option<u64> {
    cpu_snapshot().map(|s| s.busy)
}

/// Waits until `pid` and its descendants are quiet: less than 1 ms of CPU in 25 ms, with the
/// same processes at both ends of the window (a prewarmed jail being refilled, an instance
/// being torn down, are not). `false` if that did not happen within `limit`.
pub(crate) fn wait_quiet(pid: u32, limit: Duration) -> bool {
    const WINDOW: Duration = Duration::from_millis(25);
    const BUSY_NS: u64 = 1_000_000;
    let deadline = Instant::now() + limit;
    let sorted_tree = || {
        let mut t = tree(pid);
        t.sort_unstable();
        t
    };
    let mut procs = sorted_tree();
    let mut cpu = tree_cpu_ns(pid);
    loop {
        std::thread::sleep(WINDOW);
        let (procs_now, cpu_now) = (sorted_tree(), tree_cpu_ns(pid));
        if procs_now == procs && cpu_now >= cpu && cpu_now - cpu < BUSY_NS {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        (procs, cpu) = (procs_now, cpu_now);
    }
}

/// The prewarmed jails among `pid`'s children, by the program their function process runs
/// while it waits: jail inits whose `FCD_JAIL_SPEC` has a `blank` (one claimed since is still
/// counted, so call this when no instance exists, or read it as an upper bound).
pub(crate) fn blank_jails(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for init in children(pid) {
        let Ok(environ) = std::fs::read(format!("/proc/{init}/environ")) else {
            continue;
        };
        let blank = environ.split(|&b| b == 0).any(|var| {
            let var = String::from_utf8_lossy(var);
            var.strip_prefix("FCD_JAIL_SPEC=").is_some_and(|spec| {
                serde_json::from_str::<serde_json::Value>(spec)
                    .is_ok_and(|v| v.get("blank").is_some_and(|b| !b.is_null()))
            })
        });
        if !blank {
            continue;
        }
        let program = children(init)
            .first()
            .and_then(|f| std::fs::read_link(format!("/proc/{f}/exe")).ok())
            .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "?".into());
        out.push(program);
    }
    out.sort();
    out
}

/// A TCP port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// SIGTERM, then SIGKILL after `grace`; always reaps.
pub(crate) fn stop(child: &mut Child, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process that is killed and reaped when dropped.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to completion and returns its trimmed stdout, if it succeeded.
pub(crate) fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let text = if text.is_empty() {
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    } else {
        text
    };
    Some(text)
}

/// CPU accounting at one moment, in USER_HZ ticks (1/100 s on Linux).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSnapshot {
    /// All CPUs' non-idle time, steal excluded.
    busy: u64,
    /// Time the hypervisor gave to someone else.
    steal: u64,
    /// This process and every child it reaped (fcd, and through fcd its instances).
    own: u64,
    at: Instant,
}

fn ticks(fields: &[&str], idx: &[usize]) -> u64 {
    idx.iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum()
}

pub(crate) fn cpu_snapshot() -> Option<CpuSnapshot> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<&str> = stat.lines().next()?.split_whitespace().skip(1).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy = ticks(&cpu, &[0, 1, 2, 5, 6]);
    let steal = ticks(&cpu, &[7]);
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
    // utime stime cutime cstime are fields 14-17 of stat(5); here 11-14.
    let own = ticks(&after_comm, &[11, 12, 13, 14]);
    Some(CpuSnapshot {
        busy,
        steal,
        own,
        at: Instant::now(),
    })
}

/// What ran on the machine besides this benchmark between two snapshots.
pub(crate) fn foreign_load(start: &CpuSnapshot, end: &CpuSnapshot) -> String {
    let secs = (end.at - start.at).as_secs_f64().max(1e-3);
    let busy = end.busy.saturating_sub(start.busy) as f64 / 100.0;
    let own = end.own.saturating_sub(start.own) as f64 / 100.0;
    let steal = end.steal.saturating_sub(start.steal) as f64 / 100.0;
    let other = (busy - own).max(0.0);
    format!(
        "{other:.1} CPU-s used by other processes and the kernel during the {secs:.0} s run ({:.0} % of one CPU); the benchmark used {own:.1} CPU-s; hypervisor steal {steal:.1} CPU-s",
        other / secs * 100.0
    )
}
