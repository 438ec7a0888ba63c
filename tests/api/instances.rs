use integration_tests::{Backend, both_backends, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn instances_follow_the_name_rules(b: Backend) {
    let app = spawn_app(b).await;
    for (kind, name) in [
        ("image_classification", "flowers_v2-a"),
        ("object_detection", "2024花卉"),
        ("ocr", &*"a".repeat(30)),
        ("recommendation_recall", "rec_home"),
    ] {
        app.create_instance(kind, name).await;
    }
    let cases = [
        (
            "image_classification",
            "_bad",
            "instance name must start with an ASCII letter, a digit or a CJK character",
        ),
        (
            "image_classification",
            "no spaces",
            "instance name may contain only letters, digits, CJK characters, '_' and '-'; ' ' is not allowed",
        ),
        (
            "image_classification",
            &*"b".repeat(31),
            "instance name must be at most 30 characters (got 31)",
        ),
        (
            "image_classification",
            "",
            "instance name must not be empty",
        ),
        (
            "recommendation_recall",
            "rec-home",
            "recall instance name may contain only letters, digits, CJK characters and '_'; '-' is not allowed",
        ),
        (
            "recommendation_recall",
            "1rec",
            "recall instance name must start with an ASCII letter or a CJK character",
        ),
    ];
    for (kind, name, message) in cases {
        let r = app
            .admin(
                Method::POST,
                "/api/instances",
                Some(json!({"type": kind, "name": name})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(
            r.body["error"],
            json!({"code": "invalid_name", "message": message, "field": "name"})
        );
    }
    let r = app
        .admin(
            Method::POST,
            "/api/instances",
            Some(json!({"type": "ocr", "name": "rec_home"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("name"))
    );
    let r = app
        .admin(
            Method::POST,
            "/api/instances",
            Some(json!({"type": "video", "name": "v"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let r = app
        .admin(
            Method::POST,
            "/api/instances",
            Some(json!({"template": "nope"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "unknown_template")
    );
    let list = app.admin(Method::GET, "/api/instances", None).await;
    assert_eq!(
        list.body.as_array().unwrap().len(),
        4,
        "refused requests created nothing"
    );
}

async fn instances_are_read_updated_and_deleted(b: Backend) {
    let app = spawn_app(b).await;
    let id = app.create_instance("image_classification", "pets").await;
    let r = app
        .admin(Method::GET, &format!("/api/instances/{id}"), None)
        .await;
    assert_eq!(r.body["type"], "image_classification");
    assert_eq!(
        (
            r.body["dataset_count"].as_i64(),
            r.body["image_count"].as_i64()
        ),
        (Some(0), Some(0))
    );
    assert!(r.body["created_at"].as_str().unwrap().ends_with('Z'));

    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/instances/{id}"),
            Some(json!({"description": "cats and dogs"})),
        )
        .await;
    assert_eq!(
        (r.body["name"].as_str(), r.body["description"].as_str()),
        (Some("pets"), Some("cats and dogs"))
    );
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/instances/{id}"),
            Some(json!({"name": "bad name"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/instances/{id}"),
            Some(json!({"description": "x".repeat(501)})),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "description");
    assert_eq!(
        app.admin(Method::GET, &format!("/api/instances/{id}"), None)
            .await
            .body["name"],
        "pets"
    );

    assert_eq!(
        app.admin(Method::DELETE, &format!("/api/instances/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.admin(Method::GET, &format!("/api/instances/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::GET, "/api/instances/abc", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

both_backends!(
    instances_follow_the_name_rules,
    instances_are_read_updated_and_deleted
);
