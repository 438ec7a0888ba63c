//! Image classification: EfficientNet-Lite0 transfer learning (head on frozen features,
//! then fine-tuning the top stages), evaluated by accuracy, per-class figures and the
//! confusion matrix.

pub mod data;
pub mod metrics;
pub mod trainer;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::prelude::*;
use shared::model::EfficientNetLite;
use shared::model::efficientnet::IMAGENET_CLASSES;
use shared::train::{Metrics, Task};

use crate::AppState;
use crate::artifact;
use crate::train::run::{self, Plan, Reporter, Trained};
use crate::train::weights;

/// Loads the task's images, trains and evaluates; `None` when stopped or out of time before
/// a model existed.
pub async fn run(
    s: &AppState,
    task: &Task,
    plan: Plan,
    device: Device,
    stop: Arc<AtomicBool>,
    report: &Reporter,
) -> anyhow::Result<Option<Trained>> {
    let log = |line: String| report.log(line);
    let data = data::load(s, task, &log).await?;
    let (model, pretrained) = initial_model(s, task, &device, report).await?;
    let outcome = run::on_training_thread(report, move |emit| {
        trainer::train(model, &data, &plan, &device, &stop, emit)
    })
    .await?;
    let Some(o) = outcome else { return Ok(None) };
    let m = o.metrics;
    let summary = format!(
        "validation ({} images): accuracy {:.1}%, macro F1 {:.3}, loss {:.4}",
        m.validation_images,
        m.accuracy * 100.0,
        m.f1,
        m.loss,
    );
    let model = o.model;
    let weights = run::weights_of(model).await?;
    Ok(Some(Trained {
        weights,
        metrics: Metrics::Classification(m),
        architecture: "efficientnet-lite0".into(),
        pretrained,
        stopped: o.stopped,
        summary,
        charset: Vec::new(),
    }))
}

/// The starting point: an earlier version (incremental), else ImageNet weights, else
/// random initialisation (said in the log).
async fn initial_model(
    s: &AppState,
    task: &Task,
    device: &Device,
    report: &Reporter,
) -> anyhow::Result<(EfficientNetLite, bool)> {
    let classes = task.labels.len();
    device.seed(task.seed);
    let fresh = EfficientNetLite::lite0(classes, device);
    if let Some(base_id) = task.base_model_id {
        let (base, meta, weights) = run::base_version(s, task, base_id, report).await?;
        let dev = device.clone();
        let base_model = tokio::task::spawn_blocking(move || {
            artifact::load_weights(weights, meta.labels.len(), &dev)
        })
        .await??;
        let fc = trainer::remap_head(&base_model.fc, &base.labels, &task.labels, &fresh.fc);
        return Ok((EfficientNetLite { fc, ..base_model }, base.pretrained));
    }
    if !s.config.pretrained {
        report.log(
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
            report.log("backbone: EfficientNet-Lite0 with ImageNet weights".into());
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
            report.log(format!(
                "pretrained weights unavailable ({e:#}); training from scratch, expect lower accuracy"
            ));
            Ok((fresh, false))
        }
    }
}
