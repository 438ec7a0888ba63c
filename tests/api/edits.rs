//! Concurrent edits (#17): a save names the revision it edits and a stale one is a 409 that
//! changes nothing; a tag rename running beside saves never overwrites a save; a re-index
//! never overwrites an edited annotation; a PostgreSQL test database is gone after its test.

use integration_tests::{Backend, Res, TestApp, both_backends, png, spawn_app, write};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `PUT /api/images/{id}/annotation` with `If-Match: "<revision>"` (or the raw header).
async fn save_if(app: &TestApp, image: i64, if_match: &str, body: Value) -> Res {
    let r = reqwest::Client::new()
        .put(format!("{}/api/images/{image}/annotation", app.url))
        .bearer_auth(&app.admin_token)
        .header("If-Match", if_match)
        .json(&body)
        .send()
        .await
        .unwrap();
    Res::read(r).await
}

async fn image(app: &TestApp, id: i64) -> Value {
    app.admin(Method::GET, &format!("/api/images/{id}"), None)
        .await
        .body
}

/// A classification dataset of `n` images labelled `a` (folder per label).
async fn dataset(app: &TestApp, n: usize) -> (i64, Vec<i64>) {
    let inst = app.create_instance("image_classification", "edits").await;
    let dir = app.dataset_dir("edits");
    for i in 0..n {
        write(&dir, &format!("a/{i:03}.png"), &png(20 + i as u32 % 7, 20));
    }
    let ds = app
        .create_dataset(inst, "edits", dir.to_str().unwrap())
        .await["id"]
        .as_i64()
        .unwrap();
    let ids = app
        .all_images(ds)
        .await
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    (ds, ids)
}

async fn stale_saves_are_refused_and_change_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let (ds, ids) = dataset(&app, 2).await;
    let id = ids[0];
    let start = image(&app, id).await;
    let rev = start["revision"].as_i64().unwrap();

    // Two people open the image at the same revision; the first save wins.
    let r = save_if(&app, id, &format!("\"{rev}\""), json!({"labels": ["b"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["revision"], rev + 1);
    let r = save_if(&app, id, &format!("\"{rev}\""), json!({"labels": ["c"]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "edit_conflict");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changed elsewhere"),
        "{:?}",
        r.body
    );
    let now = image(&app, id).await;
    assert_eq!(now["annotation"], json!({"labels": ["b"]}));
    assert_eq!(now["revision"], rev + 1);
    // The second person, having seen the newer state, saves on it (weak tags too).
    let r = save_if(
        &app,
        id,
        &format!("W/\"{}\"", rev + 1),
        json!({"labels": ["c"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A malformed revision names the header.
    let r = save_if(&app, id, "yesterday", json!({"labels": ["d"]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["error"]["field"], "If-Match");
    // Without If-Match a save is unconditional (API clients of the original).
    let r = app
        .admin(
            Method::PUT,
            &format!("/api/images/{id}/annotation"),
            Some(json!({"labels": ["e"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revision"], rev + 3);

    // Re-indexing keeps every edited annotation and takes the files' for the others.
    let r = app
        .admin(Method::POST, &format!("/api/datasets/{ds}/reindex"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        image(&app, id).await["annotation"],
        json!({"labels": ["e"]})
    );
    assert_eq!(
        image(&app, ids[1]).await["annotation"],
        json!({"labels": ["a"]})
    );
}

/// Saves answered 2xx while a rename rewrites the same images are all there afterwards:
/// every image saved as `c` is `c`, every other one is `b` (renamed from `a`).
async fn a_rename_never_overwrites_a_save_made_beside_it(b: Backend) {
    let app = spawn_app(b).await;
    let (ds, ids) = dataset(&app, 60).await;
    let saved: Vec<i64> = ids.iter().copied().step_by(2).collect();
    let saves = {
        let saved = saved.clone();
        let (url, token) = (app.url.clone(), app.admin_token.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut ok = Vec::new();
            for id in saved {
                let r = http
                    .put(format!("{url}/api/images/{id}/annotation"))
                    .bearer_auth(&token)
                    .json(&json!({"labels": ["c"]}))
                    .send()
                    .await
                    .unwrap();
                if r.status().is_success() {
                    ok.push(id);
                }
            }
            ok
        })
    };
    let r = app
        .admin(
            Method::PATCH,
            &format!("/api/datasets/{ds}/labels/a"),
            Some(json!({"name": "b"})),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let ok = saves.await.unwrap();
    assert_eq!(ok.len(), saved.len(), "every save was answered 2xx");
    for im in app.all_images(ds).await {
        let id = im["id"].as_i64().unwrap();
        let want = if saved.contains(&id) { "c" } else { "b" };
        assert_eq!(im["annotation"], json!({"labels": [want]}), "image {id}");
    }
}

/// A PostgreSQL test database is dropped when its test's app goes.
async fn test_databases_are_dropped_with_their_app(b: Backend) {
    if b != Backend::Postgres {
        return;
    }
    let app = spawn_app(b).await;
    let name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let exists = |name: String| async move {
        let out = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atc",
            ])
            .arg(format!(
                "SELECT 1 FROM pg_database WHERE datname = '{name}'"
            ))
            .output()
            .expect("psql is installed with PostgreSQL");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    };
    assert!(exists(name.clone()).await);
    drop(app);
    assert!(!exists(name).await, "the test database is still there");
}

both_backends!(
    stale_saves_are_refused_and_change_nothing,
    a_rename_never_overwrites_a_save_made_beside_it,
    test_databases_are_dropped_with_their_app,
);
