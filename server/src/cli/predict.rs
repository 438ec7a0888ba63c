//! `autolearn service ...` (deploy, swap, undeploy) and `autolearn predict`.

use base64::Engine as _;
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Client, print};

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Deploy a model version; prints the endpoint and the token (shown once).
    Deploy {
        #[arg(long)]
        model: i64,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 1)]
        replicas: i64,
    },
    /// Serve another model version (no request is dropped) and/or change replicas.
    Update {
        name: String,
        #[arg(long)]
        model: Option<i64>,
        #[arg(long)]
        replicas: Option<i64>,
    },
    Show {
        name: String,
    },
    /// Undeploy.
    Delete {
        name: String,
    },
}

const SERVICE: &[&str] = &[
    "name", "kind", "model_id", "replicas", "status", "endpoint", "token",
];

pub async fn service_command(c: &Client, cmd: ServiceCmd, json: bool) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let v = match cmd {
        ServiceCmd::Deploy {
            model,
            name,
            replicas,
        } => {
            c.call(
                M::POST,
                &format!("/api/models/{model}/services"),
                Some(json!({"name": name, "replicas": replicas})),
            )
            .await?
        }
        ServiceCmd::Update {
            name,
            model,
            replicas,
        } => {
            let mut body = json!({});
            if let Some(m) = model {
                body["model_id"] = m.into();
            }
            if let Some(r) = replicas {
                body["replicas"] = r.into();
            }
            c.call(M::PATCH, &format!("/api/services/{name}"), Some(body))
                .await?
        }
        ServiceCmd::Show { name } => {
            c.call(M::GET, &format!("/api/services/{name}"), None)
                .await?
        }
        ServiceCmd::Delete { name } => {
            c.call(M::DELETE, &format!("/api/services/{name}"), None)
                .await?;
            return Ok(());
        }
    };
    print(&v, json, SERVICE);
    Ok(())
}

/// Sends images to a predict service in the SPEC §7 format and prints the answer.
pub async fn predict(
    c: &Client,
    service: &str,
    token: &str,
    images: &[std::path::PathBuf],
    json: bool,
) -> anyhow::Result<()> {
    let mut items = Vec::new();
    for path in images {
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        items.push(json!({"name": "image", "type": "stream",
            "body": base64::engine::general_purpose::STANDARD.encode(bytes)}));
    }
    let res = c
        .http
        .post(format!(
            "{}/api/predict/{service}",
            c.url.trim_end_matches('/')
        ))
        .header("authorization", token)
        .json(&json!({"dataArray": items}))
        .send()
        .await?;
    let status = res.status();
    let v: Value = res.json().await?;
    if json || !status.is_success() {
        println!("{}", serde_json::to_string_pretty(&v)?);
        if !status.is_success() {
            anyhow::bail!("{status}");
        }
        return Ok(());
    }
    for (path, out) in images
        .iter()
        .zip(v["result"]["output"].as_array().into_iter().flatten())
    {
        println!("{}", path.display());
        for p in out["body"].as_array().into_iter().flatten() {
            // Detection and OCR answers carry the box's corners (TL, TR, BR, BL).
            let corners = p["pos"]
                .as_array()
                .map(|c| {
                    let xy: Vec<String> =
                        c.iter().map(|q| format!("({}, {})", q[0], q[1])).collect();
                    format!("  {}", xy.join(" "))
                })
                .unwrap_or_default();
            println!(
                "  {:<24} {:.4}{corners}",
                p["label"].as_str().unwrap_or(""),
                p["conf"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}
