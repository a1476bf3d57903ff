//! What a jail shows of the host: an allow-list, decided once at start.
//!
//! - The system trees — `/usr`, `/bin`, `/sbin`, `/lib`, `/lib32`, `/lib64`, `/libx32`, those
//!   the host has — read-only (a merged-`/usr` host's `/bin -> usr/bin` links are recreated).
//! - What each runtime's interpreter needs besides them (its prefix, directories of libraries it
//!   loads from elsewhere: `runtimes::Interpreter::mounts`), and fcd's bootstraps at `/var/fcd`.
//! - A minimal `/etc` of the jail's own: `passwd` and `group` naming only root, the instance's
//!   uid (`fc`) and nobody; copies of the resolver's and the C library's configuration
//!   (`resolv.conf`, `hosts`, `nsswitch.conf`, `ld.so.cache`...); the certificate directories,
//!   read-only; `localtime` and `os-release` recreated as the links they are.
//! - `/code` (read-only), its own `/tmp` and `/dev/shm` (tmpfs owned by the instance's uid, mode
//!   0700), a minimal `/dev`, its own `/proc`.
//!
//! Nothing else: not `/opt`, `/home`, `/root`, `/srv`, `/var`, `/run`, `/sys`, the data dir or
//! the credentials in it. A directory created only to reach a mount (e.g. `/root/.pyenv/...` for
//! a pyenv interpreter) is mode 0711: it can be passed through, not listed. The data dir is
//! *hidden* wherever it is: if it lies inside a tree the jail shows (a data dir under
//! `/usr/local`), an empty, mode-0 tmpfs covers it in every jail.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::jail::Bind;

/// Host trees every jail shows read-only.
pub(crate) const SYSTEM_TREES: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Whether `path` lies in one of the system trees (component-wise: `/lib64` is not in `/lib`).
pub(crate) fn is_system(path: &Path) -> bool {
    SYSTEM_TREES.iter().any(|t| path.starts_with(t))
}

/// Entries of the host's `/etc` a jail gets, relative to `/etc`. Files are copied into the
/// jail's `/etc` when it is built (so a later change on the host reaches the next instance),
/// directories bound read-only, links into the system trees recreated.
///
/// Each entry costs every fresh jail a few system calls, so the list holds what the C library,
/// the resolver, TLS and time zones read, and no more.
const ETC_ALLOWED: &[&str] = &[
    "ld.so.cache",
    "nsswitch.conf",
    "resolv.conf",
    "hosts",
    "services",
    "protocols",
    "localtime",
    "timezone",
    "os-release",
    "alternatives",
    "ssl/certs",
    "ssl/openssl.cnf",
    "pki/tls/certs",
    "pki/tls/openssl.cnf",
    "pki/ca-trust/extracted",
    "crypto-policies/back-ends",
];

/// Files copied into a jail's `/etc` are at most this big.
pub(crate) const ETC_COPY_MAX: u64 = 4 * 1024 * 1024;

/// One entry of a jail's `/etc`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum EtcEntry {
    /// A symbolic link with this text (its target is in the system trees).
    Link { name: String, target: PathBuf },
    /// A copy of this host file, made when the jail is built.
    Copy { name: String, host: PathBuf },
    /// This host directory, bound read-only.
    Bind { name: String, host: PathBuf },
}

impl EtcEntry {
    pub(crate) fn name(&self) -> &str {
        match self {
            EtcEntry::Link { name, .. }
            | EtcEntry::Copy { name, .. }
            | EtcEntry::Bind { name, .. } => name,
        }
    }
}

/// The system trees this host has: directories to bind, and top-level links to recreate
/// (`bin -> usr/bin`).
pub(crate) fn system_view() -> (Vec<Bind>, Vec<(String, String)>) {
    let mut binds = Vec::new();
    let mut links = Vec::new();
    for tree in SYSTEM_TREES {
        let host = PathBuf::from(tree);
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(to) = std::fs::read_link(&host) {
                    links.push((
                        tree.trim_start_matches('/').to_owned(),
                        to.display().to_string(),
                    ));
                }
            }
            Ok(m) if m.is_dir() => binds.push(Bind {
                host: host.clone(),
                inside: host,
                writable: false,
            }),
            _ => {}
        }
    }
    (binds, links)
}

/// What of the host's `/etc` (at `etc`, `/etc` but for tests) a jail gets.
pub(crate) fn etc_entries(etc: &Path) -> Vec<EtcEntry> {
    let mut out = Vec::new();
    for name in ETC_ALLOWED {
        let host = etc.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        let name = (*name).to_owned();
        if meta.file_type().is_symlink() {
            let (Ok(text), Ok(real)) = (std::fs::read_link(&host), std::fs::canonicalize(&host))
            else {
                continue;
            };
            // A link into the system trees stays a link (`localtime`: programs read the zone's
            // name from it); anything else is shown as what it points at.
            if is_system(&real) {
                out.push(EtcEntry::Link { name, target: text });
            } else if real.is_dir() {
                out.push(EtcEntry::Bind { name, host });
            } else if real.is_file() {
                out.push(EtcEntry::Copy { name, host });
            }
        } else if meta.is_dir() {
            out.push(EtcEntry::Bind { name, host });
        } else if meta.is_file() && meta.len() <= ETC_COPY_MAX {
            out.push(EtcEntry::Copy { name, host });
        }
    }
    out
}

/// The jail's `/etc/passwd` and `/etc/group`: root, the instance's user and nobody.
pub(crate) fn passwd_and_group(uid: u32, gid: u32) -> (String, String) {
    (
        format!(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n\
             fc:x:{uid}:{gid}:function instance:/tmp:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        format!("root:x:0:\nfc:x:{gid}:\nnogroup:x:65534:\n"),
    )
}

/// Where, inside a jail, `hidden` (a host path) would be visible through `bind`, if it would.
pub(crate) fn reachable_through(bind: &Bind, hidden: &Path) -> Option<PathBuf> {
    let rest = hidden.strip_prefix(&bind.host).ok()?;
    Some(bind.inside.join(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn system_trees_match_whole_components() {
        assert!(is_system(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")));
        assert!(is_system(Path::new("/lib64/ld-linux-x86-64.so.2")));
        assert!(!is_system(Path::new("/library/x")));
        assert!(!is_system(Path::new("/opt/python/bin/python3")));
        assert!(!is_system(Path::new("/root/.pyenv/versions/3.11.7")));
    }

    #[test]
    fn etc_is_an_allow_list() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        std::fs::write(etc.join("resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        std::fs::write(etc.join("shadow"), "root:secret").unwrap();
        std::fs::write(etc.join("passwd"), "root:x:0:0").unwrap();
        std::fs::create_dir_all(etc.join("ssl/certs")).unwrap();
        std::fs::create_dir_all(etc.join("ssl/private")).unwrap();
        symlink("/usr/share/zoneinfo/Etc/UTC", etc.join("localtime")).unwrap();
        let other = dir.path().join("elsewhere");
        std::fs::write(&other, "127.0.0.1 localhost\n").unwrap();
        symlink(&other, etc.join("hosts")).unwrap();
        let got = etc_entries(etc);
        let names: Vec<&str> = got.iter().map(EtcEntry::name).collect();
        assert!(names.contains(&"resolv.conf"), "{names:?}");
        assert!(names.contains(&"ssl/certs"), "{names:?}");
        for secret in ["shadow", "passwd", "ssl/private"] {
            assert!(!names.contains(&secret), "{secret} leaked: {names:?}");
        }
        // A link outside the system trees is copied, one inside kept (if the host has the
        // target at all, which canonicalize needs).
        assert!(got.contains(&EtcEntry::Copy {
            name: "hosts".into(),
            host: etc.join("hosts")
        }));
        if Path::new("/usr/share/zoneinfo/Etc/UTC").exists() {
            assert!(got.contains(&EtcEntry::Link {
                name: "localtime".into(),
                target: "/usr/share/zoneinfo/Etc/UTC".into()
            }));
        }
    }

    #[test]
    fn a_data_dir_inside_a_shown_tree_is_found() {
        let usr = Bind {
            host: "/usr".into(),
            inside: "/usr".into(),
            writable: false,
        };
        assert_eq!(
            reachable_through(&usr, Path::new("/usr/local/fcd-data")),
            Some(PathBuf::from("/usr/local/fcd-data"))
        );
        assert_eq!(reachable_through(&usr, Path::new("/opt/fcd-data")), None);
        let code = Bind {
            host: "/usr/local/fcd-data/code/abc".into(),
            inside: "/code".into(),
            writable: false,
        };
        // The code dir inside the data dir does not expose the data dir.
        assert_eq!(
            reachable_through(&code, Path::new("/usr/local/fcd-data")),
            None
        );
        let prefix = Bind {
            host: "/root/.pyenv/versions/3.11.7".into(),
            inside: "/root/.pyenv/versions/3.11.7".into(),
            writable: false,
        };
        assert_eq!(
            reachable_through(&prefix, Path::new("/root/.pyenv/versions/3.11.7/fcd")),
            Some(PathBuf::from("/root/.pyenv/versions/3.11.7/fcd"))
        );
    }
}
