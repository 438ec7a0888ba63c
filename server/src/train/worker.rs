//! Training workers: claim a queued task from the database, hold its lease while training
//! on a blocking thread, stream its events into the database, and store the model version.
//! Any number of workers in any number of processes may share one database and one model
//! store; `autolearn serve` runs `AUTOLEARN_WORKERS` of them, `autolearn worker` only them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use burn::prelude::*;
use bytes::Bytes;
use shared::InstanceType;
use shared::preprocess::{IMAGENET_MEAN, IMAGENET_STD};
use shared::train::{DeviceChoice, ModelMeta, Task, TaskEventBody, TaskStatus};
use tokio::sync::mpsc;

use super::run::{self, Plan, Reporter, Signal, Trained};
use super::{classification, detection, ocr};
use crate::AppState;
use crate::artifact;
use crate::db::tasks::NewModel;

/// How long an idle worker waits before looking for work again.
const IDLE_POLL: Duration = Duration::from_millis(700);

/// A name for a worker that says where it runs: `host:pid:n`.
pub fn worker_name(n: usize) -> String {
    format!("{}:{}:{n}", crate::host_name(), std::process::id())
}

/// Runs one worker until `shutdown` turns true; a task in progress is stopped (and keeps
/// the best model so far) when that happens.
pub async fn run(s: AppState, name: String, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    tracing::info!("training worker {name} started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = s.db.reap_expired_tasks().await {
            tracing::warn!("worker {name}: reaping expired tasks: {e}");
        }
        let claimed = s.db.claim_task(&name, s.config.task_lease_secs).await;
        match claimed {
            Ok(Some(task)) => {
                let id = task.id;
                tracing::info!("worker {name} runs task {id}");
                run_task(&s, task, &name, shutdown.clone()).await;
            }
            Ok(None) => {
                tokio::select! {
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!("worker {name}: claiming a task: {e}");
                tokio::time::sleep(IDLE_POLL * 3).await;
            }
        }
    }
    tracing::info!("training worker {name} stopped");
}

async fn run_task(
    s: &AppState,
    task: Task,
    worker: &str,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel::<Signal>();
    let forwarder = {
        let db = s.db.clone();
        let id = task.id;
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let r = match out {
                    Signal::Log(line) => db.append_event(id, &TaskEventBody::Log { line }).await,
                    Signal::Progress(p) => db.record_progress(id, &p).await,
                    Signal::Device(d) => db.set_device_used(id, &d).await,
                };
                if let Err(e) = r {
                    tracing::warn!("task {id}: recording an event: {e}");
                }
            }
        })
    };
    let heartbeat = {
        let db = s.db.clone();
        let (id, worker) = (task.id, worker.to_owned());
        let (stop, lost) = (stop.clone(), lost.clone());
        let lease = s.config.task_lease_secs;
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(u64::try_from(lease).unwrap_or(60) * 1000 / 3)
                .min(Duration::from_secs(2));
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    stop.store(true, Ordering::Relaxed);
                }
                match db.renew_lease(id, &worker, lease).await {
                    Ok(Some(requested)) => {
                        if requested {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(None) => {
                        lost.store(true, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => tracing::warn!("task {id}: renewing the lease: {e}"),
                }
            }
        })
    };
    let result = train_task(s, &task, worker, &stop, &Reporter(tx.clone())).await;
    // Flush the events of the run before the final ones, which are written directly.
    drop(tx);
    let _ = forwarder.await;
    let log = |line: String| {
        let db = s.db.clone();
        let id = task.id;
        async move {
            let _ = db.append_event(id, &TaskEventBody::Log { line }).await;
        }
    };
    let finish = match result {
        Ok(Some(trained)) => store_model(s, &task, worker, trained).await,
        Ok(None) => {
            let (status, msg) = if stop.load(Ordering::Relaxed) {
                (TaskStatus::Stopped, None)
            } else {
                (
                    TaskStatus::Failed,
                    Some(
                        "the time budget ran out before the first model was trained; allow more minutes",
                    ),
                )
            };
            s.db.finish_task(task.id, worker, status, msg)
                .await
                .map(|_| ())
                .map_err(Into::into)
        }
        Err(e) => {
            let msg = format!("{e:#}");
            log(format!("failed: {msg}")).await;
            s.db.finish_task(task.id, worker, TaskStatus::Failed, Some(&msg))
                .await
                .map(|_| ())
                .map_err(Into::into)
        }
    };
    // The lease is kept until the version is stored and the task finished: a slow upload
    // must not let the task be reaped and re-run while its model is being saved.
    heartbeat.abort();
    if lost.load(Ordering::Relaxed) {
        tracing::warn!(
            "task {}: lease lost to another worker; its result was dropped",
            task.id
        );
    }
    if let Err(e) = finish {
        tracing::error!("task {}: finishing: {e:#}", task.id);
        let _ =
            s.db.finish_task(task.id, worker, TaskStatus::Failed, Some(&format!("{e:#}")))
                .await;
    }
}

/// Picks the device the task asked for.
pub fn pick_device(choice: DeviceChoice) -> anyhow::Result<(Device, String)> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let cpu = || {
        (
            Device::flex(),
            format!("cpu (burn flex, {threads} threads)"),
        )
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Gpu => gpu().context(
            "the task asks for a GPU but none is usable (this build needs the `gpu` feature and a Vulkan, Metal or DX12 adapter); choose cpu or auto",
        ),
        DeviceChoice::Auto => Ok(gpu().unwrap_or_else(cpu)),
    }
}

#[cfg(feature = "gpu")]
fn gpu() -> Option<(Device, String)> {
    use burn::tensor::DeviceKind;
    // An adapter can be initialised once per process; keep it.
    static GPU: std::sync::OnceLock<Option<Device>> = std::sync::OnceLock::new();
    GPU.get_or_init(|| {
        Device::wgpu_options()
            .device_kind(DeviceKind::DefaultDevice)
            .init()
            .ok()
    })
    .clone()
    .map(|d| (d, "gpu (burn wgpu)".to_owned()))
}

#[cfg(not(feature = "gpu"))]
fn gpu() -> Option<(Device, String)> {
    None
}

/// Everything from loading data to the trained model, for the task's kind; `None` when
/// stopped (or out of time) before a model existed.
async fn train_task(
    s: &AppState,
    task: &Task,
    worker: &str,
    stop: &Arc<AtomicBool>,
    report: &Reporter,
) -> anyhow::Result<Option<Trained>> {
    let started = Instant::now();
    let budget = Duration::from_secs_f64(task.max_minutes * 60.0);
    let deadline = started + budget - run::reserve(budget);
    report.log(format!(
        "worker {worker} (attempt {}) trains {} on {} labels, {} px, budget {:.1} min",
        task.attempts,
        task.preset.as_str(),
        task.labels.len(),
        task.image_size,
        task.max_minutes
    ));
    let (device, device_name) = pick_device(task.device)?;
    report.log(format!("device: {device_name}"));
    report.emit(Signal::Device(device_name));
    let plan = Plan {
        image_size: task.image_size,
        tuned_stages: task.preset.tuned_stages(),
        head_share: task.preset.head_budget_share(),
        max_epochs: task.max_epochs,
        deadline,
        seed: task.seed,
        patience: task.patience.unwrap_or(shared::train::DEFAULT_PATIENCE),
    };
    match task.preset.instance_type() {
        InstanceType::ObjectDetection => {
            detection::run(s, task, plan, device, stop.clone(), report).await
        }
        InstanceType::Ocr => ocr::run(s, task, plan, device, stop.clone(), report).await,
        _ => classification::run(s, task, plan, device, stop.clone(), report).await,
    }
}

async fn store_model(
    s: &AppState,
    task: &Task,
    worker: &str,
    trained: Trained,
) -> anyhow::Result<()> {
    let Trained {
        weights,
        mut metrics,
        architecture,
        pretrained,
        stopped,
        summary,
        charset,
    } = trained;
    metrics.set_model_size(weights.len() as u64);
    // PP-OCR's models take (x - 0.5) / 0.5, in BGR order (`shared::ocr`); the others ImageNet's.
    let (mean, std) = if task.preset.instance_type() == InstanceType::Ocr {
        ([shared::ocr::MEAN; 3], [shared::ocr::STD; 3])
    } else {
        (IMAGENET_MEAN, IMAGENET_STD)
    };
    let meta = ModelMeta {
        format: artifact::FORMAT.into(),
        instance_type: task.preset.instance_type(),
        preset: task.preset,
        architecture,
        labels: task.labels.clone(),
        image_size: task.image_size,
        mean,
        std,
        precision: "f16".into(),
        weights_bytes: weights.len() as u64,
        metrics: metrics.summary(),
        created_at: crate::db::now_rfc3339(),
        charset,
    };
    let packed = artifact::pack(&meta, &weights)?;
    let key = format!(
        "instance-{}/task-{}-{:08x}.tar",
        task.instance_id,
        task.id,
        rand::random::<u32>()
    );
    let store = s.storage.open_uri(&s.config.models_uri)?;
    store.put(&key, Bytes::from(packed)).await?;
    let line = format!(
        "{summary}; weights {:.1} MB (f16)",
        metrics.model_size() as f64 / 1e6
    );
    s.db.append_event(task.id, &TaskEventBody::Log { line })
        .await?;
    let status = if stopped {
        TaskStatus::Stopped
    } else {
        TaskStatus::Succeeded
    };
    let saved =
        s.db.finish_with_model(
            worker,
            status,
            &NewModel {
                task,
                labels: &task.labels,
                metrics: &metrics,
                pretrained,
                artifact: &key,
            },
        )
        .await?;
    if saved.is_none() {
        // Another worker owns the task now; this artifact belongs to nothing.
        let _ = store.delete(&key).await;
    }
    Ok(())
}
