//! Pre-labels from a model version (detection and OCR; called from their end-to-end tests,
//! which have a trained, deployed model): drafts for the unlabelled images only, equal to
//! the served answer in pixels, never counted as labels; accepting all and saving stores
//! exactly the model's boxes.

use std::time::{Duration, Instant};

use integration_tests::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::predict::{b64, predict_raw};

/// What the served answer says for one image, as the drafts must hold it: pixel boxes
/// (detection: relative corners times the image's size; OCR: the rotated corners'
/// enclosing box, label `text`, the text read), rounded to hundredths of a pixel.
fn expected_boxes(answer: &Value, width: f64, height: f64, ocr: bool) -> Vec<Value> {
    let r = |v: f64| (v * 100.0).round() / 100.0;
    answer["result"]["output"][0]["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let p: Vec<[f64; 2]> = serde_json::from_value(b["pos"].clone()).unwrap();
            let (sx, sy) = if ocr { (1.0, 1.0) } else { (width, height) };
            let xs: Vec<f64> = p.iter().map(|c| (c[0] * sx).clamp(0.0, width)).collect();
            let ys: Vec<f64> = p.iter().map(|c| (c[1] * sy).clamp(0.0, height)).collect();
            let lo = |v: &[f64]| r(v.iter().copied().fold(f64::INFINITY, f64::min));
            let hi = |v: &[f64]| r(v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            let mut e = json!({
                "label": if ocr { json!("text") } else { b["label"].clone() },
                "xmin": lo(&xs), "ymin": lo(&ys), "xmax": hi(&xs), "ymax": hi(&ys),
                "conf": b["conf"],
            });
            if ocr {
                e["text"] = b["label"].clone();
            }
            e
        })
        .collect()
}

async fn labelled_count(app: &TestApp, instance: i64, ds: i64) -> i64 {
    let r = app
        .admin(
            Method::GET,
            &format!("/api/instances/{instance}/datasets"),
            None,
        )
        .await;
    let d = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == ds)
        .unwrap();
    d["labelled"].as_i64().unwrap()
}

/// Makes `images` unlabelled and pre-labels the dataset with `model_id`: a run over every
/// unlabelled image, whose drafts change no count or status. Returns the drafts listed.
pub(super) async fn prelabel(
    app: &TestApp,
    instance: i64,
    ds: i64,
    model_id: i64,
    images: &[i64],
) -> Vec<Value> {
    for id in images {
        let r = app
            .admin(
                Method::PUT,
                &format!("/api/images/{id}/annotation"),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let labelled = labelled_count(app, instance, ds).await;
    let unlabelled: Vec<i64> = app
        .all_images(ds)
        .await
        .iter()
        .filter(|i| i["labelled"] == false)
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert!(images.iter().all(|i| unlabelled.contains(i)));

    // A model of another instance, or none, is refused by name.
    let r = app
        .admin(
            Method::POST,
            &format!("/api/datasets/{ds}/prelabels"),
            Some(json!({"model_id": 987_654})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "unknown_model", "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "model_id", "{:?}", r.body);

    let r = app
        .admin(
            Method::POST,
            &format!("/api/datasets/{ds}/prelabels"),
            Some(json!({"model_id": model_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["total"], unlabelled.len() as i64, "{:?}", r.body);
    let t0 = Instant::now();
    let listed = loop {
        let r = app
            .admin(Method::GET, &format!("/api/datasets/{ds}/prelabels"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        match r.body["run"]["state"].as_str() {
            Some("done") => break r.body,
            Some("running") => {}
            other => panic!("run {other:?}: {:?}", r.body),
        }
        assert!(t0.elapsed() < Duration::from_secs(180), "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed["run"]["done"], listed["run"]["total"], "{listed}");
    assert!(listed["run"]["message"].is_null(), "{listed}");
    let items = listed["items"].as_array().unwrap().clone();
    let drafted: Vec<i64> = items
        .iter()
        .map(|i| i["image_id"].as_i64().unwrap())
        .collect();
    // An entry per unlabelled image the model found something on (checked per image by
    // `accept_all` against the served answer).
    assert!(drafted.iter().all(|i| unlabelled.contains(i)), "{listed}");
    assert!(!drafted.is_empty(), "the model found something: {listed}");

    // Drafts are not labels: counts and statuses do not move.
    assert_eq!(labelled_count(app, instance, ds).await, labelled);
    for id in images {
        let im = app
            .admin(Method::GET, &format!("/api/images/{id}"), None)
            .await
            .body;
        assert_eq!(im["labelled"], false, "{im}");
        assert_eq!(im["annotation"], json!({}), "{im}");
    }
    items
}

/// Checks each image's drafts against service `service` (serving the drafts' model), then
/// accepts them all, saves, and checks the saved annotation is exactly the drafts' boxes.
/// Returns the images whose accepted drafts made them labelled.
pub(super) async fn accept_all(
    app: &TestApp,
    (instance, ds): (i64, i64),
    (service, token): (&str, &str),
    images: &[i64],
    items: &[Value],
    ocr: bool,
) -> Vec<i64> {
    let labelled = labelled_count(app, instance, ds).await;
    let model_id = items[0]["model_id"].as_i64().unwrap();
    let mut accepted = Vec::new();
    for id in images {
        let im = app
            .admin(Method::GET, &format!("/api/images/{id}"), None)
            .await
            .body;
        let none = json!({});
        let item = items.iter().find(|i| i["image_id"] == *id).unwrap_or(&none);
        if item != &none {
            assert_eq!(item["model_id"], model_id);
        }
        // The drafts are the served answer, in pixels.
        let bytes = app
            .admin(Method::GET, &format!("/api/images/{id}/content"), None)
            .await
            .bytes;
        let body = format!(r#"{{"dataArray":[{{"body":"{}"}}]}}"#, b64(&bytes));
        let (status, text) = predict_raw(app, service, Some(token), body.into_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        let (w, h) = (
            im["width"].as_f64().unwrap(),
            im["height"].as_f64().unwrap(),
        );
        let want = expected_boxes(&answer, w, h, ocr);
        let got = item["boxes"].as_array().cloned().unwrap_or_default();
        assert_eq!(got, want, "image {id}: drafts vs the served answer {text}");

        // Accept all, save through the annotation path: exactly the model's boxes.
        let boxes: Vec<Value> = got
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b.as_object_mut().unwrap().remove("conf");
                b
            })
            .collect();
        let r = app
            .admin(
                Method::PUT,
                &format!("/api/images/{id}/annotation"),
                Some(json!({"boxes": boxes})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let saved = app
            .admin(Method::GET, &format!("/api/images/{id}"), None)
            .await
            .body;
        assert_eq!(
            saved["annotation"]["boxes"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            boxes,
            "image {id}"
        );
        assert_eq!(saved["labelled"], !boxes.is_empty());
        if !boxes.is_empty() {
            accepted.push(*id);
        }
        // Decided: the drafts go; a second drop finds none.
        if item != &none {
            let r = app
                .admin(Method::DELETE, &format!("/api/images/{id}/prelabel"), None)
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        }
        let r = app
            .admin(Method::DELETE, &format!("/api/images/{id}/prelabel"), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    }
    assert!(
        !accepted.is_empty(),
        "the model found something on these images"
    );
    assert_eq!(
        labelled_count(app, instance, ds).await,
        labelled + accepted.len() as i64
    );
    let left = app
        .admin(Method::GET, &format!("/api/datasets/{ds}/prelabels"), None)
        .await
        .body;
    assert!(
        left["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !images.contains(&i["image_id"].as_i64().unwrap())),
        "{left}"
    );

    // A draft for an image labelled meanwhile is not stored (the check is in the INSERT),
    // and only one run at a time.
    let late: shared::api::Prelabel = serde_json::from_value(items[0].clone()).unwrap();
    if accepted.contains(&late.image_id) {
        assert!(!app.state.db.put_prelabel(ds, &late).await.unwrap());
    }
    assert!(
        app.state
            .db
            .start_prelabel_run(ds, model_id, 1)
            .await
            .unwrap()
    );
    assert!(
        !app.state
            .db
            .start_prelabel_run(ds, model_id, 1)
            .await
            .unwrap()
    );
    app.state
        .db
        .finish_prelabel_run(ds, false, None)
        .await
        .unwrap();
    accepted
}
