//! `autolearn task ...` and `autolearn model ...`: training from the command line, with a
//! live progress bar read from the task's event stream.

use clap::Subcommand;
use serde_json::{Value, json};
use shared::train::{TaskEvent, TaskEventBody};

use super::{Client, print, progress_bar};

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Start training; with --follow, show progress until it ends and print the metrics.
    Create {
        #[arg(long)]
        instance: i64,
        #[arg(long)]
        dataset: i64,
        #[arg(long)]
        name: String,
        /// Labels to learn, comma-separated (at least two).
        #[arg(long, value_delimiter = ',', required = true)]
        labels: Vec<String>,
        #[arg(long, default_value = "classification-fast")]
        preset: String,
        /// auto, cpu or gpu.
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long, default_value_t = 10.0)]
        max_minutes: f64,
        /// Incremental training from this model version.
        #[arg(long)]
        base_model: Option<i64>,
        #[arg(long)]
        image_size: Option<u32>,
        #[arg(long)]
        max_epochs: Option<u32>,
        #[arg(long)]
        seed: Option<u64>,
        /// Early-stopping patience in epochs (default 3).
        #[arg(long)]
        patience: Option<u32>,
        #[arg(long)]
        follow: bool,
    },
    List {
        #[arg(long)]
        instance: i64,
    },
    Show {
        id: i64,
    },
    /// Show progress of a running task until it ends.
    Follow {
        id: i64,
    },
    Stop {
        id: i64,
    },
    Logs {
        id: i64,
    },
}

#[derive(Subcommand)]
pub enum ModelCmd {
    List {
        #[arg(long)]
        instance: i64,
    },
    /// A version with its evaluation (per-class figures and confusion matrix).
    Show {
        id: i64,
    },
    Delete {
        id: i64,
    },
    /// Save the artifact (tar of meta.json and weights).
    Download {
        id: i64,
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
}

const TASK: &[&str] = &[
    "id",
    "name",
    "status",
    "preset",
    "progress",
    "device_used",
    "model_id",
];
const MODEL: &[&str] = &[
    "id",
    "version",
    "preset",
    "image_size",
    "size_bytes",
    "created_at",
];

pub async fn task_command(c: &Client, cmd: TaskCmd, json: bool) -> anyhow::Result<()> {
    use reqwest::Method as M;
    match cmd {
        TaskCmd::Create {
            instance,
            dataset,
            name,
            labels,
            preset,
            device,
            max_minutes,
            base_model,
            image_size,
            max_epochs,
            seed,
            patience,
            follow,
        } => {
            let mut body = json!({
                "name": name, "dataset_id": dataset, "labels": labels, "preset": preset,
                "device": device, "max_minutes": max_minutes,
            });
            for (k, v) in [
                ("base_model_id", base_model.map(Value::from)),
                ("image_size", image_size.map(Value::from)),
                ("max_epochs", max_epochs.map(Value::from)),
                ("seed", seed.map(Value::from)),
                ("patience", patience.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let v = c
                .call(
                    M::POST,
                    &format!("/api/instances/{instance}/tasks"),
                    Some(body),
                )
                .await?;
            if follow {
                let id = v["id"].as_i64().unwrap_or_default();
                eprintln!("task {id} queued");
                follow_task(c, id, json).await?;
            } else {
                print(&v, json, TASK);
            }
        }
        TaskCmd::List { instance } => print(
            &c.call(M::GET, &format!("/api/instances/{instance}/tasks"), None)
                .await?,
            json,
            TASK,
        ),
        TaskCmd::Show { id } => print(
            &c.call(M::GET, &format!("/api/tasks/{id}"), None).await?,
            json,
            TASK,
        ),
        TaskCmd::Follow { id } => follow_task(c, id, json).await?,
        TaskCmd::Stop { id } => print(
            &c.call(M::POST, &format!("/api/tasks/{id}/stop"), None)
                .await?,
            json,
            TASK,
        ),
        TaskCmd::Logs { id } => {
            let res = c
                .request(M::GET, &format!("/api/tasks/{id}/logs"))
                .send()
                .await?
                .error_for_status()?;
            print!("{}", res.text().await?);
        }
    }
    Ok(())
}

pub async fn model_command(c: &Client, cmd: ModelCmd, json: bool) -> anyhow::Result<()> {
    use reqwest::Method as M;
    match cmd {
        ModelCmd::List { instance } => print(
            &c.call(M::GET, &format!("/api/instances/{instance}/models"), None)
                .await?,
            json,
            MODEL,
        ),
        ModelCmd::Show { id } => {
            let v = c.call(M::GET, &format!("/api/models/{id}"), None).await?;
            if json {
                print(&v, true, &[]);
            } else {
                print_metrics(&v);
            }
        }
        ModelCmd::Delete { id } => {
            c.call(M::DELETE, &format!("/api/models/{id}"), None)
                .await?;
        }
        ModelCmd::Download { id, output } => {
            let res = c
                .request(M::GET, &format!("/api/models/{id}/artifact"))
                .send()
                .await?
                .error_for_status()?;
            let bytes = res.bytes().await?;
            std::fs::write(&output, &bytes)?;
            eprintln!("wrote {} ({} bytes)", output.display(), bytes.len());
        }
    }
    Ok(())
}

/// Reads the task's server-sent events, drawing a progress bar and printing log lines,
/// until the task ends; then prints the model's metrics.
async fn follow_task(c: &Client, id: i64, json: bool) -> anyhow::Result<()> {
    use reqwest::Method as M;
    let mut res = c
        .request(M::GET, &format!("/api/tasks/{id}/events"))
        .send()
        .await?
        .error_for_status()?;
    let mut buf = String::new();
    let mut final_status = None;
    while let Some(chunk) = res.chunk().await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<TaskEvent>(data.trim()) else {
                continue;
            };
            match event.body {
                TaskEventBody::Log { line } => eprintln!("\r\x1b[2K{line}"),
                TaskEventBody::Progress(p) => {
                    let name = p.metric.as_deref().unwrap_or("acc");
                    let val = p
                        .val_accuracy
                        .map(|a| format!(" val {name} {:.1}%", a * 100.0))
                        .unwrap_or_default();
                    progress_bar(
                        p.progress,
                        &format!("{} epoch {}{val}, eta {:.0}s", p.phase, p.epoch, p.eta_s),
                    );
                }
                TaskEventBody::Status {
                    status,
                    error,
                    model_id,
                } => {
                    if status.is_finished() {
                        eprintln!();
                        final_status = Some((status, error, model_id));
                    }
                }
            }
        }
    }
    let (status, error, model_id) = final_status
        .ok_or_else(|| anyhow::anyhow!("the event stream ended before the task did"))?;
    eprintln!("task {id}: {}", status.as_str());
    if let Some(e) = error {
        anyhow::bail!("task {id} {}: {e}", status.as_str());
    }
    if let Some(m) = model_id {
        let v = c.call(M::GET, &format!("/api/models/{m}"), None).await?;
        if json {
            print(&v, true, &[]);
        } else {
            print_metrics(&v);
        }
    }
    Ok(())
}

fn print_metrics(v: &Value) {
    let m = &v["metrics"];
    let pct = |k: &str| {
        m[k].as_f64()
            .map_or("-".into(), |x| format!("{:.1}%", x * 100.0))
    };
    println!(
        "model {} (version {}, {}, {} px)",
        v["id"],
        v["version"],
        v["preset"].as_str().unwrap_or(""),
        v["image_size"]
    );
    if m.get("map").is_some() {
        print_detection_metrics(v);
        return;
    }
    println!(
        "validation images {}: accuracy {}  precision {}  recall {}  F1 {}  loss {:.4}  size {} bytes",
        m["validation_images"],
        pct("accuracy"),
        pct("precision"),
        pct("recall"),
        pct("f1"),
        m["loss"].as_f64().unwrap_or(f64::NAN),
        m["model_size"]
    );
    let labels: Vec<&str> = v["labels"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(cm) = m["confusion_matrix"].as_array() {
        println!("confusion matrix (rows: truth, columns: predicted):");
        println!(
            "{:>16} {}",
            "",
            labels
                .iter()
                .map(|l| format!(" {l:>12.12}"))
                .collect::<String>()
        );
        for (l, row) in labels.iter().zip(cm) {
            let cells: String = row
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|x| format!(" {:>12}", x.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default();
            println!("{l:>16.16} {cells}");
        }
    }
}

/// A detection version's figures: mAP, the served threshold's precision and recall, losses,
/// and AP per class.
fn print_detection_metrics(v: &Value) {
    let m = &v["metrics"];
    let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "validation images {}: mAP@0.5 {:.1}%  mAP@0.5:0.95 {:.1}%  precision {:.1}%  recall {:.1}% (confidence >= {:.2})",
        m["validation_images"],
        f("map") * 100.0,
        f("map_50_95") * 100.0,
        f("precision") * 100.0,
        f("recall") * 100.0,
        f("conf_threshold"),
    );
    println!(
        "loss {:.4} (classification {:.4}, localization {:.4})  size {} bytes",
        f("loss"),
        f("classification_loss"),
        f("localization_loss"),
        m["model_size"]
    );
    println!(
        "{:>16}  {:>8}  {:>12}  {:>6}",
        "label", "AP@0.5", "AP@0.5:0.95", "boxes"
    );
    for l in v["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let c = &m["per_class"][l];
        println!(
            "{l:>16.16}  {:>7.1}%  {:>11.1}%  {:>6}",
            c["ap"].as_f64().unwrap_or(0.0) * 100.0,
            c["ap_50_95"].as_f64().unwrap_or(0.0) * 100.0,
            c["support"]
        );
    }
}
