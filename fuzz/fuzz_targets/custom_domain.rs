//! Custom domains: CreateCustomDomain/UpdateCustomDomain bodies validated as the API does, and
//! request paths routed by the result — matching never panics (paths and rewrite patterns are
//! any UTF-8, so the wildcard code's slicing meets multi-byte characters) and picks the route
//! FC's rules name: an exact route, else the wildcard route with the longest prefix.
//!
//! Input: UTF-8 text split at NUL: the create body (JSON), then request paths; a piece
//! starting with `{` is an update body applied before the paths that follow it.
#![no_main]

use fcd_core::domains::{CustomDomain, CustomDomainInput, PathConfig};
use libfuzzer_sys::fuzz_target;

/// FC's rule, written plainly.
fn model<'a>(routes: &'a [PathConfig], path: &str) -> Option<&'a PathConfig> {
    if let Some(r) = routes.iter().find(|r| r.path == path) {
        return Some(r);
    }
    let mut best: Option<&PathConfig> = None;
    for r in routes {
        let Some(prefix) = r.path.strip_suffix('*') else {
            continue;
        };
        // `/api/*` takes `/api` itself too.
        let matches = path.starts_with(prefix) || path == prefix.trim_end_matches('/');
        if matches && best.is_none_or(|b| b.path.len() < r.path.len()) {
            best = Some(r);
        }
    }
    best
}

fuzz_target!(|text: &str| {
    let mut pieces = text.split('\0');
    let Some(Ok(input)) = pieces.next().map(serde_json::from_str::<CustomDomainInput>) else {
        return;
    };
    let Ok(mut domain) = CustomDomain::create("123".into(), input, "now".into()) else {
        return;
    };
    for piece in pieces {
        if piece.starts_with('{') {
            if let Ok(update) = serde_json::from_str::<CustomDomainInput>(piece) {
                let before = domain.clone();
                if domain.apply(update, "later".into()).is_err() {
                    assert_eq!(domain, before, "a refused update changes nothing");
                }
            }
            continue;
        }
        let rc = &domain.route_config;
        let found = rc.find(piece);
        assert_eq!(
            found.as_ref().map(|m| m.route.path.as_str()),
            model(&rc.routes, piece).map(|r| r.path.as_str()),
            "route for {piece:?}"
        );
        if let Some(m) = found {
            let _ = m.route.allows("GET");
        }
    }
});
