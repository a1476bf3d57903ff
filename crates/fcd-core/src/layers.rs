//! Layers: a layer version's record, layer names, and the ARNs that name a version.
//!
//! A layer version belongs to one account and is immutable once published; its number is never
//! reused (a deleted version stays as a tombstone in the store, which also keeps its package
//! for the functions that already run on it). Functions name the versions they use by ARN:
//! `acs:fc:{region}:{account}:layers/{name}/versions/{version}` (FC's `arnV2`, 3.0's
//! `layerVersionArn`), or the legacy 2.0 form `{prefix}#{name}#{version}` old deployments
//! carry, whose prefix names no account (it is taken to be the caller's).

use serde::{Deserialize, Serialize};

use crate::FcError;

/// Layers one function may use (FC's quota).
pub const LAYERS_PER_FUNCTION_MAX: usize = 5;

/// One published layer version, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerVersion {
    pub layer_name: String,
    pub version: u64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub compatible_runtime: Vec<String>,
    #[serde(default)]
    pub license: String,
    /// 0 private, 1 public (FC's `acl`; a layer's ACL applies to all its versions).
    #[serde(default)]
    pub acl: u8,
    /// CRC-64 of the zip, as FC's `codeChecksum`.
    pub code_checksum: String,
    pub code_size: u64,
    /// The package's address in the code store.
    pub code_digest: String,
    pub create_time: String,
}

/// Layer names follow the other resource names: 1 to 64 letters, digits, `_` and `-`, starting
/// with a letter or `_`.
pub fn check_layer_name(name: &str) -> Result<(), FcError> {
    let bytes = name.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_');
    let ok = first_ok
        && bytes.len() <= 64
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(FcError::invalid(format!(
            "layer name '{name}' is invalid: it must be 1 to 64 characters of letters, digits, '_' and '-', and start with a letter or '_'"
        )))
    }
}

/// A layer version's ARN (`arnV2`, `layerVersionArn`).
pub fn layer_version_arn(region: &str, account: &str, name: &str, version: u64) -> String {
    format!("acs:fc:{region}:{account}:layers/{name}/versions/{version}")
}

/// What an ARN in a function's `layers` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The owning account; `None` for the legacy `prefix#name#version` form.
    pub account: Option<String>,
    pub name: String,
    pub version: u64,
}

/// Reads a layer version ARN in either form FC accepts (see the module docs). The region of an
/// `acs:` ARN is not checked here: the caller compares it with its own.
pub fn parse_layer_arn(arn: &str) -> Result<(Option<String>, LayerRef), FcError> {
    let bad = || {
        FcError::invalid(format!(
            "layer '{arn}' is not a layer version ARN (acs:fc:<region>:<account>:layers/<name>/versions/<version>)"
        ))
    };
    let version_of = |v: &str| -> Result<u64, FcError> {
        if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        v.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(bad)
    };
    if let Some(rest) = arn.strip_prefix("acs:fc:") {
        let mut parts = rest.splitn(3, ':');
        let (Some(region), Some(account), Some(resource)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let Some((name, version)) = resource
            .strip_prefix("layers/")
            .and_then(|r| r.split_once("/versions/"))
        else {
            return Err(bad());
        };
        if account.is_empty() || check_layer_name(name).is_err() {
            return Err(bad());
        }
        return Ok((
            Some(region.to_owned()),
            LayerRef {
                account: Some(account.to_owned()),
                name: name.to_owned(),
                version: version_of(version)?,
            },
        ));
    }
    let parts: Vec<&str> = arn.split('#').collect();
    match parts.as_slice() {
        [_, name, version] if check_layer_name(name).is_ok() => Ok((
            None,
            LayerRef {
                account: None,
                name: (*name).to_owned(),
                version: version_of(version)?,
            },
        )),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_arn_forms() {
        let (region, r) =
            parse_layer_arn("acs:fc:cn-hangzhou:123:layers/my-lib/versions/7").unwrap();
        assert_eq!(region.as_deref(), Some("cn-hangzhou"));
        assert_eq!(
            r,
            LayerRef {
                account: Some("123".into()),
                name: "my-lib".into(),
                version: 7
            }
        );
        let (region, r) = parse_layer_arn("0a1b2c#my_lib#2").unwrap();
        assert_eq!(region, None);
        assert_eq!((r.account, r.name.as_str(), r.version), (None, "my_lib", 2));
        assert_eq!(
            layer_version_arn("cn-hangzhou", "123", "my-lib", 7),
            "acs:fc:cn-hangzhou:123:layers/my-lib/versions/7"
        );
    }

    #[test]
    fn refuses_what_names_no_version() {
        for bad in [
            "",
            "my-lib",
            "acs:fc:r:123:layers/my-lib",
            "acs:fc:r:123:layers/my-lib/versions/",
            "acs:fc:r:123:layers/my-lib/versions/0",
            "acs:fc:r:123:layers/my-lib/versions/x",
            "acs:fc:r:123:layers/a/b/versions/1",
            "acs:fc:r::layers/l/versions/1",
            "acs:fc:r:123:functions/f",
            "a#b",
            "a#1bad#1",
            "a#b#c#1",
            "a#b#-1",
        ] {
            assert!(parse_layer_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn layer_names() {
        for ok in ["a", "_x", "py-libs_2", &"l".repeat(64)] {
            check_layer_name(ok).unwrap();
        }
        for bad in ["", "1a", "-a", "a/b", "a.b", &"l".repeat(65)] {
            assert!(check_layer_name(bad).is_err(), "{bad}");
        }
    }
}
