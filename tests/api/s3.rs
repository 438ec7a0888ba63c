//! Datasets in a real S3-compatible server (s3s-fs, started by `scripts/test.sh`).

use autolearn_server::storage::Store;
use bytes::Bytes;
use integration_tests::{Backend, TestApp, both_backends, jpeg, png, s3_env, spawn_app_with, voc};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A server whose allowed dataset bucket is a fresh one (and `no-such-bucket-here`, to see
/// indexing fail), with its models under `models/` of the same bucket; `None` when no S3
/// server runs.
async fn s3_app(b: Backend) -> Option<(TestApp, String)> {
    if s3_env().is_none() {
        integration_tests::cannot_run(
            "AUTOLEARN_TEST_S3_ENDPOINT is not set (scripts/test.sh starts an S3 server and sets it)",
        );
        return None;
    }
    let name = format!("t{}", rand::random::<u32>());
    let app = spawn_app_with(
        b,
        &[
            ("s3_buckets", &format!("{name},no-such-bucket-here")),
            ("models", &format!("s3://{name}/models/")),
        ],
    )
    .await;
    let store = app
        .state
        .storage
        .open_uri(&format!("s3://{name}/"))
        .unwrap();
    let Store::S3(s3) = &store else {
        unreachable!()
    };
    s3.ensure_bucket().await.expect("create bucket");
    Some((app, name))
}

/// The store at `s3://<bucket>/<prefix>` and its URI.
fn bucket(app: &TestApp, name: &str, prefix: &str) -> (String, Store) {
    let uri = format!("s3://{name}/{prefix}");
    (uri.clone(), app.state.storage.open_uri(&uri).unwrap())
}

async fn s3_classification_dataset_is_indexed_in_place(b: Backend) {
    let Some((app, name)) = s3_app(b).await else {
        return;
    };
    let (uri, store) = bucket(&app, &name, "data/pets/");
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
    let Some((app, name)) = s3_app(b).await else {
        return;
    };
    let (uri, store) = bucket(&app, &name, "voc/");
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

/// Only buckets an administrator listed (`AUTOLEARN_S3_BUCKETS`) can be indexed, and never
/// the prefix where the server keeps its models (other instances' model files).
async fn s3_datasets_come_only_from_allowed_buckets_never_the_models_prefix(b: Backend) {
    let Some((app, name)) = s3_app(b).await else {
        return;
    };
    let (_, models) = bucket(&app, &name, "models/");
    models
        .put("instance-1/model-1.bin", Bytes::from_static(b"weights"))
        .await
        .unwrap();
    let inst = app.create_instance("image_classification", "s3roots").await;
    for (path, says) in [
        (format!("s3://{name}/models/"), "own folders"),
        (format!("s3://{name}/models/instance-1/"), "own folders"),
        (format!("s3://{name}/"), "own folders"),
        (
            "s3://another-bucket/pets/".to_owned(),
            "AUTOLEARN_S3_BUCKETS",
        ),
    ] {
        let r = app.dataset_path_refused(inst, &path).await;
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message}");
    }
}

both_backends!(
    s3_classification_dataset_is_indexed_in_place,
    s3_detection_dataset_reads_voc,
    s3_datasets_come_only_from_allowed_buckets_never_the_models_prefix
);
