//! The real datasets in `../shared/datasets`, indexed in place through the API: the counts
//! their SOURCE.md files give, and the boxes that cannot be used reported as skipped. A
//! missing folder fails the test unless `AUTOLEARN_ALLOW_SKIP=1`.

use std::path::PathBuf;

use integration_tests::{Backend, both_backends, cannot_run, spawn_app_with};
use serde_json::Value;

fn shared_datasets() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets");
    match dir.canonicalize() {
        Ok(d) => Some(d),
        Err(_) => {
            cannot_run(&format!("{} is absent", dir.display()));
            None
        }
    }
}

async fn the_shared_datasets_index_with_their_documented_counts(b: Backend) {
    let Some(root) = shared_datasets() else {
        return;
    };
    let app = spawn_app_with(b, &[("data_roots", &root.display().to_string())]).await;
    let path = |name: &str| root.join(name).display().to_string();

    // Alpaca: folder per label, 142 + 185.
    let inst = app.create_instance("image_classification", "alpaca").await;
    let ds = app
        .create_dataset(inst, "alpaca", &path("alpaca-vs-not-alpaca"))
        .await;
    assert_eq!(ds["total"], 327, "{ds}");
    assert_eq!(ds["labelled"], 327);
    assert_eq!(ds["per_label"]["alpaca"], 142);
    assert_eq!(ds["per_label"]["not_alpaca"], 185);

    // BCCD: VOC layout, 364 images with 4,888 boxes in their files, of which two have zero
    // area; those two are reported (file and object), the rest kept.
    let inst = app.create_instance("object_detection", "cells").await;
    let ds = app.create_dataset(inst, "bccd", &path("bccd-voc")).await;
    assert_eq!(ds["total"], 364, "{ds}");
    let images = app.all_images(ds["id"].as_i64().unwrap()).await;
    let boxes: usize = images
        .iter()
        .map(|i| i["annotation"]["boxes"].as_array().map_or(0, Vec::len))
        .sum();
    let zero_area: Vec<&Value> = ds["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["reason"].as_str().is_some_and(|r| r.contains("area")))
        .collect();
    assert_eq!(zero_area.len(), 2, "{}", ds["skipped"]);
    assert_eq!(boxes, 4_886, "kept boxes");
    assert_eq!(boxes + zero_area.len(), 4_888, "boxes in the files");

    // Plates: OCR, 330 images with one text box each.
    let inst = app.create_instance("ocr", "plates").await;
    let ds = app
        .create_dataset(inst, "plates", &path("openalpr-plates"))
        .await;
    assert_eq!(ds["total"], 330, "{ds}");
    let items = app.all_images(ds["id"].as_i64().unwrap()).await;
    assert_eq!(items.len(), 330);
    for img in &items {
        let boxes = img["annotation"]["boxes"].as_array().unwrap();
        assert_eq!(boxes.len(), 1, "{}", img["path"]);
        assert!(
            boxes[0]["label"].as_str().is_some_and(|t| !t.is_empty()),
            "the box's text: {img}"
        );
    }
}

both_backends!(the_shared_datasets_index_with_their_documented_counts);
