//! Datasets in a real S3-compatible server (s3s-fs, started by `scripts/test.sh`).

use autolearn_server::storage::{Location, Store};
use bytes::Bytes;
use integration_tests::{Backend, both_backends, jpeg, png, s3_env, spawn_app, voc};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn bucket(app: &integration_tests::TestApp, prefix: &str) -> Option<(String, Store)> {
    if s3_env().is_none() {
        eprintln!(
            "skipped: AUTOLEARN_TEST_S3_ENDPOINT is not set (scripts/test.sh starts an S3 server and sets it)"
        );
        return None;
    }
    let name = format!("t{}", rand::random::<u32>());
    let loc = Location::S3 {
        bucket: name.clone(),
        prefix: String::new(),
    };
    let store = app.state.storage.open(&loc).unwrap();
    let Store::S3(s3) = &store else {
        unreachable!()
    };
    s3.ensure_bucket().await.expect("create bucket");
    let loc = Location::S3 {
        bucket: name.clone(),
        prefix: prefix.to_owned(),
    };
    Some((
        format!("s3://{name}/{prefix}"),
        app.state.storage.open(&loc).unwrap(),
    ))
}

async fn s3_classification_dataset_is_indexed_in_place(b: Backend) {
    let app = spawn_app(b).await;
    let Some((uri, store)) = bucket(&app, "data/pets/").await else {
        return;
    };
    let cat = png(40, 30);
    store
        .put("cat/a.png", Bytes::from(cat.clone()))
        .await
        .unwrap();
    store
        .put("dog/b.jpg", Bytes::from(jpeg(64, 48)))
        .await
        .unwrap();
    store.put("c.png", Bytes::from(png(8, 8))).await.unwrap();
    store
        .put("cat/bad.jpg", Bytes::from_static(b"not an image"))
        .await
        .unwrap();
    store
        .put("dog/big.png", Bytes::from(vec![7u8; 11 * 1024 * 1024]))
        .await
        .unwrap();

    let inst = app.create_instance("image_classification", "s3pets").await;
    let ds = app.create_dataset(inst, "s3pets", &uri).await;
    assert_eq!(ds["path"], uri);
    assert_eq!(
        (ds["total"].as_i64(), ds["labelled"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(ds["per_label"], json!({"cat": 1, "dog": 1}));
    let skipped: Vec<&str> = ds["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["cat/bad.jpg", "dog/big.png"]);

    let page = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/images?label=cat", ds["id"]),
            None,
        )
        .await;
    let img = &page.body["items"][0];
    assert_eq!(
        (img["width"].as_i64(), img["height"].as_i64()),
        (Some(40), Some(30))
    );
    let bytes = app
        .admin(
            Method::GET,
            &format!("/api/images/{}/content", img["id"]),
            None,
        )
        .await
        .bytes;
    assert_eq!(&bytes[..], &cat[..]);

    // Label in the browser, add an object, re-index: both kept.
    let root = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/images?status=unlabelled", ds["id"]),
            None,
        )
        .await;
    let rid = &root.body["items"][0]["id"];
    app.admin(
        Method::PUT,
        &format!("/api/images/{rid}/annotation"),
        Some(json!({"labels": ["dog"]})),
    )
    .await;
    store
        .put("cat/new.png", Bytes::from(png(16, 16)))
        .await
        .unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/api/datasets/{}/reindex", ds["id"]),
            None,
        )
        .await;
    assert_eq!(r.body["per_label"], json!({"cat": 2, "dog": 2}));
}

async fn s3_detection_dataset_reads_voc(b: Backend) {
    let app = spawn_app(b).await;
    let Some((uri, store)) = bucket(&app, "").await else {
        return;
    };
    store
        .put("a.jpg", Bytes::from(jpeg(100, 100)))
        .await
        .unwrap();
    store
        .put(
            "a.xml",
            Bytes::from(voc(100, 100, &[("car", 1.0, 2.0, 50.0, 60.0)])),
        )
        .await
        .unwrap();
    let inst = app.create_instance("object_detection", "s3det").await;
    let ds = app.create_dataset(inst, "s3det", &uri).await;
    assert_eq!(ds["per_label"], json!({"car": 1}));
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/datasets"),
            Some(json!({"name": "nobucket", "path": "s3://no-such-bucket-here/"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("path"))
    );
}

both_backends!(
    s3_classification_dataset_is_indexed_in_place,
    s3_detection_dataset_reads_voc
);
