use integration_tests::{Backend, both_backends, spawn_app};
use reqwest::{Method, StatusCode};

async fn raw(
    app: &integration_tests::TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let res = reqwest::Client::new()
        .post(format!("{}{path}", app.url))
        .bearer_auth(&app.admin_token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or_default())
}

async fn malformed_and_oversized_bodies_get_clear_errors(b: Backend) {
    let app = spawn_app(b).await;
    let (s, body) = raw(
        &app,
        "/api/instances",
        "application/json",
        b"{\"type\": ".to_vec(),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let (s, body) = raw(&app, "/api/instances", "text/plain", b"{}".to_vec()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    // The test server accepts 256 KiB bodies.
    let big = format!(
        "{{\"type\":\"ocr\",\"name\":\"big\",\"description\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let (s, body) = raw(&app, "/api/instances", "application/json", big.into_bytes()).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    let r = app.admin(Method::GET, "/api/instances", None).await;
    assert_eq!(r.body, serde_json::json!([]), "nothing was created");
    let (s, _) = raw(
        &app,
        "/api/auth/login",
        "application/json",
        vec![b'['; 100_000],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

both_backends!(malformed_and_oversized_bodies_get_clear_errors);

async fn wrong_methods_and_traversal_paths_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.admin(Method::PUT, "/api/instances", None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    // The static file service never serves files outside the web directory.
    let res = reqwest::Client::new()
        .get(format!("{}/..%2f..%2fetc/passwd", app.url))
        .send()
        .await
        .unwrap();
    let body = res.text().await.unwrap();
    assert!(!body.contains("root:"), "{body}");
}

both_backends!(wrong_methods_and_traversal_paths_are_refused);
