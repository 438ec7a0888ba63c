use autolearn_server::openapi::ROUTES;
use integration_tests::{ADMIN_PASSWORD, Backend, both_backends, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn login_gives_cookie_and_bearer_token(b: Backend) {
    let app = spawn_app(b).await;
    let bad = app
        .call(
            None,
            Method::POST,
            "/api/auth/login",
            Some(json!({"username": "admin", "password": "wrong"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let nobody = app
        .call(
            None,
            Method::POST,
            "/api/auth/login",
            Some(json!({"username": "nobody", "password": "x"})),
        )
        .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);

    // The browser path: the cookie alone authenticates, and logout ends it.
    let res = app
        .http
        .post(format!("{}/api/auth/login", app.url))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let me = app
        .http
        .get(format!("{}/api/auth/me", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(
        (me["username"].as_str(), me["is_admin"].as_bool()),
        (Some("admin"), Some(true))
    );
    let out = app
        .http
        .post(format!("{}/api/auth/logout", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let me = app
        .http
        .get(format!("{}/api/auth/me", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);

    // The script path: a bearer token.
    let r = app.admin(Method::GET, "/api/auth/me", None).await;
    assert_eq!(r.body["username"], "admin");
    let r = app
        .call(Some("not-a-token"), Method::GET, "/api/auth/me", None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
}

/// Every protected route refuses a request without credentials, and changes nothing.
async fn every_protected_route_needs_credentials(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.create_instance("image_classification", "guarded").await;
    for route in ROUTES
        .iter()
        .filter(|r| !matches!(r.access, "public" | "service token"))
    {
        let path = route
            .path
            .replace("{id}", &id.to_string())
            .replace("{name}", "x")
            .replace("{table}", "user_item")
            .replace("{job}", "x")
            .replace("{service}", "x");
        let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
        let r = app.call(None, method, &path, Some(json!({}))).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{} {}",
            route.method,
            route.path
        );
        assert_eq!(r.code(), "unauthorized");
    }
    assert_eq!(
        app.admin(Method::GET, &format!("/api/instances/{id}"), None)
            .await
            .status,
        StatusCode::OK
    );
}

async fn users_get_only_their_permissions(b: Backend) {
    let app = spawn_app(b).await;
    let visible = app.create_instance("image_classification", "visible").await;
    let hidden = app.create_instance("object_detection", "hidden").await;
    let (_, viewer) = app
        .user_with(
            "viewer",
            json!([{"permission": "ListInstance", "instance_id": visible}]),
        )
        .await;

    let list = app
        .call(Some(&viewer), Method::GET, "/api/instances", None)
        .await;
    let names: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["visible"]);
    let r = app
        .call(
            Some(&viewer),
            Method::GET,
            &format!("/api/instances/{hidden}"),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ListInstance")
    );

    // Refused writes change nothing.
    let r = app
        .call(
            Some(&viewer),
            Method::POST,
            "/api/instances",
            Some(json!({"type": "ocr", "name": "sneaky"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Some(&viewer),
            Method::PATCH,
            &format!("/api/instances/{visible}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Some(&viewer),
            Method::DELETE,
            &format!("/api/instances/{visible}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let all = app.admin(Method::GET, "/api/instances", None).await;
    let mut names: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["hidden", "visible"]);

    // Users are the admin's business only.
    let r = app
        .call(Some(&viewer), Method::GET, "/api/users", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn admin_manages_users_and_permissions(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("ocr", "plates").await;
    let (uid, token) = app.user_with("creator", json!([])).await;
    let r = app
        .call(
            Some(&token),
            Method::POST,
            "/api/instances",
            Some(json!({"type": "ocr", "name": "x1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = app
        .admin(Method::PUT, &format!("/api/users/{uid}/permissions"), Some(json!({"permissions": [{"permission": "CreateInstance"}, {"permission": "ListInstance", "instance_id": inst}]})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["permissions"].as_array().unwrap().len(), 2);
    let r = app
        .call(
            Some(&token),
            Method::POST,
            "/api/instances",
            Some(json!({"type": "ocr", "name": "x1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = app
        .admin(
            Method::POST,
            "/api/users",
            Some(json!({"username": "creator", "password": "password-123"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "conflict"));
    let r = app
        .admin(
            Method::POST,
            "/api/users",
            Some(json!({"username": "short", "password": "123"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("password"))
    );
    let r = app
        .admin(
            Method::PUT,
            "/api/users/424242/permissions",
            Some(json!({"permissions": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .admin(
            Method::PUT,
            &format!("/api/users/{uid}/permissions"),
            Some(json!({"permissions": [{"permission": "Fly"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let users = app.admin(Method::GET, "/api/users", None).await;
    assert_eq!(users.body.as_array().unwrap().len(), 2);
}

/// The answers to a run of logins: status, error code and `Retry-After`.
async fn login_answers(
    app: &integration_tests::TestApp,
    username: &str,
    password: &str,
    n: usize,
) -> Vec<(StatusCode, String, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let res = reqwest::Client::new()
            .post(format!("{}/api/auth/login", app.url))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        let status = res.status();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        out.push((
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            retry,
        ));
    }
    out
}

/// Password guessing gets slower after five failures (per account name and per address),
/// the same way for names that exist and names that do not, and a flood of logins is
/// answered (401, 429 or 503 at once), never queued without bound.
async fn failed_logins_are_throttled_without_revealing_users(b: Backend) {
    let app = spawn_app(b).await;
    let existing = login_answers(&app, "admin", "wrong-password", 7).await;
    // Locked means locked: the right password waits too.
    let right = login_answers(&app, "admin", ADMIN_PASSWORD, 1).await;
    assert_eq!(right[0].0, StatusCode::TOO_MANY_REQUESTS);
    let ghost_app = spawn_app(b).await;
    let ghost = login_answers(&ghost_app, "no-such-user", "wrong-password", 7).await;
    assert_eq!(
        existing, ghost,
        "the answers do not tell whether a user exists"
    );
    let unauthorized = (
        StatusCode::UNAUTHORIZED,
        "invalid_credentials".to_owned(),
        String::new(),
    );
    assert_eq!(existing[..6], vec![unauthorized; 6][..], "{existing:?}");
    assert_eq!(
        existing[6],
        (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts".to_owned(),
            "2".to_owned()
        )
    );

    // A flood at 10x the hashing pool from one client: every answer comes, none is a 5xx
    // other than the pool's 503.
    let flood = spawn_app(b).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..80 {
        let url = format!("{}/api/auth/login", flood.url);
        set.spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"username": format!("user{i}"), "password": "x"}))
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let answers = set.join_all().await;
    for s in &answers {
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE
            ]
            .contains(s),
            "{answers:?}"
        );
    }
    assert!(
        answers.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the queue is bounded: {answers:?}"
    );
    // The flood's failures locked its address, for any name.
    let after = login_answers(&flood, "someone-new", "x", 1).await;
    assert_eq!(after[0].0, StatusCode::TOO_MANY_REQUESTS, "{after:?}");
}

/// Logout ends the session in the database, not only in the browser: the token it carried
/// no longer works anywhere. Behind a TLS proxy the cookie is `Secure`.
async fn logout_ends_the_session_and_cookies_follow_tls(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.login("admin", ADMIN_PASSWORD).await;
    let out = reqwest::Client::new()
        .post(format!("{}/api/auth/logout", app.url))
        .header("cookie", format!("autolearn_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let r = app
        .call(Some(&token), Method::GET, "/api/auth/me", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let cookie_over = |proto: &'static str| {
        let url = format!("{}/api/auth/login", app.url);
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .header("x-forwarded-proto", proto)
                .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
                .send()
                .await
                .unwrap();
            res.headers()["set-cookie"].to_str().unwrap().to_owned()
        }
    };
    assert!(cookie_over("https").await.contains("; Secure"));
    assert!(!cookie_over("http").await.contains("Secure"));
    let forced = integration_tests::spawn_app_with(b, &[("secure_cookies", "true")]).await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/auth/login", forced.url))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

both_backends!(
    failed_logins_are_throttled_without_revealing_users,
    logout_ends_the_session_and_cookies_follow_tls,
    login_gives_cookie_and_bearer_token,
    every_protected_route_needs_credentials,
    users_get_only_their_permissions,
    admin_manages_users_and_permissions,
);
