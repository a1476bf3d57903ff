//! Triggers as FC describes them: the stored record, the create and update requests, and the
//! typed configuration of the trigger types fcd runs (`http`, `timer`).
//!
//! On the wire `triggerConfig` is a JSON *string* (fc-api.md section 8). fcd parses it when a
//! trigger is written, refuses what FC would refuse, and stores the normalised string (methods
//! upper-cased, defaults filled in), so every later read returns what will actually run.
//! Trigger types fcd cannot deliver events for (OSS, SLS, MNS, …: their sources do not exist
//! here) are refused rather than stored and silently never fired.

use serde::{Deserialize, Serialize};

use crate::FcError;
use crate::names::check_trigger_name;

/// The trigger types fcd runs.
pub const SUPPORTED_TYPES: [&str; 2] = ["http", "timer"];

/// Methods an HTTP trigger may admit.
pub const HTTP_METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"];

/// Longest `payload` of a timer trigger, in characters.
pub const TIMER_PAYLOAD_MAX: usize = 4096;

/// A stored trigger. Serialises to FC's field names (without `urlInternet`/`urlIntranet`,
/// which depend on where the server is reached and are added by the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub trigger_id: String,
    pub trigger_name: String,
    pub trigger_type: String,
    /// The qualifier invocations go to: `LATEST` when none was given.
    pub qualifier: String,
    pub description: String,
    pub invocation_role: String,
    pub source_arn: String,
    /// The normalised configuration, as the JSON string FC's wire format carries.
    pub trigger_config: String,
    pub created_time: String,
    pub last_modified_time: String,
}

/// The body of CreateTrigger.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerInput {
    pub trigger_name: Option<String>,
    pub trigger_type: Option<String>,
    pub qualifier: Option<String>,
    pub description: Option<String>,
    pub invocation_role: Option<String>,
    pub source_arn: Option<String>,
    /// FC's SDKs send a JSON string; an object is accepted as well (hand-written requests).
    pub trigger_config: Option<serde_json::Value>,
}

/// The body of UpdateTrigger: absent fields keep their values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerUpdate {
    pub qualifier: Option<String>,
    pub description: Option<String>,
    pub invocation_role: Option<String>,
    pub trigger_config: Option<serde_json::Value>,
}

/// A trigger's configuration, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerConfig {
    Http(HttpTriggerConfig),
    Timer(TimerTriggerConfig),
}

/// Who may call an HTTP trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// Anyone who reaches the URL.
    Anonymous,
    /// Requests signed with an access key allowed to invoke the function.
    Function,
}

/// `triggerConfig` of an `http` trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTriggerConfig {
    pub auth_type: AuthType,
    /// Upper-case, without duplicates, in the order given.
    pub methods: Vec<String>,
    /// FC's switch for the public URL; stored and echoed (fcd serves one listener set).
    #[serde(
        rename = "disableURLInternet",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_url_internet: Option<bool>,
}

impl HttpTriggerConfig {
    /// Whether `method` (as the client sent it) is admitted.
    pub fn allows(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

/// `triggerConfig` of a `timer` trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerTriggerConfig {
    /// `@every <duration>` or FC's six-field cron (seconds first).
    pub cron_expression: String,
    #[serde(default)]
    pub payload: String,
    pub enable: bool,
}

impl TriggerConfig {
    /// Parses and validates a `triggerConfig` (a JSON string or object) for `trigger_type`.
    pub fn parse(trigger_type: &str, raw: &serde_json::Value) -> Result<TriggerConfig, FcError> {
        let object = match raw {
            serde_json::Value::String(s) => serde_json::from_str::<serde_json::Value>(s)
                .map_err(|e| FcError::invalid(format!("triggerConfig is not valid JSON: {e}")))?,
            other => other.clone(),
        };
        let serde_json::Value::Object(map) = object else {
            return Err(FcError::invalid("triggerConfig must be a JSON object"));
        };
        match trigger_type {
            "http" => parse_http(&map).map(TriggerConfig::Http),
            "timer" => parse_timer(&map).map(TriggerConfig::Timer),
            other => Err(unsupported_type(other)),
        }
    }

    /// The normalised JSON string stored and returned as `triggerConfig`.
    pub fn to_wire(&self) -> String {
        let v = match self {
            TriggerConfig::Http(c) => serde_json::to_value(c),
            TriggerConfig::Timer(c) => serde_json::to_value(c),
        };
        v.map(|v| v.to_string()).unwrap_or_default()
    }
}

fn unsupported_type(t: &str) -> FcError {
    FcError::invalid(format!(
        "trigger type '{t}' is not supported: fcd runs {} triggers",
        SUPPORTED_TYPES.join(" and ")
    ))
}

fn parse_http(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<HttpTriggerConfig, FcError> {
    let auth = match map.get("authType") {
        Some(serde_json::Value::String(s)) => s.to_ascii_lowercase(),
        None => {
            return Err(FcError::invalid(
                "triggerConfig.authType is required for an http trigger",
            ));
        }
        Some(_) => return Err(FcError::invalid("triggerConfig.authType must be a string")),
    };
    let auth_type = match auth.as_str() {
        "anonymous" => AuthType::Anonymous,
        "function" => AuthType::Function,
        _ => {
            return Err(FcError::invalid(format!(
                "triggerConfig.authType '{auth}' is invalid: expected 'anonymous' or 'function'"
            )));
        }
    };
    let list = match map.get("methods") {
        Some(serde_json::Value::Array(a)) => a,
        None => {
            return Err(FcError::invalid(
                "triggerConfig.methods is required for an http trigger",
            ));
        }
        Some(_) => {
            return Err(FcError::invalid(
                "triggerConfig.methods must be an array of strings",
            ));
        }
    };
    let mut methods: Vec<String> = Vec::new();
    for m in list {
        let serde_json::Value::String(m) = m else {
            return Err(FcError::invalid(
                "triggerConfig.methods must be an array of strings",
            ));
        };
        let up = m.to_ascii_uppercase();
        if !HTTP_METHODS.contains(&up.as_str()) {
            return Err(FcError::invalid(format!(
                "triggerConfig.methods: '{m}' is not one of {}",
                HTTP_METHODS.join(", ")
            )));
        }
        if !methods.contains(&up) {
            methods.push(up);
        }
    }
    if methods.is_empty() {
        return Err(FcError::invalid(
            "triggerConfig.methods must name at least one method",
        ));
    }
    let disable_url_internet = match map.get("disableURLInternet") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(FcError::invalid(
                "triggerConfig.disableURLInternet must be a boolean",
            ));
        }
    };
    Ok(HttpTriggerConfig {
        auth_type,
        methods,
        disable_url_internet,
    })
}

fn parse_timer(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<TimerTriggerConfig, FcError> {
    let cron_expression = match map.get("cronExpression") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        None => {
            return Err(FcError::invalid(
                "triggerConfig.cronExpression is required for a timer trigger",
            ));
        }
        Some(_) => {
            return Err(FcError::invalid(
                "triggerConfig.cronExpression must be a non-empty string",
            ));
        }
    };
    // Refused here, at CreateTrigger/UpdateTrigger, rather than by a scheduler that would then
    // never fire it.
    crate::schedule::Schedule::parse(&cron_expression)?;
    let payload = match map.get("payload") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(FcError::invalid("triggerConfig.payload must be a string")),
    };
    if payload.chars().count() > TIMER_PAYLOAD_MAX {
        return Err(FcError::invalid(format!(
            "triggerConfig.payload is longer than {TIMER_PAYLOAD_MAX} characters"
        )));
    }
    // A timer created without `enable` is expected to fire: FC's consoles create them enabled.
    let enable = match map.get("enable") {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(FcError::invalid("triggerConfig.enable must be a boolean")),
    };
    Ok(TimerTriggerConfig {
        cron_expression,
        payload,
        enable,
    })
}

/// LATEST, a version id or an alias name (the characters they may have; not whether one exists).
pub(crate) fn check_qualifier(q: &str) -> Result<(), FcError> {
    let ok = !q.is_empty()
        && q.len() <= 128
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FcError::invalid(format!(
            "qualifier '{q}' is invalid: expected LATEST, a version or an alias name"
        )))
    }
}

fn check_text(field: &str, v: &str) -> Result<(), FcError> {
    if v.chars().count() > crate::limits::DESCRIPTION_MAX {
        return Err(FcError::invalid(format!(
            "{field} is longer than {} characters",
            crate::limits::DESCRIPTION_MAX
        )));
    }
    Ok(())
}

impl Trigger {
    /// A new trigger from CreateTrigger's body, validated completely.
    pub fn create(id: String, input: TriggerInput, now: String) -> Result<Trigger, FcError> {
        let name = input
            .trigger_name
            .ok_or_else(|| FcError::invalid("triggerName is required"))?;
        check_trigger_name(&name)?;
        let trigger_type = input
            .trigger_type
            .ok_or_else(|| FcError::invalid("triggerType is required"))?;
        if !SUPPORTED_TYPES.contains(&trigger_type.as_str()) {
            return Err(unsupported_type(&trigger_type));
        }
        let raw = input
            .trigger_config
            .ok_or_else(|| FcError::invalid("triggerConfig is required"))?;
        let config = TriggerConfig::parse(&trigger_type, &raw)?;
        let qualifier = match input.qualifier.filter(|q| !q.is_empty()) {
            Some(q) => {
                check_qualifier(&q)?;
                q
            }
            None => "LATEST".to_owned(),
        };
        let description = input.description.unwrap_or_default();
        check_text("description", &description)?;
        let invocation_role = input.invocation_role.unwrap_or_default();
        check_text("invocationRole", &invocation_role)?;
        let source_arn = input.source_arn.unwrap_or_default();
        check_text("sourceArn", &source_arn)?;
        Ok(Trigger {
            trigger_id: id,
            trigger_name: name,
            trigger_type,
            qualifier,
            description,
            invocation_role,
            source_arn,
            trigger_config: config.to_wire(),
            created_time: now.clone(),
            last_modified_time: now,
        })
    }

    /// Applies UpdateTrigger's body; nothing changes unless all of it is valid.
    pub fn apply(&mut self, u: TriggerUpdate, now: String) -> Result<(), FcError> {
        let config = match &u.trigger_config {
            Some(raw) => Some(TriggerConfig::parse(&self.trigger_type, raw)?),
            None => None,
        };
        if let Some(q) = u.qualifier.as_deref().filter(|q| !q.is_empty()) {
            check_qualifier(q)?;
        }
        if let Some(d) = &u.description {
            check_text("description", d)?;
        }
        if let Some(r) = &u.invocation_role {
            check_text("invocationRole", r)?;
        }
        if let Some(c) = config {
            self.trigger_config = c.to_wire();
        }
        if let Some(q) = u.qualifier.filter(|q| !q.is_empty()) {
            self.qualifier = q;
        }
        if let Some(d) = u.description {
            self.description = d;
        }
        if let Some(r) = u.invocation_role {
            self.invocation_role = r;
        }
        self.last_modified_time = now;
        Ok(())
    }

    /// The stored configuration, typed.
    pub fn config(&self) -> Result<TriggerConfig, FcError> {
        TriggerConfig::parse(
            &self.trigger_type,
            &serde_json::Value::String(self.trigger_config.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(t: &str, config: serde_json::Value) -> TriggerInput {
        TriggerInput {
            trigger_name: Some("t1".into()),
            trigger_type: Some(t.into()),
            trigger_config: Some(config),
            ..TriggerInput::default()
        }
    }

    #[test]
    fn http_config_is_normalised() {
        let raw = json!(r#"{"authType":"ANONYMOUS","methods":["get","POST","GET"]}"#);
        let t = Trigger::create("id".into(), input("http", raw), "now".into()).unwrap();
        assert_eq!(t.qualifier, "LATEST");
        let TriggerConfig::Http(c) = t.config().unwrap() else {
            panic!("not http")
        };
        assert_eq!(c.auth_type, AuthType::Anonymous);
        assert_eq!(c.methods, ["GET", "POST"]);
        assert!(c.allows("post") && !c.allows("DELETE"));
        assert_eq!(
            t.trigger_config,
            r#"{"authType":"anonymous","methods":["GET","POST"]}"#
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        for (t, c) in [
            ("http", json!("not json")),
            ("http", json!(r#"{"methods":["GET"]}"#)),
            ("http", json!(r#"{"authType":"open","methods":["GET"]}"#)),
            ("http", json!(r#"{"authType":"function","methods":[]}"#)),
            (
                "http",
                json!(r#"{"authType":"function","methods":["FETCH"]}"#),
            ),
            ("http", json!("[1]")),
            ("timer", json!(r#"{"payload":"x"}"#)),
            ("timer", json!(r#"{"cronExpression":"","enable":true}"#)),
            (
                "timer",
                json!(r#"{"cronExpression":"@every 1m","enable":"yes"}"#),
            ),
            (
                "timer",
                json!(r#"{"cronExpression":"* * * * *","enable":true}"#),
            ),
            (
                "timer",
                json!(r#"{"cronExpression":"@every 10s","enable":true}"#),
            ),
            ("oss", json!(r#"{"events":["oss:ObjectCreated:*"]}"#)),
        ] {
            let e = Trigger::create("id".into(), input(t, c.clone()), "now".into()).unwrap_err();
            assert_eq!(e.code(), "InvalidArgument", "{t} {c}");
        }
    }

    #[test]
    fn update_keeps_what_is_absent_and_checks_everything_first() {
        let raw = json!({"authType":"function","methods":["GET"]});
        let mut t = Trigger::create("id".into(), input("http", raw), "a".into()).unwrap();
        let before = t.clone();
        let bad = TriggerUpdate {
            description: Some("new".into()),
            trigger_config: Some(json!({"authType":"x","methods":["GET"]})),
            ..TriggerUpdate::default()
        };
        assert!(t.apply(bad, "b".into()).is_err());
        assert_eq!(t, before);
        let ok = TriggerUpdate {
            qualifier: Some("prod".into()),
            ..TriggerUpdate::default()
        };
        t.apply(ok, "b".into()).unwrap();
        assert_eq!(t.qualifier, "prod");
        assert_eq!(t.trigger_config, before.trigger_config);
        assert_eq!(t.last_modified_time, "b");
    }
}

/// Properties over generated configurations (the `fuzz/` target `timer_schedule` also feeds
/// arbitrary text here): parsing never panics, and the normalised wire form parses back to the
/// same configuration, which is what a stored trigger relies on.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn loose_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
        ]
    }

    fn method() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => prop::sample::select(HTTP_METHODS.to_vec()).prop_map(|m| json!(m.to_lowercase())),
            4 => prop::sample::select(HTTP_METHODS.to_vec()).prop_map(|m| json!(m)),
            1 => loose_value(),
        ]
    }

    fn config() -> impl Strategy<Value = Value> {
        let auth = prop_oneof![
            3 => prop::sample::select(vec!["anonymous", "function", "Function", "ANONYMOUS"])
                .prop_map(|a| json!(a)),
            1 => loose_value(),
        ];
        let cron = prop_oneof![
            3 => prop::sample::select(vec!["@every 1m", " @every 90m ", "*/2 * * * * *",
                "0 0 4 * * MON", "CRON_TZ=Asia/Shanghai 0 0 4 1 * *", "0 0 0 30 2 *"])
                .prop_map(|c| json!(c)),
            1 => loose_value(),
        ];
        let optional = |s: BoxedStrategy<Value>| prop::option::of(s);
        (
            optional(auth.boxed()),
            optional(
                prop::collection::vec(method(), 0..4)
                    .prop_map(Value::Array)
                    .boxed(),
            ),
            optional(loose_value().boxed()),
            optional(cron.boxed()),
            optional(
                prop_oneof![
                    Just(json!("x".repeat(TIMER_PAYLOAD_MAX + 1))),
                    loose_value()
                ]
                .boxed(),
            ),
            optional(loose_value().boxed()),
        )
            .prop_map(|(auth, methods, disable, cron, payload, enable)| {
                let mut m = serde_json::Map::new();
                for (k, v) in [
                    ("authType", auth),
                    ("methods", methods),
                    ("disableURLInternet", disable),
                    ("cronExpression", cron),
                    ("payload", payload),
                    ("enable", enable),
                ] {
                    if let Some(v) = v {
                        m.insert(k.to_owned(), v);
                    }
                }
                Value::Object(m)
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_text(t in prop::sample::select(vec!["http", "timer", "oss"]), s in "\\PC{0,80}") {
            let _ = TriggerConfig::parse(t, &Value::String(s));
        }

        #[test]
        fn wire_form_round_trips(
            t in prop::sample::select(vec!["http", "timer", "oss"]),
            c in config(),
            as_string in any::<bool>(),
        ) {
            let raw = if as_string { Value::String(c.to_string()) } else { c };
            let Ok(parsed) = TriggerConfig::parse(t, &raw) else {
                return Ok(());
            };
            let wire = parsed.to_wire();
            prop_assert_eq!(TriggerConfig::parse(t, &Value::String(wire.clone())), Ok(parsed.clone()));
            if let TriggerConfig::Http(h) = &parsed {
                prop_assert!(!h.methods.is_empty());
                for m in &h.methods {
                    prop_assert!(HTTP_METHODS.contains(&m.as_str()));
                    prop_assert!(h.allows(&m.to_lowercase()));
                }
            }
        }
    }
}
