//! The training loop: transfer learning in two phases, on whatever burn device the worker
//! chose, on a blocking thread.
//!
//! 1. **Head**: the backbone is frozen, so its pooled features are computed once per
//!    training image (and its mirror image) and a new linear head is trained on them: many
//!    cheap epochs, early-stopped on validation loss.
//! 2. **Fine-tuning**: the preset's last stages, the head convolution and the head train on
//!    augmented images; the frozen stem and early blocks run without an autodiff graph and
//!    their output enters the trainable part as a constant. Early stopping on validation
//!    loss (patience in epochs); the best weights by validation loss are kept.
//!
//! The time budget is a hard deadline checked before every step; a stop request is too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Param;
use burn::nn::Linear;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use shared::model::efficientnet::{FEATURES, stage_starts};
use shared::model::{EfficientNetLite, FusedEfficientNetLite};
use shared::preprocess::softmax;
use shared::train::ClassificationMetrics;

use super::data::{self, Data, Sample};
use super::metrics::{self, Prediction};
use crate::train::run::{Plan, Run, Signal};
use shared::exec::{NativeNet, Scratch};

pub struct Outcome {
    pub model: EfficientNetLite,
    pub metrics: ClassificationMetrics,
    /// Ended by a stop request (the best model so far is still returned).
    pub stopped: bool,
}

const HEAD_BATCH: usize = 32;
const HEAD_MAX_EPOCHS: u32 = 150;
const HEAD_PATIENCE: u32 = 15;
const HEAD_LR: f64 = 3e-3;
const TUNE_BATCH: usize = 16;
const TUNE_LR: f64 = 3e-4;
/// Images per forward pass when only predicting.
const EVAL_BATCH: usize = 16;

/// Class probabilities of samples already at the input size, with a model in eval mode, on
/// the training device (the folded model, as served, but through burn: early stopping).
pub fn predict(model: &EfficientNetLite, samples: &[Sample], device: &Device) -> Vec<Vec<f32>> {
    let model = FusedEfficientNetLite::new(model);
    let mut out = Vec::with_capacity(samples.len());
    for (n, side, buf) in eval_batches(samples) {
        let x = Tensor::<4>::from_data(TensorData::new(buf, [n, 3, side, side]), device);
        out.extend(rows(model.forward(x)).iter().map(|l| softmax(l)));
    }
    out
}

/// Samples in evaluation batches: (images, side, their normalised floats end to end).
fn eval_batches(samples: &[Sample]) -> impl Iterator<Item = (usize, usize, Vec<f32>)> + '_ {
    samples.chunks(EVAL_BATCH).map(|chunk| {
        let side = chunk[0].image.width() as usize;
        let mut buf = Vec::with_capacity(chunk.len() * 3 * side * side);
        for s in chunk {
            data::push_plain(&s.image.rgb(), &mut buf);
        }
        (chunk.len(), side, buf)
    })
}

/// [`predict`] through the predict API's own executor (`shared::exec`, on the CPU), for the
/// metrics a model version keeps: they describe exactly what its service will answer.
pub fn predict_served(model: &EfficientNetLite, samples: &[Sample]) -> Vec<Vec<f32>> {
    let net = NativeNet::new(&FusedEfficientNetLite::new(model));
    let mut scratch = Scratch::default();
    let mut out = Vec::with_capacity(samples.len());
    for (n, side, buf) in eval_batches(samples) {
        let logits = net.forward(&buf, n, side, &mut scratch);
        out.extend(logits.chunks(net.classes()).map(softmax));
    }
    out
}

/// The rows of a `[n, k]` tensor.
fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, k] = t.dims();
    let v: Vec<f32> = t.into_data().try_into_vec_as::<f32>().unwrap_or_default();
    v.chunks(k.max(1)).map(<[f32]>::to_vec).collect()
}

/// Mean loss and accuracy of probabilities against classes.
fn loss_accuracy(probs: &[Vec<f32>], classes: impl Iterator<Item = usize>) -> (f64, f64) {
    let (mut loss, mut right, mut n) = (0.0, 0usize, 0usize);
    for (p, c) in probs.iter().zip(classes) {
        loss += metrics::nll(p, c);
        right += usize::from(metrics::argmax(p) == c);
        n += 1;
    }
    let n = n.max(1) as f64;
    (loss / n, right as f64 / n)
}

fn class_tensor(classes: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = classes.iter().map(|&c| c as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [classes.len()]), device)
}

/// Trains `model` (backbone weights loaded, head sized for `data.labels`) on `data`.
/// `None` when stopped or out of time before any head was trained.
pub fn train(
    model: EfficientNetLite,
    data: &Data,
    plan: &Plan,
    device: &Device,
    stop: &AtomicBool,
    emit: &dyn Fn(Signal),
) -> anyhow::Result<Option<Outcome>> {
    device.seed(plan.seed);
    let mut run = Run::new(plan, device, stop, emit);
    let mut rng = StdRng::seed_from_u64(plan.seed);

    // Phase 1: features of the frozen backbone (BatchNorm folded in), then the head.
    let eval = model.valid();
    let frozen = FusedEfficientNetLite::new(&eval);
    let mut feats: Vec<f32> = Vec::with_capacity(data.train.len() * 2 * FEATURES);
    let mut feat_classes = Vec::with_capacity(data.train.len() * 2);
    let t0 = Instant::now();
    for (i, chunk) in data.train.chunks(EVAL_BATCH / 2).enumerate() {
        if run.should_end() {
            return Ok(None);
        }
        let mut buf = Vec::new();
        for s in chunk {
            let img = resize(&s.image.rgb(), plan.image_size);
            data::push_plain(&img, &mut buf);
            data::push_flipped(&img, &mut buf);
            feat_classes.extend([s.class, s.class]);
        }
        let side = plan.image_size as usize;
        let x = Tensor::<4>::from_data(
            TensorData::new(buf, [chunk.len() * 2, 3, side, side]),
            device,
        );
        feats.extend(rows(frozen.features(x)).into_iter().flatten());
        if i % 4 == 3 {
            let done = ((i + 1) * EVAL_BATCH / 2).min(data.train.len());
            run.log(format!(
                "features: {done}/{} training images",
                data.train.len()
            ));
        }
    }
    run.log(format!(
        "backbone features of {} training images (and mirror images) in {:.1} s",
        data.train.len(),
        t0.elapsed().as_secs_f64()
    ));
    let val_x = val_features(&frozen, data, device);
    let val_classes: Vec<usize> = data.val.iter().map(|s| s.class).collect();

    let Some((fc, head_val)) = train_head(
        &mut run,
        eval.fc.clone(),
        &eval,
        &feats,
        &feat_classes,
        &val_x,
        &val_classes,
        &mut rng,
    )?
    else {
        return Ok(None);
    };
    let mut best = EfficientNetLite { fc, ..eval };
    let mut best_loss = head_val.0;
    run.log(format!(
        "head trained: validation loss {:.4}, accuracy {:.1}%",
        head_val.0,
        head_val.1 * 100.0
    ));

    // Phase 2: fine-tuning the top of the backbone.
    let mut stopped = stop.load(Ordering::Relaxed);
    if plan.tuned_stages > 0 && !run.should_end() && plan.max_epochs != Some(0) {
        let starts = stage_starts();
        let first = starts[starts.len() - 1 - plan.tuned_stages];
        run.log(format!(
            "fine-tuning blocks {first}..{} and the head on augmented images",
            starts[starts.len() - 1]
        ));
        let bottom = FusedEfficientNetLite::new(&best.valid());
        let mut tuned = best.clone().train().for_finetuning(first);
        let mut optim = AdamWConfig::new()
            .with_weight_decay(1e-4)
            .with_epsilon(1e-8)
            .init();
        let ad = device.clone().autodiff();
        let ce = CrossEntropyLossConfig::new()
            .with_smoothing(Some(0.1))
            .init(&ad);
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        let mut since_best = 0;
        let max_epochs = plan.max_epochs.unwrap_or(u32::MAX);
        let side = plan.image_size as usize;
        'epochs: for epoch in 1..=max_epochs {
            let t = Instant::now();
            order.shuffle(&mut rng);
            let (mut loss_sum, mut right, mut seen) = (0.0, 0usize, 0usize);
            for batch in order.chunks(TUNE_BATCH) {
                if run.should_end() {
                    break 'epochs;
                }
                let mut buf = Vec::with_capacity(batch.len() * 3 * side * side);
                let classes: Vec<usize> = batch.iter().map(|&i| data.train[i].class).collect();
                for &i in batch {
                    data::push_augmented(
                        &data.train[i].image.rgb(),
                        plan.image_size,
                        &mut rng,
                        &mut buf,
                    );
                }
                let x = Tensor::<4>::from_data(
                    TensorData::new(buf, [batch.len(), 3, side, side]),
                    device,
                );
                let h = bottom.bottom(x, first).autodiff();
                let logits = tuned.classify(tuned.top(h, first));
                let loss = ce.forward(logits.clone(), class_tensor(&classes, &ad));
                let grads = GradientsParams::from_grads(loss.backward(), &tuned);
                tuned = optim.step(TUNE_LR, tuned, grads);
                run.step += 1;
                let l: f64 = loss.into_scalar::<f32>().into();
                let probs: Vec<Vec<f32>> =
                    rows(logits.inner()).iter().map(|r| softmax(r)).collect();
                loss_sum += l * batch.len() as f64;
                right += probs
                    .iter()
                    .zip(&classes)
                    .filter(|(p, c)| metrics::argmax(p) == **c)
                    .count();
                seen += batch.len();
            }
            let current = tuned.valid();
            let probs = predict(&current, &data.val, device);
            let val = loss_accuracy(&probs, val_classes.iter().copied());
            let train_stats = (
                loss_sum / seen.max(1) as f64,
                right as f64 / seen.max(1) as f64,
            );
            run.progress(
                "finetune",
                epoch,
                t.elapsed().as_secs_f64(),
                train_stats,
                Some(val),
            );
            run.log(format!(
                "epoch {epoch}: train loss {:.4} acc {:.1}% | validation loss {:.4} acc {:.1}% ({:.1} s)",
                train_stats.0,
                train_stats.1 * 100.0,
                val.0,
                val.1 * 100.0,
                t.elapsed().as_secs_f64()
            ));
            if val.0 < best_loss - 1e-4 {
                best_loss = val.0;
                best = current;
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= plan.patience {
                    run.log(format!(
                        "early stop: validation loss has not improved for {} epochs",
                        plan.patience
                    ));
                    break;
                }
            }
        }
        stopped = stop.load(Ordering::Relaxed);
    }
    run.log_ending(stopped);

    // Evaluation on the validation split only, of the weights exactly as stored and served,
    // by the executor that serves them.
    let best = shared::model::artifact::to_storage_precision(best);
    let probs = predict_served(&best, &data.val);
    let preds: Vec<Prediction> = data
        .val
        .iter()
        .zip(probs)
        .map(|(s, probs)| Prediction {
            image_id: s.image_id,
            truth: s.class,
            probs,
        })
        .collect();
    let mut m = metrics::evaluate(&data.labels, &preds);
    m.train_images = data.train.len() as u64;
    Ok(Some(Outcome {
        model: best,
        metrics: m,
        stopped,
    }))
}

fn resize(rgb: &image::RgbImage, side: u32) -> image::RgbImage {
    if rgb.width() == side {
        return rgb.clone();
    }
    image::imageops::resize(rgb, side, side, image::imageops::FilterType::Triangle)
}

/// Pooled features of the validation images, `[n, 1280]`.
fn val_features(eval: &FusedEfficientNetLite, data: &Data, device: &Device) -> Tensor<2> {
    let mut parts = Vec::new();
    for chunk in data.val.chunks(EVAL_BATCH) {
        let side = chunk[0].image.width() as usize;
        let mut buf = Vec::new();
        for s in chunk {
            data::push_plain(&s.image.rgb(), &mut buf);
        }
        let x = Tensor::<4>::from_data(TensorData::new(buf, [chunk.len(), 3, side, side]), device);
        parts.push(eval.features(x));
    }
    Tensor::cat(parts, 0)
}

/// Trains the linear head on fixed features; returns the head with the lowest validation
/// loss and that loss and accuracy.
#[allow(clippy::too_many_arguments)]
fn train_head(
    run: &mut Run<'_>,
    fc: Linear,
    eval: &EfficientNetLite,
    feats: &[f32],
    classes: &[usize],
    val_x: &Tensor<2>,
    val_classes: &[usize],
    rng: &mut StdRng,
) -> anyhow::Result<Option<(Linear, (f64, f64))>> {
    let ad = run.device.clone().autodiff();
    let ce = CrossEntropyLossConfig::new()
        .with_smoothing(Some(0.1))
        .init(&ad);
    let mut fc = fc.train();
    let mut optim = AdamWConfig::new()
        .with_weight_decay(1e-4)
        .with_epsilon(1e-8)
        .init();
    let n = classes.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut best: Option<(Linear, (f64, f64))> = None;
    let mut since_best = 0;
    for epoch in 1..=HEAD_MAX_EPOCHS {
        let t = Instant::now();
        order.shuffle(rng);
        let (mut loss_sum, mut right) = (0.0, 0usize);
        for batch in order.chunks(HEAD_BATCH) {
            if run.should_end() {
                return Ok(best);
            }
            let mut x = Vec::with_capacity(batch.len() * FEATURES);
            for &i in batch {
                x.extend_from_slice(&feats[i * FEATURES..(i + 1) * FEATURES]);
            }
            let c: Vec<usize> = batch.iter().map(|&i| classes[i]).collect();
            let x = Tensor::<2>::from_data(TensorData::new(x, [batch.len(), FEATURES]), &ad);
            let logits = fc.forward(eval.dropout.forward(x));
            let loss = ce.forward(logits.clone(), class_tensor(&c, &ad));
            let grads = GradientsParams::from_grads(loss.backward(), &fc);
            fc = optim.step(HEAD_LR, fc, grads);
            run.step += 1;
            loss_sum += f64::from(loss.into_scalar::<f32>()) * batch.len() as f64;
            right += rows(logits.inner())
                .iter()
                .zip(&c)
                .filter(|(p, c)| metrics::argmax(p) == **c)
                .count();
        }
        let head = fc.valid();
        let probs: Vec<Vec<f32>> = rows(head.forward(val_x.clone()))
            .iter()
            .map(|r| softmax(r))
            .collect();
        let val = loss_accuracy(&probs, val_classes.iter().copied());
        let train_stats = (loss_sum / n as f64, right as f64 / n as f64);
        if epoch % 5 == 0 || epoch == 1 {
            run.progress(
                "head",
                epoch,
                t.elapsed().as_secs_f64(),
                train_stats,
                Some(val),
            );
        }
        if best.as_ref().is_none_or(|(_, b)| val.0 < b.0 - 1e-4) {
            best = Some((head, val));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= HEAD_PATIENCE {
                run.progress(
                    "head",
                    epoch,
                    t.elapsed().as_secs_f64(),
                    train_stats,
                    Some(val),
                );
                break;
            }
        }
    }
    Ok(best)
}

/// A head for `labels` that keeps the rows (columns, in burn's `[in, out]` layout) of labels
/// `base` already knew; new labels start from a fresh initialisation.
pub fn remap_head(
    base: &Linear,
    base_labels: &[String],
    labels: &[String],
    fresh: &Linear,
) -> Linear {
    let w_base = base.weight.val();
    let w_new = fresh.weight.val();
    let cols: Vec<Tensor<2>> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| match base_labels.iter().position(|b| b == l) {
            Some(j) => w_base.clone().narrow(1, j, 1),
            None => w_new.clone().narrow(1, i, 1),
        })
        .collect();
    let bias = match (&base.bias, &fresh.bias) {
        (Some(bb), Some(bf)) => {
            let (bb, bf) = (bb.val(), bf.val());
            let parts: Vec<Tensor<1>> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| match base_labels.iter().position(|b| b == l) {
                    Some(j) => bb.clone().narrow(0, j, 1),
                    None => bf.clone().narrow(0, i, 1),
                })
                .collect();
            Some(Param::from_tensor(Tensor::cat(parts, 0)))
        }
        _ => None,
    };
    Linear {
        weight: Param::from_tensor(Tensor::cat(cols, 1)),
        bias,
    }
}
