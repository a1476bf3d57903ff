//! A uid of its own for every jailed instance.
//!
//! A prewarmed jail drops its privileges before it knows which function it will run, so uids
//! are not tied to functions: each jail — prewarmed or not — leases a uid when it is spawned and
//! gives it back only once its processes are gone (its `Teardown`). No two live instances, of
//! the same function or of different ones, ever share a uid, and none runs as root, as 65534
//! (`nobody`, shared by everything on a host that uses it) or as fcd's own user. The gid is the
//! uid's number, and instances get no supplementary groups.
//!
//! The uids come from a block of 65,536 a server reserves at start in `0x70000000..0x7f000000`
//! — a range systemd documents as unused (above the 16-bit container ranges, below its own
//! `0x7ffe0000` block and the sign bit). Which block is one server's is decided by an exclusive
//! `flock` of `/run/fcd/uids/<first uid>.lock`, held for the server's life: servers started in
//! parallel never share a block, and a killed server's block is free again with its process
//! (its instances die with it). Blocks holding a uid or gid named in the host's `/etc/passwd`
//! or `/etc/group` are skipped. Nothing an instance writes outlives it under its uid: its
//! writable places (`/tmp`, `/dev/shm`) are tmpfs mounts of its own jail, so a reused uid
//! inherits nothing. A freed uid goes to the back of the queue and unused ones are handed out
//! first, so reuse is as late as possible.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The first uid of the first block.
pub(crate) const FIRST_UID: u32 = 0x7000_0000;
/// Uids per server.
pub(crate) const BLOCK: u32 = 65_536;
/// Blocks in the range (up to `0x7f000000`).
const BLOCKS: u32 = 3_840;
const LOCK_DIR: &str = "/run/fcd/uids";

/// One server's block of instance uids.
pub struct InstanceUids {
    first: u32,
    count: u32,
    state: Mutex<State>,
    /// Holds the block for as long as the server lives.
    _lock: Option<nix::fcntl::Flock<fs::File>>,
}

impl std::fmt::Debug for InstanceUids {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceUids")
            .field("first", &self.first)
            .field("count", &self.count)
            .finish()
    }
}

#[derive(Default)]
struct State {
    /// Offset of the next uid never handed out.
    fresh: u32,
    /// Offsets given back, oldest first.
    freed: VecDeque<u32>,
}

/// A uid one instance runs as; given back when dropped (after the instance's processes are
/// gone).
#[derive(Debug)]
pub(crate) struct UidLease {
    uid: u32,
    pool: Arc<InstanceUids>,
}

impl UidLease {
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pool.state.lock() {
            s.freed.push_back(self.uid - self.pool.first);
        }
    }
}

/// Ids the host names in `/etc/passwd` and `/etc/group` (third field of each line).
fn host_ids() -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    for file in ["/etc/passwd", "/etc/group"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        ids.extend(
            text.lines()
                .filter_map(|l| l.split(':').nth(2))
                .filter_map(|id| id.trim().parse::<u32>().ok()),
        );
    }
    ids
}

impl InstanceUids {
    /// Reserves a free block for this server.
    pub fn claim() -> Result<Arc<InstanceUids>, String> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(LOCK_DIR)
            .map_err(|e| format!("creating {LOCK_DIR}: {e}"))?;
        let taken = host_ids();
        for b in 0..BLOCKS {
            let first = FIRST_UID + b * BLOCK;
            if taken.range(first..first + BLOCK).next().is_some() {
                continue;
            }
            let path = Path::new(LOCK_DIR).join(format!("{first}.lock"));
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    return Ok(Arc::new(InstanceUids {
                        first,
                        count: BLOCK,
                        state: Mutex::new(State::default()),
                        _lock: Some(lock),
                    }));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
                Err((_, e)) => return Err(format!("locking {}: {e}", path.display())),
            }
        }
        Err(format!(
            "every block of instance uids in {FIRST_UID:#x}.. is taken by another fcd"
        ))
    }

    /// The first uid of the block.
    pub fn first(&self) -> u32 {
        self.first
    }

    /// How many uids the block holds.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// A uid no live instance of this server has.
    pub(crate) fn lease(self: &Arc<Self>) -> io::Result<UidLease> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| io::Error::other("the uid pool's lock is poisoned"))?;
        let offset = if s.fresh < self.count {
            s.fresh += 1;
            s.fresh - 1
        } else {
            s.freed.pop_front().ok_or_else(|| {
                io::Error::other(format!(
                    "all {} instance uids of this server are in use",
                    self.count
                ))
            })?
        };
        Ok(UidLease {
            uid: self.first + offset,
            pool: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(count: u32) -> Arc<InstanceUids> {
        Arc::new(InstanceUids {
            first: FIRST_UID,
            count,
            state: Mutex::new(State::default()),
            _lock: None,
        })
    }

    #[test]
    fn live_leases_never_share_a_uid_and_reuse_comes_last() {
        let p = pool(3);
        let a = p.lease().unwrap();
        let b = p.lease().unwrap();
        assert_ne!(a.uid(), b.uid());
        let a_uid = a.uid();
        drop(a);
        // Unused uids go first.
        let c = p.lease().unwrap();
        assert_ne!(c.uid(), a_uid);
        assert_ne!(c.uid(), b.uid());
        // Then the oldest freed one.
        let d = p.lease().unwrap();
        assert_eq!(d.uid(), a_uid);
        // Exhausted: an error, never a shared uid.
        assert!(p.lease().is_err());
        drop(b);
        assert!(p.lease().is_ok());
    }

    #[test]
    fn uids_are_neither_root_nor_nobody() {
        let p = pool(BLOCK);
        let l = p.lease().unwrap();
        assert!(l.uid() >= FIRST_UID && l.uid() != 65534 && l.uid() != 0);
    }

    #[test]
    fn servers_get_different_blocks() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: servers_get_different_blocks: needs root for {LOCK_DIR}");
            return;
        }
        let a = InstanceUids::claim().unwrap();
        let b = InstanceUids::claim().unwrap();
        assert_ne!(a.first(), b.first());
    }
}
