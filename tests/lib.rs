//! Test harness: `spawn_app` starts a real server on a free loopback port over a fresh
//! database (SQLite file or a new PostgreSQL database) and a temporary data directory.

use std::path::{Path, PathBuf};

use autolearn_server::Application;
use autolearn_server::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the same test body on both databases: `both_backends!(name, ...)` expects
/// `async fn name(backend: Backend)` and makes `name::sqlite` and `name::postgres` tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name($crate::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name($crate::Backend::Postgres).await }
        }
    )* };
}

/// PostgreSQL server the tests create their databases on.
fn pg_base() -> String {
    std::env::var("AUTOLEARN_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// Called by a test that cannot run here (a missing server, binary or dataset): fails it,
/// unless `AUTOLEARN_ALLOW_SKIP=1` allows skipping, since a skip that passes hides a missing
/// install step. Returns when the skip is allowed; the caller then returns.
pub fn cannot_run(reason: &str) {
    if std::env::var("AUTOLEARN_ALLOW_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED (AUTOLEARN_ALLOW_SKIP=1): {reason}");
    } else {
        panic!("{reason}; set AUTOLEARN_ALLOW_SKIP=1 to skip such tests instead");
    }
}

/// S3 server started by the test script (`scripts/test.sh`), if any.
pub struct S3Env {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

pub fn s3_env() -> Option<S3Env> {
    Some(S3Env {
        endpoint: std::env::var("AUTOLEARN_TEST_S3_ENDPOINT").ok()?,
        access_key: std::env::var("AUTOLEARN_TEST_S3_ACCESS_KEY")
            .unwrap_or_else(|_| "autolearn".into()),
        secret_key: std::env::var("AUTOLEARN_TEST_S3_SECRET_KEY")
            .unwrap_or_else(|_| "autolearn-secret".into()),
    })
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    /// Bearer token of `admin`.
    pub admin_token: String,
    /// The data dir; datasets come from its `datasets/` folder, the default data root.
    pub data_dir: PathBuf,
    pub state: autolearn_server::AppState,
    /// What a second process (an `autolearn worker`) needs to share this server's data.
    pub database_url: String,
    _tmp: tempfile::TempDir,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Pretrained weights are fetched once (pip) into a cache shared by all test runs.
pub fn weights_cache() -> PathBuf {
    std::env::var_os("AUTOLEARN_TEST_WEIGHTS_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/autolearn/weights")
        },
        PathBuf::from,
    )
}

/// `spawn_app` with configuration keys overridden (e.g. `("workers", "1")`; tests start
/// with no training workers unless they ask for them).
pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", tmp.path().join("test.db").display()),
        Backend::Postgres => {
            let name = format!("autolearn_t_{}", rand::random::<u64>());
            let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base()))
                .await
                .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth) is needed for the postgres tests");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{}/{name}", pg_base())
        }
    };
    let mut values = std::collections::HashMap::from([
        ("addr".to_owned(), "127.0.0.1:0".to_owned()),
        ("data_dir".to_owned(), data_dir.display().to_string()),
        ("database_url".to_owned(), database_url),
        ("admin_password".to_owned(), ADMIN_PASSWORD.to_owned()),
        (
            "web_dir".to_owned(),
            tmp.path().join("web").display().to_string(),
        ),
        ("max_body_bytes".to_owned(), (256 * 1024).to_string()),
        ("log".to_owned(), "warn".to_owned()),
        ("workers".to_owned(), "0".to_owned()),
        ("min_task_minutes".to_owned(), "0".to_owned()),
        (
            "weights_dir".to_owned(),
            weights_cache().display().to_string(),
        ),
    ]);
    if let Some(s3) = s3_env() {
        values.insert("s3_endpoint".into(), s3.endpoint);
        values.insert("aws_access_key_id".into(), s3.access_key);
        values.insert("aws_secret_access_key".into(), s3.secret_key);
    }
    for (k, v) in overrides {
        values.insert((*k).to_owned(), (*v).to_owned());
    }
    let database_url = values["database_url"].clone();
    let config = Config::from_values(&values).unwrap();
    let app = Application::build(config).await.expect("server starts");
    let url = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut t = TestApp {
        url,
        http,
        admin_token: String::new(),
        data_dir,
        state,
        database_url,
        _tmp: tmp,
    };
    t.admin_token = t.login("admin", ADMIN_PASSWORD).await;
    t
}

/// A PostgreSQL test database goes with its test: dropped (its connections closed) when the
/// test's app is, pass or fail, so runs leave no databases behind.
impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(name) = self
            .database_url
            .starts_with("postgres")
            .then(|| self.database_url.rsplit('/').next())
            .flatten()
            .map(str::to_owned)
        else {
            return;
        };
        // Drop runs inside the test's runtime, which must not block on itself: the drop
        // gets its own thread and runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base()))
                    .await
                    .ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the test database {}", self.database_url);
        }
    }
}

/// A response as tests look at it.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub body: Value,
    pub bytes: bytes::Bytes,
}

impl Res {
    /// Reads a whole response.
    pub async fn read(res: reqwest::Response) -> Self {
        let status = res.status();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res {
            status,
            body,
            bytes,
        }
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .call(
                None,
                Method::POST,
                "/api/auth/login",
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "login as {username}: {:?}",
            r.body
        );
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Res {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Res::read(req.send().await.expect("request")).await
    }

    /// As admin.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Res {
        self.call(Some(&self.admin_token.clone()), method, path, body)
            .await
    }

    pub async fn create_instance(&self, kind: &str, name: &str) -> i64 {
        let r = self
            .admin(
                Method::POST,
                "/api/instances",
                Some(json!({"type": kind, "name": name})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_i64().unwrap()
    }

    /// Every image of a dataset (up to 500, one page), as the images route lists them.
    pub async fn all_images(&self, dataset: i64) -> Vec<Value> {
        let r = self
            .admin(
                Method::GET,
                &format!("/api/datasets/{dataset}/images?per_page=500"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["items"].as_array().unwrap().clone()
    }

    /// Creates a dataset from `path` and returns its JSON (asserting 201).
    pub async fn create_dataset(&self, instance: i64, name: &str, path: &str) -> Value {
        let r = self
            .admin(
                Method::POST,
                &format!("/api/instances/{instance}/datasets"),
                Some(json!({"name": name, "path": path})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }

    /// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) as raw bytes and
    /// returns the raw answer, for what a client library would not send (chunked bodies cut
    /// where the test wants, lying `Content-Length`s).
    pub async fn raw_http_bytes(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.url.trim_start_matches("http://");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        // The server may answer before the whole request is sent and then close.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tcp.read_to_end(&mut answer),
        )
        .await
        .expect("the server answers and closes the connection");
        String::from_utf8_lossy(&answer).into_owned()
    }

    pub async fn raw_http(&self, request: &str) -> String {
        self.raw_http_bytes(request.as_bytes()).await
    }

    /// Asserts that creating a dataset from `path` in `instance` is refused: 400 naming the
    /// `path` field. Returns the answer.
    pub async fn dataset_path_refused(&self, instance: i64, path: &str) -> Res {
        let r = self
            .admin(
                Method::POST,
                &format!("/api/instances/{instance}/datasets"),
                Some(json!({"name": "d", "path": path})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {:?}", r.body);
        assert_eq!(r.body["error"]["field"], "path", "{path}");
        r
    }

    /// Creates a user with global permissions and returns its token.
    pub async fn user_with(&self, username: &str, grants: Value) -> (i64, String) {
        let r = self
            .admin(Method::POST, "/api/users", Some(json!({"username": username, "password": "password-123", "permissions": grants})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        (
            r.body["id"].as_i64().unwrap(),
            self.login(username, "password-123").await,
        )
    }

    /// A fresh directory under the data root.
    pub fn dataset_dir(&self, name: &str) -> PathBuf {
        let d = self.data_dir.join("datasets").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

/// A real PNG of the given size (a gradient, so files differ).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, image::ImageFormat::Png)
}

/// A real JPEG of the given size.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(width, height, image::ImageFormat::Jpeg)
}

fn encode(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Writes `bytes` at `dir/rel`, creating folders.
pub fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A VOC annotation with `(name, xmin, ymin, xmax, ymax)` objects.
pub fn voc(width: u32, height: u32, objects: &[(&str, f64, f64, f64, f64)]) -> String {
    let mut s = format!(
        "<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    );
    for (n, x0, y0, x1, y1) in objects {
        s += &format!(
            "<object><name>{n}</name><bndbox><xmin>{x0}</xmin><xmax>{x1}</xmax><ymin>{y0}</ymin><ymax>{y1}</ymax></bndbox><truncated>0</truncated><difficult>0</difficult></object>"
        );
    }
    s + "<segmented>0</segmented></annotation>"
}
