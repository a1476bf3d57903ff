//! FC 3.0's side of the HTTP data path (fc3-api.md section 5): the stable `urlId` that names
//! an HTTP trigger in its 3.0 URLs and its lookup, and the runtime contract of native 3.0
//! functions with a built-in runtime — the HTTP request becomes the **v1 JSON event** their
//! ordinary `handler(event, context)` receives, and the handler's return value becomes the
//! HTTP response.
//!
//! Which contract a call gets follows the function's origin, never the URL it was reached by:
//! a native 3.0 function (stored in a hidden service) with a built-in runtime gets the v1
//! event ([`uses_v1_event`]); 2.0 functions keep the 2.0 handler signatures and custom
//! runtimes/containers keep the pass-through HTTP contract (`x-fc-control-path: /http-invoke`),
//! as on FC. Building the event here, in front of the instance manager, turns the call into an
//! ordinary event invocation, so the bootstraps, the async engine and the log tail need
//! nothing new.
//!
//! Response mapping ([`map_result`]): a JSON object with an integer `statusCode` is unpacked
//! (`statusCode`, `headers`, `body`, `isBase64Encoded`); anything else is the body of a 200,
//! exactly as the runtime serialised it (strings as-is, other values as JSON). A handler that
//! returns the *string* `'{"statusCode": …}'` is therefore unpacked too: the runtime's output
//! cannot tell the two apart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

use time::OffsetDateTime;

use fcd_core::FcError;
use fcd_core::triggers::TriggerConfig;

use crate::triggers::HttpTriggerRoute;
use crate::{Control, internal};

/// The `urlId` of an HTTP trigger: a DNS label (lower-case letters, digits, `-`; at most 63)
/// that names the trigger in its 3.0 URLs. Stable for the trigger's life (it does not change
/// with the trigger's qualifier or config) and different for every (account, service,
/// function, trigger): a readable slug of the function name, then 12 base-32 characters of a
/// SHA-256 over all four (60 bits: collisions are not a practical concern on one server).
pub fn url_id(account: &str, service: &str, function: &str, trigger: &str) -> String {
    let mut h = Sha256::new();
    for part in [account, service, function, trigger] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    // 12 characters of 5 bits from the first 60 bits of the digest.
    let mut bits: u64 = 0;
    for b in &digest[..8] {
        bits = (bits << 8) | u64::from(*b);
    }
    let hash: String = (0..12)
        .map(|i| ALPHABET[((bits >> (64 - 5 * (i + 1))) & 31) as usize] as char)
        .collect();
    let slug: String = function
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(40)
        .collect();
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        format!("fc-{hash}")
    } else {
        format!("{slug}-{hash}")
    }
}

/// Whether `runtime` is one of FC's built-in runtimes (python3*, nodejs*, …), whose HTTP calls
/// change contract in 3.0 and which serve one request per instance, rather than a custom
/// runtime or container (`custom*`) or fcd's `wasm`, which get plain HTTP and may serve several.
pub fn is_builtin_runtime(runtime: &str) -> bool {
    !runtime.starts_with("custom") && runtime != "wasm"
}

/// Whether an HTTP call of a function stored in `service` with `runtime` is delivered as the
/// v1 event: a native 3.0 function with a built-in runtime.
pub fn uses_v1_event(service: &str, runtime: &str) -> bool {
    fcd_core::fc3::is_hidden_service(service) && is_builtin_runtime(runtime)
}

/// The HTTP request a v1 event describes.
#[derive(Debug)]
pub struct EventRequest<'a> {
    pub method: &'a str,
    /// The request-target as the function sees it (3.0: the client's raw path and query).
    pub target: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`, ….
    pub protocol: &'a str,
    /// The client's headers (FC's own `x-fc-*` already dropped).
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: &'a str,
    pub account_id: &'a str,
    /// The host the client named (the trigger's or custom domain's name).
    pub domain_name: &'a str,
    /// The trigger's `urlId`, or the first label of a custom domain.
    pub domain_prefix: &'a str,
    pub request_id: &'a str,
    pub now: SystemTime,
}

fn decode_lossy(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The v1 event of fc3-api.md section 5.2 for `r`.
pub fn v1_event(r: &EventRequest<'_>) -> Value {
    let (raw_path, query) = match r.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r.target, None),
    };
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    // Multi-valued headers and query parameters are joined with ',' (in arrival order).
    let mut headers: Map<String, Value> = Map::new();
    for (k, v) in r.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let mut params: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match params.get_mut(k.as_ref()) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(r.body) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(r.body),
            true,
        ),
    };
    let user_agent = r
        .headers
        .get(http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let now = OffsetDateTime::from(r.now);
    let epoch_ms = now.unix_timestamp_nanos() / 1_000_000;
    json!({
        "version": "v1",
        "rawPath": raw_path,
        "body": body,
        "isBase64Encoded": is_base64,
        "headers": headers,
        "queryParameters": params,
        "requestContext": {
            "accountId": r.account_id,
            "domainName": r.domain_name,
            "domainPrefix": r.domain_prefix,
            "http": {
                "method": r.method,
                "path": decode_lossy(raw_path),
                "protocol": r.protocol,
                "sourceIp": r.source_ip,
                "userAgent": user_agent,
            },
            "requestId": r.request_id,
            "time": fcd_core::time::fc_timestamp(now),
            "timeEpoch": epoch_ms.to_string(),
        },
    })
}

/// The HTTP response a handler's result maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedResponse {
    pub status: u16,
    /// In order; a header given as an array is repeated.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Maps a built-in runtime's result (the bytes it answered an event with) back to HTTP; see
/// the module docs for the rule. `Err` is why the result cannot be a response (the caller
/// answers 502 `BadResponse`).
pub fn map_result(result: &Bytes) -> Result<MappedResponse, String> {
    let as_is = || MappedResponse {
        status: 200,
        headers: Vec::new(),
        body: result.clone(),
    };
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(result) else {
        return Ok(as_is());
    };
    let status = match obj.get("statusCode") {
        Some(Value::Number(n)) => n.as_u64(),
        _ => return Ok(as_is()),
    };
    let status = match status {
        Some(s) if (100..=999).contains(&s) => s as u16,
        _ => {
            return Err(format!(
                "the function returned statusCode {}: expected an integer from 100 to 999",
                obj.get("statusCode").cloned().unwrap_or_default()
            ));
        }
    };
    let mut headers = Vec::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (k, v) in h {
                match v {
                    Value::Array(vs) => {
                        for one in vs {
                            let text = header_text(one).ok_or_else(|| {
                                format!("the function returned header '{k}' with a value that is not text")
                            })?;
                            headers.push((k.clone(), text));
                        }
                    }
                    other => {
                        let text = header_text(other).ok_or_else(|| {
                            format!(
                                "the function returned header '{k}' with a value that is not text"
                            )
                        })?;
                        headers.push((k.clone(), text));
                    }
                }
            }
        }
        Some(_) => return Err("the function returned headers that are not an object".into()),
    }
    let base64 = matches!(obj.get("isBase64Encoded"), Some(Value::Bool(true)));
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if base64 => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(Bytes::from)
            .map_err(|e| {
                format!("the function returned isBase64Encoded with a body that is not base64: {e}")
            })?,
        Some(Value::String(s)) => Bytes::from(s.clone().into_bytes()),
        Some(other) => Bytes::from(other.to_string().into_bytes()),
    };
    Ok(MappedResponse {
        status,
        headers,
        body,
    })
}

/// An HTTP trigger as its `urlId` names it.
#[derive(Debug, Clone)]
pub struct UrlTrigger {
    pub account: String,
    pub service: String,
    pub function: String,
    pub route: Arc<HttpTriggerRoute>,
}

pub(crate) type UrlIdMap = HashMap<String, Arc<UrlTrigger>>;

impl Control {
    /// The HTTP trigger whose [`url_id`] is `id`, from memory (every HTTP trigger of every
    /// account is held in one map, re-read after any trigger, function or service write that
    /// drops cached HTTP-trigger answers); `None` when there is none, or the store cannot be
    /// read (logged).
    pub async fn http_trigger_by_url_id(&self, id: &str) -> Option<Arc<UrlTrigger>> {
        let loaded = self.triggers.url_ids.read().ok().and_then(|m| m.clone());
        let map = match loaded {
            Some(m) => m,
            None => {
                let generation = self.triggers.http_gen.load(Ordering::Acquire);
                let map = match self.read_url_ids().await {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        tracing::error!(error = %e, "read http triggers");
                        return None;
                    }
                };
                if let Ok(mut m) = self.triggers.url_ids.write()
                    && self.triggers.http_gen.load(Ordering::Acquire) == generation
                {
                    *m = Some(map.clone());
                }
                map
            }
        };
        map.get(id).cloned()
    }

    async fn read_url_ids(&self) -> Result<UrlIdMap, FcError> {
        let all = self
            .store
            .all_triggers("http")
            .await
            .map_err(|e| internal("list http triggers", e))?;
        let mut map = UrlIdMap::with_capacity(all.len());
        for t in all {
            let trigger = t.trigger.trigger;
            let config = match trigger.config() {
                Ok(TriggerConfig::Http(c)) => c,
                other => {
                    tracing::error!(
                        trigger = %trigger.trigger_name,
                        service = %t.service,
                        function = %t.function,
                        config = ?other,
                        "stored http trigger has an unusable config; skipped"
                    );
                    continue;
                }
            };
            let id = url_id(&t.account, &t.service, &t.function, &trigger.trigger_name);
            map.insert(
                id,
                Arc::new(UrlTrigger {
                    account: t.account,
                    service: t.service,
                    function: t.function,
                    route: Arc::new(HttpTriggerRoute { trigger, config }),
                }),
            );
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    use fcd_core::model::{FunctionUpdate, Service, ServiceUpdate};
    use fcd_core::triggers::TriggerInput;
    use fcd_store::{MetadataStore, SqliteStore, StoredService};

    const ACC: &str = "1234";

    /// A control plane with a native 3.0 function `hello` (in hidden service `~hello`,
    /// inserted through the store as 3.0's CreateFunction does) and a 2.0 function `s/hello`,
    /// both configured with PreStop and PreFreeze hooks.
    async fn with_functions() -> (tempfile::TempDir, Control) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let control = crate::testkit::control(dir.path(), store.clone(), "t");
        let hidden = fcd_core::fc3::hidden_service("hello");
        let service = Service::create(
            "sid".into(),
            hidden.clone(),
            ServiceUpdate::default(),
            "t".into(),
        )
        .unwrap();
        store
            .insert_service(
                ACC,
                &StoredService {
                    service,
                    etag: "e".into(),
                },
            )
            .await
            .unwrap();
        control
            .create_service(
                ACC,
                ServiceUpdate {
                    service_name: Some("s".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for svc in [hidden.as_str(), "s"] {
            let u: FunctionUpdate = serde_json::from_value(json!({
                "functionName": "hello",
                "runtime": "python3.10",
                "handler": "index.handler",
                "code": {"zipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
                "instanceLifecycleConfig": {
                    "preFreeze": {"handler": "index.freeze", "timeout": 3},
                    "preStop": {"handler": "index.stop", "timeout": 3},
                },
            }))
            .unwrap();
            control.create_function(ACC, svc, u, None).await.unwrap();
        }
        (dir, control)
    }

    #[tokio::test]
    async fn native_functions_never_get_pre_freeze() {
        let (_dir, c) = with_functions().await;
        let native = c.resolve(ACC, "~hello", "hello", None).await.unwrap();
        let lc = native.function.instance_lifecycle_config.as_ref().unwrap();
        assert!(lc.pre_freeze.is_none());
        assert!(lc.pre_stop.is_some(), "PreStop stays: FC 3.0 has it");
        let v2 = c.resolve(ACC, "s", "hello", None).await.unwrap();
        let lc = v2.function.instance_lifecycle_config.as_ref().unwrap();
        assert!(lc.pre_freeze.is_some(), "2.0 functions keep PreFreeze");
    }

    #[tokio::test]
    async fn url_ids_find_triggers_and_follow_writes() {
        let (_dir, c) = with_functions().await;
        let http = |name: &str| TriggerInput {
            trigger_name: Some(name.into()),
            trigger_type: Some("http".into()),
            trigger_config: Some(json!({"authType": "anonymous", "methods": ["GET"]})),
            ..TriggerInput::default()
        };
        let id = url_id(ACC, "~hello", "hello", "web");
        // Looked up (and the empty answer held) before the trigger exists.
        assert!(c.http_trigger_by_url_id(&id).await.is_none());
        c.create_trigger(ACC, "~hello", "hello", http("web"))
            .await
            .unwrap();
        c.create_trigger(ACC, "s", "hello", http("web"))
            .await
            .unwrap();
        let t = c.http_trigger_by_url_id(&id).await.unwrap();
        assert_eq!(
            (t.account.as_str(), t.service.as_str(), t.function.as_str()),
            (ACC, "~hello", "hello")
        );
        assert_eq!(t.route.trigger.trigger_name, "web");
        let v2 = c
            .http_trigger_by_url_id(&url_id(ACC, "s", "hello", "web"))
            .await
            .unwrap();
        assert_eq!(v2.service, "s");
        assert!(c.http_trigger_by_url_id("hello-nothing").await.is_none());
        c.delete_trigger(ACC, "~hello", "hello", "web", None)
            .await
            .unwrap();
        assert!(c.http_trigger_by_url_id(&id).await.is_none());
    }

    #[test]
    fn url_ids_are_stable_distinct_dns_labels() {
        let a = url_id("123", "~hello_World", "hello_World", "http");
        assert_eq!(a, url_id("123", "~hello_World", "hello_World", "http"));
        assert!(a.starts_with("hello-world-"), "{a}");
        for other in [
            url_id("124", "~hello_World", "hello_World", "http"),
            url_id("123", "svc", "hello_World", "http"),
            url_id("123", "~hello_World", "hello_World", "http2"),
            // The separator keeps (ab, c) and (a, bc) apart.
            url_id("12", "3~hello_World", "hello_World", "http"),
        ] {
            assert_ne!(a, other);
        }
        let long = url_id("1", "s", &"F".repeat(64), "t");
        for id in [a, long, url_id("1", "s", "_", "t")] {
            assert!(id.len() <= 63 && !id.is_empty(), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{id}"
            );
            assert!(!id.starts_with('-') && !id.ends_with('-'), "{id}");
        }
    }

    #[test]
    fn the_contract_follows_origin_and_runtime() {
        assert!(uses_v1_event("~f", "python3.10"));
        assert!(uses_v1_event("~f", "nodejs18"));
        assert!(!uses_v1_event("~f", "custom.debian10"));
        assert!(!uses_v1_event("~f", "custom-container"));
        assert!(!uses_v1_event("svc", "python3.10"));
    }

    fn request<'a>(headers: &'a HeaderMap, target: &'a str, body: &'a [u8]) -> EventRequest<'a> {
        EventRequest {
            method: "POST",
            target,
            protocol: "HTTP/1.1",
            headers,
            body,
            source_ip: "10.0.0.9",
            account_id: "123",
            domain_name: "f-abc.cn-hangzhou.fcapp.run",
            domain_prefix: "f-abc",
            request_id: "rid-1",
            now: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_693_896_071_895),
        }
    }

    #[test]
    fn the_v1_event_describes_the_request() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.append("user-agent", HeaderValue::from_static("curl/8"));
        let e = v1_event(&request(&h, "/a%20b/c?p=1&p=2&q=x%2By&e", b"Hello FC!"));
        assert_eq!(e["version"], "v1");
        assert_eq!(e["rawPath"], "/a%20b/c");
        assert_eq!(e["body"], "Hello FC!");
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["headers"]["x-a"], "1,2");
        assert_eq!(
            e["queryParameters"],
            json!({"p": "1,2", "q": "x+y", "e": ""})
        );
        let rc = &e["requestContext"];
        assert_eq!(rc["accountId"], "123");
        assert_eq!(rc["domainPrefix"], "f-abc");
        assert_eq!(rc["requestId"], "rid-1");
        assert_eq!(rc["time"], "2023-09-05T06:41:11Z");
        assert_eq!(rc["timeEpoch"], "1693896071895");
        assert_eq!(
            rc["http"],
            json!({"method": "POST", "path": "/a b/c", "protocol": "HTTP/1.1",
                   "sourceIp": "10.0.0.9", "userAgent": "curl/8"})
        );
    }

    #[test]
    fn binary_bodies_are_base64_and_an_empty_path_is_the_root() {
        let h = HeaderMap::new();
        let e = v1_event(&request(&h, "", &[0xff, 0x00, 0x41]));
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "/wBB");
        assert_eq!(e["rawPath"], "/");
        assert_eq!(e["queryParameters"], json!({}));
        assert_eq!(e["requestContext"]["http"]["userAgent"], "");
    }

    #[test]
    fn objects_with_a_status_code_are_unpacked() {
        let r = map_result(&Bytes::from_static(
            br#"{"statusCode": 201, "headers": {"content-type": "text/plain", "set-cookie": ["a=1", "b=2"], "x-n": 7}, "body": "made"}"#,
        ))
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, "made");
        assert_eq!(
            r.headers,
            [
                ("content-type".to_owned(), "text/plain".to_owned()),
                ("set-cookie".to_owned(), "a=1".to_owned()),
                ("set-cookie".to_owned(), "b=2".to_owned()),
                ("x-n".to_owned(), "7".to_owned()),
            ]
        );
        let r = map_result(&Bytes::from_static(
            br#"{"statusCode": 200, "isBase64Encoded": true, "body": "/wBB"}"#,
        ))
        .unwrap();
        assert_eq!(r.body.as_ref(), [0xff, 0x00, 0x41]);
        let r = map_result(&Bytes::from_static(
            br#"{"statusCode": 404, "body": {"a": 1}}"#,
        ))
        .unwrap();
        assert_eq!((r.status, r.body.as_ref()), (404, br#"{"a":1}"#.as_ref()));
        let r = map_result(&Bytes::from_static(br#"{"statusCode": 204}"#)).unwrap();
        assert!(r.body.is_empty());
    }

    #[test]
    fn anything_else_is_the_body_of_a_200() {
        for raw in [
            &b"hello"[..],
            br#"{"a": 1}"#,
            br#"[1, 2]"#,
            b"42",
            br#"{"statusCode": "200"}"#,
            b"",
            &[0xff, 0xfe],
        ] {
            let r = map_result(&Bytes::copy_from_slice(raw)).unwrap();
            assert_eq!((r.status, r.body.as_ref()), (200, raw), "{raw:?}");
            assert!(r.headers.is_empty());
        }
    }

    #[test]
    fn unusable_results_are_errors() {
        for raw in [
            &br#"{"statusCode": 1000}"#[..],
            br#"{"statusCode": 20.5}"#,
            br#"{"statusCode": 200, "headers": []}"#,
            br#"{"statusCode": 200, "headers": {"a": {"b": 1}}}"#,
            br#"{"statusCode": 200, "isBase64Encoded": true, "body": "%%%"}"#,
        ] {
            assert!(map_result(&Bytes::copy_from_slice(raw)).is_err(), "{raw:?}");
        }
    }
}
