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
use shared::model::EfficientNetLite;
use shared::model::efficientnet::IMAGENET_CLASSES;
use shared::preprocess::{IMAGENET_MEAN, IMAGENET_STD};
use shared::train::{DeviceChoice, ModelMeta, Task, TaskEventBody, TaskStatus};
use tokio::sync::mpsc;

use super::trainer::{self, Outcome, Plan, Signal};
use super::{artifact, data, weights};
use crate::AppState;
use crate::db::tasks::NewModel;

/// How long an idle worker waits before looking for work again.
const IDLE_POLL: Duration = Duration::from_millis(700);

/// A name for a worker that says where it runs: `host:pid:n`.
pub fn worker_name(n: usize) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{n}", std::process::id())
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

/// Events from the training thread to the database, in order.
enum Out {
    Signal(Signal),
    Device(String),
}

async fn run_task(
    s: &AppState,
    task: Task,
    worker: &str,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let forwarder = {
        let db = s.db.clone();
        let id = task.id;
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let r = match out {
                    Out::Signal(Signal::Log(line)) => {
                        db.append_event(id, &TaskEventBody::Log { line }).await
                    }
                    Out::Signal(Signal::Progress(p)) => db.record_progress(id, &p).await,
                    Out::Device(d) => db.set_device_used(id, &d).await,
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
    let result = train_task(s, &task, worker, &stop, &tx).await;
    // Flush the events of the run before the final ones, which are written directly.
    drop(tx);
    let _ = forwarder.await;
    heartbeat.abort();
    let log = |line: String| {
        let db = s.db.clone();
        let id = task.id;
        async move {
            let _ = db.append_event(id, &TaskEventBody::Log { line }).await;
        }
    };
    let finish = match result {
        Ok(Some((outcome, pretrained))) => store_model(s, &task, worker, outcome, pretrained).await,
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

/// Everything from loading data to the trained model; `None` when stopped (or out of time)
/// before a model existed.
async fn train_task(
    s: &AppState,
    task: &Task,
    worker: &str,
    stop: &Arc<AtomicBool>,
    tx: &mpsc::UnboundedSender<Out>,
) -> anyhow::Result<Option<(Outcome, bool)>> {
    let started = Instant::now();
    let budget = Duration::from_secs_f64(task.max_minutes * 60.0);
    let deadline = started + budget - trainer::reserve(budget);
    let log = |line: String| {
        let _ = tx.send(Out::Signal(Signal::Log(line)));
    };
    log(format!(
        "worker {worker} (attempt {}) trains {} on {} labels, {} px, budget {:.1} min",
        task.attempts,
        task.preset.as_str(),
        task.labels.len(),
        task.image_size,
        task.max_minutes
    ));
    let (device, device_name) = pick_device(task.device)?;
    log(format!("device: {device_name}"));
    let _ = tx.send(Out::Device(device_name));
    let data = data::load(s, task, &log).await?;
    let (model, pretrained) = initial_model(s, task, &device, &log).await?;
    let plan = Plan {
        image_size: task.image_size,
        tuned_stages: task.preset.tuned_stages(),
        max_epochs: task.max_epochs,
        deadline,
        seed: task.seed,
        patience: task.patience.unwrap_or(shared::train::DEFAULT_PATIENCE),
    };
    let stop = stop.clone();
    let tx = tx.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let emit = |sig: Signal| {
            let _ = tx.send(Out::Signal(sig));
        };
        trainer::train(model, &data, &plan, &device, &stop, &emit)
    })
    .await
    .context("the training thread panicked")??;
    Ok(outcome.map(|o| (o, pretrained)))
}

/// The starting point: an earlier version (incremental), else ImageNet weights, else
/// random initialisation (said in the log).
async fn initial_model(
    s: &AppState,
    task: &Task,
    device: &Device,
    log: &(dyn Fn(String) + Sync),
) -> anyhow::Result<(EfficientNetLite, bool)> {
    let classes = task.labels.len();
    device.seed(task.seed);
    let fresh = EfficientNetLite::lite0(classes, device);
    if let Some(base_id) = task.base_model_id {
        let (base, key) =
            s.db.model(base_id)
                .await?
                .with_context(|| format!("base model {base_id} no longer exists"))?;
        let store = s.storage.open_uri(&s.config.models_uri)?;
        let bytes = store.read(&key, artifact::MAX_ARTIFACT_BYTES).await?;
        let (meta, weights) = artifact::unpack(&bytes)?;
        let dev = device.clone();
        let base_model = tokio::task::spawn_blocking(move || {
            artifact::load_weights(weights, meta.labels.len(), &dev)
        })
        .await??;
        let kept = task
            .labels
            .iter()
            .filter(|l| base.labels.contains(l))
            .count();
        log(format!(
            "incremental: starting from model version {} ({kept} of {classes} labels known, new ones get new head rows)",
            base.version
        ));
        let fc = trainer::remap_head(&base_model.fc, &base.labels, &task.labels, &fresh.fc);
        return Ok((EfficientNetLite { fc, ..base_model }, base.pretrained));
    }
    if !s.config.pretrained {
        log(
            "backbone: random initialisation (AUTOLEARN_PRETRAINED=none); expect lower accuracy"
                .into(),
        );
        return Ok((fresh, false));
    }
    let dir = s.config.weights_dir.clone();
    let dev = device.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let path = weights::ensure(&dir)?;
        weights::load_imagenet(&path, &dev)
    })
    .await?;
    match loaded {
        Ok(imagenet) => {
            log("backbone: EfficientNet-Lite0 with ImageNet weights".into());
            debug_assert_eq!(imagenet.classes(), IMAGENET_CLASSES);
            Ok((
                EfficientNetLite {
                    fc: fresh.fc,
                    ..imagenet
                },
                true,
            ))
        }
        Err(e) => {
            log(format!(
                "pretrained weights unavailable ({e:#}); training from scratch, expect lower accuracy"
            ));
            Ok((fresh, false))
        }
    }
}

async fn store_model(
    s: &AppState,
    task: &Task,
    worker: &str,
    outcome: Outcome,
    pretrained: bool,
) -> anyhow::Result<()> {
    let Outcome {
        model,
        mut metrics,
        stopped,
    } = outcome;
    let weights = tokio::task::spawn_blocking(move || artifact::weights_f16(&model)).await??;
    metrics.model_size = weights.len() as u64;
    let meta = ModelMeta {
        format: artifact::FORMAT.into(),
        instance_type: InstanceType::ImageClassification,
        preset: task.preset,
        architecture: "efficientnet-lite0".into(),
        labels: task.labels.clone(),
        image_size: task.image_size,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        precision: "f16".into(),
        weights_bytes: weights.len() as u64,
        metrics: metrics.summary(),
        created_at: crate::db::now_rfc3339(),
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
        "validation ({} images): accuracy {:.1}%, macro F1 {:.3}, loss {:.4}; weights {:.1} MB (f16)",
        metrics.validation_images,
        metrics.accuracy * 100.0,
        metrics.f1,
        metrics.loss,
        metrics.model_size as f64 / 1e6
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
