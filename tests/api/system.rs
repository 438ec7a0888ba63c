use autolearn_server::openapi::ROUTES;
use integration_tests::{Backend, both_backends, spawn_app};
use reqwest::{Method, StatusCode};

async fn health_readiness_and_metrics(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.call(None, Method::GET, "/healthz", None).await;
    assert_eq!((r.status, &r.bytes[..]), (StatusCode::OK, &b"ok"[..]));
    let r = app.call(None, Method::GET, "/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        serde_json::json!({"database": true, "storage": true})
    );
    let r = app.call(None, Method::GET, "/metrics", None).await;
    let text = String::from_utf8_lossy(&r.bytes);
    assert!(
        text.contains(
            "autolearn_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
        ),
        "{text}"
    );
}

/// Every route of the OpenAPI document is served: none answers "no such route" or 405.
async fn openapi_documents_served_routes(b: Backend) {
    let app = spawn_app(b).await;
    let doc = app.call(None, Method::GET, "/api/openapi.json", None).await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    for route in ROUTES {
        assert!(
            doc.body["paths"][route.path][route.method].is_object(),
            "{} {} undocumented",
            route.method,
            route.path
        );
        let path = route
            .path
            .replace("{id}", "999999")
            .replace("{name}", "x")
            .replace("{table}", "user_item")
            .replace("{job}", "x")
            .replace("{service}", "x");
        let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
        let r = app.admin(method, &path, None).await;
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {}",
            route.method,
            route.path
        );
        assert!(
            !r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no such API route"),
            "{} {} is documented but not routed",
            route.method,
            route.path
        );
    }
    let r = app.admin(Method::GET, "/api/nope", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
}

both_backends!(
    health_readiness_and_metrics,
    openapi_documents_served_routes
);
