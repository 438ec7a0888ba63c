//! Object detection end to end on the `scenes` template: a detection-fast task through the
//! queue on two of the three shapes (scenes with only the third are background), metrics on
//! the validation split only (recomputed from the stored artifact), a model that learned
//! (mAP far above an untrained head's), the predict API's detection body (relative corners
//! in SPEC §7's order, the evaluation's own boxes), incremental training adding the third
//! label, the time budget, a stop request and early stopping.

use std::time::Duration;

use burn::prelude::*;
use integration_tests::{Backend, TestApp, both_backends, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::predict::{b64, predict_raw, wait_running};
use super::training::{TRAINING, finished, secs_between, start, stop_while_training, task_logs};

/// A scenes-template instance: its id and its dataset's.
pub(super) async fn scenes(app: &TestApp) -> (i64, i64) {
    let r = app
        .admin(
            Method::POST,
            "/api/instances",
            Some(json!({"template": "scenes"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["type"], "object_detection");
    let id = r.body["id"].as_i64().unwrap();
    let ds = app
        .admin(Method::GET, &format!("/api/instances/{id}/datasets"), None)
        .await;
    let ds = &ds.body[0];
    assert_eq!(ds["labelled"], 80, "{ds}");
    (id, ds["id"].as_i64().unwrap())
}

fn det_task(dataset: i64, name: &str, labels: &[&str], extra: Value) -> Value {
    let mut body = json!({
        "name": name, "dataset_id": dataset, "labels": labels,
        "preset": "detection-fast", "device": "cpu", "max_minutes": 4,
        "image_size": 128, "seed": 11, "max_epochs": 2,
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

async fn trains_scenes_and_serves_boxes(backend: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(backend, &[("workers", "1")]).await;
    let (instance, ds) = scenes(&app).await;
    let labels = ["circle", "square"];
    let id = start(&app, instance, det_task(ds, "boxes", &labels, json!({}))).await;
    let t = finished(&app, id, Duration::from_secs(600)).await;
    assert_eq!(
        t["status"],
        "succeeded",
        "{t}\n{}",
        task_logs(&app, id).await
    );
    let model_id = t["model_id"].as_i64().unwrap();
    let m = app
        .admin(Method::GET, &format!("/api/models/{model_id}"), None)
        .await
        .body;
    assert_eq!(m["preset"], "detection-fast");
    let metrics = &m["metrics"];
    // 80 images: 8 held out.
    assert_eq!(metrics["validation_images"], 8, "{metrics}");
    assert_eq!(metrics["train_images"], 72);
    let map = metrics["map"].as_f64().unwrap();
    // Shown with --nocapture: what this run learned, and how.
    eprintln!(
        "scenes, detection-fast at 128 px: mAP@0.5 {map:.3}, mAP@0.5:0.95 {}\n{}",
        metrics["map_50_95"],
        task_logs(&app, id).await
    );
    // An untrained head scores about 0; the template's shapes are easy to find.
    assert!(
        map > 0.3,
        "mAP@0.5 {map}: the detector did not learn\n{}",
        task_logs(&app, id).await
    );
    assert!(metrics["map_50_95"].as_f64().unwrap() <= map);
    let boxes_seen: u64 = labels
        .iter()
        .map(|l| metrics["per_class"][l]["support"].as_u64().unwrap())
        .sum();
    assert!(
        boxes_seen >= 8,
        "every validation image has a box: {metrics}"
    );
    let loss = metrics["loss"].as_f64().unwrap();
    let parts = metrics["classification_loss"].as_f64().unwrap()
        + metrics["localization_loss"].as_f64().unwrap();
    assert!(loss >= parts && parts > 0.0, "{metrics}");
    assert_eq!(metrics["images"].as_array().unwrap().len(), 8);

    // The same figures from the stored artifact, on exactly the validation images.
    let art = app
        .admin(
            Method::GET,
            &format!("/api/models/{model_id}/artifact"),
            None,
        )
        .await;
    let (meta, weights) = autolearn_server::artifact::unpack(&art.bytes).unwrap();
    assert_eq!(meta.architecture, "efficientnet-lite0-fpn64-fcos2");
    let logs = task_logs(&app, id).await;
    let background = logs
        .split(" background images")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no background count in the log: {logs}"));
    assert!(
        background > 0,
        "scenes of triangles only are background for this task: {logs}"
    );
    let device = Device::flex();
    let model = autolearn_server::artifact::load_into(
        shared::model::Detector::init(
            shared::model::DetectorConfig::for_preset(meta.preset),
            meta.labels.len(),
            &device,
        ),
        weights,
    )
    .unwrap();
    let task_row = app.state.db.task(id).await.unwrap().unwrap();
    let data = autolearn_server::train::detection::data::load(&app.state, &task_row, &|_| {})
        .await
        .unwrap();
    let val_ids: Vec<i64> = data.val.iter().map(|s| s.image_id).collect();
    assert!(data.train.iter().all(|s| !val_ids.contains(&s.image_id)));
    let stored_ids: Vec<i64> = metrics["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image_id"].as_i64().unwrap())
        .collect();
    assert_eq!(stored_ids, val_ids);
    let again =
        autolearn_server::train::detection::trainer::evaluate(&model.valid(), &data, &device);
    assert!((again.map - map).abs() < 1e-6, "{} vs {map}", again.map);

    // Deploy and predict a validation image: relative corners TL, TR, BR, BL, by confidence.
    let r = app
        .admin(
            Method::POST,
            &format!("/api/models/{model_id}/services"),
            Some(json!({"name": "scenes"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    wait_running(&app, "scenes").await;
    let image = app
        .admin(
            Method::GET,
            &format!("/api/images/{}/content", val_ids[0]),
            None,
        )
        .await;
    let body = format!(r#"{{"dataArray":[{{"body":"{}"}}]}}"#, b64(&image.bytes));
    let (status, text) = predict_raw(&app, "scenes", Some(&token), body.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(v["result"]["meta"], json!({"height": 160, "width": 160}));
    // Served at the threshold the evaluation chose (best F1 on the validation images).
    let threshold = metrics["conf_threshold"].as_f64().unwrap();
    assert!((0.05..1.0).contains(&threshold), "{metrics}");
    let boxes = v["result"]["output"][0]["body"].as_array().unwrap().clone();
    assert!(!boxes.is_empty(), "{text}");
    let mut last = f64::INFINITY;
    for b in &boxes {
        let conf = b["conf"].as_f64().unwrap();
        // Six decimals on the wire.
        assert!(conf <= last && conf >= threshold - 1e-6, "{text}");
        last = conf;
        assert!(labels.contains(&b["label"].as_str().unwrap()));
        let p: Vec<[f64; 2]> = serde_json::from_value(b["pos"].clone()).unwrap();
        assert_eq!(p.len(), 4);
        assert!(
            p.iter().flatten().all(|c| (0.0..=1.0).contains(c)),
            "{text}"
        );
        assert!(
            p[0][0] == p[3][0] && p[1][0] == p[2][0] && p[0][1] == p[1][1] && p[2][1] == p[3][1]
        );
        assert!(
            p[0][0] < p[1][0] && p[0][1] < p[3][1],
            "top-left first, clockwise: {text}"
        );
    }
    // The served boxes are the evaluation's boxes of that image above the served threshold.
    let evaluated: Vec<&Value> = metrics["images"][0]["predicted"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["conf"].as_f64().unwrap() >= threshold)
        .collect();
    assert_eq!(evaluated.len(), boxes.len(), "{text}\n{evaluated:?}");
    for (e, b) in evaluated.iter().zip(&boxes) {
        assert_eq!(e["label"], b["label"]);
        assert!((e["xmin"].as_f64().unwrap() - b["pos"][0][0].as_f64().unwrap()).abs() < 2e-3);
        assert!((e["ymax"].as_f64().unwrap() - b["pos"][2][1].as_f64().unwrap()).abs() < 2e-3);
    }

    // Incremental: a second version from the first, adding the third label.
    let second = start(
        &app,
        instance,
        det_task(
            ds,
            "more",
            &["triangle", "circle", "square"],
            json!({"base_model_id": model_id, "max_epochs": 1, "max_minutes": 2}),
        ),
    )
    .await;
    let t = finished(&app, second, Duration::from_secs(600)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let logs = task_logs(&app, second).await;
    assert!(
        logs.contains("starting from model version 1 (2 of 3 labels known"),
        "{logs}"
    );
    let m2 = app
        .admin(Method::GET, &format!("/api/models/{}", t["model_id"]), None)
        .await
        .body;
    assert_eq!(m2["version"], 2);
    assert_eq!(m2["metrics"]["per_class"].as_object().unwrap().len(), 3);

    // The budget holds without an epoch cap: 0.4 minutes, so done within about 24 s.
    let budget = start(
        &app,
        instance,
        det_task(
            ds,
            "budget",
            &labels,
            json!({"max_minutes": 0.4, "max_epochs": null}),
        ),
    )
    .await;
    let t = finished(&app, budget, Duration::from_secs(120)).await;
    let secs = secs_between(&t["started_at"], &t["finished_at"]);
    assert!(secs <= 24.0 + 6.0, "a 24 s budget took {secs} s: {t}");

    // A stop request ends a long task within seconds.
    let long = start(
        &app,
        instance,
        det_task(
            ds,
            "long",
            &labels,
            json!({"max_minutes": 10, "max_epochs": null}),
        ),
    )
    .await;
    stop_while_training(&app, long).await;

    // Early stop: no epoch cap, a 3-minute budget and a patience of one epoch; validation
    // mAP stops improving during fine-tuning long before the deadline.
    let early = start(
        &app,
        instance,
        det_task(
            ds,
            "early",
            &labels,
            json!({"max_minutes": 3, "max_epochs": null, "patience": 1}),
        ),
    )
    .await;
    let t = finished(&app, early, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let logs = task_logs(&app, early).await;
    assert!(
        logs.contains("early stop: validation mAP has not improved for 1 epochs"),
        "{logs}"
    );
    let secs = secs_between(&t["started_at"], &t["finished_at"]);
    assert!(
        secs < 170.0,
        "early stop came after {secs} s of 180: {logs}"
    );

    // Pre-labels from version 1 on three images made unlabelled: drafts are the served
    // boxes, training never sees them, and accepting all saves exactly those boxes.
    let picked = &val_ids[..3];
    let items = super::prelabels::prelabel(&app, instance, ds, model_id, picked).await;
    let in_training = |d: &autolearn_server::train::detection::data::Data| -> Vec<i64> {
        d.train.iter().chain(&d.val).map(|s| s.image_id).collect()
    };
    let before = in_training(&data);
    let now = in_training(
        &autolearn_server::train::detection::data::load(&app.state, &task_row, &|_| {})
            .await
            .unwrap(),
    );
    assert_eq!(now.len(), before.len() - picked.len());
    assert!(now.iter().all(|i| !picked.contains(i)));
    let accepted = super::prelabels::accept_all(
        &app,
        (instance, ds),
        ("scenes", &token),
        picked,
        &items,
        false,
    )
    .await;
    let now = in_training(
        &autolearn_server::train::detection::data::load(&app.state, &task_row, &|_| {})
            .await
            .unwrap(),
    );
    assert_eq!(now.len(), before.len() - picked.len() + accepted.len());
}

both_backends!(trains_scenes_and_serves_boxes);

/// Tasks whose decoded images do not fit the memory budget (2 MB here) keep the rest in a
/// spill file and read it back, the detector recomputes its backbone features per batch
/// instead of caching them, and both still learn. The budget does not depend on the
/// database, so SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_beyond_the_memory_budget_spills_and_still_learns() {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("workers", "1"), ("train_memory_mb", "2")],
    )
    .await;

    let (instance, ds) = super::training::shapes(&app).await;
    let labels = ["circle", "square", "triangle"];
    let body = super::training::task(ds, "spilled", &labels, json!({"max_epochs": 1}));
    let id = start(&app, instance, body).await;
    let t = finished(&app, id, Duration::from_secs(300)).await;
    let logs = task_logs(&app, id).await;
    assert_eq!(t["status"], "succeeded", "{t}\n{logs}");
    assert!(
        logs.contains("are read from a spill file on disk"),
        "{logs}"
    );
    let m = app
        .admin(Method::GET, &format!("/api/models/{}", t["model_id"]), None)
        .await
        .body;
    let acc = m["metrics"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "validation accuracy {acc} (chance 0.33)\n{logs}");

    let (instance, ds) = scenes(&app).await;
    let id = start(
        &app,
        instance,
        det_task(ds, "spilled", &["circle", "square"], json!({})),
    )
    .await;
    let t = finished(&app, id, Duration::from_secs(600)).await;
    let logs = task_logs(&app, id).await;
    assert_eq!(t["status"], "succeeded", "{t}\n{logs}");
    assert!(
        logs.contains("are read from a spill file on disk"),
        "{logs}"
    );
    assert!(logs.contains("computed for each batch instead"), "{logs}");
    let m = app
        .admin(Method::GET, &format!("/api/models/{}", t["model_id"]), None)
        .await
        .body;
    let map = m["metrics"]["map"].as_f64().unwrap();
    assert!(
        map > 0.3,
        "mAP@0.5 {map}: the detector did not learn\n{logs}"
    );
    // Nothing of the spill files is left in the data dir.
    let tmp = app.data_dir.join("tmp");
    let left = std::fs::read_dir(&tmp).map_or(0, Iterator::count);
    assert_eq!(left, 0, "files left in {}", tmp.display());
}
