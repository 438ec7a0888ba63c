//! Training: the shapes template, tasks through the queue, live events, stop, budget,
//! early stop, incremental training, and metrics computed on the validation split only.
//! Tasks train the real EfficientNet-Lite0 at 64 px for speed.

use std::time::{Duration, Instant};

use integration_tests::{Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Training tests take both cores; one at a time keeps their timing meaningful.
pub static TRAINING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A shapes-template instance: its id and its dataset's.
pub async fn shapes(app: &TestApp) -> (i64, i64) {
    let r = app
        .admin(
            Method::POST,
            "/api/instances",
            Some(json!({"template": "shapes"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    let ds = app
        .admin(Method::GET, &format!("/api/instances/{id}/datasets"), None)
        .await;
    let ds = &ds.body[0];
    assert_eq!(ds["labelled"], 120, "{ds}");
    (id, ds["id"].as_i64().unwrap())
}

pub fn task(dataset: i64, name: &str, labels: &[&str], extra: Value) -> Value {
    let mut body = json!({
        "name": name, "dataset_id": dataset, "labels": labels,
        "preset": "classification-fast", "device": "cpu", "max_minutes": 2,
        "image_size": 64, "seed": 7,
    });
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}

pub async fn start(app: &TestApp, instance: i64, body: Value) -> i64 {
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{instance}/tasks"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "queued");
    r.body["id"].as_i64().unwrap()
}

/// Polls until the task is finished.
pub async fn finished(app: &TestApp, id: i64, within: Duration) -> Value {
    let t = Instant::now();
    loop {
        let r = app
            .admin(Method::GET, &format!("/api/tasks/{id}"), None)
            .await;
        let status = r.body["status"].as_str().unwrap_or("").to_owned();
        if ["succeeded", "failed", "stopped"].contains(&status.as_str()) {
            return r.body;
        }
        assert!(
            t.elapsed() < within,
            "task {id} still {status} after {within:?}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The task's log as text.
/// Waits until task `id` is training (running, with progress), asks it to stop, and asserts
/// that it ends as `stopped` within 20 s of the request.
pub async fn stop_while_training(app: &TestApp, id: i64) {
    let t0 = Instant::now();
    loop {
        let r = app
            .admin(Method::GET, &format!("/api/tasks/{id}"), None)
            .await;
        if r.body["status"] == "running" && r.body["last_progress"].is_object() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let asked = Instant::now();
    let r = app
        .admin(Method::POST, &format!("/api/tasks/{id}/stop"), None)
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let t = finished(app, id, Duration::from_secs(60)).await;
    assert_eq!(t["status"], "stopped", "{t}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "stopped after {:?}",
        asked.elapsed()
    );
}

pub async fn task_logs(app: &TestApp, id: i64) -> String {
    let r = app
        .admin(Method::GET, &format!("/api/tasks/{id}/logs"), None)
        .await;
    String::from_utf8_lossy(&r.bytes).into_owned()
}

pub fn secs_between(a: &Value, b: &Value) -> f64 {
    let parse = |v: &Value| -> f64 {
        // RFC 3339 UTC with whole seconds: compare the time of day, same day in tests.
        let s = v.as_str().unwrap();
        let t = &s[11..19];
        let p: Vec<f64> = t.split(':').map(|x| x.parse().unwrap()).collect();
        p[0] * 3600.0 + p[1] * 60.0 + p[2]
    };
    parse(b) - parse(a)
}

async fn trains_shapes_and_evaluates_on_validation_only(backend: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(backend, &[("workers", "1")]).await;
    let (instance, ds) = shapes(&app).await;
    let id = start(
        &app,
        instance,
        task(
            ds,
            "first",
            &["circle", "square", "triangle"],
            json!({"max_epochs": 2}),
        ),
    )
    .await;
    // The live stream: progress with validation figures, then the final status.
    let res = reqwest::Client::new()
        .get(format!("{}/api/tasks/{id}/events", app.url))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(300), res.text())
        .await
        .expect("the stream ends when the task does")
        .unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    let progress: Vec<&Value> = events.iter().filter(|e| e["kind"] == "progress").collect();
    assert!(
        progress
            .iter()
            .any(|p| p["phase"] == "head" && p["val_accuracy"].is_number())
    );
    assert!(
        progress
            .iter()
            .any(|p| p["phase"] == "finetune" && p["epoch"] == 2)
    );
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "status");
    assert_eq!(last["status"], "succeeded", "{text}");
    let t = finished(&app, id, Duration::from_secs(5)).await;
    assert_eq!(t["progress"], 1.0);
    assert!(t["device_used"].as_str().unwrap().starts_with("cpu"), "{t}");
    let model_id = t["model_id"].as_i64().unwrap();

    let m = app
        .admin(Method::GET, &format!("/api/models/{model_id}"), None)
        .await
        .body;
    assert_eq!(m["version"], 1);
    assert_eq!(m["labels"], json!(["circle", "square", "triangle"]));
    let metrics = &m["metrics"];
    // 10% of each label's 40 images is held out.
    assert_eq!(metrics["validation_images"], 12);
    assert_eq!(metrics["train_images"], 108);
    let cm: Vec<Vec<u64>> = serde_json::from_value(metrics["confusion_matrix"].clone()).unwrap();
    assert_eq!(cm.iter().flatten().sum::<u64>(), 12);
    assert!(cm.iter().all(|row| row.iter().sum::<u64>() == 4));
    let acc = metrics["accuracy"].as_f64().unwrap();
    // Learned: three classes, so chance is 1/3.
    assert!(
        acc >= 0.6,
        "validation accuracy {acc}: the model did not learn"
    );
    let diagonal: u64 = (0..3).map(|i| cm[i][i]).sum();
    assert!((acc - diagonal as f64 / 12.0).abs() < 1e-9);
    assert_eq!(
        metrics["misclassified"].as_array().unwrap().len() as u64,
        12 - diagonal
    );
    for k in ["precision", "recall", "f1", "loss"] {
        assert!(metrics[k].is_number(), "{k}");
    }
    assert!(
        m["pretrained"].as_bool().unwrap(),
        "ImageNet weights were fetched: {m}"
    );

    // The metrics are those of the stored model on the held-out images: recompute them
    // from the artifact, on the images the split put aside (seed 7), and nothing else.
    let art = app
        .admin(
            Method::GET,
            &format!("/api/models/{model_id}/artifact"),
            None,
        )
        .await;
    assert_eq!(art.status, StatusCode::OK);
    let (meta, weights) = autolearn_server::artifact::unpack(&art.bytes).unwrap();
    assert_eq!(meta.precision, "f16");
    assert_eq!(metrics["model_size"].as_u64().unwrap(), meta.weights_bytes);
    assert!(
        weights.len() < 7_500_000,
        "f16 Lite0 with a 3-way head: {}",
        weights.len()
    );
    let task_row = app.state.db.task(id).await.unwrap().unwrap();
    let data = autolearn_server::train::classification::data::load(&app.state, &task_row, &|_| {})
        .await
        .unwrap();
    assert_eq!(data.val.len(), 12);
    let val_ids: Vec<i64> = data.val.iter().map(|s| s.image_id).collect();
    assert!(data.train.iter().all(|s| !val_ids.contains(&s.image_id)));
    let device = burn::tensor::Device::flex();
    let model = autolearn_server::artifact::load_weights(weights, 3, &device).unwrap();
    let probs =
        autolearn_server::train::classification::trainer::predict(&model, &data.val, &device);
    let right = data
        .val
        .iter()
        .zip(&probs)
        .filter(|(s, p)| autolearn_server::train::classification::metrics::argmax(p) == s.class)
        .count();
    assert_eq!(
        right as u64, diagonal,
        "stored model on the validation split"
    );
    for miss in metrics["misclassified"].as_array().unwrap() {
        assert!(val_ids.contains(&miss["image_id"].as_i64().unwrap()));
    }

    let logs = task_logs(&app, id).await;
    assert!(
        logs.contains("108 for training, 12 held out for validation"),
        "{logs}"
    );
    assert!(logs.contains("ImageNet weights"), "{logs}");
    let list = app
        .admin(
            Method::GET,
            &format!("/api/instances/{instance}/models"),
            None,
        )
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);

    // Delete: the version and its artifact go.
    let r = app
        .admin(Method::DELETE, &format!("/api/models/{model_id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .admin(
            Method::GET,
            &format!("/api/models/{model_id}/artifact"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn stop_budget_and_early_stop(backend: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(backend, &[("workers", "1")]).await;
    let (instance, ds) = shapes(&app).await;
    let labels = ["circle", "square", "triangle"];

    // Stop: a long task stops within seconds of the request, keeping its best model.
    let id = start(
        &app,
        instance,
        task(ds, "stopped", &labels, json!({"max_minutes": 10})),
    )
    .await;
    let t0 = Instant::now();
    loop {
        let t = app
            .admin(Method::GET, &format!("/api/tasks/{id}"), None)
            .await
            .body;
        if t["last_progress"]["phase"] == "finetune" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "never reached fine-tuning: {t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let asked = Instant::now();
    let r = app
        .admin(Method::POST, &format!("/api/tasks/{id}/stop"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["stop_requested"], true);
    let t = finished(&app, id, Duration::from_secs(60)).await;
    let took = asked.elapsed();
    assert_eq!(t["status"], "stopped", "{t}");
    assert!(took < Duration::from_secs(20), "stopping took {took:?}");
    assert!(t["model_id"].is_i64(), "the best model so far is kept: {t}");

    // Budget: 0.4 minutes with no epoch cap and a patience early stopping cannot reach:
    // the deadline ends it, on time, with a model.
    let id = start(
        &app,
        instance,
        task(
            ds,
            "budget",
            &labels,
            json!({"max_minutes": 0.4, "image_size": 128, "patience": 500}),
        ),
    )
    .await;
    let t = finished(&app, id, Duration::from_secs(120)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let took = secs_between(&t["started_at"], &t["finished_at"]);
    assert!(
        took <= 24.0 + 1.0,
        "a 24 s budget took {took} s: {t}\n{}",
        task_logs(&app, id).await
    );
    let logs = task_logs(&app, id).await;
    assert!(logs.contains("time budget reached"), "{logs}");

    // Early stop: no epoch cap, a generous budget; validation loss stops improving first.
    let id = start(
        &app,
        instance,
        task(ds, "early", &labels, json!({"max_minutes": 10})),
    )
    .await;
    let t = finished(&app, id, Duration::from_secs(600)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let logs = task_logs(&app, id).await;
    assert!(logs.contains("early stop"), "{logs}");
    assert!(secs_between(&t["started_at"], &t["finished_at"]) < 590.0);

    // A queued task stops at once.
    let app2 = spawn_app(backend).await; // no workers: stays queued
    let (i2, d2) = shapes(&app2).await;
    let id = start(&app2, i2, task(d2, "queued", &labels, json!({}))).await;
    let r = app2
        .admin(Method::POST, &format!("/api/tasks/{id}/stop"), None)
        .await;
    assert_eq!(r.body["status"], "stopped");
}

async fn incremental_training_adds_a_label(backend: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(backend, &[("workers", "1")]).await;
    let (instance, ds) = shapes(&app).await;
    let first = start(
        &app,
        instance,
        task(ds, "two", &["circle", "square"], json!({"max_epochs": 1})),
    )
    .await;
    let t = finished(&app, first, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let base = t["model_id"].as_i64().unwrap();
    let second = start(
        &app,
        instance,
        task(
            ds,
            "three",
            &["circle", "square", "triangle"],
            json!({"max_epochs": 1, "base_model_id": base}),
        ),
    )
    .await;
    let t = finished(&app, second, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let m = app
        .admin(Method::GET, &format!("/api/models/{}", t["model_id"]), None)
        .await
        .body;
    assert_eq!(m["version"], 2);
    assert_eq!(m["base_model_id"], base);
    assert_eq!(m["labels"].as_array().unwrap().len(), 3);
    let logs = task_logs(&app, second).await;
    assert!(
        logs.contains("starting from model version 1 (2 of 3 labels known"),
        "{logs}"
    );
}

async fn trains_from_scratch_without_pretrained_weights(backend: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(backend, &[("workers", "1"), ("pretrained", "none")]).await;
    let (instance, ds) = shapes(&app).await;
    let id = start(
        &app,
        instance,
        task(
            ds,
            "scratch",
            &["circle", "square"],
            json!({"max_epochs": 1}),
        ),
    )
    .await;
    let t = finished(&app, id, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    let m = app
        .admin(Method::GET, &format!("/api/models/{}", t["model_id"]), None)
        .await
        .body;
    assert_eq!(m["pretrained"], false);
    let logs = task_logs(&app, id).await;
    assert!(logs.contains("random initialisation"));

    // Deleting the instance removes its files: the artifact and its web form, the grid
    // thumbnails, the template's generated images; another instance's stay.
    let (other, other_ds) = shapes(&app).await;
    let model_id = t["model_id"].as_i64().unwrap();
    let r = app
        .admin(
            Method::GET,
            &format!("/api/models/{model_id}/artifact?format=web"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let thumbs_of = |ds: i64| {
        let app = &app;
        async move {
            let first = app.all_images(ds).await[0]["id"].as_i64().unwrap();
            let r = app
                .admin(
                    Method::GET,
                    &format!("/api/images/{first}/thumbnail?size=128"),
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::OK);
            first
        }
    };
    let (mine, theirs) = (thumbs_of(ds).await, thumbs_of(other_ds).await);
    let thumbs = |id: i64| {
        std::fs::read_dir(app.data_dir.join("thumbs"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{id}-"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(thumbs(mine) >= 1 && thumbs(theirs) >= 1);
    let (_, key) = app.state.db.model(model_id).await.unwrap().unwrap();
    let store = app
        .state
        .storage
        .open_uri(&app.state.config.models_uri)
        .unwrap();
    let web = autolearn_server::artifact::web_key(&key);
    assert!(store.read(&key, u64::MAX).await.is_ok());
    assert!(store.read(&web, u64::MAX).await.is_ok());
    let templates = app.data_dir.join("templates");
    assert!(templates.join(format!("instance-{instance}")).is_dir());
    let r = app
        .admin(Method::DELETE, &format!("/api/instances/{instance}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert!(store.read(&key, u64::MAX).await.is_err(), "artifact left");
    assert!(
        store.read(&web, u64::MAX).await.is_err(),
        "web artifact left"
    );
    assert_eq!(thumbs(mine), 0, "thumbnails left");
    assert!(!templates.join(format!("instance-{instance}")).exists());
    assert!(thumbs(theirs) >= 1, "another instance's thumbnails removed");
    assert!(templates.join(format!("instance-{other}")).is_dir());
}

async fn bad_tasks_are_refused_clearly(backend: Backend) {
    let app = spawn_app_with(backend, &[("min_task_minutes", "10")]).await;
    let (instance, ds) = shapes(&app).await;
    let path = format!("/api/instances/{instance}/tasks");
    let cases = [
        (
            json!({"max_minutes": 5}),
            "max_minutes",
            "invalid_max_minutes",
        ),
        (
            json!({"max_minutes": 61}),
            "max_minutes",
            "invalid_max_minutes",
        ),
        (json!({"labels": ["circle"]}), "labels", "invalid_labels"),
        (
            json!({"labels": ["circle", "circle"]}),
            "labels",
            "invalid_labels",
        ),
        (
            json!({"labels": ["circle", "hexagon"]}),
            "labels",
            "too_few_images",
        ),
        (
            json!({"image_size": 100}),
            "image_size",
            "invalid_image_size",
        ),
        (json!({"max_epochs": 0}), "max_epochs", "invalid_max_epochs"),
        (json!({"patience": 0}), "patience", "invalid_patience"),
        (json!({"dataset_id": 999}), "dataset_id", "unknown_dataset"),
        (
            json!({"base_model_id": 999}),
            "base_model_id",
            "unknown_model",
        ),
        (json!({"name": "-bad"}), "name", "invalid_name"),
    ];
    for (extra, field, code) in cases {
        let mut body = task(ds, "t", &["circle", "square"], json!({"max_minutes": 10}));
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra.clone()) {
            b.extend(e);
        }
        let r = app.admin(Method::POST, &path, Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}: {:?}", r.body);
        assert_eq!(r.code(), code, "{extra}");
        assert_eq!(r.body["error"]["field"], field, "{extra}");
    }
    let r = app
        .admin(
            Method::POST,
            &path,
            Some(json!({"name": "x", "dataset_id": ds})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    // Unsupported instance types, presets of another type, and duplicate names.
    let recall = app
        .create_instance("recommendation_recall", "behaviour")
        .await;
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{recall}/tasks"),
            Some(task(ds, "t", &["a", "b"], json!({"max_minutes": 10}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["code"], "unsupported_instance_type");
    // OCR trains now, with its own preset only.
    let ocr = app.create_instance("ocr", "texts").await;
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{ocr}/tasks"),
            Some(task(ds, "t", &["a", "b"], json!({"max_minutes": 10}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_preset");
    let r = app
        .admin(
            Method::POST,
            &path,
            Some(task(
                ds,
                "t",
                &["circle"],
                json!({"preset": "detection-fast"}),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_preset");
    let ok = task(ds, "dup", &["circle", "square"], json!({"max_minutes": 10}));
    assert_eq!(
        app.admin(Method::POST, &path, Some(ok.clone()))
            .await
            .status,
        StatusCode::CREATED
    );
    let r = app.admin(Method::POST, &path, Some(ok)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Unknown templates name the ones there are.
    let r = app
        .admin(
            Method::POST,
            "/api/instances",
            Some(json!({"template": "zebras"})),
        )
        .await;
    assert_eq!(r.code(), "unknown_template");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shapes")
    );
    // A user without TrainInstance cannot start training.
    let (_, token) = app
        .user_with("viewer", json!([{"permission": "ListInstance"}]))
        .await;
    let r = app
        .call(
            Some(&token),
            Method::POST,
            &path,
            Some(task(
                ds,
                "v",
                &["circle", "square"],
                json!({"max_minutes": 10}),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// The event stream ends on the task's row: when a queued task is stopped (its status and
/// event commit together, so the stream ends with it), and when the task is deleted with
/// its instance (no event will ever come).
async fn event_streams_end_with_the_task_row(backend: Backend) {
    let app = spawn_app(backend).await;
    let stream = |id: i64| {
        let (url, token) = (app.url.clone(), app.admin_token.clone());
        tokio::spawn(async move {
            let res = reqwest::Client::new()
                .get(format!("{url}/api/tasks/{id}/events"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            tokio::time::timeout(Duration::from_secs(20), res.text())
                .await
                .map(Result::unwrap)
        })
    };
    let (instance, ds) = shapes(&app).await;
    let stopped = start(
        &app,
        instance,
        task(ds, "stopped", &["circle", "square"], json!({})),
    )
    .await;
    let watching = stream(stopped);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = app
        .admin(Method::POST, &format!("/api/tasks/{stopped}/stop"), None)
        .await;
    assert_eq!(r.body["status"], "stopped", "{:?}", r.body);
    let text = watching
        .await
        .unwrap()
        .expect("the stream ends when the task stops");
    assert!(text.contains("\"status\":\"stopped\""), "{text}");

    let deleted = start(
        &app,
        instance,
        task(ds, "deleted", &["circle", "square"], json!({})),
    )
    .await;
    let watching = stream(deleted);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = app
        .admin(Method::DELETE, &format!("/api/instances/{instance}"), None)
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    watching
        .await
        .unwrap()
        .expect("the stream of a deleted task ends");
}

both_backends!(
    event_streams_end_with_the_task_row,
    trains_shapes_and_evaluates_on_validation_only,
    stop_budget_and_early_stop,
    incremental_training_adds_a_label,
    trains_from_scratch_without_pretrained_weights,
    bad_tasks_are_refused_clearly,
);
