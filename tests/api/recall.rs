use std::time::Duration;

use integration_tests::{Backend, TestApp, both_backends, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn upload(
    app: &TestApp,
    inst: i64,
    table: &str,
    body: &str,
    mode: &str,
) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .put(format!(
            "{}/api/instances/{inst}/tables/{table}?mode={mode}",
            app.url
        ))
        .bearer_auth(&app.admin_token)
        .header("content-type", "text/csv")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or_default())
}

/// A PUT whose body goes out in `chunks` (chunked transfer encoding); the raw answer.
async fn put_chunked(app: &TestApp, path: &str, chunks: &[&[u8]]) -> String {
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.admin_token
    )
    .into_bytes();
    for c in chunks {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    app.raw_http_bytes(&req).await
}

async fn rec_instance(app: &TestApp) -> i64 {
    let inst = app.create_instance("recommendation_recall", "shop").await;
    for (table, body) in [
        (
            "user_item",
            "user_id,item_ids\nu1,\"h1,h2\"\nu2,x,y,h1\nu3,x\n",
        ),
        ("item_item", "h1\ta:0.9,h2:0.8,b:0.5\nh2\tb:0.6 c:0.1\n"),
        ("user_topic", "u1,sports:1\n"),
        ("topic_item", "sports,c:0.9,d:0.8\n"),
        ("custom", "u1,e:0.2,a:0.9\n"),
    ] {
        let (s, b) = upload(app, inst, table, body, "replace").await;
        assert_eq!(s, StatusCode::OK, "{table}: {b:?}");
    }
    for (name, kind, count) in [
        ("cf", "collaborative_filtering", 2),
        ("topic", "semantic", 10),
        ("mine", "custom", 10),
    ] {
        let r = app
            .admin(
                Method::POST,
                &format!("/api/instances/{inst}/strategies"),
                Some(json!({"name": name, "type": kind, "count": count})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    inst
}

fn items(v: &Value) -> Vec<(String, String)> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["item_id"].as_str().unwrap().to_owned(),
                i["retrieve_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn tables_import_all_or_nothing_with_line_errors(b: Backend) {
    let app = spawn_app(b).await;
    let inst = rec_instance(&app).await;
    let (s, body) = upload(
        &app,
        inst,
        "item_item",
        "h1,a:1\nh2,b:1\nh3,c:high\n",
        "replace",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "similar_item_ids");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 3, similar_item_ids: weight \"high\""),
        "{body}"
    );
    let tables = app
        .admin(Method::GET, &format!("/api/instances/{inst}/tables"), None)
        .await
        .body;
    let item_item = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "item_item")
        .unwrap();
    assert_eq!(item_item["rows"], 2, "the failed import changed nothing");
    assert_eq!(
        item_item["preview"][1],
        json!({"key": "h2", "value": "b:0.6,c:0.1"})
    );

    let (s, body) = upload(&app, inst, "filter_item", "item_id\nz1\n", "replace").await;
    assert_eq!((s, body["rows"].as_i64()), (StatusCode::OK, Some(1)));
    let (_, body) = upload(&app, inst, "filter_item", "z2\nz1\n", "append").await;
    assert_eq!(
        (body["imported"].as_i64(), body["rows"].as_i64()),
        (Some(2), Some(2))
    );
    let (s, _) = upload(&app, inst, "user_item", "u1,a\n", "merge").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = upload(&app, inst, "nope", "u1,a\n", "replace").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = upload(&app, inst, "user_item", "u1\n", "replace").await;
    assert_eq!(
        (s, body["error"]["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("line 1, item_ids: empty list")
        )
    );
    let res = reqwest::Client::new()
        .put(format!("{}/api/instances/{inst}/tables/custom", app.url))
        .bearer_auth(&app.admin_token)
        .body(vec![0xff, 0xfe, b',', b'a'])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Streamed in chunks (no Content-Length), as a spreadsheet writes it: a byte-order
    // mark, quoted lists with `""` escapes, CRLF line ends, a record split between chunks.
    let chunks: [&[u8]; 3] = [
        b"\xEF\xBB\xBFuser_id,item_ids\r\nu1,\"a:1,",
        b"b:0.5\"\r\n\"u2\",c\r\n",
        b"u3 d:2 e:1\r\n",
    ];
    let answer = put_chunked(
        &app,
        &format!("/api/instances/{inst}/tables/custom"),
        &chunks,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"imported\":3"), "{answer}");
    let tables = app
        .admin(Method::GET, &format!("/api/instances/{inst}/tables"), None)
        .await
        .body;
    let custom = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "custom")
        .unwrap();
    assert_eq!(
        custom["preview"][0],
        json!({"key": "u1", "value": "a:1,b:0.5"})
    );
    assert_eq!(
        custom["preview"][2],
        json!({"key": "u3", "value": "d:2,e:1"})
    );
    // A body announced past the limit is refused before any of it is read.
    let answer = app
        .raw_http(&format!(
            "PUT /api/instances/{inst}/tables/custom HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {}\r\nContent-Length: 999999999999\r\n\
             Connection: close\r\n\r\nu1,a\n",
            app.admin_token
        ))
        .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");

    let img = app.create_instance("image_classification", "pics").await;
    let (s, _) = upload(&app, img, "user_item", "u1,a\n", "replace").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn strategies_merge_dedupe_filter_and_fall_back(b: Backend) {
    let app = spawn_app(b).await;
    let inst = rec_instance(&app).await;
    let console = format!("/api/instances/{inst}/recall-test");
    let test = |user: &str, size: i64| {
        app.admin(
            Method::POST,
            &console,
            Some(json!({"user_id": user, "size": size})),
        )
    };
    let r = test("u1", 10).await;
    // cf (count 2): b = 0.5 + 0.6, a = 0.9 (h2 is history); topic: c, d; custom: a (dup), e.
    assert_eq!(
        items(&r.body),
        pairs(&[
            ("b", "cf"),
            ("a", "cf"),
            ("c", "topic"),
            ("d", "topic"),
            ("e", "mine"),
            ("x", "popular"),
            ("y", "popular")
        ])
    );
    assert_eq!(items(&test("u1", 3).await.body).len(), 3);
    // An unknown user gets popular items, not an error.
    let r = test("stranger", 2).await;
    assert_eq!(
        (r.status, items(&r.body)),
        (
            StatusCode::OK,
            pairs(&[("h1", "popular"), ("x", "popular")])
        )
    );

    for (name, kind) in [("no_seen", "user_item"), ("banned", "item")] {
        let r = app
            .admin(
                Method::POST,
                &format!("/api/instances/{inst}/filters"),
                Some(json!({"name": name, "type": kind})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    upload(&app, inst, "filter_user_item", "u1,d\n", "replace").await;
    upload(&app, inst, "filter_item", "e\nx\n", "replace").await;
    let r = test("u1", 10).await;
    assert_eq!(
        items(&r.body),
        pairs(&[("b", "cf"), ("a", "cf"), ("c", "topic"), ("y", "popular")])
    );

    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/strategies"),
            Some(json!({"name": "cf", "type": "custom"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/strategies"),
            Some(json!({"name": "9bad", "type": "custom"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("strategy name must start with an ASCII letter")
        )
    );
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/strategies"),
            Some(json!({"name": "big", "type": "custom", "count": 0})),
        )
        .await;
    assert_eq!(r.body["error"]["field"], "count");
    assert_eq!(
        app.admin(
            Method::DELETE,
            &format!("/api/instances/{inst}/strategies/cf"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(items(&test("u1", 1).await.body), pairs(&[("c", "topic")]));
    let list = app
        .admin(
            Method::GET,
            &format!("/api/instances/{inst}/strategies"),
            None,
        )
        .await
        .body;
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["topic", "mine"]
    );
}

async fn recall_service_answers_in_the_spec_format(b: Backend) {
    let app = spawn_app(b).await;
    let inst = rec_instance(&app).await;
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/services"),
            Some(json!({"name": "home_feed"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["endpoint"], "/api/recall/home_feed");
    let token = r.body["token"].as_str().unwrap().to_owned();
    let shown = app
        .admin(Method::GET, "/api/services/home_feed", None)
        .await
        .body;
    assert!(shown.get("token").is_none(), "the token is shown once");

    let get = |auth: Option<String>, query: &str| {
        let mut req =
            reqwest::Client::new().get(format!("{}/api/recall/home_feed?{query}", app.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    let (s, body) = get(Some(token.clone()), "user_id=u1&size=2").await;
    assert_eq!(s, StatusCode::OK);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["code", "errors", "items", "msg", "request_id", "size"]
    );
    assert_eq!(
        (
            body["code"].as_i64(),
            body["msg"].as_str(),
            body["size"].as_i64()
        ),
        (Some(200), Some("success"), Some(2))
    );
    assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        body["items"],
        json!([{"item_id": "b", "retrieve_id": "cf"}, {"item_id": "a", "retrieve_id": "cf"}])
    );
    assert_eq!(body["errors"], json!([]));

    let (s, body) = get(
        Some(format!("Bearer {token}")),
        "user_id=nobody&size=5&fallback=none",
    )
    .await;
    assert_eq!(
        (s, body["size"].as_i64(), &body["items"]),
        (StatusCode::OK, Some(0), &json!([]))
    );
    for auth in [None, Some("wrong".to_owned())] {
        let (s, body) = get(auth, "user_id=u1").await;
        assert_eq!(
            (s, body["code"].as_i64()),
            (StatusCode::UNAUTHORIZED, Some(401))
        );
    }
    for q in [
        "size=3",
        "user_id=u1&size=0",
        "user_id=u1&size=1001",
        "user_id=u1&size=ten",
    ] {
        let (s, body) = get(Some(token.clone()), q).await;
        assert_eq!(
            (s, body["code"].as_i64()),
            (StatusCode::BAD_REQUEST, Some(400)),
            "{q}"
        );
    }
    let post = reqwest::Client::new()
        .post(format!("{}/api/recall/home_feed", app.url))
        .header("authorization", &token)
        .json(&json!({"user_id": "u1", "size": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.json::<Value>().await.unwrap()["items"],
        json!([{"item_id": "b", "retrieve_id": "cf"}])
    );

    // Changes take effect without a restart.
    upload(&app, inst, "filter_item", "b\n", "replace").await;
    app.admin(
        Method::POST,
        &format!("/api/instances/{inst}/filters"),
        Some(json!({"name": "banned", "type": "item"})),
    )
    .await;
    let (_, body) = get(Some(token.clone()), "user_id=u1&size=1").await;
    assert_eq!(
        body["items"],
        json!([{"item_id": "a", "retrieve_id": "cf"}])
    );

    let (_, viewer) = app
        .user_with("viewer", json!([{"permission": "ListInstance"}]))
        .await;
    let r = app
        .call(
            Some(&viewer),
            Method::DELETE,
            "/api/services/home_feed",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.admin(Method::DELETE, "/api/services/home_feed", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let (s, _) = get(Some(token), "user_id=u1").await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "an undeployed service is refused like any"
    );
}

/// Posts a behaviour log; the status and the answer (the job, or the error).
async fn post_log(app: &TestApp, inst: i64, log: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!(
            "{}/api/instances/{inst}/behavior-logs?top_n=10",
            app.url
        ))
        .bearer_auth(&app.admin_token)
        .body(log.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or_default())
}

/// The job as `app` shows it once it is no longer running (or after `secs`).
async fn settled_job(app: &TestApp, inst: i64, job: &str, secs: u64) -> Value {
    let path = format!("/api/instances/{inst}/behavior-logs/jobs/{job}");
    let mut state = Value::Null;
    for _ in 0..=secs * 20 {
        state = app.admin(Method::GET, &path, None).await.body;
        if state["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state
}

/// Six users took tea then a cup; u9 only took tea.
fn tea_and_cups_log() -> String {
    let mut log = String::from("user_id,item_id,active_type,active_date\n");
    for u in 0..6 {
        log += &format!(
            "u{u},tea,0,2024-01-0{}\nu{u},cup,1,2024-01-0{}\n",
            u + 1,
            u + 2
        );
    }
    log + "u9,tea,2,2024-02-01\n"
}

/// What collaborative filtering recommends u9 (after a `cf` strategy exists).
async fn recommended_to_u9(app: &TestApp, inst: i64) -> Vec<(String, String)> {
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/recall-test"),
            Some(json!({"user_id": "u9", "size": 1})),
        )
        .await;
    items(&r.body)
}

async fn behaviour_logs_build_collaborative_filtering(b: Backend) {
    let app = spawn_app(b).await;
    let inst = app.create_instance("recommendation_recall", "logs").await;
    let (status, job) = post_log(&app, inst, &tea_and_cups_log()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let state = settled_job(&app, inst, job["id"].as_str().unwrap(), 5).await;
    assert_eq!(state["state"], "succeeded", "{state}");
    assert_eq!(
        (
            state["stats"]["users"].as_i64(),
            state["stats"]["items"].as_i64()
        ),
        (Some(7), Some(2))
    );
    assert_eq!(state["progress"], 1.0);
    cf_strategy(&app, inst).await;
    assert_eq!(
        recommended_to_u9(&app, inst).await,
        pairs(&[("cup", "cf")]),
        "who took tea also took a cup"
    );

    let (status, body) = post_log(&app, inst, "u1,tea,0,2024-01-01\nu1,cup,5,2024-01-02\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "active_type");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2, active_type")
    );
    // The refused log left no job holding the instance's build slot.
    let (status, body) = post_log(&app, inst, "u1,tea,0,2024-01-01\nu2,tea,0,2024-01-02\n").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// A build is a database row, not a server's memory: a server with no builder queues it,
/// another server on the same database runs it, a build whose builder died is resumed (and
/// given up after three builders died), a build whose receiving server died fails cleanly,
/// and every server reads the same job.
async fn behaviour_log_builds_outlive_the_server_that_took_them(b: Backend) {
    // A takes logs but builds nothing; its leases are short.
    let a = spawn_app_with(b, &[("cf_builders", "0"), ("task_lease_secs", "3")]).await;
    let models = a.state.config.models_uri.clone();
    let db = &a.state.db;

    // Three builders die in turn: the build is given up, not retried for ever.
    let inst2 = a.create_instance("recommendation_recall", "logs2").await;
    let id2 = "cf-given-up";
    db.open_cf_job(id2, inst2, 10, "recall-logs/x.bin", "a-server", 60, 4)
        .await
        .unwrap()
        .unwrap();
    assert!(db.queue_cf_job(id2, "a-server").await.unwrap());
    for dead in 0..3 {
        let c = db.claim_cf_job(&format!("dead-{dead}"), -10).await.unwrap();
        assert_eq!(
            c.map(|c| (c.id, c.attempts)),
            Some((id2.to_owned(), dead + 1))
        );
        db.reap_cf_jobs().await.unwrap();
    }
    let given_up = settled_job(&a, inst2, id2, 0).await;
    assert_eq!(given_up["state"], "failed", "{given_up}");
    assert_eq!(
        given_up["error"],
        "the servers building from this log stopped answering 3 times; giving up"
    );

    // The server receiving a log dies before storing it: the instance is busy meanwhile,
    // then the build fails saying to upload again, and a new log is accepted.
    let inst3 = a.create_instance("recommendation_recall", "logs3").await;
    let log3 = "recall-logs/cf-receiving.bin";
    db.open_cf_job("cf-receiving", inst3, 10, log3, "gone", 60, 4)
        .await
        .unwrap()
        .unwrap();
    let (status, body) = post_log(&a, inst3, &tea_and_cups_log()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Its lease runs out: the reaper fails it and hands back its log to remove.
    let progress = ("receiving the log", 0.0);
    assert!(
        db.renew_cf_job("cf-receiving", "gone", -10, progress)
            .await
            .unwrap()
    );
    let failed_logs = db.reap_cf_jobs().await.unwrap();
    assert!(failed_logs.contains(&log3.to_owned()), "{failed_logs:?}");
    let failed = settled_job(&a, inst3, "cf-receiving", 0).await;
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("upload it again")
    );

    // Queued on A, where nothing builds it.
    let inst = a.create_instance("recommendation_recall", "logs").await;
    let (status, job) = post_log(&a, inst, &tea_and_cups_log()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = settled_job(&a, inst, &id, 0).await;
    assert_eq!(
        (waiting["state"].as_str(), waiting["stage"].as_str()),
        (Some("running"), Some("waiting for a builder"))
    );
    // A builder claims it and dies at once (its lease is already over).
    let claimed = db.claim_cf_job("dead-builder", -10).await.unwrap().unwrap();
    assert_eq!((claimed.id.as_str(), claimed.attempts), (id.as_str(), 1));
    let key = claimed.log_key.clone();
    let store = a.state.storage.open_uri(&models).unwrap();
    assert!(
        store.read(&key, 1 << 20).await.is_ok(),
        "the parsed log is stored"
    );

    // B, on the same database and models store, resumes it; A shows it finished.
    let bsrv = spawn_app_with(
        b,
        &[
            ("database_url", a.database_url.as_str()),
            ("models", models.as_str()),
            ("task_lease_secs", "3"),
        ],
    )
    .await;
    let done = settled_job(&a, inst, &id, 20).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["stats"]["users"], 7);
    assert_eq!(
        settled_job(&bsrv, inst, &id, 0).await,
        done,
        "both servers read one job"
    );
    cf_strategy(&a, inst).await;
    for server in [&a, &bsrv] {
        assert_eq!(
            recommended_to_u9(server, inst).await,
            pairs(&[("cup", "cf")])
        );
    }
    // The builder removes the stored log just after the end it recorded.
    let mut gone = false;
    for _ in 0..40 {
        gone = store.read(&key, 1 << 20).await.is_err();
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the stored log goes once the build has ended");

    let (status, job3) = post_log(&bsrv, inst3, &tea_and_cups_log()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done3 = settled_job(&a, inst3, job3["id"].as_str().unwrap(), 20).await;
    assert_eq!(done3["state"], "succeeded", "{done3}");

    // Four builds open across the servers: a fifth waits (503 busy), on either server.
    for k in 0..4 {
        let other = a
            .create_instance("recommendation_recall", &format!("busy{k}"))
            .await;
        let id = format!("cf-busy-{k}");
        db.open_cf_job(&id, other, 10, "recall-logs/none.bin", "elsewhere", 60, 4)
            .await
            .unwrap()
            .unwrap();
    }
    for server in [&a, &bsrv] {
        let (status, body) = post_log(server, inst, &tea_and_cups_log()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "busy");
    }
}

/// Adds the `cf` (collaborative filtering) strategy.
async fn cf_strategy(app: &TestApp, inst: i64) {
    let r = app
        .admin(
            Method::POST,
            &format!("/api/instances/{inst}/strategies"),
            Some(json!({"name": "cf", "type": "collaborative_filtering"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

both_backends!(
    tables_import_all_or_nothing_with_line_errors,
    strategies_merge_dedupe_filter_and_fall_back,
    recall_service_answers_in_the_spec_format,
    behaviour_logs_build_collaborative_filtering,
    behaviour_log_builds_outlive_the_server_that_took_them,
);
