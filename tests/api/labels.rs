use integration_tests::{Backend, both_backends, jpeg, png, spawn_app, voc, write};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn labels(app: &integration_tests::TestApp, ds: i64) -> serde_json::Value {
    app.admin(Method::GET, &format!("/api/datasets/{ds}/labels"), None)
        .await
        .body
}

async fn tags_are_added_renamed_and_deleted_across_images(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("image_classification", "tags").await;
    let dir = app.dataset_dir("tags");
    write(&dir, "cat/1.png", &png(32, 32));
    write(&dir, "cat/2.png", &png(33, 32));
    write(&dir, "dog/3.png", &png(34, 32));
    let ds = app
        .create_dataset(inst, "tags", dir.to_str().unwrap())
        .await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        labels(&app, ds).await,
        json!([{"name": "cat", "count": 2}, {"name": "dog", "count": 1}])
    );

    let r = app
        .admin(
            Method::POST,
            &format!("/api/datasets/{ds}/labels"),
            Some(json!({"name": "bird"})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::CREATED, &json!({"name": "bird", "count": 0}))
    );
    let r = app
        .admin(
            Method::POST,
            &format!("/api/datasets/{ds}/labels"),
            Some(json!({"name": "bird"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .admin(
            Method::POST,
            &format!("/api/datasets/{ds}/labels"),
            Some(json!({"name": "鸟"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("name"))
    );

    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/datasets/{ds}/labels/cat"),
            Some(json!({"name": "kitten"})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body),
        (StatusCode::OK, &json!({"name": "kitten", "count": 2}))
    );
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/datasets/{ds}/labels/kitten"),
            Some(json!({"name": "dog"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "renaming onto an existing tag is refused"
    );
    let d = app
        .admin(Method::GET, &format!("/api/datasets/{ds}"), None)
        .await
        .body;
    assert_eq!(d["per_label"], json!({"dog": 1, "kitten": 2}));

    // A label with a space travels URL-encoded.
    app.admin(
        Method::POST,
        &format!("/api/datasets/{ds}/labels"),
        Some(json!({"name": "not alpaca"})),
    )
    .await;
    let r = app
        .admin(
            Method::DELETE,
            &format!("/api/datasets/{ds}/labels/not%20alpaca"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let r = app
        .admin(
            Method::DELETE,
            &format!("/api/datasets/{ds}/labels/dog"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let d = app
        .admin(Method::GET, &format!("/api/datasets/{ds}"), None)
        .await
        .body;
    assert_eq!(
        (d["labelled"].as_i64(), d["unlabelled"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        labels(&app, ds).await,
        json!([{"name": "bird", "count": 0}, {"name": "kitten", "count": 2}])
    );
    assert_eq!(
        app.admin(
            Method::DELETE,
            &format!("/api/datasets/{ds}/labels/dog"),
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    // Re-indexing keeps the renamed labels (they were edited in the browser).
    let r = app
        .admin(Method::POST, &format!("/api/datasets/{ds}/reindex"), None)
        .await;
    assert_eq!(r.body["per_label"], json!({"kitten": 2}));

    let (_, viewer) = app
        .user_with("viewer", json!([{"permission": "ListInstance"}]))
        .await;
    let r = app
        .call(
            Some(&viewer),
            Method::POST,
            &format!("/api/datasets/{ds}/labels"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(
            Some(&viewer),
            Method::DELETE,
            &format!("/api/datasets/{ds}/labels/kitten"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(labels(&app, ds).await[1]["count"], 2);
}

async fn box_labels_rename_inside_boxes(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("object_detection", "boxtags").await;
    let dir = app.dataset_dir("boxtags");
    write(&dir, "a.jpg", &jpeg(100, 100));
    write(
        &dir,
        "a.xml",
        voc(
            100,
            100,
            &[("car", 1.0, 1.0, 50.0, 50.0), ("bus", 2.0, 2.0, 60.0, 60.0)],
        )
        .as_bytes(),
    );
    let ds = app
        .create_dataset(inst, "boxtags", dir.to_str().unwrap())
        .await["id"]
        .as_i64()
        .unwrap();
    app.admin(
        Method::PATCH,
        &format!("/api/datasets/{ds}/labels/car"),
        Some(json!({"name": "sedan"})),
    )
    .await;
    app.admin(
        Method::DELETE,
        &format!("/api/datasets/{ds}/labels/bus"),
        None,
    )
    .await;
    let imgs = app
        .admin(Method::GET, &format!("/api/datasets/{ds}/images"), None)
        .await;
    let boxes = &imgs.body["items"][0]["annotation"]["boxes"];
    assert_eq!(boxes.as_array().unwrap().len(), 1);
    assert_eq!(boxes[0]["label"], "sedan");
}

async fn thumbnails_are_small_jpegs_made_once(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("image_classification", "thumbs").await;
    let dir = app.dataset_dir("thumbs");
    write(&dir, "wide.png", &png(800, 400));
    write(&dir, "broken.jpg", &jpeg(64, 64)[..200]);
    let ds = app
        .create_dataset(inst, "thumbs", dir.to_str().unwrap())
        .await["id"]
        .as_i64()
        .unwrap();
    let items = app
        .admin(Method::GET, &format!("/api/datasets/{ds}/images"), None)
        .await
        .body["items"]
        .clone();
    let id_of = |p: &str| {
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == p)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let wide = id_of("wide.png");
    // Indexing warms the grid-size (256) thumbnails in the background.
    let warm = app.data_dir.join(format!(
        "thumbs/{wide}-256-{}.jpg",
        std::fs::metadata(dir.join("wide.png")).unwrap().len()
    ));
    for _ in 0..100 {
        if warm.is_file() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        warm.is_file(),
        "grid thumbnail made after indexing: {}",
        warm.display()
    );
    let r = app
        .admin(
            Method::GET,
            &format!("/api/images/{wide}/thumbnail?size=128"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t = image::load_from_memory_with_format(&r.bytes, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((t.width(), t.height()), (128, 64));
    let cached = app.data_dir.join(format!(
        "thumbs/{wide}-128-{}.jpg",
        std::fs::metadata(dir.join("wide.png")).unwrap().len()
    ));
    assert!(cached.is_file(), "cached at {}", cached.display());
    let again = app
        .admin(
            Method::GET,
            &format!("/api/images/{wide}/thumbnail?size=128"),
            None,
        )
        .await;
    assert_eq!(again.bytes, r.bytes);
    let r = app
        .admin(
            Method::GET,
            &format!("/api/images/{wide}/thumbnail?size=5000"),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("size"))
    );
    // A truncated JPEG has a valid header (so it is indexed) but cannot be decoded.
    let broken = id_of("broken.jpg");
    let r = app
        .admin(
            Method::GET,
            &format!("/api/images/{broken}/thumbnail"),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "image_decode_error")
    );
}

both_backends!(
    tags_are_added_renamed_and_deleted_across_images,
    box_labels_rename_inside_boxes,
    thumbnails_are_small_jpegs_made_once
);
