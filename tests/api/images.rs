use integration_tests::{Backend, both_backends, jpeg, png, spawn_app, write};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn labelled_dataset(app: &integration_tests::TestApp) -> (i64, i64) {
    let inst = app.create_instance("image_classification", "imgs").await;
    let dir = app.dataset_dir("imgs");
    for i in 0..5 {
        write(&dir, &format!("cat/{i}.png"), &png(20 + i, 20));
    }
    write(&dir, "dog/d.jpg", &jpeg(30, 30));
    write(&dir, "u1.png", &png(10, 10));
    write(&dir, "u2.png", &png(11, 10));
    let ds = app
        .create_dataset(inst, "imgs", dir.to_str().unwrap())
        .await;
    (inst, ds["id"].as_i64().unwrap())
}

fn paths(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect()
}

async fn images_are_filtered_and_paged(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ds) = labelled_dataset(&app).await;
    let get = |q: &str| {
        let path = format!("/api/datasets/{ds}/images?{q}");
        let app = &app;
        async move { app.admin(Method::GET, &path, None).await }
    };
    let all = get("").await;
    assert_eq!(
        (all.body["total"].as_i64(), all.body["per_page"].as_i64()),
        (Some(8), Some(50))
    );
    assert_eq!(
        paths(&get("status=unlabelled").await.body),
        ["u1.png", "u2.png"]
    );
    assert_eq!(paths(&get("label=dog").await.body), ["dog/d.jpg"]);
    let p2 = get("label=cat&page=2&per_page=3").await;
    assert_eq!(
        (paths(&p2.body), p2.body["total"].as_i64()),
        (vec!["cat/3.png", "cat/4.png"], Some(5))
    );
    assert_eq!(get("status=labelled").await.body["total"], 6);
    for bad in ["page=0", "per_page=501", "status=weird", "page=x"] {
        assert_eq!(get(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn image_content_and_annotations_round_trip(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ds) = labelled_dataset(&app).await;
    let page = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{ds}/images?status=unlabelled"),
            None,
        )
        .await;
    let img = page.body["items"][0]["id"].as_i64().unwrap();
    let bytes = app
        .admin(Method::GET, &format!("/api/images/{img}/content"), None)
        .await
        .bytes;
    assert_eq!(&bytes[..], &png(10, 10)[..]);

    let path = format!("/api/images/{img}/annotation");
    let put = |body: Value| app.admin(Method::PUT, &path, Some(body));
    let r = put(json!({"labels": ["cat"]})).await;
    assert_eq!(
        (r.status, r.body["labelled"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let d = app
        .admin(Method::GET, &format!("/api/datasets/{ds}"), None)
        .await
        .body;
    assert_eq!(
        (
            d["labelled"].as_i64(),
            d["unlabelled"].as_i64(),
            d["per_label"]["cat"].as_i64()
        ),
        (Some(7), Some(1), Some(6))
    );

    // Refused annotations leave the saved one untouched.
    for (bad, field) in [
        (json!({"labels": ["猫"]}), "labels[0]"),
        (json!({"labels": ["a", "b"]}), "labels"),
        (
            json!({"boxes": [{"label": "x", "xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5}]}),
            "boxes",
        ),
    ] {
        let r = put(bad).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field))
        );
    }
    let r = put(json!({"labels": "cat"})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let now = app
        .admin(Method::GET, &format!("/api/images/{img}"), None)
        .await;
    assert_eq!(now.body["annotation"], json!({"labels": ["cat"]}));

    // An empty annotation makes the image unlabelled again.
    let r = put(json!({})).await;
    assert_eq!(r.body["labelled"], false);

    // Deleted images leave the counts and show under status=deleted until restored.
    assert_eq!(
        app.admin(Method::DELETE, &format!("/api/images/{img}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let d = app
        .admin(Method::GET, &format!("/api/datasets/{ds}"), None)
        .await
        .body;
    assert_eq!(
        (d["total"].as_i64(), d["deleted"].as_i64()),
        (Some(7), Some(1))
    );
    let del = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{ds}/images?status=deleted"),
            None,
        )
        .await;
    assert_eq!(del.body["items"][0]["id"].as_i64(), Some(img));
    let r = app
        .admin(Method::POST, &format!("/api/images/{img}/restore"), None)
        .await;
    assert_eq!(r.body["deleted"], false);
}

async fn boxes_are_validated_against_the_image(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("ocr", "ocrbox").await;
    let dir = app.dataset_dir("ocrbox");
    write(&dir, "p.jpg", &jpeg(200, 100));
    let ds = app
        .create_dataset(inst, "ocrbox", dir.to_str().unwrap())
        .await;
    let img = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/images", ds["id"]),
            None,
        )
        .await
        .body["items"][0]["id"]
        .clone();
    let path = format!("/api/images/{img}/annotation");
    let put = |body: Value| app.admin(Method::PUT, &path, Some(body));
    let good = json!({"boxes": [{"label": "text", "xmin": 10.5, "ymin": 10.0, "xmax": 190.0, "ymax": 90.0, "text": "06174727742034996"}]});
    let r = put(good.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["annotation"]["boxes"][0]["text"],
        "06174727742034996"
    );
    for (bad, field) in [
        (
            json!({"boxes": [{"label": "text", "xmin": 10, "ymin": 10, "xmax": 201, "ymax": 90}]}),
            "boxes[0]",
        ),
        (
            json!({"boxes": [{"label": "text", "xmin": 10, "ymin": 10, "xmax": 10, "ymax": 90}]}),
            "boxes[0]",
        ),
        (json!({"labels": ["text"]}), "labels"),
    ] {
        let r = put(bad).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{:?}",
            r.body
        );
    }
    let many: Vec<Value> = (0..5001)
        .map(|_| json!({"label": "t", "xmin": 1, "ymin": 1, "xmax": 2, "ymax": 2}))
        .collect();
    let r = put(json!({"boxes": many})).await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        r.status
    );
    assert_eq!(
        app.admin(Method::GET, &format!("/api/images/{img}"), None)
            .await
            .body["annotation"],
        good
    );
}

async fn labelling_needs_label_permission(b: Backend) {
    let app = spawn_app(b).await;
    let (inst, ds) = labelled_dataset(&app).await;
    let (_, viewer) = app
        .user_with("viewer", json!([{"permission": "ListInstance"}]))
        .await;
    let (_, labeller) = app.user_with("labeller", json!([{"permission": "ListInstance"}, {"permission": "LabelInstance", "instance_id": inst}])).await;
    let img = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{ds}/images?status=unlabelled"),
            None,
        )
        .await
        .body["items"][0]["id"]
        .clone();
    let path = format!("/api/images/{img}/annotation");
    let r = app
        .call(
            Some(&viewer),
            Method::PUT,
            &path,
            Some(json!({"labels": ["dog"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LabelInstance")
    );
    let r = app
        .call(
            Some(&viewer),
            Method::DELETE,
            &format!("/api/images/{img}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.admin(Method::GET, &format!("/api/images/{img}"), None)
            .await
            .body["labelled"],
        false
    );
    let r = app
        .call(
            Some(&labeller),
            Method::PUT,
            &path,
            Some(json!({"labels": ["dog"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Viewing is allowed, and so are the bytes.
    let r = app
        .call(
            Some(&viewer),
            Method::GET,
            &format!("/api/images/{img}/content"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(
            Some(&viewer),
            Method::POST,
            &format!("/api/datasets/{ds}/reindex"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

both_backends!(
    images_are_filtered_and_paged,
    image_content_and_annotations_round_trip,
    boxes_are_validated_against_the_image,
    labelling_needs_label_permission,
);
