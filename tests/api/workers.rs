//! Scale-out: separate `autolearn worker` processes share the server's database and model
//! store; each task runs exactly once, and a task whose worker dies does not stay running.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{Backend, TestApp, both_backends, spawn_app, weights_cache};
use reqwest::Method;
use serde_json::json;

use super::training::{TRAINING, finished, shapes, start, task, task_logs};

/// The `autolearn` binary next to this test binary (`cargo build` puts it there).
fn autolearn_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AUTOLEARN_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("autolearn");
    p.is_file().then_some(p)
}

/// A worker process, killed when dropped.
struct Worker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_worker(bin: &PathBuf, app: &TestApp) -> Worker {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(bin)
        .arg("worker")
        .env("DATABASE_URL", &app.database_url)
        .env("AUTOLEARN_DATA_DIR", dir.path())
        .env("AUTOLEARN_MODELS", &app.state.config.models_uri)
        .env("AUTOLEARN_WEIGHTS_DIR", weights_cache())
        .env("AUTOLEARN_TASK_LEASE_SECS", "3")
        .env("AUTOLEARN_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("starting autolearn worker");
    Worker { child, _dir: dir }
}

async fn status_events(app: &TestApp, id: i64, status: &str) -> usize {
    app.state
        .db
        .task_events(id, 0, Some("status"), 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| serde_json::to_value(e).unwrap()["status"] == status)
        .count()
}

async fn two_workers_run_each_of_ten_tasks_once(backend: Backend) {
    let Some(bin) = autolearn_bin() else {
        integration_tests::cannot_run(
            "no autolearn binary next to the tests; run `cargo build` first",
        );
        return;
    };
    let _one = TRAINING.lock().await;
    let app = spawn_app(backend).await;
    let (instance, ds) = shapes(&app).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let body = task(
            ds,
            &format!("job{i}"),
            &["circle", "square"],
            json!({"max_epochs": 1}),
        );
        ids.push(start(&app, instance, body).await);
    }
    let _a = spawn_worker(&bin, &app);
    let _b = spawn_worker(&bin, &app);
    let mut workers = std::collections::BTreeSet::new();
    for &id in &ids {
        let t = finished(&app, id, Duration::from_secs(900)).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["attempts"], 1, "{t}");
        assert_eq!(
            status_events(&app, id, "running").await,
            1,
            "task {id} ran once"
        );
        workers.insert(t["worker"].as_str().unwrap().to_owned());
    }
    assert_eq!(workers.len(), 2, "both workers took tasks: {workers:?}");
    let models = app
        .admin(
            Method::GET,
            &format!("/api/instances/{instance}/models"),
            None,
        )
        .await;
    let versions: std::collections::BTreeSet<i64> = models
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, (1..=10).collect(), "ten distinct versions");
}

async fn a_task_whose_worker_dies_is_requeued(backend: Backend) {
    let Some(bin) = autolearn_bin() else {
        integration_tests::cannot_run(
            "no autolearn binary next to the tests; run `cargo build` first",
        );
        return;
    };
    let _one = TRAINING.lock().await;
    let app = spawn_app(backend).await;
    let (instance, ds) = shapes(&app).await;
    let id = start(
        &app,
        instance,
        task(
            ds,
            "orphan",
            &["circle", "square"],
            json!({"max_minutes": 10}),
        ),
    )
    .await;
    let mut first = spawn_worker(&bin, &app);
    let t0 = Instant::now();
    loop {
        let t = app
            .admin(Method::GET, &format!("/api/tasks/{id}"), None)
            .await
            .body;
        if t["status"] == "running" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never claimed: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGKILL: no chance to clean up, as when a machine dies.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let _second = spawn_worker(&bin, &app);
    let t0 = Instant::now();
    loop {
        let t = app
            .admin(Method::GET, &format!("/api/tasks/{id}"), None)
            .await
            .body;
        if t["attempts"] == 2 && t["status"] == "running" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not re-queued and re-claimed: {t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = task_logs(&app, id).await;
    assert!(
        logs.contains("stopped answering (lease expired); re-queued"),
        "{logs}"
    );
    app.admin(Method::POST, &format!("/api/tasks/{id}/stop"), None)
        .await;
    let t = finished(&app, id, Duration::from_secs(120)).await;
    assert_ne!(t["status"], "running");
    assert_eq!(
        status_events(&app, id, "queued").await,
        2,
        "queued, then re-queued"
    );
}

both_backends!(
    two_workers_run_each_of_ten_tasks_once,
    a_task_whose_worker_dies_is_requeued,
);
