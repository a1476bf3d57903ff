//! The system-call filter every jailed function runs under.
//!
//! Installed by the jail's function side after it has dropped to the instance's uid and set
//! `no_new_privs`, before anything of the function runs (a prewarmed interpreter is filtered
//! before it starts; the filter survives `execve` and is inherited by every child). It is a deny
//! list: everything a program may normally do is allowed, and what functions never need and
//! what widens the kernel's attack surface answers `EPERM`:
//!
//! - mounting and changing roots: `mount`, `umount2`, `pivot_root`, `chroot` and the new mount
//!   API (`fsopen`, `fsconfig`, `fsmount`, `fspick`, `open_tree`, `move_mount`,
//!   `mount_setattr`);
//! - new namespaces and joining others: `unshare`, `setns`, and `clone` with any `CLONE_NEW*`
//!   flag;
//! - looking into other processes: `ptrace`, `process_vm_readv`/`writev`, `pidfd_getfd`, `kcmp`;
//! - the kernel's administration: `kexec_load`, `kexec_file_load`, `reboot`, module loading
//!   (`init_module`, `finit_module`, `delete_module`), `swapon`/`swapoff`, `acct`, `quotactl`,
//!   `quotactl_fd`, `syslog`, `lookup_dcookie`, `vhangup`, the clock (`settimeofday`,
//!   `clock_settime`, `clock_adjtime`, `adjtimex`), and on x86-64 `iopl`, `ioperm`, `uselib`,
//!   `_sysctl`;
//! - large kernel surfaces no function needs: `bpf`, `perf_event_open`, `userfaultfd`, the
//!   keyrings (`keyctl`, `add_key`, `request_key` — the user keyring is per uid, host-wide),
//!   `io_uring_*` (runtimes fall back to ordinary system calls), `open_by_handle_at` and
//!   `name_to_handle_at` (file handles bypass the mount view);
//! - `personality` except the harmless values (`PER_LINUX`, `PER_LINUX32`, `UNAME26`, and the
//!   query `0xffffffff`): no turning off address-space randomisation (`ADDR_NO_RANDOMIZE`) or
//!   making data executable (`READ_IMPLIES_EXEC`).
//!
//! Two more rules need other answers: `clone3` returns `ENOSYS`, because its flags are behind a
//! pointer a filter cannot read, and on `ENOSYS` (only) the C library falls back to `clone`,
//! whose flags are checked; and on x86-64 every x32-ABI call (numbers with bit 30 set, which
//! would reach the same kernel code under other numbers) is refused. `seccompiler` builds and
//! installs the filters; the x32 guard is six BPF instructions written here, as `seccompiler`
//! matches syscall numbers exactly and cannot express a range. A call made through another
//! architecture's entry (`int 0x80` on x86-64) kills the process: `seccompiler` checks the
//! architecture first.

use std::collections::BTreeMap;
use std::io;

use nix::libc;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Every `CLONE_NEW*` flag `clone` accepts (`CLONE_NEWTIME` is `clone3`/`unshare` only; its bit
/// is part of the exit signal in `clone`).
const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// `personality` values a function may set: Linux, 32-bit Linux, the 2.6 uname, both, and the
/// query.
const PERSONALITY_ALLOWED: [u64; 5] = [0, 0x0008, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

/// The calls refused whatever their arguments.
fn always_denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_kcmp,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
        libc::SYS_syslog,
        libc::SYS_lookup_dcookie,
        libc::SYS_vhangup,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
        libc::SYS__sysctl,
    ]);
    v
}

fn arch() -> io::Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| io::Error::other(format!("seccomp: {e}")))
}

fn err(e: seccompiler::BackendError) -> io::Error {
    io::Error::other(format!("seccomp: {e}"))
}

/// The deny list: matching calls answer `EPERM`, everything else is allowed.
fn deny_filter() -> io::Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = always_denied()
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    // clone: refused when any namespace flag is set (one rule per flag: rules are OR'ed).
    let clone_rules = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            SeccompRule::new(vec![
                SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(flag),
                    flag,
                )
                .map_err(err)?,
            ])
            .map_err(err)
        })
        .collect::<io::Result<Vec<_>>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    // personality: refused unless the argument is one of the allowed values (conditions of a
    // rule are AND'ed).
    let not_allowed = PERSONALITY_ALLOWED
        .iter()
        .map(|&v| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    rules.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(not_allowed).map_err(err)?],
    );
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(err)?;
    filter.try_into().map_err(err)
}

/// `clone3` answers `ENOSYS`, so the C library uses `clone` (whose flags the deny list sees).
fn clone3_filter() -> io::Result<BpfProgram> {
    let filter = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(err)?;
    filter.try_into().map_err(err)
}

/// On x86-64: refuse every x32-ABI call (`nr >= __X32_SYSCALL_BIT`). The deny list matches
/// exact numbers, and an x32 number reaches the same kernel code as its x86-64 twin.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    // Offsets in `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    let ins = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let jge = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    vec![
        ins(ld, 0, 0, ARCH),
        // Not x86-64: nothing to decide here (the deny list kills foreign architectures).
        ins(jeq, 0, 3, AUDIT_ARCH_X86_64),
        ins(ld, 0, 0, NR),
        ins(jge, 0, 1, X32_SYSCALL_BIT),
        ins(ret, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        ins(ret, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Every filter the function runs under, in installation order.
pub(crate) fn filters() -> io::Result<Vec<BpfProgram>> {
    #[allow(unused_mut)]
    let mut all = vec![deny_filter()?, clone3_filter()?];
    #[cfg(target_arch = "x86_64")]
    all.push(x32_guard());
    Ok(all)
}

/// Installs the filters on the calling (single-threaded) process. `no_new_privs` must be set
/// already (the jail sets it right after dropping privileges).
pub(crate) fn install(filters: &[BpfProgram]) -> io::Result<()> {
    for f in filters {
        seccompiler::apply_filter(f).map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_for_this_machine() {
        let all = filters().unwrap();
        assert!(all.len() >= 2);
        assert!(all.iter().all(|f| !f.is_empty() && f.len() < 4096));
    }

    /// In a forked child: installs the filters, makes each call, and exits with a code saying
    /// which call got an unexpected answer (0: all as expected).
    #[test]
    #[allow(unsafe_code)]
    fn denied_calls_answer_eperm_and_the_rest_still_work() {
        let all = filters().unwrap();
        // Each probe: the call, and the errno it must fail with (0: it must succeed).
        type Probe = fn() -> libc::c_long;
        let probes: Vec<(Probe, i32)> = vec![
            // SAFETY (all probes): raw system calls with plain integer or null arguments, run
            // in the forked child only.
            (
                || unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) },
                libc::EPERM,
            ),
            (
                || unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) },
                libc::EPERM,
            ),
            (
                || unsafe {
                    libc::syscall(libc::SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0)
                },
                libc::EPERM,
            ),
            (
                || unsafe { libc::syscall(libc::SYS_bpf, 0, 0, 0) },
                libc::EPERM,
            ),
            (
                || unsafe { libc::syscall(libc::SYS_personality, 0x0040000) },
                libc::EPERM,
            ),
            (
                || unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu32) },
                0,
            ),
            (
                || unsafe { libc::syscall(libc::SYS_clone3, 0, 0) },
                libc::ENOSYS,
            ),
            (
                || unsafe {
                    libc::syscall(
                        libc::SYS_clone,
                        libc::CLONE_NEWNET | libc::SIGCHLD,
                        0,
                        0,
                        0,
                        0,
                    )
                },
                libc::EPERM,
            ),
            (|| unsafe { libc::syscall(libc::SYS_getpid) }, 0),
        ];
        // SAFETY: the child only makes raw system calls (prctl, seccomp, the probes, _exit) and
        // touches memory prepared before the fork; the parent waits for it.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(100);
                }
                if install(&all).is_err() {
                    libc::_exit(101);
                }
                for (i, (probe, want)) in probes.iter().enumerate() {
                    let rc = probe();
                    let errno = *libc::__errno_location();
                    let ok = if *want == 0 {
                        rc >= 0
                    } else {
                        rc == -1 && errno == *want
                    };
                    if !ok {
                        libc::_exit(1 + i as i32);
                    }
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "1-based index of the probe that answered wrongly (100+: setup failed)"
        );
    }
}
