//! Browser-facing protections (the security issue): a page on another site cannot make a
//! signed-in user's browser change anything, and every response carries the security headers.

use autolearn_server::openapi::ROUTES;
use integration_tests::{Backend, Res, TestApp, both_backends, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::predict::trained_model;
use super::training::{TRAINING, shapes};

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
    let r = Res::read(req.send().await.unwrap()).await;
    (r.status, r.code().to_owned())
}

async fn instance_names(app: &TestApp) -> Vec<String> {
    let r = app.admin(Method::GET, "/api/instances", None).await;
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn cross_site_writes_riding_on_the_session_cookie_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = format!("autolearn_session={}", app.admin_token);
    let own = app.url.clone();
    let json_body = |name: &str| {
        serde_json::to_vec(&json!({"type": "image_classification", "name": name})).unwrap()
    };
    let recall = app.create_instance("recommendation_recall", "rec").await;
    let table = format!("/api/instances/{recall}/tables/item");

    // Refused: another site's page (JSON, a form-like text body, a body-less POST, a CSV
    // upload), a sandboxed frame (`Origin: null`), and a cross-site fetch without `Origin`.
    let evil = Some("https://evil.example");
    for (what, req) in [
        (
            "json",
            BrowserRequest {
                method: Method::POST,
                path: "/api/instances",
                origin: evil,
                fetch_site: Some("cross-site"),
                content_type: "application/json",
                body: json_body("evil1"),
            },
        ),
        (
            "form",
            BrowserRequest {
                method: Method::POST,
                path: "/api/instances",
                origin: evil,
                fetch_site: None,
                content_type: "text/plain",
                body: json_body("evil2"),
            },
        ),
        (
            "null origin",
            BrowserRequest {
                method: Method::POST,
                path: "/api/instances",
                origin: Some("null"),
                fetch_site: None,
                content_type: "application/json",
                body: json_body("evil3"),
            },
        ),
        (
            "no origin",
            BrowserRequest {
                method: Method::POST,
                path: "/api/instances",
                origin: None,
                fetch_site: Some("cross-site"),
                content_type: "application/json",
                body: json_body("evil4"),
            },
        ),
        (
            "same site, other origin",
            BrowserRequest {
                method: Method::POST,
                path: "/api/instances",
                origin: Some("http://127.0.0.1:1"),
                fetch_site: Some("same-site"),
                content_type: "application/json",
                body: json_body("evil5"),
            },
        ),
        (
            "upload",
            BrowserRequest {
                method: Method::PUT,
                path: &table,
                origin: evil,
                fetch_site: None,
                content_type: "text/csv",
                body: b"item_id,category\ni1,c1\n".to_vec(),
            },
        ),
        (
            "logout",
            BrowserRequest {
                method: Method::POST,
                path: "/api/auth/logout",
                origin: evil,
                fetch_site: None,
                content_type: "application/json",
                body: Vec::new(),
            },
        ),
        (
            "delete",
            BrowserRequest {
                method: Method::DELETE,
                path: &format!("/api/instances/{recall}"),
                origin: evil,
                fetch_site: None,
                content_type: "application/json",
                body: Vec::new(),
            },
        ),
    ] {
        assert_eq!(
            send(&app, &cookie, req).await,
            (StatusCode::FORBIDDEN, "cross_origin".to_owned()),
            "{what}"
        );
    }
    // Nothing happened: no instance made or removed, no table rows, still signed in.
    assert_eq!(instance_names(&app).await, vec!["rec".to_owned()]);
    let tables = app
        .admin(
            Method::GET,
            &format!("/api/instances/{recall}/tables"),
            None,
        )
        .await;
    let rows: i64 = tables
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_i64().unwrap())
        .sum();
    assert_eq!(rows, 0, "{:?}", tables.body);
    let me = send(
        &app,
        &cookie,
        BrowserRequest {
            method: Method::GET,
            path: "/api/auth/me",
            origin: evil,
            fetch_site: Some("cross-site"),
            content_type: "application/json",
            body: Vec::new(),
        },
    )
    .await;
    assert_eq!(
        me.0,
        StatusCode::OK,
        "reads are not writes; the session survived"
    );

    // Accepted: the app's own pages, and API clients with a bearer token whatever they say.
    let ok = [
        BrowserRequest {
            method: Method::POST,
            path: "/api/instances",
            origin: Some(&own),
            fetch_site: Some("same-origin"),
            content_type: "application/json",
            body: json_body("mine1"),
        },
        BrowserRequest {
            method: Method::POST,
            path: "/api/instances",
            origin: None,
            fetch_site: Some("same-origin"),
            content_type: "application/json",
            body: json_body("mine2"),
        },
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
    for (path, auth) in [
        ("/api/auth/me", true),
        ("/api/auth/me", false),
        ("/api/no-such-route", true),
        ("/", false),
        ("/models/1", false),
    ] {
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
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{path}: {csp}"
        );
    }
}

/// A user with every permission on their own instance walks every route of another team's
/// instance: each answer (status, code and message) equals the answer for an id or name that
/// does not exist, and nothing changes.
async fn other_teams_ids_answer_as_missing_ones_on_every_route(b: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(b, &[("workers", "1")]).await;
    let (theirs, ds) = shapes(&app).await;
    let model = trained_model(
        &app,
        theirs,
        ds,
        "hidden",
        &["circle", "square", "triangle"],
    )
    .await;
    let task = app
        .admin(Method::GET, &format!("/api/instances/{theirs}/tasks"), None)
        .await
        .body[0]["id"]
        .as_i64()
        .unwrap();
    let images = app
        .admin(Method::GET, &format!("/api/datasets/{ds}/images"), None)
        .await;
    let image = images.body["items"][0]["id"].as_i64().expect("an image id");
    let link = app
        .admin(
            Method::POST,
            &format!("/api/models/{model}/preview-links"),
            None,
        )
        .await;
    assert_eq!(link.status, StatusCode::CREATED, "{:?}", link.body);
    let link = link.body["id"].as_i64().unwrap();
    let svc = app
        .admin(
            Method::POST,
            &format!("/api/models/{model}/services"),
            Some(json!({"name": "hidden-svc"})),
        )
        .await;
    assert_eq!(svc.status, StatusCode::CREATED, "{:?}", svc.body);

    let mine = app.create_instance("image_classification", "mine").await;
    let grants: Vec<_> = [
        "CreateInstance",
        "EditInstance",
        "LabelInstance",
        "TrainInstance",
        "ListInstance",
    ]
    .iter()
    .map(|p| json!({"permission": p, "instance_id": mine}))
    .collect();
    let (_, outsider) = app.user_with("outsider", json!(grants)).await;

    let fill = |path: &str, existing: bool| {
        let id = |real: i64| {
            if existing {
                real.to_string()
            } else {
                "987654321".to_owned()
            }
        };
        let name = if existing {
            "hidden-svc"
        } else {
            "no-such-svc"
        };
        let path = path
            .replace("/api/datasets/{id}", &format!("/api/datasets/{}", id(ds)))
            .replace("/api/images/{id}", &format!("/api/images/{}", id(image)))
            .replace("/api/tasks/{id}", &format!("/api/tasks/{}", id(task)))
            .replace("/api/models/{id}", &format!("/api/models/{}", id(model)))
            .replace(
                "/api/preview-links/{id}",
                &format!("/api/preview-links/{}", id(link)),
            )
            .replace(
                "/api/instances/{id}",
                &format!("/api/instances/{}", id(theirs)),
            )
            .replace("/api/services/{name}", &format!("/api/services/{name}"))
            .replace("{table}", "user_item")
            .replace("{job}", "job-1")
            .replace("{name}", "s1");
        assert!(
            !path.contains('{'),
            "{path}: a placeholder this test does not know"
        );
        path
    };
    let mut walked = 0;
    for route in ROUTES.iter().filter(|r| {
        r.path.contains('{') && !matches!(r.access, "public" | "service token" | "admin")
    }) {
        let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let hidden = app
            .call(
                Some(&outsider),
                method.clone(),
                &fill(route.path, true),
                body.clone(),
            )
            .await;
        let missing = app
            .call(Some(&outsider), method, &fill(route.path, false), body)
            .await;
        let answer = |r: &integration_tests::Res| (r.status, r.body.clone());
        assert_eq!(
            answer(&hidden),
            answer(&missing),
            "{} {}",
            route.method,
            route.path
        );
        // 403/404, or a 4xx about the request body (`{}`), which says nothing of the id.
        assert!(
            hidden.status.is_client_error() && hidden.status != StatusCode::UNAUTHORIZED,
            "{} {}: {:?}",
            route.method,
            route.path,
            hidden.body
        );
        walked += 1;
    }
    assert!(walked >= 40, "{walked} routes walked");
    // Nothing changed: everything is still there for its owner.
    for path in [
        format!("/api/instances/{theirs}"),
        format!("/api/datasets/{ds}"),
        format!("/api/images/{image}"),
        format!("/api/models/{model}"),
        format!("/api/tasks/{task}"),
        "/api/services/hidden-svc".to_owned(),
    ] {
        assert_eq!(
            app.admin(Method::GET, &path, None).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let links = app
        .admin(
            Method::GET,
            &format!("/api/models/{model}/preview-links"),
            None,
        )
        .await;
    assert_eq!(links.body[0]["revoked"], false);
}

both_backends!(
    cross_site_writes_riding_on_the_session_cookie_are_refused,
    every_response_carries_the_security_headers,
    other_teams_ids_answer_as_missing_ones_on_every_route
);
