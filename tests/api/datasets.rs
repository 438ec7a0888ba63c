use integration_tests::{Backend, both_backends, jpeg, png, spawn_app, voc, write};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn reasons(ds: &serde_json::Value) -> Vec<(String, String)> {
    ds["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn reason_for<'a>(r: &'a [(String, String)], path: &str) -> &'a str {
    &r.iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("{path} not reported in {r:?}"))
        .1
}

async fn classification_folders_are_indexed_with_a_skip_report(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("image_classification", "pets").await;
    let dir = app.dataset_dir("pets");
    write(&dir, "cat/a.png", &png(40, 30));
    write(&dir, "cat/b.JPG", &jpeg(64, 48));
    write(&dir, "dog/c.jpeg", &jpeg(50, 50));
    write(&dir, "unlabelled.png", &png(20, 20));
    write(&dir, "猫/e.png", &png(10, 10));
    write(&dir, "deep/er/f.png", &png(10, 10));
    write(&dir, "cat/corrupt.jpg", b"this is not a jpeg at all");
    write(&dir, "notes.txt", b"hello");
    write(&dir, "cat/anim.gif", b"GIF89a\x01\x00\x01\x00");
    // 11 MB of junk named like an image: skipped after reading only its header.
    write(&dir, "dog/junk.png", &vec![0x5a; 11 * 1024 * 1024]);

    let ds = app
        .create_dataset(inst, "pets-v1", dir.to_str().unwrap())
        .await;
    assert_eq!(
        (
            ds["total"].as_i64(),
            ds["labelled"].as_i64(),
            ds["unlabelled"].as_i64()
        ),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(ds["per_label"], json!({"cat": 2, "dog": 1}));
    let r = reasons(&ds);
    assert!(reason_for(&r, "猫/e.png").contains("ASCII"));
    assert!(reason_for(&r, "deep/er/f.png").contains("nested"));
    assert!(reason_for(&r, "cat/corrupt.jpg").contains("corrupt"));
    assert!(reason_for(&r, "notes.txt").contains("unsupported file type"));
    assert!(reason_for(&r, "cat/anim.gif").contains("unsupported file type"));
    assert!(reason_for(&r, "dog/junk.png").contains("corrupt"));
    assert_eq!(r.len(), 6, "{r:?}");

    let inst_json = app
        .admin(Method::GET, &format!("/api/instances/{inst}"), None)
        .await
        .body;
    assert_eq!(
        (
            inst_json["dataset_count"].as_i64(),
            inst_json["image_count"].as_i64()
        ),
        (Some(1), Some(4))
    );
    let list = app
        .admin(
            Method::GET,
            &format!("/api/instances/{inst}/datasets"),
            None,
        )
        .await;
    assert_eq!(list.body[0]["name"], "pets-v1");
    let again = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/datasets"),
            Some(json!({"name": "pets-v1", "path": dir})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

async fn dataset_paths_must_stay_inside_the_data_roots(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("image_classification", "roots").await;
    let inside = app.dataset_dir("ok");
    let escape = format!("{}/../..", inside.display());
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), app.data_dir.join("datasets/link")).unwrap();
    for path in [
        "/etc",
        escape.as_str(),
        &format!("{}/datasets/link", app.data_dir.display()),
        "/no/such/dir",
        "http://x/y",
        "s3://Bad_Bucket/",
    ] {
        app.dataset_path_refused(inst, path).await;
    }
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/datasets"),
            Some(json!({"name": "bad name", "path": inside})),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "name");
    let ds = app
        .admin(
            Method::GET,
            &format!("/api/instances/{inst}/datasets"),
            None,
        )
        .await;
    assert_eq!(ds.body, json!([]), "nothing half-written");
    let rec = app.create_instance("recommendation_recall", "rec").await;
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{rec}/datasets"),
            Some(json!({"name": "d", "path": inside})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn detection_datasets_read_voc_and_report_bad_boxes(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("object_detection", "cells").await;
    let dir = app.dataset_dir("cells");
    write(&dir, "a.jpg", &jpeg(100, 80));
    write(
        &dir,
        "a.xml",
        voc(
            100,
            80,
            &[
                ("rbc", 10.0, 10.0, 50.0, 40.0),
                ("wbc", 5.0, 5.0, 5.0, 20.0),
                ("platelet", 60.0, 10.0, 120.0, 30.0),
            ],
        )
        .as_bytes(),
    );
    write(&dir, "b.jpg", &jpeg(64, 64));
    write(
        &dir,
        "orphan.xml",
        voc(64, 64, &[("rbc", 1.0, 1.0, 2.0, 2.0)]).as_bytes(),
    );
    write(&dir, "tiny.png", &png(20, 40));
    write(&dir, "bomb.jpg", &jpeg(64, 64));
    write(
        &dir,
        "bomb.xml",
        b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x \"xxxxxxxx\"><!ENTITY y \"&x;&x;&x;&x;\">]><annotation><object><name>&y;</name></object></annotation>",
    );
    write(&dir, "deep.jpg", &jpeg(64, 64));
    write(
        &dir,
        "deep.xml",
        format!(
            "<annotation>{}{}</annotation>",
            "<x>".repeat(5000),
            "</x>".repeat(5000)
        )
        .as_bytes(),
    );

    let ds = app
        .create_dataset(inst, "cells", dir.to_str().unwrap())
        .await;
    assert_eq!(
        (ds["total"].as_i64(), ds["labelled"].as_i64()),
        (Some(4), Some(1))
    );
    assert_eq!(ds["per_label"], json!({"rbc": 1}));
    let r = reasons(&ds);
    assert!(
        r.iter().any(|(p, why)| p == "a.xml"
            && why.contains("object 2 (\"wbc\")")
            && why.contains("zero area")),
        "{r:?}"
    );
    assert!(
        r.iter()
            .any(|(p, why)| p == "a.xml" && why.contains("platelet") && why.contains("outside")),
        "{r:?}"
    );
    assert!(reason_for(&r, "orphan.xml").contains("without an image"));
    assert!(reason_for(&r, "tiny.png").contains("larger than 30 px"));
    assert!(reason_for(&r, "bomb.xml").contains("DOCTYPE"));
    assert!(reason_for(&r, "deep.xml").contains("levels deep"));

    let imgs = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/images?status=labelled", ds["id"]),
            None,
        )
        .await;
    let a = &imgs.body["items"][0];
    assert_eq!(
        (
            a["path"].as_str(),
            a["width"].as_i64(),
            a["height"].as_i64()
        ),
        (Some("a.jpg"), Some(100), Some(80))
    );
    assert_eq!(
        a["annotation"],
        json!({"boxes": [{"label": "rbc", "xmin": 10.0, "ymin": 10.0, "xmax": 50.0, "ymax": 40.0}]})
    );
}

async fn ocr_datasets_keep_unicode_transcriptions(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("ocr", "plates").await;
    let dir = app.dataset_dir("plates");
    write(&dir, "car.jpg", &jpeg(120, 60));
    write(
        &dir,
        "car.xml",
        voc(120, 60, &[("京A·12345", 10.0, 20.0, 90.0, 40.0)]).as_bytes(),
    );
    let ds = app
        .create_dataset(inst, "plates", dir.to_str().unwrap())
        .await;
    let imgs = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/images", ds["id"]),
            None,
        )
        .await;
    assert_eq!(
        imgs.body["items"][0]["annotation"]["boxes"][0]["text"],
        "京A·12345"
    );
}

/// Re-indexing picks up new and removed files and keeps labels made in the browser, also
/// for a file that disappears and comes back.
async fn reindexing_keeps_browser_labels(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("image_classification", "grow").await;
    let dir = app.dataset_dir("grow");
    write(&dir, "cat/1.png", &png(32, 32));
    write(&dir, "loose.png", &png(32, 32));
    write(&dir, "gone.png", &png(32, 32));
    let ds = app
        .create_dataset(inst, "grow", dir.to_str().unwrap())
        .await;
    let id = ds["id"].as_i64().unwrap();
    let list = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{id}/images?status=unlabelled"),
            None,
        )
        .await;
    let by_path = |path: &str| {
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == path)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (loose, gone) = (by_path("loose.png"), by_path("gone.png"));
    for (img, label) in [(loose, "dog"), (gone, "cat")] {
        let r = app
            .admin(
                Method::PUT,
                &format!("/api/images/{img}/annotation"),
                Some(json!({"labels": [label]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    std::fs::remove_file(dir.join("gone.png")).unwrap();
    write(&dir, "dog/2.png", &png(32, 32));
    let r = app
        .admin(Method::POST, &format!("/api/datasets/{id}/reindex"), None)
        .await;
    assert_eq!(
        (r.body["total"].as_i64(), r.body["labelled"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        r.body["per_label"],
        json!({"cat": 1, "dog": 2}),
        "browser label on loose.png kept"
    );
    assert_eq!(
        app.admin(Method::GET, &format!("/api/images/{gone}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    write(&dir, "gone.png", &png(32, 32));
    let r = app
        .admin(Method::POST, &format!("/api/datasets/{id}/reindex"), None)
        .await;
    assert_eq!(
        r.body["per_label"],
        json!({"cat": 2, "dog": 2}),
        "the returning file has its label back"
    );
}

async fn datasets_export_to_their_input_layouts(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("image_classification", "exp").await;
    let dir = app.dataset_dir("exp");
    let cat = png(16, 16);
    write(&dir, "cat/1.png", &cat);
    write(&dir, "root.png", &png(8, 8));
    let ds = app.create_dataset(inst, "exp", dir.to_str().unwrap()).await;
    let r = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/export?format=folder", ds["id"]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut ar = tar::Archive::new(&r.bytes[..]);
    let entries: Vec<(String, Vec<u8>)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            (e.path().unwrap().display().to_string(), v)
        })
        .collect();
    assert_eq!(
        entries,
        vec![("cat/1.png".to_owned(), cat)],
        "only labelled images, under their label"
    );
    let r = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/export?format=voc", ds["id"]),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("format"))
    );

    let det = app.create_instance("object_detection", "expdet").await;
    let ddir = app.dataset_dir("expdet");
    write(&ddir, "a.jpg", &jpeg(64, 64));
    let ds = app
        .create_dataset(det, "expdet", ddir.to_str().unwrap())
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
    let boxes =
        json!({"boxes": [{"label": "dog & cat", "xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}]});
    app.admin(
        Method::PUT,
        &format!("/api/images/{img}/annotation"),
        Some(boxes),
    )
    .await;
    let r = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/export?format=voc", ds["id"]),
            None,
        )
        .await;
    let mut ar = tar::Archive::new(&r.bytes[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["a.jpg", "a.xml"]);
    // The exported XML indexes back to the same box.
    let back = app.dataset_dir("back");
    let mut ar = tar::Archive::new(&r.bytes[..]);
    ar.unpack(&back).unwrap();
    let ds2 = app
        .create_dataset(det, "back", back.to_str().unwrap())
        .await;
    assert_eq!(ds2["per_label"], json!({"dog & cat": 1}));
}

/// The data dir holds every instance's thumbnails, template images and models, the secret
/// and the SQLite file: on the defaults only its `datasets/` folder is a data root, and even a
/// configuration that puts the whole data dir under a root cannot index those folders.
async fn the_servers_own_folders_are_never_datasets(b: Backend) {
    for careless in [false, true] {
        // Careless: the whole file system is a data root.
        let app = if careless {
            integration_tests::spawn_app_with(b, &[("data_roots", "/")]).await
        } else {
            spawn_app(b).await
        };
        // Another team's instance: its template images and thumbnails live in the data dir.
        let other = app
            .admin(
                Method::POST,
                "/api/instances",
                Some(json!({"template": "shapes"})),
            )
            .await;
        assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
        let other = other.body["id"].as_i64().unwrap();
        std::fs::create_dir_all(app.data_dir.join(format!("thumbs/instance-{other}"))).unwrap();
        std::fs::create_dir_all(app.data_dir.join("models")).unwrap();
        let mine = app.create_instance("image_classification", "mine").await;
        let d = app.data_dir.display();
        for path in [
            format!("{d}"),
            format!("{d}/thumbs"),
            format!("{d}/thumbs/instance-{other}"),
            format!("{d}/templates/instance-{other}"),
            format!("{d}/models"),
            format!("{d}/datasets/.."),
        ] {
            app.dataset_path_refused(mine, &path).await;
        }
        // The default data root itself works.
        let dir = app.dataset_dir("pets");
        write(&dir, "cat/a.png", &png(16, 16));
        app.create_dataset(mine, "pets", dir.to_str().unwrap())
            .await;
    }
}

/// Each image's boxes in a dataset, by file name (folders dropped: exports move images).
async fn boxes_by_file(
    app: &integration_tests::TestApp,
    ds: &serde_json::Value,
) -> Vec<(String, serde_json::Value)> {
    let r = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/images?per_page=100", ds["id"]),
            None,
        )
        .await;
    let mut out: Vec<(String, serde_json::Value)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let path = i["path"].as_str().unwrap();
            let name = path.rsplit('/').next().unwrap().to_owned();
            (name, i["annotation"]["boxes"].clone())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Exports `ds` as `format`, unpacks the archive into a new folder and indexes it into
/// `inst`: the new dataset.
async fn exported_and_indexed(
    app: &integration_tests::TestApp,
    inst: i64,
    ds: &serde_json::Value,
    format: &str,
) -> serde_json::Value {
    let r = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/export?format={format}", ds["id"]),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{format}: {:?}", r.body);
    let name = format!("{}-{format}", ds["name"].as_str().unwrap());
    let dir = app.dataset_dir(&name);
    tar::Archive::new(&r.bytes[..]).unpack(&dir).unwrap();
    app.create_dataset(inst, &name, dir.to_str().unwrap()).await
}

/// COCO and YOLO layouts index in place (boxes in pixels, problems reported), and every
/// box layout exports and indexes back to exactly the same boxes.
async fn coco_and_yolo_datasets_index_and_round_trip(b: Backend) {
    let app = spawn_app(b).await;
    let det = app.create_instance("object_detection", "cocoyolo").await;
    // COCO: annotations/ beside images/, one annotation naming a missing category.
    let dir = app.dataset_dir("coco");
    write(&dir, "images/a.jpg", &jpeg(100, 75));
    write(&dir, "images/b.jpg", &jpeg(64, 48));
    write(&dir, "images/bg.jpg", &jpeg(64, 48));
    let coco = json!({
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 100, "height": 75},
            {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
            {"id": 3, "file_name": "bg.jpg", "width": 64, "height": 48},
            {"id": 4, "file_name": "gone.jpg", "width": 64, "height": 48}
        ],
        "categories": [{"id": 1, "name": "dog"}, {"id": 7, "name": "red car"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2.5, 29.125, 37.75]},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [50, 10, 49.999, 60]},
            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [0, 0, 64, 48]},
            {"id": 4, "image_id": 2, "category_id": 9, "bbox": [0, 0, 5, 5]}
        ]
    });
    write(
        &dir,
        "annotations/instances.json",
        coco.to_string().as_bytes(),
    );
    let ds = app.create_dataset(det, "coco", dir.to_str().unwrap()).await;
    assert_eq!(ds["per_label"], json!({"dog": 1, "red car": 2}));
    let r = reasons(&ds);
    assert!(
        r.iter()
            .any(|(p, why)| p == "annotations/instances.json"
                && why.contains("no category with id 9")),
        "{r:?}"
    );
    assert!(
        r.iter()
            .any(|(_, why)| why.contains("\"gone.jpg\" is not in the dataset")),
        "{r:?}"
    );
    let want = boxes_by_file(&app, &ds).await;
    assert_eq!(
        want[0],
        (
            "a.jpg".to_owned(),
            json!([
                {"label": "dog", "xmin": 1.0, "ymin": 2.5, "xmax": 30.125, "ymax": 40.25},
                {"label": "red car", "xmin": 50.0, "ymin": 10.0, "xmax": 99.999, "ymax": 70.0}
            ])
        )
    );
    for format in ["coco", "yolo", "voc"] {
        let back = exported_and_indexed(&app, det, &ds, format).await;
        assert_eq!(back["per_label"], ds["per_label"], "{format}");
        // Exports carry the labelled images only (bg.jpg has no boxes).
        let boxed =
            |(_, b): &(String, serde_json::Value)| b.as_array().is_some_and(|a| !a.is_empty());
        let got = boxes_by_file(&app, &back).await;
        assert!(got.iter().all(boxed), "{format}: {got:?}");
        let mut labelled = want.clone();
        labelled.retain(boxed);
        assert_eq!(got, labelled, "{format}: the same boxes, to the bit");
    }

    // YOLO, Ultralytics layout: images/train + labels/train + data.yaml.
    let dir = app.dataset_dir("yolo");
    write(&dir, "images/train/c.jpg", &jpeg(200, 100));
    write(
        &dir,
        "labels/train/c.txt",
        b"1 0.5 0.5 0.25 0.5\n0 0.1 0.1 0.1 0.1\n5 0.5 0.5 0.1 0.1\n",
    );
    write(
        &dir,
        "data.yaml",
        b"path: .\ntrain: images/train\nnames:\n  0: person\n  1: bike\n",
    );
    write(&dir, "labels/train/orphan.txt", b"0 0.5 0.5 0.1 0.1\n");
    let ds = app.create_dataset(det, "yolo", dir.to_str().unwrap()).await;
    assert_eq!(ds["per_label"], json!({"bike": 1, "person": 1}));
    assert_eq!(
        boxes_by_file(&app, &ds).await,
        [(
            "c.jpg".to_owned(),
            json!([
                {"label": "bike", "xmin": 75.0, "ymin": 25.0, "xmax": 125.0, "ymax": 75.0},
                {"label": "person", "xmin": 10.0, "ymin": 5.0, "xmax": 30.0, "ymax": 15.0}
            ])
        )]
    );
    let r = reasons(&ds);
    assert!(
        reason_for(&r, "labels/train/c.txt").contains("class 5 has no name"),
        "{r:?}"
    );
    assert!(
        reason_for(&r, "labels/train/orphan.txt").contains("without an image"),
        "{r:?}"
    );

    // OCR: texts travel through COCO; YOLO has no place for them.
    let ocr = app.create_instance("ocr", "cocotext").await;
    let dir = app.dataset_dir("cocotext");
    write(&dir, "p.jpg", &jpeg(120, 60));
    let coco = json!({
        "images": [{"id": 1, "file_name": "p.jpg"}],
        "categories": [{"id": 1, "name": "text"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 80, 20], "text": "出口 EXIT"}]
    });
    write(&dir, "coco.json", coco.to_string().as_bytes());
    let ds = app
        .create_dataset(ocr, "cocotext", dir.to_str().unwrap())
        .await;
    let want = boxes_by_file(&app, &ds).await;
    assert_eq!(want[0].1[0]["text"], "出口 EXIT");
    for format in ["coco", "voc"] {
        let back = exported_and_indexed(&app, ocr, &ds, format).await;
        assert_eq!(boxes_by_file(&app, &back).await, want, "{format}");
    }
    let r = app
        .admin(
            Method::GET,
            &format!("/api/datasets/{}/export?format=yolo", ds["id"]),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("format"))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("voc | coco")
    );
}

both_backends!(
    classification_folders_are_indexed_with_a_skip_report,
    dataset_paths_must_stay_inside_the_data_roots,
    the_servers_own_folders_are_never_datasets,
    detection_datasets_read_voc_and_report_bad_boxes,
    ocr_datasets_keep_unicode_transcriptions,
    reindexing_keeps_browser_labels,
    datasets_export_to_their_input_layouts,
    coco_and_yolo_datasets_index_and_round_trip,
);
