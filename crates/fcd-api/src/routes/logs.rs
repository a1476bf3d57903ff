//! `GET /{version}/services/{s}/functions/{f}/logs`: fcd's own extension (not an FC operation)
//! for reading a function's stored log ([`fcd_runtime::logstore`]). Signed and authorized like
//! every FC call (`fc:GetFunctionLogs` on the function's ARN).
//!
//! Query: `requestId`, `since` and `until` (RFC 3339, or milliseconds since the epoch),
//! `qualifier` (or `svc.q` in the path), `limit` (default 1000, at most 10000: the first records
//! from `since` when it is given, else the newest), `follow=true`.
//!
//! Without `follow`: `{"records": [...], "truncated": bool}`. With it: newline-delimited JSON,
//! one record per line — first what the query finds, then every new matching record as it is
//! written, until the client goes away (an empty line every 15 s keeps idle streams alive and
//! notices a client that left) or the server shuts down.
//!
//! In a cluster each node keeps the log of what ran on it. A query without `follow` is then
//! cluster-wide: the node that received it from the client asks every other live node the same
//! request (forwarded as the client signed it, see [`crate::forward`]; a forwarded one is
//! answered from the node's own log only), and merges the answers with its own
//! ([`fcd_runtime::logstore::merge`]: the same `since`/`limit` choice as one node's query).
//! Every record then says which node it came from (`"node"`), and `"unreachableNodes"` lists
//! the live nodes that did not answer (unreachable, failed, too slow or too large an answer):
//! what the others found is still returned. `follow=true` stays node-local: it streams only
//! the log of the node the connection reached. Alone (no cluster) the JSON is as above.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fcd_core::FcError;
use fcd_runtime::logstore::{
    self, FunctionKey, LogQuery, LogStore, NodeResult, QueryResult, StoredRecord,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::{Ctx, PathParams, QueryParams, json_response, qualified};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The most one peer's answer to a cluster-wide query may be (a bigger one counts as missing:
/// half a JSON document cannot be merged).
const PEER_MAX_BYTES: usize = 64 << 20;
/// How long a peer's whole answer may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// A time parameter: RFC 3339 or milliseconds since the epoch.
fn parse_time(name: &str, v: &str) -> ApiResult<i64> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().map_err(|_| bad(name, v));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad(name, v))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn bad(name: &str, v: &str) -> ApiError {
    ApiError(FcError::invalid(format!(
        "{name} '{v}' is neither an RFC 3339 time nor milliseconds since the epoch"
    )))
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn record_json(r: &StoredRecord) -> serde_json::Value {
    json!({
        "time": rfc3339_ms(r.time),
        "timestamp": r.time,
        "requestId": r.request_id,
        "instanceId": r.instance_id,
        "qualifier": r.qualifier,
        "level": r.level,
        "message": r.message,
        "seq": r.seq,
    })
}

/// A record as another node's answer has it ([`record_json`]'s fields that make it up).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeerRecord {
    timestamp: i64,
    seq: u64,
    request_id: String,
    instance_id: String,
    qualifier: String,
    level: String,
    message: String,
}

/// Another node's answer to the same query.
#[derive(Deserialize)]
struct PeerAnswer {
    records: Vec<PeerRecord>,
    truncated: bool,
}

impl PeerAnswer {
    fn into_result(self) -> QueryResult {
        QueryResult {
            truncated: self.truncated,
            records: self
                .records
                .into_iter()
                .map(|r| StoredRecord {
                    seq: r.seq,
                    time: r.timestamp,
                    request_id: r.request_id,
                    instance_id: r.instance_id,
                    qualifier: r.qualifier,
                    level: r.level,
                    message: r.message,
                })
                .collect(),
        }
    }
}

/// This node's answer merged with every other live node's (none when `forwarded`: the node
/// that asked merges). Returns the JSON body.
async fn cluster_wide(
    s: &AppState,
    parts: &axum::http::request::Parts,
    lq: &LogQuery,
    mine: QueryResult,
) -> serde_json::Value {
    let cluster = s.control.cluster();
    let mut answers = vec![NodeResult {
        node: cluster.node().id.clone(),
        result: mine,
    }];
    let mut unreachable = Vec::new();
    if !crate::forward::is_forwarded(&parts.headers) {
        let peers: Vec<(String, String)> = cluster
            .nodes()
            .into_iter()
            .filter(|n| n.live && !n.is_self)
            .map(|n| (n.id, n.url))
            .collect();
        let got = s
            .forwarder
            .fetch_all(peers, parts, PEER_MAX_BYTES, PEER_TIMEOUT)
            .await;
        for (node, body) in got {
            match body.map(|b| serde_json::from_slice::<PeerAnswer>(&b)) {
                Ok(Ok(a)) => answers.push(NodeResult {
                    node,
                    result: a.into_result(),
                }),
                Ok(Err(e)) => {
                    tracing::warn!(peer = %node, error = %e, "a peer's logs answer is not understood");
                    unreachable.push(node);
                }
                // Already logged by the forwarder.
                Err(_) => unreachable.push(node),
            }
        }
    }
    let merged = logstore::merge(lq, answers);
    let records: Vec<_> = merged
        .records
        .iter()
        .map(|(node, r)| {
            let mut v = record_json(r);
            v["node"] = json!(node);
            v
        })
        .collect();
    json!({
        "records": records,
        "truncated": merged.truncated,
        "unreachableNodes": unreachable,
    })
}

fn line(r: &StoredRecord) -> Bytes {
    let mut v = serde_json::to_vec(&record_json(r)).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

async fn query(store: &Arc<LogStore>, key: &FunctionKey, q: &LogQuery) -> ApiResult<QueryResult> {
    let (store, key, q) = (store.clone(), key.clone(), q.clone());
    let found = tokio::task::spawn_blocking(move || store.query(&key, &q))
        .await
        .map_err(|_| ApiError(FcError::Internal))?
        .map_err(|e| {
            tracing::warn!(error = %e, "reading function logs failed");
            ApiError(FcError::Internal)
        })?;
    Ok(found)
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    // The request as received: a cluster-wide query sends it on to the other nodes.
    let (parts, _) = req.into_parts();
    let (service, qualifier) = qualified(&p, &q);
    let function = p.get("function").to_owned();
    // A function that does not exist has no log to read (FC's 404s, not an empty list).
    s.control
        .get_function(&c.account_id, &service, &function)
        .await?;
    let Some(store) = s.control.runtime().log_store().cloned() else {
        return Err(ApiError(FcError::Internal));
    };
    let limit = match q.u32("limit")? {
        None => DEFAULT_LIMIT,
        Some(n) => (n as usize).clamp(1, MAX_LIMIT),
    };
    let time = |name: &str| {
        q.string(name)
            .filter(|v| !v.is_empty())
            .map(|v| parse_time(name, &v))
            .transpose()
    };
    let lq = LogQuery {
        request_id: q.string("requestId").filter(|v| !v.is_empty()),
        since_ms: time("since")?,
        until_ms: time("until")?,
        qualifier,
        after_seq: None,
        limit,
    };
    let follow = match q.string("follow").as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError(FcError::invalid(format!(
                "follow '{v}' is neither true nor false"
            ))));
        }
    };
    let key = FunctionKey::new(&c.account_id, &service, &function);
    if !follow {
        let found = query(&store, &key, &lq).await?;
        let body = if s.control.cluster().is_single() {
            let records: Vec<_> = found.records.iter().map(record_json).collect();
            json!({ "records": records, "truncated": found.truncated })
        } else {
            cluster_wide(&s, &parts, &lq, found).await
        };
        return Ok(json_response(StatusCode::OK, &body, None));
    }
    // Subscribed before the store is read, so nothing written in between is missed; seq
    // numbers drop what both deliver.
    let live = store.subscribe();
    let first = query(&store, &key, &lq).await?.records;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(follow_stream(store, key, lq, first, live, tx));
    let mut resp = Response::new(Body::new(ChannelBody(rx)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp.into_response())
}

/// Sends what the query found, then new records, until the client's side is gone.
async fn follow_stream(
    store: Arc<LogStore>,
    key: FunctionKey,
    mut lq: LogQuery,
    first: Vec<StoredRecord>,
    mut live: broadcast::Receiver<Arc<fcd_runtime::logstore::LiveRecord>>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut last_seq = 0;
    for r in &first {
        last_seq = r.seq;
        if tx.send(line(r)).await.is_err() {
            return;
        }
    }
    // From here on: every new record, whatever the limit.
    lq.since_ms = None;
    lq.limit = MAX_LIMIT;
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = store.closed() => return,
            got = tokio::time::timeout(HEARTBEAT, live.recv()) => match got {
                Err(_) => {
                    if tx.send(Bytes::from_static(b"\n")).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(rec)) => {
                    if *rec.key != key || rec.record.seq <= last_seq {
                        continue;
                    }
                    lq.after_seq = Some(last_seq);
                    if !lq.matches(&rec.record) {
                        continue;
                    }
                    last_seq = rec.record.seq;
                    if tx.send(line(&rec.record)).await.is_err() {
                        return;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    // Too slow for the live feed: catch up from the store.
                    lq.after_seq = Some(last_seq);
                    let Ok(missed) = query(&store, &key, &lq).await else { return };
                    for r in &missed.records {
                        last_seq = r.seq;
                        if tx.send(line(r)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
            }
        }
    }
}

/// A response body fed by a channel; dropping it (the client went away) ends the feeder.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_milliseconds() {
        assert_eq!(
            parse_time("since", "1700000000123").ok(),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            parse_time("since", "2023-11-14T22:13:20.123Z").ok(),
            Some(1_700_000_000_123)
        );
        assert!(parse_time("since", "yesterday").is_err());
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
