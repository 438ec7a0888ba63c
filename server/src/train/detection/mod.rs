//! Object detection: an FCOS detector on the EfficientNet-Lite0 ImageNet backbone
//! ([`shared::model::Detector`]), trained on the dataset's boxes and evaluated by mAP.

pub mod data;
pub mod trainer;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::prelude::*;
use shared::model::{Detector, DetectorConfig, EfficientNetLite};
use shared::train::{Metrics, Task};

use crate::AppState;
use crate::artifact;
use crate::train::run::{self, Plan, Reporter, Trained};
use crate::train::weights;

/// Loads the task's images and boxes, trains and evaluates; `None` when stopped or out of
/// time before a model existed.
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
        "validation ({} images): mAP@0.5 {:.3}, mAP@0.5:0.95 {:.3}, precision {:.3} and recall {:.3} at confidence {:.2}, loss {:.4}",
        m.validation_images, m.map, m.map_50_95, m.precision, m.recall, m.conf_threshold, m.loss,
    );
    let model = o.model;
    let weights = run::weights_of(model).await?;
    Ok(Some(Trained {
        weights,
        metrics: Metrics::Detection(m),
        architecture: DetectorConfig::for_preset(task.preset).architecture(),
        pretrained,
        stopped: o.stopped,
        summary,
        charset: Vec::new(),
    }))
}

/// The starting point: an earlier version (incremental: its whole detector, with class rows
/// for new labels), else the ImageNet backbone with a new neck and head, else random
/// initialisation (said in the log).
async fn initial_model(
    s: &AppState,
    task: &Task,
    device: &Device,
    report: &Reporter,
) -> anyhow::Result<(Detector, bool)> {
    let classes = task.labels.len();
    let config = DetectorConfig::for_preset(task.preset);
    device.seed(task.seed);
    let fresh = Detector::init(config, classes, device);
    if let Some(base_id) = task.base_model_id {
        let (base, meta, weights) = run::base_version(s, task, base_id, report).await?;
        let dev = device.clone();
        let base_model = tokio::task::spawn_blocking(move || {
            artifact::load_into(Detector::init(config, meta.labels.len(), &dev), weights)
        })
        .await??;
        let cls_out = trainer::remap_classes(&base_model, &base.labels, &task.labels, &fresh);
        let mut model = base_model;
        model.head.cls_out = cls_out;
        return Ok((model, base.pretrained));
    }
    if !s.config.pretrained {
        report.log(
            "backbone: random initialisation (AUTOLEARN_PRETRAINED=none); expect lower mAP".into(),
        );
        return Ok((fresh, false));
    }
    let dir = s.config.weights_dir.clone();
    let dev = device.clone();
    let loaded = tokio::task::spawn_blocking(move || -> anyhow::Result<EfficientNetLite> {
        let path = weights::ensure(&dir)?;
        weights::load_imagenet(&path, &dev)
    })
    .await?;
    match loaded {
        Ok(imagenet) => {
            report.log(format!(
                "backbone: EfficientNet-Lite0 with ImageNet weights; new {} neck and head",
                config.architecture()
            ));
            Ok((Detector::new(imagenet, config, classes, device), true))
        }
        Err(e) => {
            report.log(format!(
                "pretrained weights unavailable ({e:#}); training from scratch, expect lower mAP"
            ));
            Ok((fresh, false))
        }
    }
}
