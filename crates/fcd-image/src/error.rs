//! `ImageError`: every way a pull can fail, each carrying a whole sentence for the user.
//!
//! The message of every variant names the image reference and the cause in plain words: it
//! reaches the function's owner as an FC error message (`stateReason`, an invoke's error), so
//! it must make sense without fcd's logs. The variant is what the caller maps to an FC error
//! code (`ImageNotFound`, `ImageAccessDenied` …).

/// Why an image could not be pulled or unpacked. Cheap to clone: pull outcomes are shared by
/// every waiter of a single-flight pull and kept for [`crate::ImageStore::status`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// Bad syntax, or no registry host (fcd has no default registry).
    #[error("{0}")]
    InvalidReference(String),
    /// The registry has no such repository, tag or manifest.
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials (or their absence).
    #[error("{0}")]
    Unauthorized(String),
    /// The registry could not be reached or stopped answering.
    #[error("{0}")]
    Unreachable(String),
    /// The image is not for linux/amd64.
    #[error("{0}")]
    WrongPlatform(String),
    /// A manifest or layer format fcd cannot unpack.
    #[error("{0}")]
    Unsupported(String),
    /// A digest mismatch, a broken archive, or an entry that would escape the image's root.
    #[error("{0}")]
    Corrupt(String),
    /// The image is larger than the cache may hold.
    #[error("{0}")]
    TooLarge(String),
    /// The local disk failed.
    #[error("{0}")]
    Io(String),
}

impl ImageError {
    /// The sentence for the user (the same as `Display`).
    pub fn message(&self) -> &str {
        match self {
            ImageError::InvalidReference(m)
            | ImageError::NotFound(m)
            | ImageError::Unauthorized(m)
            | ImageError::Unreachable(m)
            | ImageError::WrongPlatform(m)
            | ImageError::Unsupported(m)
            | ImageError::Corrupt(m)
            | ImageError::TooLarge(m)
            | ImageError::Io(m) => m,
        }
    }

    /// A local disk failure while handling `reference`.
    pub(crate) fn io(reference: &str, what: &str, e: &std::io::Error) -> ImageError {
        ImageError::Io(format!(
            "image {reference} could not be stored on this node: {what}: {e}"
        ))
    }
}
