//! ListInstances.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{Ctx, PathParams, QueryParams, json_response, qualified};
use crate::AppState;
use crate::error::ApiResult;

/// `instanceIds` as the SDKs flatten it (`instanceIds.1`, `instanceIds.2`, ...), or a single
/// `instanceIds` value.
fn instance_ids(q: &QueryParams) -> Vec<String> {
    let mut numbered: Vec<(u32, String)> =
        q.0.iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("instanceIds.")?.parse().ok()?;
                Some((n, v.clone()))
            })
            .collect();
    numbered.sort();
    let mut ids: Vec<String> = numbered.into_iter().map(|(_, v)| v).collect();
    if let Some(v) = q.string("instanceIds") {
        ids.push(v);
    }
    ids.retain(|v| !v.is_empty());
    ids
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let instances = s
        .control
        .list_instances(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
            &instance_ids(&q),
            q.u32("limit")?,
        )
        .await?;
    let instances: Vec<_> = instances
        .iter()
        .map(|i| json!({ "instanceId": i.instance_id, "versionId": i.version_id }))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "instances": instances }),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_read_in_order() {
        let q = QueryParams(
            [
                ("instanceIds.2", "b"),
                ("instanceIds.10", "c"),
                ("instanceIds.1", "a"),
                ("limit", "5"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        assert_eq!(instance_ids(&q), ["a", "b", "c"]);
        assert!(instance_ids(&QueryParams(Default::default())).is_empty());
    }
}
