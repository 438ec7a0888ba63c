//! Deployment and the predict API (SPEC §7): the wire format byte for byte, the token, each
//! error code, limits, a version swap under load without failed requests, undeploy.

use std::time::{Duration, Instant};

use integration_tests::{Backend, TestApp, both_backends, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::training::{TRAINING, finished, shapes, start, task};

pub(super) fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends a raw predict request; returns the status and the body as text.
pub(super) async fn predict_raw(
    app: &TestApp,
    service: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/predict/{service}", app.url))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Sends only the headers of a request announcing a 33 MiB body; returns the status line.
async fn too_large_answer(app: &TestApp, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /api/predict/shapes HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"dataArray\":",
        33 * 1024 * 1024
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn image_body(png: &[u8]) -> Vec<u8> {
    json!({"dataArray": [{"name": "image", "type": "stream", "body": b64(png)}]})
        .to_string()
        .into_bytes()
}

pub(super) async fn trained_model(
    app: &TestApp,
    instance: i64,
    ds: i64,
    name: &str,
    labels: &[&str],
) -> i64 {
    let id = start(
        app,
        instance,
        task(ds, name, labels, json!({"max_epochs": 1})),
    )
    .await;
    let t = finished(app, id, Duration::from_secs(300)).await;
    assert_eq!(t["status"], "succeeded", "{t}");
    t["model_id"].as_i64().unwrap()
}

pub(super) async fn wait_running(app: &TestApp, service: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let r = app
            .admin(Method::GET, &format!("/api/services/{service}"), None)
            .await;
        if r.body["status"] == "running" {
            return r.body;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deploy_predict_errors_swap_undeploy(backend: Backend) {
    let _one = TRAINING.lock().await;
    let app = spawn_app_with(backend, &[("workers", "1")]).await;
    let (instance, ds) = shapes(&app).await;
    let v1 = trained_model(
        &app,
        instance,
        ds,
        "three",
        &["circle", "square", "triangle"],
    )
    .await;

    let r = app
        .admin(
            Method::POST,
            &format!("/api/models/{v1}/services"),
            Some(json!({"name": "shapes", "replicas": 2})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["endpoint"], "/api/predict/shapes");
    assert_eq!(r.body["model_id"], v1);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let svc = wait_running(&app, "shapes").await;
    assert!(svc.get("token").is_none(), "the token is shown once");

    // Pre-labels from v1 on two images made unlabelled: each draft is the served top-1
    // label with its confidence; nothing is labelled until a label is saved.
    let first_two = app.all_images(ds).await[..2].to_vec();
    let picked: Vec<i64> = first_two
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    let items = super::prelabels::prelabel(&app, instance, ds, v1, &picked).await;
    for id in &picked {
        let item = items.iter().find(|i| i["image_id"] == *id).unwrap();
        let bytes = app
            .admin(Method::GET, &format!("/api/images/{id}/content"), None)
            .await
            .bytes;
        let (status, text) = predict_raw(&app, "shapes", Some(&token), image_body(&bytes)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let served: Value = serde_json::from_str(&text).unwrap();
        let top = &served["result"]["output"][0]["body"][0];
        assert_eq!(item["label"]["label"], top["label"], "{item} vs {text}");
        assert_eq!(item["label"]["conf"], top["conf"], "{item} vs {text}");
        // The true label goes back (the later versions train on it).
        let truth = &first_two.iter().find(|i| i["id"] == *id).unwrap()["annotation"];
        let r = app
            .admin(
                Method::PUT,
                &format!("/api/images/{id}/annotation"),
                Some(truth.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["labelled"], true);
    }

    // Success, in the SPEC's exact shape.
    let dir = app.data_dir.join(format!("templates/instance-{instance}"));
    let circle = std::fs::read(dir.join("circle/circle-000.png")).unwrap();
    let (status, text) = predict_raw(&app, "shapes", Some(&token), image_body(&circle)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["result", "success"]);
    assert_eq!(v["success"], true);
    assert_eq!(keys(&v["result"]), ["meta", "output"]);
    assert_eq!(v["result"]["meta"], json!({"height": 96, "width": 96}));
    let output = v["result"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    assert_eq!(keys(&output[0]), ["body", "type"]);
    assert_eq!(output[0]["type"], "cv_common");
    let body = output[0]["body"].as_array().unwrap();
    assert_eq!(body.len(), 3);
    let mut labels: Vec<&str> = body.iter().map(|b| b["label"].as_str().unwrap()).collect();
    let confs: Vec<f64> = body.iter().map(|b| b["conf"].as_f64().unwrap()).collect();
    for b in body {
        assert_eq!(keys(b), ["conf", "label"]);
    }
    assert!(
        confs.windows(2).all(|w| w[0] >= w[1]),
        "sorted by conf: {confs:?}"
    );
    assert!((confs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    // The model learned: the template's first circle comes back as a circle, first.
    assert_eq!(labels[0], "circle", "{text}");
    labels.sort_unstable();
    assert_eq!(labels, ["circle", "square", "triangle"]);
    // "Bearer <token>" works too; several images give one output each.
    let two = json!({"dataArray": [{"body": b64(&circle)}, {"body": b64(&circle)}]}).to_string();
    let (status, text) = predict_raw(
        &app,
        "shapes",
        Some(&format!("Bearer {token}")),
        two.into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["result"]["output"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A full service refuses before reading the body: with every place taken, a request
    // whose body never finishes arriving is answered 503 (2002) at once.
    let loaded = app
        .state
        .predict
        .get(
            &app.state,
            "shapes",
            autolearn_server::serve::Caller::Server,
        )
        .await
        .unwrap_or_else(|_| panic!("the service loads"));
    let mut places = Vec::new();
    while let Ok(t) = loaded.runner.admit() {
        places.push(t);
    }
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        app.raw_http(&format!(
            "POST /api/predict/shapes HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n\
             Content-Length: 1000000\r\nConnection: close\r\n\r\n{{\"dataArray\": ["
        )),
    )
    .await
    .expect("answered without waiting for the rest of the body");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"errorCode\":\"2002\""), "{answer}");
    drop(places);
    let (status, text) = predict_raw(&app, "shapes", Some(&token), image_body(&circle)).await;
    assert_eq!(status, StatusCode::OK, "places freed: {text}");

    // The token: missing or wrong is 401, and a service that does not exist answers the
    // same bytes (service names cannot be probed).
    let (_, refused) = predict_raw(&app, "shapes", Some("wrong-token"), image_body(&circle)).await;
    for (name, t) in [
        ("shapes", None),
        ("shapes", Some("wrong-token")),
        ("nosuch", Some("wrong-token")),
        ("nosuch", Some(token.as_str())),
    ] {
        let answer = predict_raw(&app, name, t, image_body(&circle)).await;
        assert_eq!(
            answer,
            (StatusCode::UNAUTHORIZED, refused.clone()),
            "{name} {t:?}"
        );
    }

    // Each error code, byte for byte.
    let e1001 = r#"{"success":false,"errorCode":"1001","errorMsg":"INPUT_FORMAT_ERROR"}"#;
    let e1002 = r#"{"success":false,"errorCode":"1002","errorMsg":"IMAGE_DECODE_ERROR"}"#;
    let mut truncated = circle.clone();
    truncated.truncate(circle.len() / 2);
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    huge.extend_from_slice(&60_000u32.to_be_bytes());
    huge.extend_from_slice(&60_000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"{not json".to_vec(), StatusCode::BAD_REQUEST, e1001),
        (br#"{"images":[]}"#.to_vec(), StatusCode::BAD_REQUEST, e1001),
        (
            br#"{"dataArray":[]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            e1001,
        ),
        (
            br#"{"dataArray":[{"body":"%%% not base64"}]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            e1001,
        ),
        (
            image_body(b"just some text, not an image"),
            StatusCode::BAD_REQUEST,
            e1002,
        ),
        (image_body(&truncated), StatusCode::BAD_REQUEST, e1002),
        (image_body(&huge), StatusCode::BAD_REQUEST, e1002),
    ];
    for (body, want_status, want) in cases {
        let (status, text) = predict_raw(&app, "shapes", Some(&token), body.clone()).await;
        assert_eq!(
            (status, text.as_str()),
            (want_status, want),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    // Over the body limit: refused from Content-Length, before the body is read (a client
    // still writing would see the connection close, so speak HTTP by hand).
    let head = too_large_answer(&app, &token).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // A deployed version cannot be deleted.
    let r = app
        .admin(Method::DELETE, &format!("/api/models/{v1}"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);

    // Version swap under load: a model with other labels replaces v1; no request fails and
    // the answers switch from three labels to two.
    let v2 = trained_model(&app, instance, ds, "two", &["circle", "square"]).await;
    let load = (0..4).map(|_| {
        let (url, token, body) = (app.url.clone(), token.clone(), image_body(&circle));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = Vec::new();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(8) {
                let r = client
                    .post(format!("{url}/api/predict/shapes"))
                    .header("authorization", &token)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::OK,
                    "a request failed during the swap"
                );
                let v: Value = r.json().await.unwrap();
                seen.push(v["result"]["output"][0]["body"].as_array().unwrap().len());
            }
            seen
        })
    });
    let load: Vec<_> = load.collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = app
        .admin(
            Method::PATCH,
            "/api/services/shapes",
            Some(json!({"model_id": v2})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["model_id"], v2);
    let mut switched = false;
    for h in load {
        let seen = h.await.unwrap();
        assert_eq!(seen.first(), Some(&3), "{seen:?}");
        assert_eq!(seen.last(), Some(&2), "{seen:?}");
        switched |= seen.windows(2).any(|w| w == [3, 2]);
    }
    assert!(switched);

    // Bad updates and undeploy.
    let r = app
        .admin(
            Method::PATCH,
            "/api/services/shapes",
            Some(json!({"replicas": 0})),
        )
        .await;
    assert_eq!(r.code(), "invalid_replicas");
    let r = app
        .admin(Method::DELETE, "/api/services/shapes", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (status, _) = predict_raw(&app, "shapes", Some(&token), image_body(&circle)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an undeployed service is refused like any"
    );

    // A model that cannot load (its artifact is gone): requests without the token never
    // start a load (401, not the 503 of a failed one); with it, concurrent requests share
    // one attempt, and failed loads back off instead of re-reading storage per request.
    let (_, key) = app.state.db.model(v1).await.unwrap().unwrap();
    let models = app
        .state
        .storage
        .open_uri(&app.state.config.models_uri)
        .unwrap();
    models.delete(&key).await.unwrap();
    let r = app
        .admin(
            Method::POST,
            &format!("/api/models/{v1}/services"),
            Some(json!({"name": "broken"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let broken = r.body["token"].as_str().unwrap().to_owned();
    let t0 = std::time::Instant::now();
    while app.state.predict.load_attempts("broken") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the deploy's load never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in [None, Some("wrong-token")] {
        for _ in 0..10 {
            let (status, _) = predict_raw(&app, "broken", t, image_body(&circle)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(
        app.state.predict.load_attempts("broken"),
        1,
        "no load without the token"
    );
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (url, token, body) = (app.url.clone(), broken.clone(), image_body(&circle));
        set.spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/api/predict/broken"))
                .header("authorization", token)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    for status in set.join_all().await {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let attempts = app.state.predict.load_attempts("broken");
    assert!(
        attempts <= 2,
        "{attempts} loads for 10 requests inside the backoff"
    );
}

both_backends!(deploy_predict_errors_swap_undeploy);
