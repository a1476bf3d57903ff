//! Container images for custom-container functions, without Docker: pulling OCI and Docker
//! images over the registry v2 (OCI distribution) API, choosing linux/amd64 from an index,
//! verifying every blob by its sha256 digest, unpacking layers once per image manifest digest,
//! and keeping unpacked images on disk under a size bound. Knows nothing about functions or
//! HTTP servers.
//!
//! Modules: [`reference`] (reference syntax), `auth` ([`Credentials`] and the auth file),
//! `registry` (the protocol through `oci-client`, and what its errors mean to a user),
//! `unpack` (layers onto a root file system), `store` ([`ImageStore`]: the cache, single
//! flight, statuses, collection), `error` ([`ImageError`]).

use std::path::PathBuf;
use std::sync::Arc;

mod auth;
mod error;
pub mod reference;
mod registry;
mod store;
mod unpack;

pub use auth::Credentials;
pub use error::ImageError;
pub use reference::ImageRef;
pub use store::ImageStore;

/// Where and how the node keeps images.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// `<data-dir>/images` unless `--image-cache-dir`.
    pub dir: PathBuf,
    /// Size bound of unpacked images (`--image-cache-max-mb`); also the largest one image
    /// may unpack to.
    pub max_bytes: u64,
    /// `host:port`, or `host` for every port of that host: reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Docker `config.json` with `auths` per registry (`--registry-auth-file`).
    pub auth_file: Option<PathBuf>,
}

/// An unpacked image on this node. Holding the `Arc` keeps it from being collected.
#[derive(Debug)]
pub struct Image {
    /// The reference it was first pulled as on this node.
    pub reference: String,
    /// `sha256:<hex>` of the image manifest (the linux/amd64 one of an index).
    pub digest: String,
    /// The unpacked root (read-only to instances).
    pub rootfs: PathBuf,
    pub config: ImageConfig,
    /// Bytes unpacked (regular files, each inode once).
    pub size: u64,
}

/// What fcd uses of the image config blob's `config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `K=V` split at the first `=`, in the image's order.
    pub env: Vec<(String, String)>,
    /// `""` if unset.
    pub working_dir: String,
    /// `""` if unset.
    pub user: String,
    /// TCP ports: `9000/tcp` -> 9000.
    pub exposed_ports: Vec<u16>,
}

/// The last outcome of pulling a reference on this node.
#[derive(Debug, Clone)]
pub enum PullStatus {
    Pulling,
    Ready(Arc<Image>),
    Failed(ImageError),
}

/// Installs rustls' ring provider as the process default for TLS (registries over HTTPS).
/// Idempotent: a provider already installed (by an earlier call or anyone else) stays.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
