//! The `autolearn` binary as a CLI client of a real server.

use std::collections::HashMap;
use std::process::{Command, Output};

use autolearn_server::Application;
use autolearn_server::config::Config;

fn autolearn(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autolearn"));
    cmd.args(args)
        .env("AUTOLEARN_URL", url)
        .env_remove("AUTOLEARN_TOKEN");
    if let Some(t) = token {
        cmd.env("AUTOLEARN_TOKEN", t);
    }
    cmd.env("AUTOLEARN_PASSWORD", "cli-admin-pw")
        .output()
        .expect("run autolearn")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_logs_in_creates_and_lists_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let values = HashMap::from([
        ("addr".to_owned(), "127.0.0.1:0".to_owned()),
        ("data_dir".to_owned(), tmp.path().display().to_string()),
        ("admin_password".to_owned(), "cli-admin-pw".to_owned()),
        ("log".to_owned(), "warn".to_owned()),
    ]);
    let app = Application::build(Config::from_values(&values).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));

    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let login = autolearn(&url, None, &["login", "-u", "admin"]);
            assert!(
                login.status.success(),
                "{}",
                String::from_utf8_lossy(&login.stderr)
            );
            let token = String::from_utf8(login.stdout).unwrap().trim().to_owned();
            let create = autolearn(
                &url,
                Some(&token),
                &["instance", "create", "--type", "ocr", "--name", "plates"],
            );
            assert!(
                create.status.success(),
                "{}",
                String::from_utf8_lossy(&create.stderr)
            );
            let bad = autolearn(
                &url,
                Some(&token),
                &["instance", "create", "--type", "ocr", "--name=_x"],
            );
            assert!(!bad.status.success());
            let err = String::from_utf8_lossy(&bad.stderr).into_owned();
            assert!(
                err.contains("instance name must start with") && err.contains("field name"),
                "{err}"
            );
            let anon = autolearn(&url, None, &["instance", "list"]);
            assert!(String::from_utf8_lossy(&anon.stderr).contains("401"));
            autolearn(&url, Some(&token), &["instance", "list", "--json"])
        }
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "plates");
    assert_eq!(list[0]["type"], "ocr");
}
