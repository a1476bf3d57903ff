//! Talking to registries: one `oci-client` per (registry, credentials), resolving a reference
//! to the linux/amd64 image manifest, the image config, verified blob downloads, and turning
//! what the registry or the network said into an [`ImageError`] a user can act on.
//!
//! `oci-client` does the distribution protocol (the `/v2/` challenge, Docker's Bearer-token
//! flow or Basic credentials, manifests and indexes of both OCI and Docker media types,
//! blobs). A client remembers the first credentials it was used with per registry, so
//! clients are kept per (registry, credentials), never shared across credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::reference::split_port;
use crate::{Credentials, ImageConfig, ImageError, ImageRef};

/// Image config media types (OCI and Docker).
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The largest image config fcd reads (real ones are a few KiB).
const CONFIG_MAX: i64 = 4 * 1024 * 1024;

/// Clients kept at most (one per registry and credentials).
const MAX_CLIENTS: usize = 256;

/// Clients per registry and credentials, and which registries are plain HTTP.
pub(crate) struct Registries {
    insecure: Vec<String>,
    clients: Mutex<HashMap<(String, Option<Credentials>), Client>>,
}

/// A reference resolved to one image manifest.
pub(crate) struct Resolved {
    /// `sha256:<hex>` of the image manifest (the linux/amd64 one of an index).
    pub(crate) digest: String,
    pub(crate) manifest: OciImageManifest,
}

/// Who is pulling what: the pieces every message needs.
pub(crate) struct Pull<'a> {
    pub(crate) shown: &'a str,
    pub(crate) image: &'a ImageRef,
    pub(crate) oci: oci_client::Reference,
    pub(crate) auth: RegistryAuth,
    pub(crate) client: Client,
    pub(crate) insecure: bool,
}

impl Registries {
    pub(crate) fn new(insecure: &[String]) -> Registries {
        let insecure = insecure
            .iter()
            .map(|e| {
                let e = e.trim();
                let e = e
                    .strip_prefix("http://")
                    .or_else(|| e.strip_prefix("https://"))
                    .unwrap_or(e);
                e.trim_end_matches('/').to_ascii_lowercase()
            })
            .filter(|e| !e.is_empty())
            .collect();
        Registries {
            insecure,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `registry` (`host[:port]`) is reached over plain HTTP: an entry `host:port`
    /// matches that port, an entry `host` every port of the host.
    pub(crate) fn is_insecure(&self, registry: &str) -> bool {
        let registry = registry.to_ascii_lowercase();
        let host = split_port(&registry).0;
        self.insecure.iter().any(|e| {
            if split_port(e).1.is_some() {
                *e == registry
            } else {
                e == host
            }
        })
    }

    pub(crate) fn pull<'a>(
        &self,
        shown: &'a str,
        image: &'a ImageRef,
        creds: Option<&Credentials>,
    ) -> Result<Pull<'a>, ImageError> {
        let insecure = self.is_insecure(&image.registry);
        let key = (image.registry.clone(), creds.cloned());
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let client = match clients.get(&key) {
            Some(c) => c.clone(),
            None => {
                let config = ClientConfig {
                    protocol: if insecure {
                        ClientProtocol::Http
                    } else {
                        ClientProtocol::Https
                    },
                    // fcd chooses from indexes itself, to say what an index offers instead.
                    platform_resolver: None,
                    connect_timeout: Some(Duration::from_secs(10)),
                    read_timeout: Some(Duration::from_secs(60)),
                    ..ClientConfig::default()
                };
                let client = Client::try_from(config).map_err(|e| {
                    ImageError::Unreachable(format!(
                        "image {shown} cannot be pulled: no HTTP client for registry {}: {e}",
                        image.registry
                    ))
                })?;
                // Every distinct password makes a client; a node sees few, but never let
                // them pile up (dropping them only costs a new TLS handshake and token).
                if clients.len() >= MAX_CLIENTS {
                    clients.clear();
                }
                clients.insert(key, client.clone());
                client
            }
        };
        Ok(Pull {
            shown,
            image,
            oci: image.to_oci(),
            auth: match creds {
                Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
                None => RegistryAuth::Anonymous,
            },
            client,
            insecure,
        })
    }
}

/// What was being fetched when something failed, for the message.
#[derive(Clone, Copy)]
enum Fetching<'a> {
    Auth,
    Manifest(&'a str),
    Blob(&'a str),
}

impl Pull<'_> {
    /// Resolves the reference to the linux/amd64 image manifest and its digest.
    pub(crate) async fn resolve(&self) -> Result<Resolved, ImageError> {
        // The /v2/ challenge first: it says whether the registry can be reached at all, and
        // gets a Bearer token when the registry uses them.
        self.client
            .auth(&self.oci, &self.auth, RegistryOperation::Pull)
            .await
            .map_err(|e| self.map(e, Fetching::Auth))?;
        let wanted = self.image.wanted();
        let (manifest, digest) = self
            .client
            .pull_manifest(&self.oci, &self.auth)
            .await
            .map_err(|e| self.map(e, Fetching::Manifest(wanted)))?;
        match manifest {
            OciManifest::Image(manifest) => Ok(Resolved { digest, manifest }),
            OciManifest::ImageIndex(index) => {
                let chosen = index.manifests.iter().find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        p.os.to_string() == "linux" && p.architecture.to_string() == "amd64"
                    })
                });
                let Some(chosen) = chosen else {
                    let mut has: Vec<String> = index
                        .manifests
                        .iter()
                        .filter_map(|m| m.platform.as_ref())
                        // buildx's attestation manifests say unknown/unknown: not a platform.
                        .filter(|p| p.os.to_string() != "unknown")
                        .map(|p| match &p.variant {
                            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                            None => format!("{}/{}", p.os, p.architecture),
                        })
                        .collect();
                    has.sort();
                    has.dedup();
                    let has = if has.is_empty() {
                        "no platform at all".to_owned()
                    } else {
                        has.join(", ")
                    };
                    return Err(ImageError::WrongPlatform(format!(
                        "image {} has no linux/amd64 variant, which fcd needs; it has {has}",
                        self.shown
                    )));
                };
                let child = self.oci.clone_with_digest(chosen.digest.clone());
                let (manifest, digest) = self
                    .client
                    .pull_manifest(&child, &self.auth)
                    .await
                    .map_err(|e| self.map(e, Fetching::Manifest(&chosen.digest)))?;
                match manifest {
                    OciManifest::Image(manifest) => Ok(Resolved { digest, manifest }),
                    OciManifest::ImageIndex(_) => Err(ImageError::Unsupported(format!(
                        "image {} cannot be used: its linux/amd64 entry is another index, not an image",
                        self.shown
                    ))),
                }
            }
        }
    }

    /// Fetches and checks the image config: a container image, for linux/amd64.
    pub(crate) async fn config(
        &self,
        manifest: &OciImageManifest,
    ) -> Result<ImageConfig, ImageError> {
        let desc = &manifest.config;
        if !CONFIG_TYPES.contains(&desc.media_type.as_str()) {
            return Err(ImageError::Unsupported(format!(
                "image {} is not a container image: its config has media type {}",
                self.shown, desc.media_type
            )));
        }
        if desc.size > CONFIG_MAX {
            return Err(ImageError::TooLarge(format!(
                "image {} has a config of {} bytes, more than fcd reads",
                self.shown, desc.size
            )));
        }
        let mut raw = Vec::new();
        self.client
            .pull_blob(&self.oci, desc, &mut raw)
            .await
            .map_err(|e| self.map(e, Fetching::Blob(&desc.digest)))?;
        let parsed: ConfigBlob = serde_json::from_slice(&raw).map_err(|e| {
            ImageError::Corrupt(format!(
                "image {} cannot be used: its config is not valid JSON: {e}",
                self.shown
            ))
        })?;
        if parsed.os != "linux" || parsed.architecture != "amd64" {
            let what = match parsed.variant.as_deref() {
                Some(v) if !v.is_empty() => format!("{}/{}/{v}", parsed.os, parsed.architecture),
                _ => format!("{}/{}", parsed.os, parsed.architecture),
            };
            return Err(ImageError::WrongPlatform(format!(
                "image {} is built for {what}; fcd runs linux/amd64 images",
                self.shown
            )));
        }
        Ok(parsed.config.unwrap_or_default().into_config())
    }

    /// Downloads blob `desc` into `out`, verifying its size and sha256 digest as it streams.
    pub(crate) async fn download(
        &self,
        desc: &OciDescriptor,
        out: &mut tokio::fs::File,
    ) -> Result<(), ImageError> {
        let expected = desc.digest.strip_prefix("sha256:").ok_or_else(|| {
            ImageError::Unsupported(format!(
                "image {} cannot be used: layer digest {} is not sha256",
                self.shown, desc.digest
            ))
        })?;
        let mut stream = self
            .client
            .pull_blob_stream(&self.oci, desc)
            .await
            .map_err(|e| self.map(e, Fetching::Blob(&desc.digest)))?;
        let mut hasher = Sha256::new();
        let mut got: u64 = 0;
        let declared = u64::try_from(desc.size).unwrap_or(0);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_error(&desc.digest, &e))?;
            got += chunk.len() as u64;
            if got > declared {
                return Err(ImageError::Corrupt(format!(
                    "image {} cannot be used: layer {} is larger than the {declared} bytes its manifest says",
                    self.shown, desc.digest
                )));
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| ImageError::io(self.shown, "writing a downloaded layer", &e))?;
        }
        out.flush()
            .await
            .map_err(|e| ImageError::io(self.shown, "writing a downloaded layer", &e))?;
        let actual = hex::encode(hasher.finalize());
        if got != declared || actual != expected {
            return Err(ImageError::Corrupt(format!(
                "image {} cannot be used: layer {} arrived with digest sha256:{actual} ({got} bytes), not the one its manifest names",
                self.shown, desc.digest
            )));
        }
        Ok(())
    }

    fn stream_error(&self, digest: &str, e: &std::io::Error) -> ImageError {
        // oci-client's verifying stream reports a digest mismatch as an io::Error around a
        // DigestError (fcd checks the digest itself as well, in `download`).
        let mismatch = e
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<DigestError>().is_some());
        if mismatch {
            ImageError::Corrupt(format!(
                "image {} cannot be used: layer {digest} does not match its digest: {e}",
                self.shown
            ))
        } else {
            ImageError::Unreachable(format!(
                "image {} cannot be pulled: the download of layer {digest} from registry {} broke off: {}",
                self.shown,
                self.image.registry,
                root_cause(e)
            ))
        }
    }

    /// The user's sentence for what oci-client reported.
    fn map(&self, e: OciDistributionError, fetching: Fetching<'_>) -> ImageError {
        let shown = self.shown;
        let registry = &self.image.registry;
        let repo = &self.image.repository;
        let not_found =
            |what: String| ImageError::NotFound(format!("image {shown} was not found: {what}"));
        let missing = || match fetching {
            Fetching::Manifest(w) if w.starts_with("sha256:") => {
                format!("the registry has no manifest {w} in repository {repo}")
            }
            Fetching::Manifest(w) => format!("the registry has no tag {w} in repository {repo}"),
            Fetching::Blob(d) => format!("the registry has lost blob {d} of repository {repo}"),
            Fetching::Auth => format!("registry {registry} answered 404 to its API root"),
        };
        let unauthorized = |detail: &str| {
            let who = match &self.auth {
                RegistryAuth::Basic(user, _) => {
                    format!("the credentials of user {user} were refused")
                }
                _ => {
                    "no credentials were given (registryConfig, or the node's --registry-auth-file; \
                     registries also answer so for a repository that does not exist)"
                        .to_owned()
                }
            };
            ImageError::Unauthorized(format!(
                "image {shown} cannot be pulled: registry {registry} denied access to repository {repo}: {who}{detail}"
            ))
        };
        match e {
            OciDistributionError::RegistryError { envelope, .. } => {
                let first = envelope.errors.first();
                let message = first.map(|e| e.message.clone()).unwrap_or_default();
                match first.map(|e| &e.code) {
                    Some(OciErrorCode::NameUnknown) => {
                        not_found(format!("the registry has no repository {repo}"))
                    }
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::ManifestBlobUnknown,
                    ) => not_found(missing()),
                    Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => {
                        unauthorized(&format!(" ({message})"))
                    }
                    Some(OciErrorCode::NameInvalid) => ImageError::InvalidReference(format!(
                        "image {shown} cannot be pulled: registry {registry} says the repository name {repo} is invalid"
                    )),
                    Some(OciErrorCode::Unsupported) => ImageError::Unsupported(format!(
                        "image {shown} cannot be pulled: registry {registry} does not support the request ({message})"
                    )),
                    Some(OciErrorCode::Toomanyrequests) => ImageError::Unreachable(format!(
                        "image {shown} cannot be pulled now: registry {registry} refused with too many requests ({message})"
                    )),
                    _ => ImageError::Unreachable(format!(
                        "image {shown} cannot be pulled: registry {registry} answered with an error: {envelope}"
                    )),
                }
            }
            OciDistributionError::UnauthorizedError { .. } => unauthorized(""),
            OciDistributionError::AuthenticationFailure(reason) => {
                let reason = reason.trim();
                unauthorized(&format!(
                    " (its token service said: {})",
                    if reason.is_empty() { "nothing" } else { reason }
                ))
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => not_found(missing()),
                401 | 403 => unauthorized(&format!(" (HTTP {code})")),
                _ => ImageError::Unreachable(format!(
                    "image {shown} cannot be pulled: registry {registry} answered HTTP {code}{}",
                    if message.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", message.trim().chars().take(200).collect::<String>())
                    }
                )),
            },
            OciDistributionError::RequestError(e) => {
                let cause = root_cause(&e);
                let tls_hint = if !self.insecure
                    && (cause.contains("InvalidContentType")
                        || cause.to_ascii_lowercase().contains("corrupt message")
                        || cause.to_ascii_lowercase().contains("tls"))
                {
                    format!(
                        " (if it serves plain HTTP, start fcd with --insecure-registry {registry})"
                    )
                } else {
                    String::new()
                };
                if e.is_timeout() {
                    ImageError::Unreachable(format!(
                        "image {shown} cannot be pulled: registry {registry} did not answer in time"
                    ))
                } else {
                    ImageError::Unreachable(format!(
                        "image {shown} cannot be pulled: registry {registry} cannot be reached: {cause}{tls_hint}"
                    ))
                }
            }
            OciDistributionError::DigestError(e) => ImageError::Corrupt(format!(
                "image {shown} cannot be used: what registry {registry} sent does not match its digest: {e}"
            )),
            OciDistributionError::UnsupportedSchemaVersionError(v) => {
                ImageError::Unsupported(format!(
                    "image {shown} cannot be used: its manifest has schema version {v}; push it again with a current docker or buildah (schema 2 or OCI)"
                ))
            }
            OciDistributionError::UnsupportedMediaTypeError(t) => ImageError::Unsupported(format!(
                "image {shown} cannot be used: its manifest has media type {t}, not an image manifest or index"
            )),
            OciDistributionError::ManifestParsingError(m)
            | OciDistributionError::VersionedParsingError(m) => ImageError::Unsupported(format!(
                "image {shown} cannot be used: its manifest cannot be read: {m}"
            )),
            OciDistributionError::RegistryTokenDecodeError(m) => ImageError::Unauthorized(format!(
                "image {shown} cannot be pulled: the token service of registry {registry} sent a token fcd cannot read: {m}"
            )),
            OciDistributionError::IoError(e) => ImageError::io(shown, "downloading", &e),
            other => ImageError::Unreachable(format!(
                "image {shown} cannot be pulled from registry {registry}: {other}"
            )),
        }
    }
}

/// The innermost cause of an error: the words that say what happened ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let words = cur.to_string();
    // "Connection refused (os error 111)": the number says nothing more to a user.
    match words.rfind(" (os error ") {
        Some(i) if words.ends_with(')') => words[..i].to_owned(),
        _ => words,
    }
}

/// The parts of an image config blob fcd reads.
#[derive(serde::Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<ConfigSection>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConfigSection {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    exposed_ports: Option<HashMap<String, serde_json::Value>>,
}

impl ConfigSection {
    fn into_config(self) -> ImageConfig {
        let env = self
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv, String::new()),
            })
            .collect();
        let mut exposed_ports: Vec<u16> = self
            .exposed_ports
            .unwrap_or_default()
            .keys()
            .filter_map(|p| match p.split_once('/') {
                Some((port, "tcp")) => port.parse().ok(),
                Some(_) => None,
                None => p.parse().ok(),
            })
            .collect();
        exposed_ports.sort_unstable();
        exposed_ports.dedup();
        ImageConfig {
            entrypoint: self.entrypoint.unwrap_or_default(),
            cmd: self.cmd.unwrap_or_default(),
            env,
            working_dir: self.working_dir.unwrap_or_default(),
            user: self.user.unwrap_or_default(),
            exposed_ports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_matching() {
        let r = Registries::new(&[
            "127.0.0.1:5000".to_owned(),
            "Registry.Local".to_owned(),
            "http://other.local:81/".to_owned(),
        ]);
        assert!(r.is_insecure("127.0.0.1:5000"));
        assert!(!r.is_insecure("127.0.0.1:5001"));
        assert!(!r.is_insecure("127.0.0.1"));
        assert!(r.is_insecure("registry.local"));
        assert!(r.is_insecure("registry.local:5000"));
        assert!(r.is_insecure("REGISTRY.local:1"));
        assert!(r.is_insecure("other.local:81"));
        assert!(!r.is_insecure("other.local"));
        assert!(!r.is_insecure("registry.local.evil"));
    }

    #[test]
    fn config_fields() {
        let blob: ConfigBlob = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{
                "Entrypoint":["/app"],"Cmd":["--port","9000"],
                "Env":["PATH=/usr/bin","EMPTY=","ODD","EQ=a=b"],
                "WorkingDir":"/srv","User":"1000:1000",
                "ExposedPorts":{"9000/tcp":{},"53/udp":{},"8080":{},"9000":{}}}}"#,
        )
        .unwrap();
        let c = blob.config.unwrap().into_config();
        assert_eq!(c.entrypoint, ["/app"]);
        assert_eq!(c.cmd, ["--port", "9000"]);
        assert_eq!(
            c.env,
            [
                ("PATH".to_owned(), "/usr/bin".to_owned()),
                ("EMPTY".to_owned(), String::new()),
                ("ODD".to_owned(), String::new()),
                ("EQ".to_owned(), "a=b".to_owned()),
            ]
        );
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, "1000:1000");
        assert_eq!(c.exposed_ports, [8080, 9000]);
        let bare: ConfigBlob =
            serde_json::from_str(r#"{"architecture":"amd64","os":"linux"}"#).unwrap();
        assert_eq!(
            bare.config.unwrap_or_default().into_config(),
            ImageConfig::default()
        );
    }
}
