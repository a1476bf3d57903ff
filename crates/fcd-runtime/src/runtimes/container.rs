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
//! Containers need the jail (an image is a root filesystem, and only a jail can make it one);
//! under `--isolation none` they are refused with the reason.

use std::path::PathBuf;
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
    /// Keeps the unpacked tree while a prewarmed jail of it may be claimed (held, never read).
    pub(crate) _pin: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for ImageLaunch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageLaunch")
            .field("rootfs", &self.rootfs)
            .field("cwd", &self.cwd)
            .field("digest", &self.digest)
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
}
