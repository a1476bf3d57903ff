//! The web console against the real binary: its page and modules are served unsigned with the
//! security headers the page relies on, and nothing else becomes unsigned with it.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestServer;
use http::HeaderMap;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn the_console_is_served_unsigned_and_the_api_stays_signed() {
    let srv = TestServer::start();

    let page = srv.raw("GET", "/console", HeaderMap::new(), vec![]).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(page.header("content-security-policy"), CSP);
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    assert_eq!(page.header("cache-control"), "no-store");
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/console.js">"#));
    assert!(html.contains(r#"id="signin-form""#));

    let slash = srv.raw("GET", "/console/", HeaderMap::new(), vec![]).await;
    assert_eq!(slash.status, 200);
    assert_eq!(slash.body, page.body);

    let js = srv
        .raw("GET", "/console/console.js", HeaderMap::new(), vec![])
        .await;
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(js.header("content-security-policy"), CSP);

    let missing = srv
        .raw("GET", "/console/secrets.json", HeaderMap::new(), vec![])
        .await;
    assert_eq!(missing.status, 404);
    let post = srv.raw("POST", "/console", HeaderMap::new(), vec![]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), "GET, HEAD");

    // Deeper paths, look-alikes and the API itself still need a signature.
    for path in [
        "/console/a/b",
        "/consoles",
        "/console.js",
        "/2021-04-06/services",
        "/2021-04-06/console",
    ] {
        let r = srv.raw("GET", path, HeaderMap::new(), vec![]).await;
        assert_eq!(r.status, 403, "{path}: {:?}", r.body);
        assert_eq!(r.error_code(), "AccessDenied", "{path}");
    }
    // And a signed call works as before.
    let signed = srv.call("GET", "/2021-04-06/services", "").await;
    assert_eq!(signed.status, 200, "{:?}", signed.body);
}
