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

both_backends!(
    login_gives_cookie_and_bearer_token,
    every_protected_route_needs_credentials,
    users_get_only_their_permissions,
    admin_manages_users_and_permissions,
);
