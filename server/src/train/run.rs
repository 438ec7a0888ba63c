//! What every kind's training loop shares: the plan (budget, seed, patience, how much of
//! the backbone to tune), the deadline and stop checks, and progress and log signals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use burn::prelude::*;
use shared::train::{ModelMeta, ModelVersion, Progress, Task};

use crate::{AppState, artifact};

/// What the loop reports while it runs.
pub enum Signal {
    Log(String),
    Progress(Progress),
    /// The device the run uses, in words.
    Device(String),
}

/// Where a run's signals go: the worker writes them to the task's events, in order.
#[derive(Clone)]
pub struct Reporter(pub tokio::sync::mpsc::UnboundedSender<Signal>);

impl Reporter {
    pub fn log(&self, line: String) {
        let _ = self.0.send(Signal::Log(line));
    }

    pub fn emit(&self, signal: Signal) {
        let _ = self.0.send(signal);
    }
}

/// What a finished run of any kind hands to the worker to store as a model version.
pub struct Trained {
    /// Half-precision burnpack of the weights, exactly those evaluated.
    pub weights: Vec<u8>,
    pub metrics: shared::train::Metrics,
    /// How the artifact names the network (`efficientnet-lite0`, ...).
    pub architecture: String,
    /// Whether the backbone started from ImageNet weights.
    pub pretrained: bool,
    /// Ended by a stop request (the best model so far is still kept).
    pub stopped: bool,
    /// A line for the task log summarising the evaluation.
    pub summary: String,
    /// OCR: the recogniser's characters, stored in the artifact (empty for other kinds).
    pub charset: Vec<String>,
}

pub struct Plan {
    pub image_size: u32,
    /// Stages of the backbone fine-tuned after the head (0: head only).
    pub tuned_stages: usize,
    /// The most of the budget a first phase may take when fine-tuning follows
    /// ([`shared::train::Preset::head_budget_share`]).
    pub head_share: f64,
    pub max_epochs: Option<u32>,
    /// Training stops before this, leaving time to evaluate and save.
    pub deadline: Instant,
    pub seed: u64,
    /// Epochs without a better validation loss before fine-tuning stops.
    pub patience: u32,
}

pub struct Run<'a> {
    pub plan: &'a Plan,
    pub device: Device,
    pub stop: &'a AtomicBool,
    pub emit: &'a dyn Fn(Signal),
    pub started: Instant,
    pub step: u64,
    /// Names what progress reports as accuracy, when it is something else (`mAP@0.5`).
    pub metric: Option<&'static str>,
}

impl<'a> Run<'a> {
    pub fn new(
        plan: &'a Plan,
        device: &Device,
        stop: &'a AtomicBool,
        emit: &'a dyn Fn(Signal),
    ) -> Self {
        Self {
            plan,
            device: device.clone(),
            stop,
            emit,
            started: Instant::now(),
            step: 0,
            metric: None,
        }
    }

    pub fn should_end(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.plan.deadline
    }

    /// Says why training ended early, if it did.
    pub fn log_ending(&self, stopped: bool) {
        if stopped {
            self.log("stopped on request; keeping the best model so far".into());
        } else if Instant::now() >= self.plan.deadline {
            self.log("time budget reached; keeping the best model so far".into());
        }
    }

    pub fn log(&self, line: String) {
        (self.emit)(Signal::Log(line));
    }

    pub fn progress(
        &self,
        phase: &str,
        epoch: u32,
        epoch_secs: f64,
        train: (f64, f64),
        val: Option<(f64, f64)>,
    ) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = self
            .plan
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        let budget = elapsed + left;
        let mut progress = if budget > 0.0 { elapsed / budget } else { 1.0 };
        let mut eta = left;
        if let (Some(max), "finetune") = (self.plan.max_epochs, phase) {
            progress = progress.max(f64::from(epoch) / f64::from(max));
            eta = eta.min(f64::from(max.saturating_sub(epoch)) * epoch_secs);
        }
        (self.emit)(Signal::Progress(Progress {
            phase: phase.to_owned(),
            epoch,
            step: self.step,
            elapsed_s: elapsed,
            eta_s: eta,
            progress: progress.min(1.0),
            train_loss: train.0,
            train_accuracy: train.1,
            val_loss: val.map(|v| v.0),
            val_accuracy: val.map(|v| v.1),
            metric: self.metric.map(str::to_owned),
        }));
    }
}

/// Time kept back from the budget for the final evaluation and saving.
pub fn reserve(budget: Duration) -> Duration {
    (budget / 10).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// Runs a training loop on a blocking thread, its signals going to `report`.
pub async fn on_training_thread<T: Send + 'static>(
    report: &Reporter,
    train: impl FnOnce(&dyn Fn(Signal)) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let emitter = report.clone();
    tokio::task::spawn_blocking(move || {
        let emit = |sig: Signal| emitter.emit(sig);
        train(&emit)
    })
    .await
    .context("the training thread panicked")?
}

/// The half-precision weights of a trained model, made off the async threads.
pub async fn weights_of<M: burn::module::Module + 'static>(model: M) -> anyhow::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || artifact::weights_f16(&model)).await?
}

/// The version an incremental task starts from: its row, its metadata and its weights, and
/// how many of the task's labels it knew (said in the log).
pub async fn base_version(
    s: &AppState,
    task: &Task,
    base_id: i64,
    report: &Reporter,
) -> anyhow::Result<(ModelVersion, ModelMeta, Vec<u8>)> {
    let (base, key) =
        s.db.model(base_id)
            .await?
            .with_context(|| format!("base model {base_id} no longer exists"))?;
    let store = s.storage.open_uri(&s.config.models_uri)?;
    let bytes = store.read(&key, artifact::MAX_ARTIFACT_BYTES).await?;
    let (meta, weights) = artifact::unpack(&bytes)?;
    let kept = task
        .labels
        .iter()
        .filter(|l| base.labels.contains(l))
        .count();
    report.log(format!(
        "incremental: starting from model version {} ({kept} of {} labels known, new ones get new class rows)",
        base.version,
        task.labels.len()
    ));
    Ok((base, meta, weights))
}
