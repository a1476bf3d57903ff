//! The server's access key and account: from `FCD_*` environment variables, else from the data
//! dir, else generated on first start, saved (mode 0600) and printed once — like MinIO.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) access_key_secret: String,
    pub(crate) account_id: String,
}

/// The secret never appears in logs or panics.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

const FILE: &str = "credentials.json";

fn random_string(alphabet: &[u8], len: usize) -> anyhow::Result<String> {
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        for b in buf.iter().map(|b| *b as usize).filter(|b| *b < limit) {
            if out.len() == len {
                break;
            }
            out.push(alphabet[b % alphabet.len()] as char);
        }
    }
    Ok(out)
}

fn generate() -> anyhow::Result<Credentials> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let first = random_string(b"123456789", 1)?;
    Ok(Credentials {
        access_key_id: format!("LTAI{}", random_string(UPPER, 20)?),
        access_key_secret: random_string(ALNUM, 30)?,
        account_id: format!("{first}{}", random_string(b"0123456789", 15)?),
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The credentials a server with this data dir uses, for a client command: the `FCD_*`
/// variables over `credentials.json`; nothing is generated.
pub(crate) fn read(data_dir: &Path) -> anyhow::Result<Credentials> {
    let path = data_dir.join(FILE);
    let mut creds = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?
    } else {
        Credentials {
            access_key_id: String::new(),
            access_key_secret: String::new(),
            account_id: String::new(),
        }
    };
    if let Some(v) = env("FCD_ACCESS_KEY_ID") {
        creds.access_key_id = v;
    }
    if let Some(v) = env("FCD_ACCESS_KEY_SECRET") {
        creds.access_key_secret = v;
    }
    if creds.access_key_id.is_empty() || creds.access_key_secret.is_empty() {
        anyhow::bail!(
            "no account credentials: set FCD_ACCESS_KEY_ID and FCD_ACCESS_KEY_SECRET, or --data-dir to the server's data dir ({} not found)",
            path.display()
        );
    }
    Ok(creds)
}

/// Loads or creates the credentials. Returns them and whether they were just generated.
pub(crate) fn load(data_dir: &Path) -> anyhow::Result<(Credentials, bool)> {
    let path = data_dir.join(FILE);
    let (mut creds, generated) = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let c: Credentials = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid", path.display()))?;
        (c, false)
    } else if env("FCD_ACCESS_KEY_ID").is_some() && env("FCD_ACCESS_KEY_SECRET").is_some() {
        // Fully configured from the environment: nothing to remember.
        (generate()?, false)
    } else {
        let c = generate()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(serde_json::to_string_pretty(&c)?.as_bytes())?;
        f.sync_all()?;
        (c, true)
    };
    if let Some(v) = env("FCD_ACCESS_KEY_ID") {
        creds.access_key_id = v;
    }
    if let Some(v) = env("FCD_ACCESS_KEY_SECRET") {
        creds.access_key_secret = v;
    }
    if let Some(v) = env("FCD_ACCOUNT_ID") {
        creds.account_id = v;
    }
    Ok((creds, generated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_look_like_alibaba_cloud_ones() {
        let c = generate().unwrap();
        assert!(c.access_key_id.starts_with("LTAI") && c.access_key_id.len() == 24);
        assert_eq!(c.access_key_secret.len(), 30);
        assert_eq!(c.account_id.len(), 16);
        assert!(c.account_id.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(generate().unwrap().access_key_secret, c.access_key_secret);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let c = generate().unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(&c.access_key_secret), "{shown}");
        assert!(shown.contains(&c.access_key_id), "{shown}");
    }
}
