//! Image references: `registry[:port]/repository[:tag][@sha256:<hex>]`, checked without IO.
//!
//! fcd has no default registry, so the first path component must be a registry host — as
//! Docker tells one: it contains a `.` or a `:`, or is `localhost`. `alpine` or
//! `library/alpine` are refused rather than silently sent to Docker Hub. Without tag or digest
//! the tag is `latest`; with both, the digest decides what is pulled.

use std::fmt;

use crate::ImageError;

/// The form every refusal names.
const EXPECTED: &str = "expected registry[:port]/repository[:tag] or registry[:port]/repository@sha256:<64 hex digits>";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host` or `host:port`, as written (host lower-cased).
    pub registry: String,
    /// The repository path inside the registry, e.g. `team/echo`.
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// The host without its port.
    pub fn host(&self) -> &str {
        split_port(&self.registry).0
    }

    /// What the registry is asked for: the digest if given, else the tag.
    pub fn wanted(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone(),
                digest.clone(),
            ),
            (_, Some(digest)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.clone(),
            ),
            (tag, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".to_owned()),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `host[:port]` split into host and port (the port `None` when absent).
pub(crate) fn split_port(registry: &str) -> (&str, Option<&str>) {
    match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    }
}

/// Parses `reference`; see the module docs.
pub fn parse(reference: &str) -> Result<ImageRef, ImageError> {
    let bad = |why: &str| {
        ImageError::InvalidReference(format!(
            "image reference '{reference}' is not valid: {why}; {EXPECTED}"
        ))
    };
    if reference.is_empty() {
        return Err(bad("it is empty"));
    }
    if reference.len() > 512 {
        return Err(bad("it is longer than 512 characters"));
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("it contains white space"));
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => {
            let hex = digest
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("the digest must start with sha256:"))?;
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(bad(
                    "the digest must be sha256: and 64 lower-case hex digits",
                ));
            }
            (name, Some(digest.to_owned()))
        }
        None => (reference, None),
    };
    let (registry, rest) = name
        .split_once('/')
        .ok_or_else(|| bad("it names no registry host (fcd has no default registry)"))?;
    if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
        return Err(bad(&format!(
            "'{registry}' is not a registry host (fcd has no default registry; a host has a '.' or a port, or is localhost)"
        )));
    }
    let (host, port) = split_port(registry);
    if host.is_empty()
        || host.starts_with('-')
        || host.starts_with('.')
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(bad(&format!("'{registry}' is not a valid registry host")));
    }
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().map_or(true, |p| p == 0))
    {
        return Err(bad(&format!("'{port}' is not a valid port")));
    }
    // A tag is after the last ':' that follows the last '/'.
    let (repository, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (rest, None),
    };
    if repository.is_empty() {
        return Err(bad("the repository is empty"));
    }
    if repository.len() > 255 {
        return Err(bad("the repository is longer than 255 characters"));
    }
    for component in repository.split('/') {
        if !valid_component(component) {
            return Err(bad(&format!(
                "'{component}' is not a valid repository component (lower-case letters, digits, and . _ - between them)"
            )));
        }
    }
    if let Some(tag) = tag
        && !valid_tag(tag)
    {
        return Err(bad(&format!(
            "'{tag}' is not a valid tag (up to 128 letters, digits, _ . -; not starting with . or -)"
        )));
    }
    let tag = match (tag, &digest) {
        (Some(tag), _) => Some(tag.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    };
    let registry = registry.to_ascii_lowercase();
    // Docker Hub's official images live under library/ (docker.io/alpine is library/alpine).
    let repository = if registry == "docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_owned()
    };
    Ok(ImageRef {
        registry,
        repository,
        tag,
        digest,
    })
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(|&x| alnum(x))
        && b.last().is_some_and(|&x| alnum(x))
        && b.iter()
            .all(|&x| alnum(x) || x == b'.' || x == b'_' || x == b'-')
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.first()
            .is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn host_port_repo_tag() {
        let r = parse("127.0.0.1:5000/team/echo:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(r.repository, "team/echo");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/echo:v1");
    }

    #[test]
    fn default_tag_is_latest() {
        let r = parse("registry.example.com/echo").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.wanted(), "latest");
        let r = parse("localhost/echo").unwrap();
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn digest_references() {
        let r = parse(&format!("localhost:5000/echo@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(&*format!("sha256:{HEX}")));
        assert_eq!(r.wanted(), format!("sha256:{HEX}"));
        let r = parse(&format!("localhost:5000/echo:v1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.digest.is_some());
        assert!(parse("localhost:5000/echo@sha256:abc").is_err());
        assert!(parse(&format!("localhost:5000/echo@md5:{HEX}")).is_err());
        assert!(
            parse(&format!(
                "localhost:5000/echo@sha256:{}",
                HEX.to_uppercase()
            ))
            .is_err()
        );
    }

    #[test]
    fn no_host_is_refused() {
        for r in ["alpine", "alpine:3", "library/alpine", "team/echo:v1"] {
            match parse(r) {
                Err(ImageError::InvalidReference(m)) => {
                    assert!(m.contains("no default registry"), "{m}");
                    assert!(m.contains("registry[:port]/repository"), "{m}");
                }
                other => panic!("{r}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_syntax_is_refused() {
        for r in [
            "",
            "localhost:5000/",
            "localhost:5000/Echo",
            "localhost:5000/echo:",
            "localhost:5000/echo:-v",
            "localhost:abc/echo",
            "localhost:0/echo",
            "localhost:99999/echo",
            "local_host.x/echo",
            "localhost:5000/echo v1",
            "localhost:5000//echo",
            "localhost:5000/echo/",
        ] {
            assert!(
                matches!(parse(r), Err(ImageError::InvalidReference(_))),
                "{r:?} was accepted"
            );
        }
    }

    #[test]
    fn docker_hub_official_images() {
        let r = parse("docker.io/alpine:3").unwrap();
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(parse("docker.io/team/app").unwrap().repository, "team/app");
    }

    #[test]
    fn port_in_host_is_not_a_tag() {
        let r = parse("localhost:5000/echo").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.tag.as_deref(), Some("latest"));
    }
}
