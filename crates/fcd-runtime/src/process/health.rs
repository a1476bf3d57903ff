//! `customHealthCheckConfig`: an instance of a custom runtime or container that names an
//! `httpGetUrl` takes calls only once that URL answers. After the port accepts connections,
//! fcd waits `initialDelaySeconds`, then sends `GET httpGetUrl` every `periodSeconds`, each
//! bounded by `timeoutSeconds`; `successThreshold` answers below 400 in a row make it ready,
//! `failureThreshold` failures in a row fail its start (`FunctionNotStarted`). The defaults are
//! FC's: no delay, every 3 s, 1 s per probe, 3 failures, 1 success.
//!
//! The probe runs at start only; a running instance is judged by its calls (a crash or a
//! timeout ends it), not probed again.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};

use super::ProcessInstance;
use crate::backend::CallResult;
use crate::{Payload, StartError};

/// A function's start-up health check, from its `customHealthCheckConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthCheck {
    pub(crate) path: String,
    pub(crate) initial_delay: Duration,
    pub(crate) period: Duration,
    pub(crate) timeout: Duration,
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
}

impl HealthCheck {
    /// The check a config asks for; `None` without an `httpGetUrl`.
    pub(crate) fn of(config: Option<&fcd_core::model::JsonObject>) -> Option<HealthCheck> {
        let config = config?;
        let path = config.get("httpGetUrl")?.as_str()?.trim();
        if path.is_empty() {
            return None;
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let num = |key: &str, default: u64, min: u64| {
            config
                .get(key)
                .and_then(|v| v.as_u64())
                .filter(|n| *n > 0 || min == 0)
                .unwrap_or(default)
                .clamp(min, 120)
        };
        Some(HealthCheck {
            path,
            initial_delay: Duration::from_secs(num("initialDelaySeconds", 0, 0)),
            period: Duration::from_secs(num("periodSeconds", 3, 1)),
            timeout: Duration::from_secs(num("timeoutSeconds", 1, 1)),
            failure_threshold: num("failureThreshold", 3, 1) as u32,
            success_threshold: num("successThreshold", 1, 1) as u32,
        })
    }
}

impl ProcessInstance {
    /// Probes `check` until the instance is ready or has failed it.
    pub(crate) async fn wait_healthy(&self, check: &HealthCheck) -> Result<(), StartError> {
        tokio::time::sleep(check.initial_delay).await;
        let mut headers = HeaderMap::new();
        if let Ok(host) = HeaderValue::from_str(&self.addr.to_string()) {
            headers.insert(http::header::HOST, host);
        }
        let (mut ok, mut failed) = (0u32, 0u32);
        loop {
            if let Some(info) = self.exit.borrow().clone() {
                return Err(StartError::Exited {
                    detail: info.description,
                    log: self.logs.last(20),
                });
            }
            let why = match self
                .call_inner(
                    Method::GET,
                    &check.path,
                    headers.clone(),
                    Payload::Whole(bytes::Bytes::new()),
                    check.timeout,
                )
                .await
            {
                CallResult::Response { status, .. } if status < 400 => None,
                CallResult::Response { status, .. } => Some(format!("it answered {status}")),
                CallResult::TimedOut => {
                    Some(format!("no answer within {}s", check.timeout.as_secs()))
                }
                CallResult::Failed(e) => Some(e),
                CallResult::BodyRejected(e) => Some(e.to_string()),
            };
            match why {
                None => {
                    ok += 1;
                    failed = 0;
                    if ok >= check.success_threshold {
                        return Ok(());
                    }
                }
                Some(why) => {
                    ok = 0;
                    failed += 1;
                    if failed >= check.failure_threshold {
                        return Err(StartError::Unhealthy {
                            path: check.path.clone(),
                            detail: format!("{why} ({failed} failures in a row)"),
                            log: self.logs.last(20),
                        });
                    }
                }
            }
            tokio::time::sleep(check.period).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_fields_and_fc_defaults() {
        assert_eq!(HealthCheck::of(None), None);
        assert_eq!(HealthCheck::of(json!({"httpGetUrl": ""}).as_object()), None);
        let c = HealthCheck::of(json!({"httpGetUrl": "ready"}).as_object()).unwrap();
        assert_eq!(c.path, "/ready");
        assert_eq!(c.initial_delay, Duration::ZERO);
        assert_eq!(c.period, Duration::from_secs(3));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!((c.failure_threshold, c.success_threshold), (3, 1));
        let c = HealthCheck::of(
            json!({"httpGetUrl": "/h", "initialDelaySeconds": 2, "periodSeconds": 0,
                   "timeoutSeconds": 5, "failureThreshold": 1, "successThreshold": 2})
            .as_object(),
        )
        .unwrap();
        assert_eq!(c.initial_delay, Duration::from_secs(2));
        // 0 is not a period: FC's default instead.
        assert_eq!(c.period, Duration::from_secs(3));
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!((c.failure_threshold, c.success_threshold), (1, 2));
    }
}
