//! OCR end to end through the API on 40 OpenALPR plates (copied to a temporary dataset
//! folder; the photos stay in `../shared/datasets`): ocr-fast fine-tunes the pretrained
//! recogniser, the version's metrics are computed on exactly the validation images (with the
//! starting models' figures beside them), the held-out CTC loss falls (the model learned),
//! and deploying is refused with a clear error while the OCR predict path is missing.

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::{Backend, both_backends, cannot_run, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::training::{TRAINING, finished, start, task_logs};

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
    let (meta, _) = autolearn_server::artifact::unpack(&art.bytes).unwrap();
    assert_eq!(
        meta.architecture,
        autolearn_server::train::ocr::ARCHITECTURE
    );
    assert!(meta.charset.len() > 6000 && meta.charset.iter().any(|c| c == "京"));

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

    let r = app
        .admin(
            Method::POST,
            &format!("/api/models/{model_id}/services"),
            Some(json!({"name": "plates-ocr"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
}

both_backends!(ocr_fast_trains_on_plates_and_reports_validation_figures);
