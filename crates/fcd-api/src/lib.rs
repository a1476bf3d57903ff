//! The HTTP face of fcd: FC's OpenAPI (2021-04-06 and the 2016-08-15 paths of the classic SDKs)
//! on axum.
//!
//! The web console's static page is served from `console` (unsigned; the page signs its own
//! API calls).
//!
//! Every request passes through [`auth`] (request id, body buffering, signature, account,
//! authorization), then a route in [`routes`] (FC's paths) or `rpc` (RAM and STS at `/`) that
//! parses its input and calls the service layer ([`fcd_control`]),
//! which owns the rules that span the store, the code store, the queue and the instance manager.
//! This crate only speaks FC's wire format. Errors of every layer arrive as
//! [`fcd_core::FcError`] and are rendered as FC's error body in one place ([`error`]).

pub mod auth;
mod console;
pub mod error;
pub mod forward;
pub mod frontdoor;
pub mod proxy;
pub mod replay;
pub mod routes;
mod rpc;

use std::sync::Arc;

pub use fcd_control::iam::Iam;
pub use fcd_control::{Control, asynchronous};
pub use frontdoor::FrontDoor;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Access keys, principals and their permissions; RAM and STS.
    pub iam: Arc<Iam>,
    pub control: Arc<Control>,
    pub asynchronous: Arc<asynchronous::AsyncEngine>,
    pub front_door: Arc<FrontDoor>,
    /// Where clients reach this server (`fcd serve --public-url`), no trailing slash: the base
    /// of HTTP triggers' `urlInternet`/`urlIntranet`.
    pub public_url: Arc<str>,
    /// How a call placed on another cluster node gets there.
    pub forwarder: forward::Forwarder,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The complete API router.
pub fn router(state: AppState) -> axum::Router {
    routes::router(state)
}

/// The router of the optional plain-web listener: custom domains and `/proxy/` URLs only.
pub fn web_router(state: AppState) -> axum::Router {
    proxy::web_router(state)
}

/// The router of the opt-in metrics listener: `GET /metrics`, unsigned, and nothing else.
pub fn metrics_router(state: AppState) -> axum::Router {
    routes::metrics_router(state)
}
