//! The web console: a static single page served at `/console` on the API listener, its files
//! embedded in the binary from `src/console/` (no build step, no CDN, no framework).
//!
//! The page signs every API call itself in the browser (ACS3-HMAC-SHA256 over WebCrypto, as
//! the 2021-04-06 SDKs sign), with a key pair it keeps only in memory. The server therefore has
//! no console session and no cookie — nothing a cross-site request could ride on — and every
//! API call the page makes passes the same front door, signature check and RAM/STS
//! authorization as an SDK's: the console can do exactly what its key may do.
//!
//! Only the page's own files are unsigned: `GET /console`, `/console/` (the page) and
//! `/console/<name>` (one path segment; a name that is not an embedded file is a 404). Other
//! methods on these paths are 405. Every answer carries a strict Content-Security-Policy (no
//! inline script or style, connections only to this origin, no framing), `nosniff` and
//! `no-referrer`.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

/// The console's path; the page itself is served at it and at `PREFIX/`.
pub(crate) const PREFIX: &str = "/console";

/// What the page may load and talk to: its own scripts and styles, `data:` images (none today,
/// kept for inline SVG exports), API calls to this origin; nothing inline, nothing framing it.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page's files, by their exact name under `/console/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("console/index.html"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: JS,
        body: include_str!("console/console.js"),
    },
    Asset {
        name: "sign.js",
        content_type: JS,
        body: include_str!("console/sign.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("console/api.js"),
    },
    Asset {
        name: "zip.js",
        content_type: JS,
        body: include_str!("console/zip.js"),
    },
    Asset {
        name: "charts.js",
        content_type: JS,
        body: include_str!("console/charts.js"),
    },
];

/// Whether the front door lets `path` through unsigned: the console's own paths (the page,
/// and one segment under it — an unknown name is then this module's 404, not a signature
/// error). Anything deeper or elsewhere stays signed.
pub(crate) fn is_console_path(path: &str) -> bool {
    match path.strip_prefix(PREFIX) {
        Some("" | "/") => true,
        Some(rest) => rest
            .strip_prefix('/')
            .is_some_and(|name| !name.is_empty() && !name.contains('/')),
        None => false,
    }
}

/// The console's routes, merged into the API router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PREFIX, page())
        .route("/console/", page())
        .route("/console/{asset}", get(asset).fallback(method_not_allowed))
}

fn page<S: Clone + Send + Sync + 'static>() -> MethodRouter<S> {
    get(|| async { serve("index.html") }).fallback(method_not_allowed)
}

/// The asset named by the raw (not percent-decoded) last segment: names are compared exactly.
async fn asset(req: Request) -> Response {
    let name = req
        .uri()
        .path()
        .strip_prefix("/console/")
        .unwrap_or_default();
    serve(name)
}

fn serve(name: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return with_security_headers(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not found\n",
            )
                .into_response(),
        );
    };
    // The page is never cached, so a new binary's page is used at once; the modules it loads
    // are revalidated on every load for the same reason (they carry no version in their name).
    let cache = if a.name == "index.html" {
        "no-store"
    } else {
        "no-cache"
    };
    with_security_headers(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, cache),
            ],
            a.body,
        )
            .into_response(),
    )
}

async fn method_not_allowed() -> Response {
    with_security_headers(
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [
                (header::ALLOW, "GET, HEAD"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            "method not allowed\n",
        )
            .into_response(),
    )
}

fn with_security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn get(method: &str, uri: &str) -> Response {
        use tower::ServiceExt as _;
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        routes::<()>().oneshot(req).await.unwrap()
    }

    fn assert_security_headers(resp: &Response) {
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(CSP.contains("script-src 'self';") && !CSP.contains("unsafe"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    }

    #[tokio::test]
    async fn the_page_is_served_at_both_paths_never_cached() {
        for uri in ["/console", "/console/", "/console/index.html"] {
            let resp = get("GET", uri).await;
            assert_eq!(resp.status(), StatusCode::OK, "{uri}");
            assert_security_headers(&resp);
            assert_eq!(
                resp.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            assert!(body.starts_with(b"<!doctype html>"), "{uri}");
        }
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        for (name, ct) in [
            ("console.js", JS),
            ("sign.js", JS),
            ("console.css", "text/css; charset=utf-8"),
        ] {
            let resp = get("GET", &format!("/console/{name}")).await;
            assert_eq!(resp.status(), StatusCode::OK, "{name}");
            assert_security_headers(&resp);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], ct, "{name}");
        }
    }

    #[tokio::test]
    async fn unknown_names_are_404_and_other_methods_405() {
        for uri in [
            "/console/nope.js",
            "/console/CONSOLE.JS",
            "/console/console%2Ejs",
            "/console/..%2Fconsole.js",
        ] {
            let resp = get("GET", uri).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{uri}");
            assert_security_headers(&resp);
        }
        for (method, uri) in [
            ("POST", "/console"),
            ("PUT", "/console/"),
            ("DELETE", "/console/console.js"),
        ] {
            let resp = get(method, uri).await;
            assert_eq!(
                resp.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
            assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD");
        }
        let head = get("HEAD", "/console/console.css").await;
        assert_eq!(head.status(), StatusCode::OK);
    }

    #[test]
    fn only_the_console_paths_are_console_paths() {
        for p in [
            "/console",
            "/console/",
            "/console/console.js",
            "/console/nope",
        ] {
            assert!(is_console_path(p), "{p}");
        }
        for p in [
            "/",
            "/consoles",
            "/console.js",
            "/console//x",
            "/console/a/b",
            "/console/../2021-04-06/services",
            "/2021-04-06/console",
            "/status",
        ] {
            assert!(!is_console_path(p), "{p}");
        }
    }

    #[test]
    fn every_asset_the_page_loads_is_embedded() {
        let index = ASSETS[0].body;
        assert!(index.contains(r#"src="/console/console.js""#));
        assert!(index.contains(r#"href="/console/console.css""#));
        // Every module imported by another is embedded under that name.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let Some((_, rest)) = line.split_once("from \"./") else {
                    panic!("{}: imports must be relative: {line}", a.name);
                };
                let name = rest.split('"').next().unwrap();
                assert!(
                    ASSETS.iter().any(|b| b.name == name),
                    "{} imports {name}, which is not embedded",
                    a.name
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".html")) {
            let body = a.body.to_ascii_lowercase();
            assert!(!body.contains("<style"), "{}", a.name);
            assert!(!body.contains(" style="), "{}", a.name);
            assert!(!body.contains(" onclick="), "{}", a.name);
            for script in body.split("<script").skip(1) {
                let open = script.split('>').next().unwrap();
                assert!(open.contains(" src="), "inline script in {}", a.name);
            }
        }
    }
}
