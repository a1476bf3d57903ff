//! `GET /metrics` (Prometheus text), served unsigned on the opt-in metrics listener only, and
//! `GET /status` (JSON), a signed request on the API listener. Neither carries secrets or tenant
//! data; `/status` describes the host (isolation, what is missing), so it is not public.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::json_response;
use crate::AppState;

pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let mut text = s.control.runtime().metrics_text();
    text.push_str(&s.front_door.metrics_text());
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

pub(super) async fn status(State(s): State<AppState>) -> Response {
    json_response(StatusCode::OK, &s.control.status(), None)
}
