//! `GET /metrics` (Prometheus text) and `GET /status` (JSON). Both are served without a
//! signature: they carry counters and settings, never secrets or tenant data.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::json_response;
use crate::AppState;

pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let mut resp = (StatusCode::OK, s.control.runtime().metrics_text()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

pub(super) async fn status(State(s): State<AppState>) -> Response {
    json_response(StatusCode::OK, &s.control.status(), None)
}
