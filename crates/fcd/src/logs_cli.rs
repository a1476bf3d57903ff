//! `fcd logs SERVICE/FUNCTION`: reads a function's stored log through the server's logs API
//! (`GET /2021-04-06/services/{s}/functions/{f}/logs`, fcd's extension), signed with the
//! account's key like `fcd iam`. One line per record: time, request id, level, message.

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The function, as SERVICE/FUNCTION (SERVICE.QUALIFIER/FUNCTION for one qualifier).
    target: String,
    /// Only the records of this request.
    #[arg(long)]
    request_id: Option<String>,
    /// Only records from this long ago (`30s`, `10m`, `2h`, `1d`) or since this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only records before this time (RFC 3339, or a duration ago like `--since`).
    #[arg(long)]
    until: Option<String>,
    /// Only records of invocations with this qualifier (LATEST, a version or an alias).
    #[arg(long)]
    qualifier: Option<String>,
    /// Most records printed before following (default 1000; the newest unless --since).
    #[arg(long)]
    limit: Option<u32>,
    /// Keep printing new records as they are written, until interrupted.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Print the records as the API returns them (one JSON object per line).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: crate::client::ServerArgs,
}

/// `10m` → milliseconds; `None` for anything that is not a duration.
fn duration_ms(v: &str) -> Option<i64> {
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = v.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// A time flag as the API takes it: a duration ago becomes milliseconds since the epoch,
/// anything else is passed on (the server checks it).
fn time_param(v: &str) -> String {
    match duration_ms(v) {
        Some(ago) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            (now - ago).to_string()
        }
        None => v.to_owned(),
    }
}

fn print(record: &Value, json: bool) {
    if json {
        println!("{record}");
        return;
    }
    let s = |k: &str| record[k].as_str().unwrap_or("");
    let rid = match s("requestId") {
        "" => "-",
        r => r,
    };
    // In a cluster each record says which node it ran on.
    match record["node"].as_str() {
        Some(node) => println!(
            "{} {} {} {} {}",
            s("time"),
            node,
            rid,
            s("level"),
            s("message")
        ),
        None => println!("{} {} {} {}", s("time"), rid, s("level"), s("message")),
    }
}

pub(crate) async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let Some((service, function)) = args.target.split_once('/') else {
        bail!("expected SERVICE/FUNCTION, got '{}'", args.target);
    };
    if service.is_empty() || function.is_empty() || function.contains('/') {
        bail!("expected SERVICE/FUNCTION, got '{}'", args.target);
    }
    let api = crate::client::Api::new(&args.server)?;
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(v) = &args.request_id {
        params.push(("requestId", v.clone()));
    }
    if let Some(v) = &args.since {
        params.push(("since", time_param(v)));
    }
    if let Some(v) = &args.until {
        params.push(("until", time_param(v)));
    }
    if let Some(v) = &args.qualifier {
        params.push(("qualifier", v.clone()));
    }
    if let Some(v) = args.limit {
        params.push(("limit", v.to_string()));
    }
    if args.follow {
        params.push(("follow", "true".to_owned()));
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let path = format!("/2021-04-06/services/{service}/functions/{function}/logs");
    let resp = api
        .send(Method::GET, &path, &query, HeaderMap::new(), Bytes::new())
        .await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body.collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        bail!(
            "{} {}: {}",
            status.as_u16(),
            v["ErrorCode"].as_str().unwrap_or("?"),
            v["ErrorMessage"]
                .as_str()
                .unwrap_or(&String::from_utf8_lossy(&bytes))
        );
    }
    if !args.follow {
        let bytes = body.collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).context("the answer is not JSON")?;
        for r in v["records"].as_array().into_iter().flatten() {
            print(r, args.json);
        }
        if v["truncated"].as_bool() == Some(true) {
            eprintln!("(more records match: narrow with --since/--until or raise --limit)");
        }
        let missing: Vec<&str> = v["unreachableNodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "(cluster nodes that did not answer, so their records are missing: {})",
                missing.join(", ")
            );
        }
        return Ok(());
    }
    // Newline-delimited records as they come, until the server or the user ends it.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.with_context(|| format!("reading from {}", api.endpoint()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue; // keep-alive
            }
            if let Ok(v) = serde_json::from_slice::<Value>(line) {
                print(&v, args.json);
            }
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("10m"), Some(600_000));
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("2h"), Some(7_200_000));
        assert_eq!(duration_ms("1d"), Some(86_400_000));
        assert_eq!(duration_ms("2023-11-14T22:13:20Z"), None);
        assert_eq!(duration_ms("15"), None);
        assert_eq!(time_param("2023-11-14T22:13:20Z"), "2023-11-14T22:13:20Z");
    }
}
