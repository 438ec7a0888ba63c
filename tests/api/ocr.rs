//! OCR end to end through the API on 40 OpenALPR plates (copied to a temporary dataset
//! folder; the photos stay in `../shared/datasets`): ocr-fast fine-tunes the pretrained
//! recogniser, the version's metrics are computed on exactly the validation images (with the
//! starting models' figures beside them and the same figures recomputed here from the stored
//! artifact), the held-out CTC loss falls (the model learned), and the deployed version
//! answers SPEC §7's OCR body byte for byte: pixel corners TL TR BR BL, reading order.

use std::path::PathBuf;
use std::time::Duration;

use autolearn_server::train::ocr::evaluate;
use burn::prelude::*;
use integration_tests::{Backend, TestApp, both_backends, cannot_run, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::model::ocr::{OcrModel, OcrReader};
use shared::ocr::Quad;
use shared::predict::input::decode_page;

use super::predict::{b64, predict_raw, wait_running};
use super::training::{TRAINING, finished, start, stop_while_training, task_logs};

/// A folder with the first `n` European plates (photo + VOC file), or `None` (said why).
fn plates(n: usize) -> Option<tempfile::TempDir> {
    let src =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/openalpr-plates/eu");
    let Ok(entries) = std::fs::read_dir(&src) else {
        cannot_run(&format!("{} is absent", src.display()));
        return None;
    };
    let mut xmls: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    xmls.sort();
    let dir = tempfile::tempdir().unwrap();
    for xml in xmls.iter().take(n) {
        let jpg = xml.with_extension("jpg");
        std::fs::copy(xml, dir.path().join(xml.file_name().unwrap())).unwrap();
        std::fs::copy(&jpg, dir.path().join(jpg.file_name().unwrap())).unwrap();
    }
    Some(dir)
}

async fn ocr_fast_trains_on_plates_and_reports_validation_figures(b: Backend) {
    let Some(dir) = plates(40) else { return };
    let _one = TRAINING.lock().await;
    let root = dir.path().canonicalize().unwrap();
    let app = spawn_app_with(
        b,
        &[
            ("workers", "1"),
            ("data_roots", &root.display().to_string()),
        ],
    )
    .await;
    let inst = app.create_instance("ocr", "plates").await;
    let ds = app
        .create_dataset(inst, "plates", &root.display().to_string())
        .await;
    assert_eq!(ds["total"], 40, "{ds}");
    let ds_id = ds["id"].as_i64().unwrap();

    let body = json!({
        "name": "read", "dataset_id": ds_id, "labels": ["text"], "preset": "ocr-fast",
        "device": "cpu", "max_minutes": 8, "seed": 5, "max_epochs": 2,
    });
    let id = start(&app, inst, body).await;
    let t = finished(&app, id, Duration::from_secs(900)).await;
    let logs = task_logs(&app, id).await;
    assert_eq!(t["status"], "succeeded", "{t}\n{logs}");
    let model_id = t["model_id"].as_i64().unwrap();
    let m = app
        .admin(Method::GET, &format!("/api/models/{model_id}"), None)
        .await
        .body;
    assert_eq!(m["preset"], "ocr-fast");
    let metrics = &m["metrics"];
    eprintln!("ocr-fast on 40 plates: {metrics:#}\n{logs}");
    assert_eq!(metrics["validation_images"], 4, "{metrics}");
    assert_eq!(metrics["train_images"], 36);
    for key in ["exact_match", "cer", "precision", "recall", "hmean"] {
        let v = metrics[key].as_f64().unwrap();
        let before = metrics["pretrained"][key].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&v) || key == "cer" && v >= 0.0,
            "{key} {v}"
        );
        assert!(before >= 0.0, "{key} of the starting models {before}");
    }
    // Learned: the held-out lines' CTC loss fell below the starting recogniser's.
    let (loss, before) = (
        metrics["loss"].as_f64().unwrap(),
        metrics["pretrained_loss"].as_f64().unwrap(),
    );
    assert!(
        loss < before,
        "validation CTC loss {before} -> {loss}\n{logs}"
    );
    assert!(logs.contains("epoch 2:"), "{logs}");

    // The figures come from exactly the validation images: each listed once, with its true
    // line as the dataset has it.
    let images = app.all_images(ds_id).await;
    let listed = metrics["images"].as_array().unwrap();
    assert_eq!(listed.len(), 4);
    for im in listed {
        let stored = images
            .iter()
            .find(|i| i["id"] == im["image_id"])
            .unwrap_or_else(|| panic!("{} is not an image of the dataset", im["image_id"]));
        let truth = &im["truth"][0];
        assert_eq!(truth["text"], stored["annotation"]["boxes"][0]["text"]);
        assert_eq!(im["width"], stored["width"]);
    }
    assert!(metrics["model_size"].as_u64().unwrap() > 1_000_000);

    // The artifact carries both models and the character list.
    let art = app
        .admin(
            Method::GET,
            &format!("/api/models/{model_id}/artifact"),
            None,
        )
        .await;
    let (meta, weights) = autolearn_server::artifact::unpack(&art.bytes).unwrap();
    assert_eq!(
        meta.architecture,
        autolearn_server::train::ocr::ARCHITECTURE
    );
    assert!(meta.charset.len() > 6000 && meta.charset.iter().any(|c| c == "京"));

    // The version's figures again, from the stored artifact on exactly the listed images.
    let device = Device::flex();
    let mut reader = OcrReader::from_model(
        autolearn_server::artifact::load_into(OcrModel::new(&device), weights).unwrap(),
        meta.charset.clone(),
        device,
    );
    reader.max_side = meta.image_size;
    let mut pages = Vec::new();
    for im in listed {
        let bytes = image_content(&app, im["image_id"].as_i64().unwrap()).await;
        let truth: Vec<(Quad, String)> = im["truth"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let q: Quad = serde_json::from_value(l["pos"].clone()).unwrap();
                (q, l["text"].as_str().unwrap().to_owned())
            })
            .collect();
        pages.push((decode_page(&bytes).unwrap().0, truth));
    }
    let refs: Vec<_> = pages.iter().map(|(p, t)| (p, t.clone())).collect();
    let again = evaluate::scores(&evaluate::read_pages(&reader, &refs));
    for (key, v) in [
        ("exact_match", again.exact_match),
        ("cer", again.cer),
        ("hmean", again.hmean),
    ] {
        let stored = metrics[key].as_f64().unwrap();
        assert!(
            (stored - v).abs() < 1e-9,
            "{key}: stored {stored}, recomputed {v}"
        );
    }

    // Incremental: a second task starts from this version (its models and characters).
    let body = json!({
        "name": "read-more", "dataset_id": ds_id, "labels": ["text"], "preset": "ocr-fast",
        "device": "cpu", "max_minutes": 8, "seed": 5, "max_epochs": 1, "base_model_id": model_id,
    });
    let again = start(&app, inst, body).await;
    let t = finished(&app, again, Duration::from_secs(900)).await;
    let logs = task_logs(&app, again).await;
    assert_eq!(t["status"], "succeeded", "{t}\n{logs}");
    assert!(
        logs.contains("incremental: starting from model version 1"),
        "{logs}"
    );
    let m2 = app
        .admin(Method::GET, &format!("/api/models/{}", t["model_id"]), None)
        .await
        .body;
    assert_eq!(m2["base_model_id"], model_id);
    // Its starting figures are the first version's (same split, same seed).
    assert_eq!(
        m2["metrics"]["pretrained"]["exact_match"],
        metrics["exact_match"]
    );

    // Deployed, it answers each validation photo with what the evaluation read there, in
    // SPEC §7's OCR body: text, confidence, whole-pixel corners, reading order.
    let token = deploy(&app, model_id, "plates-ocr").await;
    let mut served_lines = 0;
    for im in listed {
        let text = served(&app, "plates-ocr", &token, im["image_id"].as_i64().unwrap()).await;
        assert_eq!(text, expected_answer(im, &text), "image {}", im["image_id"]);
        let v: Value = serde_json::from_str(&text).unwrap();
        for line in v["result"]["output"][0]["body"].as_array().unwrap() {
            let p: [[i64; 2]; 4] = serde_json::from_value(line["pos"].clone()).unwrap();
            assert!(
                p[0][0] < p[1][0] && p[0][1] < p[3][1],
                "TL TR BR BL: {text}"
            );
            served_lines += 1;
        }
    }
    assert!(served_lines >= listed.len(), "every plate has a line read");
}

/// Deploys a model version as `name` and waits until it serves; returns its token.
async fn deploy(app: &TestApp, model_id: i64, name: &str) -> String {
    let r = app
        .admin(
            Method::POST,
            &format!("/api/models/{model_id}/services"),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    wait_running(app, name).await;
    r.body["token"].as_str().unwrap().to_owned()
}

/// The predict answer (asserted 200) of service `name` for a dataset image, as sent.
async fn served(app: &TestApp, name: &str, token: &str, image: i64) -> String {
    let bytes = image_content(app, image).await;
    let body = format!(r#"{{"dataArray":[{{"body":"{}"}}]}}"#, b64(&bytes));
    let (status, text) = predict_raw(app, name, Some(token), body.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text
}

/// Saves `image` (a listed image) with its first line's text replaced by `text`, as typed
/// in the labelling page.
async fn retype_first_line(app: &TestApp, image: &Value, text: &str) {
    let mut boxes = image["annotation"]["boxes"].as_array().unwrap().clone();
    boxes[0]["text"] = json!(text);
    let r = app
        .admin(
            Method::PUT,
            &format!("/api/images/{}/annotation", image["id"]),
            Some(json!({"boxes": boxes})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn image_content(app: &TestApp, id: i64) -> bytes::Bytes {
    let r = app
        .admin(Method::GET, &format!("/api/images/{id}/content"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.bytes
}

/// The predict answer, byte for byte, for a validation image as the evaluation read it:
/// written out by hand here (not by the server's serialiser), so the wire format is pinned.
/// The answer the evaluation's lines (`im["read"]`) make, byte for byte, with each line's
/// confidence taken from the `served` answer once it is within 1e-4 of the evaluation's: the
/// server runs the models on its own executor, the evaluation on burn, and the two sum in
/// different orders (texts, corners and order must still be identical).
fn expected_answer(im: &Value, served: &str) -> String {
    let served: Value = serde_json::from_str(served).unwrap();
    let served_lines = served["result"]["output"][0]["body"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let lines: Vec<String> = im["read"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let ours = l["conf"].as_f64().unwrap();
            let conf = match served_lines.get(i).and_then(|s| s["conf"].as_f64()) {
                Some(c) if (c - ours).abs() <= 1e-4 => c,
                _ => (ours * 1e6).round() / 1e6,
            };
            let corners: Vec<String> = l["pos"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let xy = |i: usize| c[i].as_f64().unwrap().round() as i64;
                    format!("[{},{}]", xy(0), xy(1))
                })
                .collect();
            format!(
                r#"{{"label":{},"conf":{},"pos":[{}]}}"#,
                serde_json::to_string(&l["text"]).unwrap(),
                serde_json::to_string(&conf).unwrap(),
                corners.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"success":true,"result":{{"output":[{{"type":"cv_common","body":[{}]}}],"meta":{{"height":{},"width":{}}}}}}}"#,
        lines.join(","),
        im["height"],
        im["width"]
    )
}

both_backends!(ocr_fast_trains_on_plates_and_reports_validation_figures);

/// The signs demo (rendered text, some lines askew): CJK texts typed in the browser train
/// and come back as stored, a character the recogniser cannot write is refused by name, the
/// budget holds, a stop request ends a task within seconds, and askew lines are served
/// with rotated pixel corners.
async fn ocr_signs_take_cjk_keep_the_budget_stop_and_serve_rotated_lines(b: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(b, &[("workers", "1")]).await;
    let r = app
        .admin(
            Method::POST,
            "/api/instances",
            Some(json!({"template": "signs"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["type"], "ocr");
    let inst = r.body["id"].as_i64().unwrap();
    let ds = app
        .admin(
            Method::GET,
            &format!("/api/instances/{inst}/datasets"),
            None,
        )
        .await;
    let ds_id = ds.body[0]["id"].as_i64().unwrap();
    assert_eq!(ds.body[0]["labelled"], 60, "{:?}", ds.body);
    let images = app.all_images(ds_id).await;

    // Chinese texts on ten signs (as if typed in the labelling page): stored as typed.
    let cjk = |k: usize| format!("北京{k}号");
    for (k, im) in images.iter().take(10).enumerate() {
        retype_first_line(&app, im, &cjk(k)).await;
    }
    let stored = app.all_images(ds_id).await;
    assert_eq!(stored[3]["annotation"]["boxes"][0]["text"], cjk(3));

    let task = |name: &str, extra: Value| {
        let mut body = json!({
            "name": name, "dataset_id": ds_id, "labels": ["text"], "preset": "ocr-fast",
            "device": "cpu", "max_minutes": 1.5, "seed": 3, "max_epochs": null,
        });
        if let (Some(o), Value::Object(e)) = (body.as_object_mut(), extra) {
            o.extend(e);
        }
        body
    };
    // The budget holds without an epoch cap: 1.5 minutes (an epoch over the 86 lines takes
    // some 30 s here), so done within about 90 s.
    let id = start(&app, inst, task("budget", json!({}))).await;
    let t = finished(&app, id, Duration::from_secs(300)).await;
    let logs = task_logs(&app, id).await;
    assert_eq!(t["status"], "succeeded", "{t}\n{logs}");
    let secs = super::training::secs_between(&t["started_at"], &t["finished_at"]);
    assert!(secs <= 90.0 + 8.0, "a 90 s budget took {secs} s\n{logs}");
    let model_id = t["model_id"].as_i64().unwrap();
    let m = app
        .admin(Method::GET, &format!("/api/models/{model_id}"), None)
        .await
        .body;
    let listed = m["metrics"]["images"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 6, "{}", m["metrics"]);
    // The validation truth carries the Chinese texts unchanged.
    let truths: Vec<String> = listed
        .iter()
        .flat_map(|im| im["truth"].as_array().unwrap().clone())
        .map(|l| l["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        truths.iter().any(|t| t.starts_with("北京")),
        "a Chinese text among the validation lines: {truths:?}"
    );

    // Served: every validation sign's lines, TL TR BR BL along the text; the askew signs'
    // lines come back rotated (their top edge is not level).
    let token = deploy(&app, model_id, "signs").await;
    let mut rotated = 0;
    let mut read = 0;
    for im in &listed {
        let text = served(&app, "signs", &token, im["image_id"].as_i64().unwrap()).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        for line in v["result"]["output"][0]["body"].as_array().unwrap() {
            let p: [[i64; 2]; 4] = serde_json::from_value(line["pos"].clone()).unwrap();
            assert!(
                p[0][0] < p[1][0] && p[3][0] < p[2][0],
                "left to right: {text}"
            );
            assert!(
                p[0][1] < p[3][1] && p[1][1] < p[2][1],
                "top to bottom: {text}"
            );
            read += 1;
            if (p[0][1] - p[1][1]).abs() > 3 {
                rotated += 1;
            }
        }
    }
    assert!(read >= listed.len(), "lines read on every sign");
    assert!(rotated >= 1, "an askew line served with rotated corners");

    // Pre-labels from this version on two signs made unlabelled: each read line a draft
    // box (its rotated corners' enclosing box) with its text; accepting all saves exactly
    // those boxes and texts.
    let picked: Vec<i64> = listed
        .iter()
        .take(2)
        .map(|im| im["image_id"].as_i64().unwrap())
        .collect();
    let items = super::prelabels::prelabel(&app, inst, ds_id, model_id, &picked).await;
    super::prelabels::accept_all(
        &app,
        (inst, ds_id),
        ("signs", &token),
        &picked,
        &items,
        true,
    )
    .await;

    // A stop request ends a long task within seconds.
    let long = start(&app, inst, task("long", json!({"max_minutes": 10}))).await;
    stop_while_training(&app, long).await;

    // A character the recogniser cannot write fails the task, naming it.
    retype_first_line(&app, &stored[20], "EXIT ☃").await;
    let bad = start(&app, inst, task("snowman", json!({}))).await;
    let t = finished(&app, bad, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "failed", "{t}");
    let why = t["error"].as_str().unwrap_or_default();
    assert!(why.contains('☃') && why.contains("character set"), "{why}");
}

both_backends!(ocr_signs_take_cjk_keep_the_budget_stop_and_serve_rotated_lines);
