//! Service versions (immutable snapshots) and aliases (named pointers to versions, optionally
//! splitting traffic with a second version), with their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FcError;
use crate::model::JsonObject;

/// What FC returns for a published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub version_id: String,
    pub description: String,
    pub created_time: String,
    pub last_modified_time: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    pub alias_name: String,
    pub version_id: String,
    pub description: String,
    pub additional_version_weight: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_policy: Option<JsonObject>,
    pub created_time: String,
    pub last_modified_time: String,
}

/// The body of CreateAlias / UpdateAlias.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasUpdate {
    pub alias_name: Option<String>,
    pub version_id: Option<String>,
    pub description: Option<String>,
    pub additional_version_weight: Option<BTreeMap<String, f64>>,
    pub resolve_policy: Option<String>,
    pub route_policy: Option<JsonObject>,
}

/// Alias names follow the other resource names (1 to 128 characters) and may not be `LATEST`.
pub fn check_alias_name(name: &str) -> Result<(), FcError> {
    if name == "LATEST" {
        return Err(FcError::invalid("alias name 'LATEST' is reserved"));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FcError::invalid(format!(
            "alias name '{name}' is invalid: it would be read as a version id"
        )));
    }
    crate::names::check_service_name(name)
        .map_err(|_| FcError::invalid(format!("alias name '{name}' is invalid: it must be 1 to 128 characters of letters, digits, '_' and '-', and start with a letter or '_'")))
}

/// A version id as FC writes it: a positive decimal integer. At most `i64::MAX`, the largest
/// the store can hold, so a crafted id never wraps when it is stored or compared.
pub fn parse_version_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|v| *v > 0).map(|v| v as u64)
}

impl Alias {
    pub fn create(name: String, u: AliasUpdate, now: String) -> Result<Alias, FcError> {
        check_alias_name(&name)?;
        let version_id = u
            .version_id
            .clone()
            .ok_or_else(|| FcError::invalid("versionId is required"))?;
        let mut a = Alias {
            alias_name: name,
            version_id,
            description: String::new(),
            additional_version_weight: BTreeMap::new(),
            resolve_policy: None,
            route_policy: None,
            created_time: now.clone(),
            last_modified_time: now.clone(),
        };
        a.apply(u, now)?;
        Ok(a)
    }

    /// Applies an update after validating the result as a whole (weights against the major
    /// version). Whether the named versions exist is the caller's check, against the store.
    pub fn apply(&mut self, u: AliasUpdate, now: String) -> Result<(), FcError> {
        let mut next = self.clone();
        if let Some(v) = u.version_id {
            next.version_id = v;
        }
        if let Some(d) = u.description {
            next.description = d;
        }
        if let Some(w) = u.additional_version_weight {
            next.additional_version_weight = w;
        }
        if u.resolve_policy.is_some() {
            next.resolve_policy = u.resolve_policy;
        }
        if u.route_policy.is_some() {
            next.route_policy = u.route_policy;
        }
        next.validate()?;
        next.last_modified_time = now;
        *self = next;
        Ok(())
    }

    fn validate(&self) -> Result<(), FcError> {
        let major = parse_version_id(&self.version_id).ok_or_else(|| {
            FcError::invalid(format!(
                "versionId '{}' is not a version id",
                self.version_id
            ))
        })?;
        if let Some(p) = &self.resolve_policy
            && p != "Random"
            && p != "Content"
        {
            return Err(FcError::invalid(format!(
                "resolvePolicy '{p}' is invalid: use Random or Content"
            )));
        }
        if self.additional_version_weight.len() > 1 {
            return Err(FcError::invalid(
                "additionalVersionWeight may name only one additional version",
            ));
        }
        let mut total = 0.0;
        for (v, w) in &self.additional_version_weight {
            let id = parse_version_id(v).ok_or_else(|| {
                FcError::invalid(format!(
                    "additionalVersionWeight key '{v}' is not a version id"
                ))
            })?;
            if id == major {
                return Err(FcError::AdditionalVersionContainsMajorVersion {
                    weights: format!("{:?}", self.additional_version_weight),
                    major,
                });
            }
            if !w.is_finite() || *w < 0.0 || *w > 1.0 {
                return Err(FcError::invalid(format!(
                    "additionalVersionWeight for version {v} is {w}: it must be between 0 and 1"
                )));
            }
            total += w;
        }
        if total > 1.0 {
            return Err(FcError::invalid(
                "additionalVersionWeight adds up to more than 1",
            ));
        }
        Ok(())
    }

    /// Every version this alias can route to.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.version_id.as_str())
            .chain(self.additional_version_weight.keys().map(String::as_str))
    }

    /// The version a request goes to, given a uniform sample `r` in `[0, 1)`.
    pub fn route(&self, r: f64) -> &str {
        let mut acc = 0.0;
        for (v, w) in &self.additional_version_weight {
            acc += w;
            if r < acc {
                return v;
            }
        }
        &self.version_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(body: &str) -> Result<Alias, FcError> {
        Alias::create(
            "prod".into(),
            serde_json::from_str(body).unwrap(),
            "t".into(),
        )
    }

    #[test]
    fn validates_names_and_weights() {
        assert!(alias(r#"{"versionId":"1"}"#).is_ok());
        assert!(alias(r#"{"versionId":"1","additionalVersionWeight":{"2":0.1}}"#).is_ok());
        assert!(
            Alias::create(
                "LATEST".into(),
                AliasUpdate {
                    version_id: Some("1".into()),
                    ..Default::default()
                },
                "t".into()
            )
            .is_err()
        );
        assert!(alias(r#"{"versionId":"x"}"#).is_err());
        assert!(alias(r#"{"versionId":"1","additionalVersionWeight":{"2":1.5}}"#).is_err());
        assert!(alias(r#"{"versionId":"1","additionalVersionWeight":{"2":-0.1}}"#).is_err());
        assert!(matches!(
            alias(r#"{"versionId":"1","additionalVersionWeight":{"1":0.5}}"#),
            Err(FcError::AdditionalVersionContainsMajorVersion { .. })
        ));
    }

    #[test]
    fn routes_by_weight() {
        let a = alias(r#"{"versionId":"1","additionalVersionWeight":{"2":0.25}}"#).unwrap();
        assert_eq!(a.route(0.0), "2");
        assert_eq!(a.route(0.2499), "2");
        assert_eq!(a.route(0.25), "1");
        assert_eq!(a.route(0.99), "1");
        assert_eq!(a.versions().collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn failed_update_changes_nothing() {
        let mut a = alias(r#"{"versionId":"1"}"#).unwrap();
        let before = a.clone();
        let bad = AliasUpdate {
            description: Some("new".into()),
            additional_version_weight: Some([("1".to_string(), 0.5)].into()),
            ..Default::default()
        };
        assert!(a.apply(bad, "t2".into()).is_err());
        assert_eq!(a, before);
    }

    #[test]
    fn version_ids() {
        assert_eq!(parse_version_id("12"), Some(12));
        assert_eq!(parse_version_id("0"), None);
        assert_eq!(parse_version_id("LATEST"), None);
        assert_eq!(parse_version_id(""), None);
        assert_eq!(
            parse_version_id("9223372036854775807"),
            Some(i64::MAX as u64)
        );
        assert_eq!(parse_version_id("9223372036854775808"), None);
        assert_eq!(parse_version_id("18446744073709551615"), None);
    }
}
