//! Tags: key/value labels on resources, FC's limits on them, and the resource ARNs that name
//! what is tagged.
//!
//! FC 2.0 tags services (`acs:fc:{region}:{account}:services/{name}`); FC 3.0 tags functions
//! (`acs:fc:{region}:{account}:functions/{name}`, `name` being `F` or `svc$fn`, see
//! [`crate::fc3`]). Both kinds are kept in one table keyed by the ARN string, so a tag written
//! through one API is the same tag whichever reads it. fcd stores and returns tags; it does
//! not yet use them in authorization conditions.
//!
//! Limits are FC's published ones for both API versions: at most 20 tags per resource; a key
//! is 1–64 characters and does not start with `aliyun` or `acs:`; a value is at most 128
//! characters; neither contains `http://` or `https://`.

use std::borrow::Cow;

use crate::FcError;
use crate::fc3::{Fc3Function, function_arn};

/// Most tags one resource carries.
pub const TAGS_PER_RESOURCE_MAX: usize = 20;
/// Longest tag key, in characters.
pub const TAG_KEY_MAX: usize = 64;
/// Longest tag value, in characters.
pub const TAG_VALUE_MAX: usize = 128;

/// A resource tags can be attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tagged {
    /// An FC 2.0 service (never a hidden one: its name passes the 2.0 grammar).
    Service(String),
    /// An FC 3.0 function: native `F` or the 2.0 function `svc$fn`.
    Function(Fc3Function),
}

impl Tagged {
    /// The resource an ARN names. The ARN must be of this server's region and of `account`
    /// (the caller's): a tag request cannot reach another account's resources. A partial ARN,
    /// `services/<name>` or `functions/<name>`, is the caller's in this region (the classic
    /// SDKs document "either full ARN or partial ARN").
    pub fn parse_arn(arn: &str, region: &str, account: &str) -> Result<Tagged, FcError> {
        let invalid = |why: &str| {
            FcError::invalid(format!(
                "resourceArn '{arn}' is not valid: {why} (expected acs:fc:{region}:{account}:services/<serviceName> or acs:fc:{region}:{account}:functions/<functionName>)"
            ))
        };
        if arn.starts_with("services/") || arn.starts_with("functions/") {
            return Tagged::parse_arn(&format!("acs:fc:{region}:{account}:{arn}"), region, account);
        }
        let mut parts = arn.splitn(5, ':');
        let (Some("acs"), Some("fc"), Some(r), Some(a), Some(rest)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid("not an FC resource ARN"));
        };
        if r != region {
            return Err(invalid(&format!("region '{r}' is not this server's")));
        }
        if a != account {
            return Err(invalid(&format!("account '{a}' is not the caller's")));
        }
        if let Some(name) = rest.strip_prefix("services/") {
            crate::names::check_service_name(name).map_err(|_| invalid("bad service name"))?;
            Ok(Tagged::Service(name.to_owned()))
        } else if let Some(name) = rest.strip_prefix("functions/") {
            Ok(Tagged::Function(Fc3Function::parse(name)?))
        } else {
            Err(invalid("not a service or function"))
        }
    }

    /// The canonical ARN (what the store keys tags by).
    pub fn arn(&self, region: &str, account: &str) -> String {
        match self {
            Tagged::Service(s) => format!("acs:fc:{region}:{account}:services/{s}"),
            Tagged::Function(f) => function_arn(region, account, &f.name()),
        }
    }

    /// The stored service the resource is, or lives in: tags go when it goes.
    pub fn service(&self) -> Cow<'_, str> {
        match self {
            Tagged::Service(s) => Cow::Borrowed(s),
            Tagged::Function(f) => f.service(),
        }
    }

    /// The stored function inside [`Self::service`], for a function.
    pub fn function(&self) -> Option<&str> {
        match self {
            Tagged::Service(_) => None,
            Tagged::Function(f) => Some(f.function()),
        }
    }
}

fn has_url(s: &str) -> bool {
    s.contains("http://") || s.contains("https://")
}

/// A tag key as FC allows it.
pub fn check_key(key: &str) -> Result<(), FcError> {
    let n = key.chars().count();
    if n == 0 || n > TAG_KEY_MAX {
        return Err(FcError::invalid(format!(
            "tag key '{key}' must be 1 to {TAG_KEY_MAX} characters long"
        )));
    }
    let lower = key.to_ascii_lowercase();
    if lower.starts_with("aliyun") || lower.starts_with("acs:") {
        return Err(FcError::invalid(format!(
            "tag key '{key}' must not start with 'aliyun' or 'acs:'"
        )));
    }
    if has_url(key) {
        return Err(FcError::invalid(format!(
            "tag key '{key}' must not contain http:// or https://"
        )));
    }
    Ok(())
}

/// A tag value as FC allows it (empty is allowed).
pub fn check_value(key: &str, value: &str) -> Result<(), FcError> {
    if value.chars().count() > TAG_VALUE_MAX {
        return Err(FcError::invalid(format!(
            "the value of tag '{key}' must be at most {TAG_VALUE_MAX} characters long"
        )));
    }
    if has_url(value) {
        return Err(FcError::invalid(format!(
            "the value of tag '{key}' must not contain http:// or https://"
        )));
    }
    Ok(())
}

/// The tags of one request: each valid, no key twice, and not more than a resource may carry
/// (the store checks the total with the tags already there). Whether none at all is an error
/// is the operation's to say.
pub fn check_tags(tags: &[(String, String)]) -> Result<(), FcError> {
    if tags.len() > TAGS_PER_RESOURCE_MAX {
        return Err(FcError::invalid(format!(
            "too many tags: a resource carries at most {TAGS_PER_RESOURCE_MAX}"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, v) in tags {
        check_key(k)?;
        check_value(k, v)?;
        if !seen.insert(k.as_str()) {
            return Err(FcError::invalid(format!("tag key '{k}' is given twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "cn-hangzhou";
    const A: &str = "123";

    #[test]
    fn arns_round_trip() {
        let s = Tagged::parse_arn("acs:fc:cn-hangzhou:123:services/svc", R, A).unwrap();
        assert_eq!(s, Tagged::Service("svc".into()));
        assert_eq!(s.arn(R, A), "acs:fc:cn-hangzhou:123:services/svc");
        assert_eq!((s.service().as_ref(), s.function()), ("svc", None));

        let f = Tagged::parse_arn("acs:fc:cn-hangzhou:123:functions/svc$fn", R, A).unwrap();
        assert_eq!(f.arn(R, A), "acs:fc:cn-hangzhou:123:functions/svc$fn");
        assert_eq!((f.service().as_ref(), f.function()), ("svc", Some("fn")));

        let n = Tagged::parse_arn("acs:fc:cn-hangzhou:123:functions/F", R, A).unwrap();
        assert_eq!((n.service().as_ref(), n.function()), ("~F", Some("F")));
    }

    #[test]
    fn foreign_or_malformed_arns_are_refused() {
        let partial = Tagged::parse_arn("services/svc", R, A).unwrap();
        assert_eq!(partial.arn(R, A), "acs:fc:cn-hangzhou:123:services/svc");
        for bad in [
            "",
            "svc",
            "services/~F",
            "acs:fc:cn-beijing:123:services/svc",
            "acs:fc:cn-hangzhou:999:services/svc",
            "acs:oss:cn-hangzhou:123:services/svc",
            "acs:fc:cn-hangzhou:123:services/~F",
            "acs:fc:cn-hangzhou:123:services/",
            "acs:fc:cn-hangzhou:123:services/a/functions/f",
            "acs:fc:cn-hangzhou:123:functions/a.b",
            "acs:fc:cn-hangzhou:123:layers/l",
        ] {
            let e = Tagged::parse_arn(bad, R, A).unwrap_err();
            assert_eq!(e.code(), "InvalidArgument", "{bad}");
        }
    }

    #[test]
    fn key_and_value_limits() {
        let t = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(check_tags(&t("env", "")).is_ok());
        assert!(check_tags(&t(&"k".repeat(64), &"v".repeat(128))).is_ok());
        assert!(check_tags(&t("键", "值")).is_ok(), "characters, not bytes");
        for (k, v) in [
            ("", "v"),
            (&"k".repeat(65) as &str, "v"),
            ("aliyun-x", "v"),
            ("Aliyun", "v"),
            ("acs:x", "v"),
            ("a http://x", "v"),
            ("k", &"v".repeat(129) as &str),
            ("k", "see https://x"),
        ] {
            assert!(check_tags(&t(k, v)).is_err(), "{k}={v}");
        }
        assert!(check_tags(&[]).is_ok());
        let dup = vec![("a".into(), "1".into()), ("a".into(), "2".into())];
        assert!(check_tags(&dup).is_err());
        let many: Vec<_> = (0..21).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_tags(&many).is_err());
        assert!(check_tags(&many[..20]).is_ok());
    }
}
