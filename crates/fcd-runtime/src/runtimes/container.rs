//! `custom-container`: the function is an OCI image. Its unpacked root filesystem (pulled by
//! the control plane through `fcd-image` and handed over in [`FunctionSpec::image`]) becomes the
//! jail's root, read-only, and the instance runs the image's entry point — or the function's
//! `customContainerConfig.command`/`args` — as a custom runtime: an HTTP server on `caPort`.
//!
//! What the process is (Docker's rules, which FC follows): `command` replaces the image's
//! `ENTRYPOINT`, `args` its `CMD`; a `command` given without `args` drops the image's `CMD`.
//! Its environment is the image's `Env`, then FC's variables, then the function's own
//! (`contract::container_env`); its working directory the image's `WorkingDir` or `/`.
//!
//! Who the process is: always the instance's own uid on the host ([`crate::sandbox::uids`]).
//! An image whose `User` names someone other than root ([`image_user`]: a number or a name in
//! the image's `/etc/passwd` and `/etc/group`) runs in a user namespace that maps that uid and
//! gid — and nothing else — onto the instance's, so the function sees the user its image
//! declares. Root (no `User`, or uid 0) is not mapped: the process sees the instance's uid, and
//! a server that would drop privileges from root (nginx's `user` directive) carries on as the
//! unprivileged user it already is, instead of failing to switch to an unmapped one.
//!
//! Containers need the jail (an image is a root filesystem, and only a jail can make it one);
//! under `--isolation none` they are refused with the reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Launch, Placement, ProcessLaunch, Runtime};
use crate::FunctionSpec;

/// An image on this machine, ready to be an instance's root.
#[derive(Clone)]
pub struct ContainerImage {
    /// `registry/repo@sha256:…` of the manifest that was unpacked.
    pub digest: String,
    /// The unpacked root filesystem (never written to by instances).
    pub rootfs: PathBuf,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The image config's `Env`, in order.
    pub env: Vec<(String, String)>,
    /// The image config's `WorkingDir` (empty: `/`).
    pub working_dir: String,
    /// The image config's `User`: `user[:group]`, names or numbers (empty: root).
    pub user: String,
    /// Whatever keeps the unpacked image from being collected while this is alive (the image
    /// store's own handle).
    pub pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for ContainerImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerImage")
            .field("digest", &self.digest)
            .field("rootfs", &self.rootfs)
            .finish_non_exhaustive()
    }
}

/// What a jail needs to run an image.
#[derive(Clone)]
pub(crate) struct ImageLaunch {
    pub(crate) rootfs: PathBuf,
    pub(crate) cwd: PathBuf,
    /// The image's digest: prewarmed jails of images no function names any more are dropped
    /// by it ([`crate::InstanceManager::keep_image_jails`]).
    pub(crate) digest: String,
    /// The uid and gid the function sees, mapped onto the instance's ([`image_user`]); `None`:
    /// the instance's own, unmapped.
    pub(crate) user: Option<(u32, u32)>,
    /// Keeps the unpacked tree while a prewarmed jail of it may be claimed (held, never read).
    pub(crate) _pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for ImageLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageLaunch")
            .field("rootfs", &self.rootfs)
            .field("cwd", &self.cwd)
            .field("digest", &self.digest)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct Container;

impl Runtime for Container {
    fn names(&self) -> &'static [&'static str] {
        &["custom-container"]
    }

    fn launch(&self, p: &Placement<'_>) -> Result<Launch, crate::StartError> {
        if !p.jailed {
            return Err(crate::StartError::Spawn(
                "custom-container functions run their image as the instance's root filesystem, which needs the jail; this server runs with --isolation none".to_owned(),
            ));
        }
        let image = p.spec.image.as_ref().ok_or_else(|| {
            crate::StartError::Spawn("the function's image is not on this node".to_owned())
        })?;
        if p.spec.layers.is_some() {
            return Err(crate::StartError::Spawn(
                "layers cannot be used with custom-container functions: put their files in the image".to_owned(),
            ));
        }
        let argv = process_args(p.spec, image).map_err(crate::StartError::Spawn)?;
        let Some((program, args)) = argv.split_first() else {
            return Err(crate::StartError::Spawn(
                "the image has no ENTRYPOINT or CMD, and customContainerConfig gives no command"
                    .to_owned(),
            ));
        };
        let user = image_user(&image.rootfs, &image.user).map_err(crate::StartError::Spawn)?;
        let cwd = match image.working_dir.as_str() {
            "" => PathBuf::from("/"),
            dir => PathBuf::from(dir),
        };
        Ok(Launch::Process(ProcessLaunch {
            program: PathBuf::from(program),
            args: args.to_vec(),
            path_dirs: Vec::new(),
            mounts: Vec::new(),
            reads_assignment: false,
            image: Some(ImageLaunch {
                rootfs: image.rootfs.clone(),
                cwd,
                digest: image.digest.clone(),
                user,
                _pin: image.pin.clone(),
            }),
        }))
    }

    fn blank_launch(&self, _memory_mb: u32) -> Option<ProcessLaunch> {
        // Nothing before a first use: a prewarmed jail of an image is built on that image,
        // kept ready once an instance of it started (`process::prewarm`).
        None
    }

    fn describe(&self) -> String {
        "an OCI image's root filesystem in the jail (customContainerConfig.image)".to_owned()
    }
}

/// The uid and gid an image's `User` names, as the function is to see them: `user[:group]`,
/// each a number or a name in the image's `/etc/passwd` (`/etc/group`); a user given without a
/// group has its passwd entry's gid, or 0 when it has none (Docker's rules). `None` for root —
/// no `User`, or uid 0 — which runs unmapped (see the module's docs). A name the image's files
/// do not know is an error naming it.
pub(crate) fn image_user(rootfs: &Path, user: &str) -> Result<Option<(u32, u32)>, String> {
    let user = user.trim();
    if user.is_empty() {
        return Ok(None);
    }
    let (name, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = image_etc_file(rootfs, "passwd");
    // `name:password:uid:gid:…`, found by name or by uid.
    let entry = |by: &dyn Fn(&[&str]) -> bool| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || !by(&fields) {
                return None;
            }
            Some((
                fields[2].parse::<u32>().ok()?,
                fields[3].parse::<u32>().ok()?,
            ))
        })
    };
    let (uid, passwd_gid) = match name.parse::<u32>() {
        Ok(uid) => (
            uid,
            entry(&|f| f[2] == name).map_or(0, |(_, gid)| gid),
        ),
        Err(_) => entry(&|f| f[0] == name).ok_or_else(|| {
            format!("the image's USER '{user}' names the user '{name}', which is not in the image's /etc/passwd")
        })?,
    };
    let gid = match group {
        None => passwd_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => image_etc_file(rootfs, "group")
                .lines()
                .find_map(|line| {
                    let fields: Vec<&str> = line.split(':').collect();
                    (fields.len() >= 3 && fields[0] == g)
                        .then(|| fields[2].parse::<u32>().ok())
                        .flatten()
                })
                .ok_or_else(|| {
                    format!("the image's USER '{user}' names the group '{g}', which is not in the image's /etc/group")
                })?,
        },
    };
    Ok((uid != 0).then_some((uid, gid)))
}

/// One of the image's `/etc` files, read without following a symbolic link anywhere on the
/// way: an image's `/etc/passwd` may be a link to the host's files. Empty when missing,
/// unreadable or over 1 MiB.
fn image_etc_file(rootfs: &Path, name: &str) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const MAX: u64 = 1 << 20;
    if !std::fs::symlink_metadata(rootfs.join("etc")).is_ok_and(|m| m.is_dir()) {
        return String::new();
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(rootfs.join("etc").join(name))
    else {
        return String::new();
    };
    let mut text = String::new();
    match file.take(MAX + 1).read_to_string(&mut text) {
        Ok(n) if (n as u64) <= MAX => text,
        _ => String::new(),
    }
}

/// The process of an instance: `command` (else `ENTRYPOINT`) followed by `args` (else `CMD`,
/// unless `command` was given), as Docker combines them.
pub(crate) fn process_args(
    spec: &FunctionSpec,
    image: &ContainerImage,
) -> Result<Vec<String>, String> {
    let config = spec.function.custom_container_config.as_ref();
    let command = string_array(config.and_then(|c| c.get("command")), "command")?;
    let args = string_array(config.and_then(|c| c.get("args")), "args")?;
    let mut argv = match &command {
        Some(c) => c.clone(),
        None => image.entrypoint.clone(),
    };
    match (args, &command) {
        (Some(a), _) => argv.extend(a),
        (None, None) => argv.extend(image.cmd.iter().cloned()),
        (None, Some(_)) => {}
    }
    Ok(argv)
}

/// `command` and `args` of a 2.0 `customContainerConfig`: JSON-encoded string arrays (`""`
/// and `"[]"` mean unset). A real array is taken too.
fn string_array(v: Option<&serde_json::Value>, field: &str) -> Result<Option<Vec<String>>, String> {
    let parsed = match v {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(serde_json::Value::String(s)) => serde_json::from_str::<Vec<String>>(s).map_err(|_| {
            format!("customContainerConfig.{field} must be a JSON array of strings, such as [\"/bin/server\",\"--port\",\"9000\"]; got {s}")
        })?,
        Some(other) => serde_json::from_value::<Vec<String>>(other.clone())
            .map_err(|_| format!("customContainerConfig.{field} must be an array of strings"))?,
    };
    Ok((!parsed.is_empty()).then_some(parsed))
}

/// Checks a `customContainerConfig`'s `command` and `args` (for Create/UpdateFunction).
pub fn check_config(config: Option<&fcd_core::model::JsonObject>) -> Result<(), String> {
    string_array(config.and_then(|c| c.get("command")), "command")?;
    string_array(config.and_then(|c| c.get("args")), "args")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image() -> ContainerImage {
        ContainerImage {
            digest: "sha256:00".into(),
            rootfs: "/images/00/rootfs".into(),
            entrypoint: vec!["/bin/entry".into()],
            cmd: vec!["--serve".into()],
            env: Vec::new(),
            working_dir: String::new(),
            user: String::new(),
            pin: None,
        }
    }

    fn spec(config: serde_json::Value) -> FunctionSpec {
        let mut spec = crate::testkit::spec_for_tests();
        spec.function.custom_container_config = config.as_object().cloned();
        spec
    }

    #[test]
    fn command_and_args_combine_as_docker_does() {
        let img = image();
        assert_eq!(
            process_args(&spec(json!({})), &img).unwrap(),
            ["/bin/entry", "--serve"]
        );
        assert_eq!(
            process_args(&spec(json!({"args": "[\"--port\",\"9001\"]"})), &img).unwrap(),
            ["/bin/entry", "--port", "9001"]
        );
        // A command replaces the entry point and drops the image's CMD.
        assert_eq!(
            process_args(&spec(json!({"command": "[\"/bin/sh\"]"})), &img).unwrap(),
            ["/bin/sh"]
        );
        assert_eq!(
            process_args(
                &spec(json!({"command": "[\"/bin/sh\"]", "args": "[\"-c\",\"exec x\"]"})),
                &img
            )
            .unwrap(),
            ["/bin/sh", "-c", "exec x"]
        );
        // Empty means unset.
        assert_eq!(
            process_args(&spec(json!({"command": "", "args": "[]"})), &img).unwrap(),
            ["/bin/entry", "--serve"]
        );
    }

    #[test]
    fn malformed_command_is_explained() {
        let err = process_args(&spec(json!({"command": "/bin/sh -c x"})), &image()).unwrap_err();
        assert!(err.contains("JSON array of strings"), "{err}");
        assert!(check_config(json!({"args": "[1]"}).as_object()).is_err());
        assert!(check_config(json!({"args": "[\"a\"]"}).as_object()).is_ok());
    }

    #[test]
    fn an_image_s_user_is_resolved_from_its_own_etc_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\nbroken:x:oops\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        let user = |u: &str| image_user(root, u);
        assert_eq!(user(""), Ok(None));
        assert_eq!(user("root"), Ok(None));
        assert_eq!(user("0:50"), Ok(None));
        assert_eq!(user("app"), Ok(Some((1000, 1001))));
        assert_eq!(user("app:staff"), Ok(Some((1000, 50))));
        assert_eq!(user("1000"), Ok(Some((1000, 1001))));
        // A uid the image does not list gets gid 0, as with Docker.
        assert_eq!(user("4242"), Ok(Some((4242, 0))));
        assert_eq!(user("4242:7"), Ok(Some((4242, 7))));
        let err = user("ghost").unwrap_err();
        assert!(
            err.contains("'ghost'") && err.contains("/etc/passwd"),
            "{err}"
        );
        let err = user("app:nogroup").unwrap_err();
        assert!(
            err.contains("'nogroup'") && err.contains("/etc/group"),
            "{err}"
        );
        assert!(user("broken").is_err());
    }

    #[test]
    fn an_image_s_etc_files_are_never_read_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host-passwd");
        std::fs::write(&host, "someone:x:77:77::/:/bin/sh\n").unwrap();
        // `/etc/passwd` a link out of the image.
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("etc")).unwrap();
        std::os::unix::fs::symlink(&host, a.join("etc/passwd")).unwrap();
        assert!(image_user(&a, "someone").is_err());
        // `/etc` itself a link out of the image.
        let b = dir.path().join("b");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::copy(&host, dir.path().join("outside/passwd")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), b.join("etc")).unwrap();
        assert!(image_user(&b, "someone").is_err());
        // The same file inside the image is read.
        let c = dir.path().join("c");
        std::fs::create_dir_all(c.join("etc")).unwrap();
        std::fs::copy(&host, c.join("etc/passwd")).unwrap();
        assert_eq!(image_user(&c, "someone"), Ok(Some((77, 77))));
    }
}
