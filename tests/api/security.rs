//! Browser-facing protections (the security issue): a page on another site cannot make a
//! signed-in user's browser change anything, and every response carries the security headers.

use integration_tests::{Backend, TestApp, both_backends, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// What a browser sends: the session cookie, and the `Origin` / `Sec-Fetch-Site` it chose.
struct BrowserRequest<'a> {
    method: Method,
    path: &'a str,
    origin: Option<&'a str>,
    fetch_site: Option<&'a str>,
    content_type: &'a str,
    body: Vec<u8>,
}

async fn send(app: &TestApp, cookie: &str, r: BrowserRequest<'_>) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .request(r.method, format!("{}{}", app.url, r.path))
        .header("cookie", cookie)
        .header("content-type", r.content_type)
        .body(r.body);
    if let Some(o) = r.origin {
        req = req.header("origin", o);
    }
    if let Some(s) = r.fetch_site {
        req = req.header("sec-fetch-site", s);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn instance_names(app: &TestApp) -> Vec<String> {
    let r = app.admin(Method::GET, "/api/instances", None).await;
    r.body.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn cross_site_writes_riding_on_the_session_cookie_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = format!("autolearn_session={}", app.admin_token);
    let own = app.url.clone();
    let json_body = |name: &str| serde_json::to_vec(&json!({"type": "image_classification", "name": name})).unwrap();
    let recall = app.create_instance("recommendation_recall", "rec").await;
    let table = format!("/api/instances/{recall}/tables/item");

    // Refused: another site's page (JSON, a form-like text body, a body-less POST, a CSV
    // upload), a sandboxed frame (`Origin: null`), and a cross-site fetch without `Origin`.
    let evil = Some("https://evil.example");
    for (what, req) in [
        ("json", BrowserRequest { method: Method::POST, path: "/api/instances", origin: evil, fetch_site: Some("cross-site"), content_type: "application/json", body: json_body("evil1") }),
        ("form", BrowserRequest { method: Method::POST, path: "/api/instances", origin: evil, fetch_site: None, content_type: "text/plain", body: json_body("evil2") }),
        ("null origin", BrowserRequest { method: Method::POST, path: "/api/instances", origin: Some("null"), fetch_site: None, content_type: "application/json", body: json_body("evil3") }),
        ("no origin", BrowserRequest { method: Method::POST, path: "/api/instances", origin: None, fetch_site: Some("cross-site"), content_type: "application/json", body: json_body("evil4") }),
        ("same site, other origin", BrowserRequest { method: Method::POST, path: "/api/instances", origin: Some("http://127.0.0.1:1"), fetch_site: Some("same-site"), content_type: "application/json", body: json_body("evil5") }),
        ("upload", BrowserRequest { method: Method::PUT, path: &table, origin: evil, fetch_site: None, content_type: "text/csv", body: b"item_id,category\ni1,c1\n".to_vec() }),
        ("logout", BrowserRequest { method: Method::POST, path: "/api/auth/logout", origin: evil, fetch_site: None, content_type: "application/json", body: Vec::new() }),
        ("delete", BrowserRequest { method: Method::DELETE, path: &format!("/api/instances/{recall}"), origin: evil, fetch_site: None, content_type: "application/json", body: Vec::new() }),
    ] {
        assert_eq!(
            send(&app, &cookie, req).await,
            (StatusCode::FORBIDDEN, "cross_origin".to_owned()),
            "{what}"
        );
    }
    // Nothing happened: no instance made or removed, no table rows, still signed in.
    assert_eq!(instance_names(&app).await, vec!["rec".to_owned()]);
    let tables = app.admin(Method::GET, &format!("/api/instances/{recall}/tables"), None).await;
    let rows: i64 = tables.body.as_array().unwrap().iter().map(|t| t["rows"].as_i64().unwrap()).sum();
    assert_eq!(rows, 0, "{:?}", tables.body);
    let me = send(
        &app,
        &cookie,
        BrowserRequest { method: Method::GET, path: "/api/auth/me", origin: evil, fetch_site: Some("cross-site"), content_type: "application/json", body: Vec::new() },
    )
    .await;
    assert_eq!(me.0, StatusCode::OK, "reads are not writes; the session survived");

    // Accepted: the app's own pages, and API clients with a bearer token whatever they say.
    let ok = [
        BrowserRequest { method: Method::POST, path: "/api/instances", origin: Some(&own), fetch_site: Some("same-origin"), content_type: "application/json", body: json_body("mine1") },
        BrowserRequest { method: Method::POST, path: "/api/instances", origin: None, fetch_site: Some("same-origin"), content_type: "application/json", body: json_body("mine2") },
    ];
    for req in ok {
        assert_eq!(send(&app, &cookie, req).await.0, StatusCode::CREATED);
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/instances", app.url))
        .bearer_auth(&app.admin_token)
        .header("origin", "https://tools.example")
        .json(&json!({"type": "image_classification", "name": "cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn every_response_carries_the_security_headers(b: Backend) {
    let app = spawn_app(b).await;
    for (path, auth) in [("/api/auth/me", true), ("/api/auth/me", false), ("/api/no-such-route", true), ("/", false), ("/models/1", false)] {
        let mut req = reqwest::Client::new().get(format!("{}{path}", app.url));
        if auth {
            req = req.bearer_auth(&app.admin_token);
        }
        let res = req.send().await.unwrap();
        let h = |n: &str| {
            res.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        let csp = h("content-security-policy");
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{path}: {csp}"
        );
    }
}

both_backends!(
    cross_site_writes_riding_on_the_session_cookie_are_refused,
    every_response_carries_the_security_headers
);
