//! The `autolearn` command line: `serve` runs the server; the other commands are a client
//! of the management API (`--json` prints the API's JSON as is).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use shared::api::ErrorBody;

mod predict;
mod train;
pub use predict::ServiceCmd;
pub use train::{ModelCmd, TaskCmd};

#[derive(Parser)]
#[command(
    name = "autolearn",
    version,
    about = "Self-hosted AutoML: server and command-line client"
)]
pub struct Cli {
    /// Server a client command talks to.
    #[arg(
        long,
        global = true,
        env = "AUTOLEARN_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Bearer token for client commands (from `autolearn login`).
    #[arg(long, global = true, env = "AUTOLEARN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the API server and web app.
    Serve {
        /// TOML configuration file; environment variables override its keys.
        #[arg(long, env = "AUTOLEARN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run training workers only (no HTTP): they claim tasks from the shared database and
    /// write models to the shared model store (AUTOLEARN_MODELS).
    Worker {
        #[arg(long, env = "AUTOLEARN_CONFIG")]
        config: Option<PathBuf>,
        /// Workers in this process (each trains one task at a time on all cores).
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Log in and print a bearer token (export it as AUTOLEARN_TOKEN). The password is read
    /// from AUTOLEARN_PASSWORD or the first line of standard input.
    Login {
        #[arg(long, short)]
        username: String,
    },
    /// Instances.
    #[command(subcommand)]
    Instance(InstanceCmd),
    /// Datasets.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Users (administrators only).
    #[command(subcommand)]
    User(UserCmd),
    /// Recommendation recall: tables, CF builds, queries, offline evaluation.
    #[command(subcommand)]
    Recall(RecallCmd),
    /// Training tasks.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Model versions.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Predict services (deployed model versions).
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Send images to a predict service and print its answer (SPEC §7 format).
    Predict {
        #[arg(long)]
        service: String,
        /// The service's token (from `service deploy`).
        #[arg(long, env = "AUTOLEARN_SERVICE_TOKEN", hide_env_values = true)]
        service_token: String,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum RecallCmd {
    /// Upload a table (CSV/TSV) to a recall instance.
    Import {
        #[arg(long)]
        instance: i64,
        /// user_item, item_item, user_topic, topic_item, custom, filter_user_item or filter_item.
        #[arg(long)]
        table: String,
        file: PathBuf,
        /// Add to the table instead of replacing it.
        #[arg(long)]
        append: bool,
    },
    /// Build user_item and item_item from a behaviour log, showing progress.
    Build {
        #[arg(long)]
        instance: i64,
        /// `user_id,item_id,active_type,active_date` or MovieLens `ratings.csv`.
        file: PathBuf,
        #[arg(long, default_value_t = 50)]
        top_n: usize,
    },
    /// Ask a deployed recall service.
    Query {
        #[arg(long)]
        service: String,
        #[arg(long, env = "AUTOLEARN_SERVICE_TOKEN", hide_env_values = true)]
        service_token: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value_t = 10)]
        size: i64,
    },
    /// Offline evaluation of a log, locally: hold out each user's latest interactions and
    /// report recall@K and hit-rate@K for CF and a popularity baseline.
    Evaluate {
        #[arg(long)]
        log: PathBuf,
        #[arg(long, default_value_t = 50)]
        k: usize,
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        #[arg(long, default_value_t = 50)]
        top_n: usize,
    },
}

#[derive(Subcommand)]
pub enum InstanceCmd {
    List,
    Create {
        /// image_classification, object_detection, ocr or recommendation_recall.
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    Show {
        id: i64,
    },
    Delete {
        id: i64,
    },
}

#[derive(Subcommand)]
pub enum DatasetCmd {
    List {
        #[arg(long)]
        instance: i64,
    },
    /// Index a dataset from s3://bucket/prefix/ or a directory under the server's data roots.
    Create {
        #[arg(long)]
        instance: i64,
        #[arg(long)]
        name: String,
        #[arg(long)]
        path: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    Show {
        id: i64,
    },
    Reindex {
        id: i64,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    List,
    /// Create a user; the password is read like `login` reads it.
    Create {
        #[arg(long)]
        username: String,
        /// Permissions on every instance, e.g. ListInstance,LabelInstance.
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
    },
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    /// A request to an API path, with the bearer token when there is one.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the API's message.
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {}", self.url))?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            if let Ok(e) = serde_json::from_str::<ErrorBody>(&text) {
                let field = e
                    .error
                    .field
                    .map(|f| format!(" (field {f})"))
                    .unwrap_or_default();
                bail!("{status}: {}{field}", e.error.message);
            }
            bail!("{status}: {text}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    /// Sends a text body (a table or log upload).
    async fn upload(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        self.send(
            self.request(method, path)
                .header("content-type", "text/csv")
                .body(body),
        )
        .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("AUTOLEARN_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Prints `v` as JSON, or as `columns` of a table (one row per object).
fn print(v: &Value, json: bool, columns: &[&str]) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let rows: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => return,
        other => vec![other],
    };
    let cell = |r: &Value, c: &str| match &r[c] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            rows.iter()
                .map(|r| cell(r, c).chars().count())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!(
        "{}",
        line(columns.iter().map(|c| c.to_uppercase()).collect())
    );
    for r in rows {
        println!("{}", line(columns.iter().map(|c| cell(r, c)).collect()));
    }
}

/// Draws a one-line progress bar on standard error.
fn progress_bar(fraction: f64, stage: &str) {
    let width = 30;
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64) as usize).min(width);
    eprint!(
        "\r[{}{}] {:>3.0}% {stage:<40}",
        "#".repeat(filled),
        " ".repeat(width - filled),
        fraction * 100.0
    );
}

async fn recall_command(c: &Client, cmd: RecallCmd, json: bool) -> anyhow::Result<()> {
    use reqwest::Method as M;
    match cmd {
        RecallCmd::Import {
            instance,
            table,
            file,
            append,
        } => {
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mode = if append { "append" } else { "replace" };
            let v = c
                .upload(
                    M::PUT,
                    &format!("/api/instances/{instance}/tables/{table}?mode={mode}"),
                    body,
                )
                .await?;
            print(&v, json, &["table", "mode", "imported", "rows"]);
        }
        RecallCmd::Build {
            instance,
            file,
            top_n,
        } => {
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let job = c
                .upload(
                    M::POST,
                    &format!("/api/instances/{instance}/behavior-logs?top_n={top_n}"),
                    body,
                )
                .await?;
            let path = format!(
                "/api/instances/{instance}/behavior-logs/jobs/{}",
                job["id"].as_str().unwrap_or_default()
            );
            let done = loop {
                let j = c.call(M::GET, &path, None).await?;
                if !json {
                    progress_bar(
                        j["progress"].as_f64().unwrap_or(0.0),
                        j["stage"].as_str().unwrap_or(""),
                    );
                }
                if j["state"] != "running" {
                    break j;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            if !json {
                eprintln!();
            }
            if done["state"] != "succeeded" {
                bail!(
                    "the build failed: {}",
                    done["error"].as_str().unwrap_or("unknown error")
                );
            }
            print(
                &done["stats"],
                json,
                &[
                    "interactions",
                    "users",
                    "items",
                    "item_item_rows",
                    "elapsed_ms",
                ],
            );
        }
        RecallCmd::Query {
            service,
            service_token,
            user,
            size,
        } => {
            let url = format!("{}/api/recall/{service}", c.url.trim_end_matches('/'));
            let res = c
                .http
                .get(url)
                .header("authorization", service_token)
                .query(&[("user_id", user.as_str()), ("size", &size.to_string())])
                .send()
                .await?;
            let v: Value = res.json().await?;
            if json || v["code"] != 200 {
                print(&v, true, &[]);
            } else {
                print(&v["items"], false, &["item_id", "retrieve_id"]);
            }
        }
        RecallCmd::Evaluate {
            log,
            k,
            holdout,
            top_n,
        } => {
            if !(0.0..1.0).contains(&holdout) || holdout == 0.0 {
                bail!("--holdout is a fraction between 0 and 1");
            }
            let file =
                std::fs::File::open(&log).with_context(|| format!("reading {}", log.display()))?;
            let report = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let parsed = crate::recall::cf::parse_log(
                    file,
                    crate::recall::cf::ActionWeights::default(),
                )?;
                Ok(crate::recall::eval::evaluate(&parsed, k, holdout, top_n))
            })
            .await??;
            let v = serde_json::to_value(&report)?;
            if json {
                print(&v, true, &[]);
            } else {
                println!(
                    "{} users, {} training and {} held-out interactions (latest {:.0}% per user), K = {k}",
                    report.users_evaluated,
                    report.train_interactions,
                    report.test_interactions,
                    holdout * 100.0
                );
                print(
                    &v["rows"],
                    false,
                    &["strategy", "recall_at_k", "hit_rate_at_k"],
                );
            }
        }
    }
    Ok(())
}

/// Runs a client command.
pub async fn run_client(cli: Cli) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let c = Client {
        http: reqwest::Client::new(),
        url: cli.url,
        token: cli.token,
    };
    let json = cli.json;
    const INSTANCE: &[&str] = &["id", "name", "type", "image_count", "created_at"];
    const DATASET: &[&str] = &["id", "name", "total", "labelled", "unlabelled", "path"];
    match cli.command {
        Command::Serve { .. } | Command::Worker { .. } => {
            unreachable!("serve and worker are handled by main")
        }
        Command::Task(cmd) => train::task_command(&c, cmd, json).await?,
        Command::Model(cmd) => train::model_command(&c, cmd, json).await?,
        Command::Service(cmd) => predict::service_command(&c, cmd, json).await?,
        Command::Predict {
            service,
            service_token,
            images,
        } => predict::predict(&c, &service, &service_token, &images, json).await?,
        Command::Login { username } => {
            let password = read_password()?;
            let v = c
                .call(
                    M::POST,
                    "/api/auth/login",
                    Some(json!({"username": username, "password": password})),
                )
                .await?;
            if json {
                print(&v, true, &[]);
            } else {
                println!("{}", v["token"].as_str().unwrap_or_default());
            }
        }
        Command::Instance(cmd) => match cmd {
            InstanceCmd::List => print(
                &c.call(M::GET, "/api/instances", None).await?,
                json,
                INSTANCE,
            ),
            InstanceCmd::Create {
                kind,
                name,
                description,
            } => {
                let body = json!({"type": kind, "name": name, "description": description});
                print(
                    &c.call(M::POST, "/api/instances", Some(body)).await?,
                    json,
                    INSTANCE,
                );
            }
            InstanceCmd::Show { id } => print(
                &c.call(M::GET, &format!("/api/instances/{id}"), None)
                    .await?,
                json,
                INSTANCE,
            ),
            InstanceCmd::Delete { id } => {
                c.call(M::DELETE, &format!("/api/instances/{id}"), None)
                    .await?;
            }
        },
        Command::Dataset(cmd) => {
            let v = match cmd {
                DatasetCmd::List { instance } => {
                    c.call(M::GET, &format!("/api/instances/{instance}/datasets"), None)
                        .await?
                }
                DatasetCmd::Create {
                    instance,
                    name,
                    path,
                    description,
                } => {
                    let body = json!({"name": name, "path": path, "description": description});
                    c.call(
                        M::POST,
                        &format!("/api/instances/{instance}/datasets"),
                        Some(body),
                    )
                    .await?
                }
                DatasetCmd::Show { id } => {
                    c.call(M::GET, &format!("/api/datasets/{id}"), None).await?
                }
                DatasetCmd::Reindex { id } => {
                    c.call(M::POST, &format!("/api/datasets/{id}/reindex"), None)
                        .await?
                }
            };
            print(&v, json, DATASET);
            if !json {
                for s in v
                    .as_array()
                    .map_or_else(|| vec![&v], |a| a.iter().collect())
                {
                    for sk in s["skipped"].as_array().into_iter().flatten() {
                        eprintln!(
                            "skipped {}: {}",
                            sk["path"].as_str().unwrap_or(""),
                            sk["reason"].as_str().unwrap_or("")
                        );
                    }
                }
            }
        }
        Command::User(cmd) => match cmd {
            UserCmd::List => print(
                &c.call(M::GET, "/api/users", None).await?,
                json,
                &["id", "username", "is_admin", "created_at"],
            ),
            UserCmd::Create {
                username,
                permissions,
            } => {
                let password = read_password()?;
                let grants: Vec<Value> = permissions
                    .iter()
                    .map(|p| json!({"permission": p}))
                    .collect();
                let body =
                    json!({"username": username, "password": password, "permissions": grants});
                print(
                    &c.call(M::POST, "/api/users", Some(body)).await?,
                    json,
                    &["id", "username", "is_admin"],
                );
            }
        },
        Command::Recall(cmd) => recall_command(&c, cmd, json).await?,
    }
    Ok(())
}
