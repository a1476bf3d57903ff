//! `custom-container` functions' images, as the control plane sees them: which image a function
//! names and with which credentials, pulling it at Create/UpdateFunction (so a cold start never
//! waits for a registry), the state that GetFunction reports while it is pulled, the image an
//! invocation's [`FunctionSpec`](fcd_runtime::FunctionSpec) carries, and collecting unpacked
//! images no function names.
//!
//! The pulling itself — registries, manifests, layers, the on-disk cache — is `fcd-image`'s.
//! State is per node: another node pulls a function's image at its first cold start there.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fcd_core::FcError;
use fcd_core::model::{Function, JsonObject};
use fcd_image::{Credentials, Image, ImageError, ImageStore, PullStatus};
use fcd_runtime::ContainerImage;
use serde_json::Value;

use crate::Control;

/// The runtime name of image functions.
pub const CONTAINER_RUNTIME: &str = "custom-container";

/// How long Create/UpdateFunction wait for a pull before answering: a quick failure (unknown
/// image, refused credentials, unreachable registry) is the call's error; a big image goes on
/// pulling, and the function says `Pending` meanwhile.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// The image a function names, and the credentials its config brings for it.
#[derive(Debug, Clone)]
pub(crate) struct ImageRequest {
    pub(crate) reference: String,
    pub(crate) creds: Option<Credentials>,
}

/// What GetFunction says of a function's readiness (FC 3.0's state fields; 2.0 responses
/// carry them too for image functions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionState {
    pub state: &'static str,
    pub last_update_status: &'static str,
    pub reason: Option<String>,
    pub reason_code: Option<&'static str>,
}

impl FunctionState {
    const ACTIVE: FunctionState = FunctionState {
        state: "Active",
        last_update_status: "Successful",
        reason: None,
        reason_code: None,
    };

    /// Writes the state into a function's JSON (replacing what is there).
    pub fn apply(&self, o: &mut JsonObject) {
        o.insert("state".into(), self.state.into());
        o.insert("lastUpdateStatus".into(), self.last_update_status.into());
        for key in [
            "stateReason",
            "stateReasonCode",
            "lastUpdateStatusReason",
            "lastUpdateStatusReasonCode",
        ] {
            o.remove(key);
        }
        if let Some(r) = &self.reason {
            o.insert("stateReason".into(), r.clone().into());
            o.insert("lastUpdateStatusReason".into(), r.clone().into());
        }
        if let Some(c) = self.reason_code {
            o.insert("stateReasonCode".into(), c.into());
            o.insert("lastUpdateStatusReasonCode".into(), c.into());
        }
    }
}

/// The FC error a failed pull is: its code names the cause.
pub(crate) fn image_error(e: &ImageError) -> FcError {
    let code = match e {
        ImageError::InvalidReference(_) => "InvalidImage",
        ImageError::NotFound(_) => "ImageNotFound",
        ImageError::Unauthorized(_) => "ImageAccessDenied",
        ImageError::Unreachable(_) => "ImageRegistryUnreachable",
        ImageError::WrongPlatform(_) => "ImagePlatformMismatch",
        ImageError::Unsupported(_) | ImageError::Corrupt(_) | ImageError::TooLarge(_) => {
            "ImageNotSupported"
        }
        ImageError::Io(why) => {
            tracing::error!(error = %why, "image store");
            return FcError::Internal;
        }
    };
    FcError::Image {
        code,
        message: e.to_string(),
    }
}

/// The image `f` names (`customContainerConfig.image`) and the credentials of its
/// `registryConfig.authConfig` (FC 3.0); `None` for a function of another runtime.
pub(crate) fn requested(f: &Function) -> Result<Option<ImageRequest>, FcError> {
    if f.runtime != CONTAINER_RUNTIME {
        return Ok(None);
    }
    let config = f.custom_container_config.as_ref();
    let reference = config
        .and_then(|c| c.get("image"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            FcError::invalid(
                "customContainerConfig.image is required for runtime custom-container (such as registry.example.com:5000/team/app:v1)",
            )
        })?;
    let auth = config
        .and_then(|c| c.get("registryConfig"))
        .and_then(|r| r.get("authConfig"));
    let creds = auth.and_then(|a| {
        let user = a.get("userName").and_then(Value::as_str).unwrap_or("");
        let pass = a.get("password").and_then(Value::as_str).unwrap_or("");
        (!user.is_empty() || !pass.is_empty()).then(|| Credentials {
            username: user.to_owned(),
            password: pass.to_owned(),
        })
    });
    Ok(Some(ImageRequest {
        reference: reference.to_owned(),
        creds,
    }))
}

/// What the instance manager needs of a pulled image.
fn container_image(image: Arc<Image>) -> Arc<ContainerImage> {
    Arc::new(ContainerImage {
        digest: image.digest.clone(),
        rootfs: image.rootfs.clone(),
        entrypoint: image.config.entrypoint.clone(),
        cmd: image.config.cmd.clone(),
        env: image.config.env.clone(),
        working_dir: image.config.working_dir.clone(),
        user: image.config.user.clone(),
        pin: Some(image as Arc<dyn std::any::Any + Send + Sync>),
    })
}

impl Control {
    /// Serves `custom-container` functions from `images` (without it they are refused).
    pub fn with_images(mut self, images: Arc<ImageStore>) -> Control {
        self.images = Some(images);
        self
    }

    fn image_store(&self) -> Result<&Arc<ImageStore>, FcError> {
        self.images.as_ref().ok_or_else(|| {
            FcError::invalid(
                "this fcd server runs no image store, so it cannot run custom-container functions",
            )
        })
    }

    /// Checks an image function's config and starts pulling its image, waiting up to
    /// [`PULL_WAIT`] for the outcome (Create/UpdateFunction). A failure within the wait is the
    /// caller's error; after it the pull goes on, and [`Control::function_state`] says so.
    pub(crate) async fn prepare_image(&self, f: &Function) -> Result<(), FcError> {
        let Some(req) = requested(f)? else {
            return Ok(());
        };
        fcd_runtime::runtimes::container::check_config(f.custom_container_config.as_ref())
            .map_err(FcError::invalid)?;
        ImageStore::parse(&req.reference).map_err(|e| image_error(&e))?;
        let store = self.image_store()?.clone();
        let pull =
            tokio::spawn(async move { store.pull(&req.reference, req.creds.as_ref()).await });
        match tokio::time::timeout(PULL_WAIT, pull).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => Err(image_error(&e)),
            Ok(Err(join)) => Err(crate::internal("pulling an image", join)),
            // Still pulling: the function is Pending until it is done.
            Err(_) => Ok(()),
        }
    }

    /// The readiness of `f` on this node: `None` for functions that are always ready (every
    /// runtime but `custom-container`).
    pub fn function_state(&self, f: &Function) -> Option<FunctionState> {
        let req = requested(f).ok().flatten()?;
        let store = self.images.as_ref()?;
        Some(match store.status(&req.reference) {
            Some(PullStatus::Pulling) => FunctionState {
                state: "Pending",
                last_update_status: "InProgress",
                reason: Some(format!("pulling image {}", req.reference)),
                reason_code: Some("ImagePulling"),
            },
            Some(PullStatus::Failed(e)) => {
                let (code, message) = match image_error(&e) {
                    FcError::Image { code, message } => (code, message),
                    other => ("InternalError", other.to_string()),
                };
                FunctionState {
                    state: "Failed",
                    last_update_status: "Failed",
                    reason: Some(message),
                    reason_code: Some(code),
                }
            }
            // Ready here, or not pulled on this node yet (it is at the first cold start).
            Some(PullStatus::Ready(_)) | None => FunctionState::ACTIVE,
        })
    }

    /// A function's 2.0 JSON with its state, for image functions.
    pub fn function_json(&self, f: &Function) -> Value {
        let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
        if let (Some(state), Some(o)) = (self.function_state(f), v.as_object_mut()) {
            state.apply(o);
        }
        v
    }

    /// The image an invocation of `f` runs: the one pulled on this node, else pulled now (a
    /// pull in progress is joined; a failed one is tried again).
    pub(crate) async fn image_for_spec(
        &self,
        f: &Function,
    ) -> Result<Option<Arc<ContainerImage>>, FcError> {
        let Some(req) = requested(f)? else {
            return Ok(None);
        };
        let store = self.image_store()?;
        if let Some(PullStatus::Ready(image)) = store.status(&req.reference) {
            return Ok(Some(container_image(image)));
        }
        let image = store
            .pull(&req.reference, req.creds.as_ref())
            .await
            .map_err(|e| image_error(&e))?;
        Ok(Some(container_image(image)))
    }

    /// Starts pulling, in the background, the images of `service`'s `custom-container`
    /// functions — run when another node tells of a write to the service, so a cold start here
    /// does not wait for the registry either, and a tag the write pulled anew there is pulled
    /// anew here (a pull of an image already unpacked costs one manifest request; a reference
    /// by digest that is here already costs nothing).
    pub(crate) async fn prefetch_images(&self, account: &str, service: &str) {
        let Some(store) = self.images.clone() else {
            return;
        };
        let query = fcd_store::ListQuery {
            prefix: None,
            from: None,
            limit: u32::MAX,
        };
        let Ok(functions) = self.store.list_functions(account, service, &query).await else {
            return;
        };
        for f in functions {
            let Ok(Some(req)) = requested(&f.function) else {
                continue;
            };
            match store.status(&req.reference) {
                Some(PullStatus::Pulling) => continue,
                Some(PullStatus::Ready(_)) if req.reference.contains("@sha256:") => continue,
                _ => {}
            }
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.pull(&req.reference, req.creds.as_ref()).await {
                    tracing::warn!(image = %req.reference, error = %e, "pulling an image ahead of its first call failed");
                }
            });
        }
    }

    /// Removes unpacked images that no function or version names and no instance runs.
    pub async fn collect_images_once(&self) -> Result<Vec<String>, FcError> {
        let Some(store) = self.images.clone() else {
            return Ok(Vec::new());
        };
        let referenced = self
            .store
            .referenced_images()
            .await
            .map_err(|e| crate::internal("list referenced images", e))?;
        let keep: HashSet<String> = referenced
            .iter()
            .flat_map(|r| store.digests_of(r))
            .collect();
        // Prewarmed jails of other images pin them; dropped first.
        self.runtime.keep_image_jails(&keep);
        tokio::task::spawn_blocking(move || store.collect(&keep))
            .await
            .map_err(|e| crate::internal("collecting images", e))
    }

    /// Runs [`Control::collect_images_once`] every `every`.
    pub async fn collect_images_forever(self: Arc<Control>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            match self.collect_images_once().await {
                Ok(removed) if removed.is_empty() => {}
                Ok(removed) => tracing::info!(
                    images = removed.len(),
                    "removed unpacked images no function names"
                ),
                Err(e) => tracing::warn!(error = %e, "collecting images failed; retrying later"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn function(extra: Value) -> Function {
        let mut v = json!({
            "functionId": "f-1", "functionName": "fn", "description": "",
            "runtime": "custom-container", "handler": "", "timeout": 30, "memorySize": 128,
            "instanceConcurrency": 1, "environmentVariables": {}, "initializer": "",
            "initializationTimeout": 3, "caPort": 9000, "instanceType": "e1", "layers": [],
            "layersArnV2": [], "codeChecksum": "0", "codeSize": 0,
            "createdTime": "2024-01-01T00:00:00Z", "lastModifiedTime": "2024-01-01T00:00:00Z",
        });
        if let (Some(base), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            base.extend(more.clone());
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_image_and_its_credentials_come_from_the_config() {
        assert!(
            requested(&function(json!({"runtime": "custom"})))
                .unwrap()
                .is_none()
        );
        let err = requested(&function(json!({}))).unwrap_err();
        assert!(
            err.to_string().contains("customContainerConfig.image"),
            "{err}"
        );
        let r = requested(&function(json!({"customContainerConfig": {
            "image": " 127.0.0.1:5000/echo:v1 ",
            "registryConfig": {"authConfig": {"userName": "u", "password": "p"}},
        }})))
        .unwrap()
        .unwrap();
        assert_eq!(r.reference, "127.0.0.1:5000/echo:v1");
        let c = r.creds.unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
    }

    #[test]
    fn pull_errors_name_their_cause_in_the_code() {
        let e = image_error(&ImageError::Unauthorized("no".into()));
        assert_eq!(e.code(), "ImageAccessDenied");
        assert_eq!(e.http_status(), 400);
        assert_eq!(
            image_error(&ImageError::NotFound("x".into())).code(),
            "ImageNotFound"
        );
    }

    #[test]
    fn state_fields_replace_stored_ones() {
        let mut o = JsonObject::new();
        o.insert("stateReason".into(), "old".into());
        FunctionState::ACTIVE.apply(&mut o);
        assert_eq!(o["state"], json!("Active"));
        assert!(!o.contains_key("stateReason"));
        FunctionState {
            state: "Failed",
            last_update_status: "Failed",
            reason: Some("why".into()),
            reason_code: Some("ImageNotFound"),
        }
        .apply(&mut o);
        assert_eq!(o["lastUpdateStatusReasonCode"], json!("ImageNotFound"));
    }
}
