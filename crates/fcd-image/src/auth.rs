//! Registry credentials: the `Credentials` type and the node's auth file (Docker's
//! `config.json` format, `--registry-auth-file`).
//!
//! Only `auths` is read: `{"auths": {"host:port": {"auth": base64("user:pass")}}}` or
//! `{"username": …, "password": …}` per registry. Keys may be written as URLs
//! (`https://index.docker.io/v1/`); they are reduced to `host[:port]`, and Docker Hub's names
//! all become `docker.io`. Entries without credentials (credential helpers, identity tokens)
//! are ignored.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::Engine;

use crate::ImageError;

/// A registry user name and password (FC 3.0 `registryConfig.authConfig`, or the auth file).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials per registry (`host[:port]`) from an auth file.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthFile {
    entries: HashMap<String, Credentials>,
}

#[derive(serde::Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl AuthFile {
    pub(crate) fn read(path: &Path) -> Result<AuthFile, ImageError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ImageError::Io(format!(
                "the registry auth file {} cannot be read: {e}",
                path.display()
            ))
        })?;
        AuthFile::parse(&text).map_err(|why| {
            ImageError::Io(format!(
                "the registry auth file {} is not valid: {why}",
                path.display()
            ))
        })
    }

    pub(crate) fn parse(text: &str) -> Result<AuthFile, String> {
        let config: ConfigJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut entries = HashMap::new();
        for (key, entry) in config.auths {
            let creds = match (&entry.auth, &entry.username, &entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|_| format!("the auth of '{key}' is not valid base64"))?;
                    let raw = String::from_utf8(raw)
                        .map_err(|_| format!("the auth of '{key}' is not UTF-8"))?;
                    let (username, password) = raw.split_once(':').ok_or_else(|| {
                        format!("the auth of '{key}' is not base64 of user:password")
                    })?;
                    Credentials {
                        username: username.to_owned(),
                        password: password.to_owned(),
                    }
                }
                (_, Some(username), Some(password)) => Credentials {
                    username: username.clone(),
                    password: password.clone(),
                },
                _ => continue,
            };
            entries.insert(registry_key(&key), creds);
        }
        Ok(AuthFile { entries })
    }

    /// The entry for `registry` (`host[:port]` of a reference).
    pub(crate) fn get(&self, registry: &str) -> Option<&Credentials> {
        self.entries.get(&registry_key(registry))
    }
}

/// `https://Host:5000/v1/` -> `host:5000`; Docker Hub's aliases -> `docker.io`.
fn registry_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_entry_forms_and_url_keys() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3:cret");
        let text = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{b64}"}},
                "https://Registry.Example.com/v1/": {{"username": "bob", "password": "pw"}},
                "https://index.docker.io/v1/": {{"auth": "{b64}"}},
                "helper.example.com": {{}}
            }}, "credsStore": "desktop"}}"#
        );
        let f = AuthFile::parse(&text).unwrap();
        let a = f.get("127.0.0.1:5000").unwrap();
        assert_eq!(a.username, "alice");
        // Only the first ':' separates: passwords may contain colons.
        assert_eq!(a.password, "s3:cret");
        assert_eq!(f.get("registry.example.com").unwrap().username, "bob");
        assert_eq!(f.get("docker.io").unwrap().username, "alice");
        assert!(f.get("helper.example.com").is_none());
        assert!(f.get("127.0.0.1:5001").is_none());
        assert!(!format!("{a:?}").contains("s3:cret"));
    }

    #[test]
    fn invalid_files_are_refused() {
        assert!(AuthFile::parse("not json").is_err());
        assert!(AuthFile::parse(r#"{"auths": {"h.x": {"auth": "%%%"}}}"#).is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("alice");
        assert!(
            AuthFile::parse(&format!(
                r#"{{"auths": {{"h.x": {{"auth": "{no_colon}"}}}}}}"#
            ))
            .is_err()
        );
        assert!(AuthFile::parse("{}").unwrap().get("h.x").is_none());
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = AuthFile::read(&dir.path().join("missing.json")).unwrap_err();
        assert!(
            matches!(e, ImageError::Io(ref m) if m.contains("cannot be read")),
            "{e:?}"
        );
    }
}
