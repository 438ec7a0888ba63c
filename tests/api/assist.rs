//! Assisted labelling for classification: suggestions fitted on the dataset's own labels
//! (the images' ImageNet embeddings computed once, with progress), least certain first,
//! right for most unlabelled images; labels flipped on purpose listed first among the
//! doubtful; suggestions never counted as labels.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use integration_tests::{Backend, both_backends, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn suggestions_learn_from_labels_and_doubt_flipped_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, ds) = super::training::shapes(&app).await;
    let images = app.all_images(ds).await;
    assert_eq!(images.len(), 120);
    let truth: HashMap<i64, String> = images
        .iter()
        .map(|i| {
            let label = i["annotation"]["labels"][0].as_str().unwrap().to_owned();
            (i["id"].as_i64().unwrap(), label)
        })
        .collect();
    // Keep every fourth image's label (10 per shape), take the others' away, and flip two
    // of the kept ones.
    let mut flipped = Vec::new();
    for (k, img) in images.iter().enumerate() {
        let id = img["id"].as_i64().unwrap();
        let path = format!("/api/images/{id}/annotation");
        let body = if k % 4 != 0 {
            json!({"labels": []})
        } else if flipped.len() < 2 && truth[&id] == "circle" {
            flipped.push(id);
            json!({"labels": ["square"]})
        } else {
            continue;
        };
        let r = app.admin(Method::PUT, &path, Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    assert_eq!(flipped.len(), 2);

    let url = format!("/api/datasets/{ds}/suggestions?doubtful=true");
    let t0 = Instant::now();
    let mut progress = Vec::new();
    let s = loop {
        let r = app.admin(Method::GET, &url, None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        if r.body["state"] == "ready" {
            break r.body;
        }
        assert_eq!(r.body["state"], "computing");
        progress.push(r.body["progress"].as_f64().unwrap());
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "embeddings still computing: {progress:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        !progress.is_empty(),
        "the first answer reports the computation"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");

    let suggestions = s["suggestions"].as_array().unwrap();
    assert_eq!(suggestions.len(), 90, "one per unlabelled image");
    let confidences: Vec<f64> = suggestions
        .iter()
        .map(|x| x["confidence"].as_f64().unwrap())
        .collect();
    assert!(
        confidences.windows(2).all(|w| w[0] <= w[1]),
        "least certain first"
    );
    let right = suggestions
        .iter()
        .filter(|x| truth[&x["image_id"].as_i64().unwrap()] == x["label"].as_str().unwrap())
        .count();
    // Chance is a third; 10 labels per shape (two of them wrong) should do far better.
    assert!(right >= 80, "{right} of 90 suggestions right: {s}");
    let doubtful: Vec<i64> = s["doubtful"]
        .as_array()
        .unwrap()
        .iter()
        .take(5)
        .map(|d| d["image_id"].as_i64().unwrap())
        .collect();
    for id in &flipped {
        assert!(
            doubtful.contains(id),
            "flipped {id} not among {doubtful:?}: {s}"
        );
    }
    let first = &s["doubtful"][0];
    assert_eq!(
        (first["label"].as_str(), first["suggested"].as_str()),
        (Some("square"), Some("circle"))
    );

    // Suggestions are not labels: the counts are those of the 30 labelled images.
    let d = app
        .admin(Method::GET, &format!("/api/datasets/{ds}"), None)
        .await
        .body;
    assert_eq!(
        (d["labelled"].as_i64(), d["unlabelled"].as_i64()),
        (Some(30), Some(90))
    );
    // A second call reuses the embeddings: ready at once.
    let again = app.admin(Method::GET, &url, None).await.body;
    assert_eq!(again["state"], "ready");
    assert_eq!(again["suggestions"], s["suggestions"]);
    // Without `doubtful`, a refresh skips the cross-validation.
    let quick = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{ds}/suggestions"),
            None,
        )
        .await
        .body;
    assert_eq!(quick["suggestions"], s["suggestions"]);
    assert_eq!(quick["doubtful"], json!([]));

    // Fewer than the minimum labels on one shape: no suggestions yet, and the counts say why.
    let keep: Vec<i64> = images
        .iter()
        .step_by(4)
        .map(|i| i["id"].as_i64().unwrap())
        .filter(|id| truth[id] == "triangle")
        .collect();
    for id in &keep[2..] {
        let path = format!("/api/images/{id}/annotation");
        app.admin(Method::PUT, &path, Some(json!({"labels": []})))
            .await;
    }
    let few = app.admin(Method::GET, &url, None).await.body;
    assert_eq!(few["state"], "ready");
    assert_eq!(few["suggestions"], json!([]));
    let counts: HashMap<String, i64> = few["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts["triangle"], 2, "{few}");
    assert_eq!(few["min_per_label"], 3);

    // Detection datasets have no classification suggestions.
    let (_, det_ds) = super::detection::scenes(&app).await;
    let r = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{det_ds}/suggestions"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
}

both_backends!(suggestions_learn_from_labels_and_doubt_flipped_ones);
