//! The detector's training loop, on whatever burn device the worker chose, on a blocking
//! thread.
//!
//! 1. **Neck and head** on the frozen ImageNet backbone: the backbone's three pyramid taps
//!    are computed once per training image and its mirror image, then the feature pyramid
//!    and the FCOS head train on them for many cheap epochs (on the CPU on the executor's
//!    kernels, `HeadTrainer`; on a GPU through burn).
//! 2. **Fine-tuning**: the preset's last backbone stages, the neck and the head train on
//!    augmented images (scale/crop jitter, mirror, colour; boxes move with the pixels).
//!
//! Both phases are early-stopped on validation mAP@0.5 and keep the best weights; the time
//! budget is a hard deadline checked before every step, and so is a stop request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use shared::detect::{self, Evaluated, Point, Rect};
use shared::model::Detector;
use shared::model::detector::taps_end;
use shared::model::losses::{DetectionTargets, TargetValues, fcos_loss, fcos_loss_grad};
use shared::train::{DetectionMetrics, EvalBox, EvalImage};

use super::data::{self, Data};
use crate::serve::engine::Network;
use crate::train::classification::data::push_plain;
use crate::train::run::{Plan, Run, Signal};
use shared::exec::Scratch;
use shared::exec::detector::{DetectorNet, Tap, nchw};
use shared::exec::head_training::HeadTrainer;

pub struct Outcome {
    pub model: Detector,
    pub metrics: DetectionMetrics,
    /// Ended by a stop request (the best model so far is still returned).
    pub stopped: bool,
}

const BATCH: usize = 8;
const HEAD_LR: f64 = 1e-3;
const HEAD_MAX_EPOCHS: u32 = 60;
const HEAD_PATIENCE: u32 = 6;
const TUNE_LR: f64 = 2e-4;
/// AdamW's decoupled weight decay, both phases.
const WEIGHT_DECAY: f32 = 1e-4;
const EVAL_BATCH: usize = 8;

/// The FCOS targets of a batch of images' boxes as plain floats, and each point's class
/// (`[image][point]` flattened; `None` for background) for the train accuracy.
pub fn target_values(
    boxes: &[Vec<(Rect, usize)>],
    classes: usize,
    points: &[Point],
    side: usize,
) -> (TargetValues, Vec<Option<usize>>) {
    let (n, p) = (boxes.len(), points.len());
    let mut t = TargetValues::background(n, classes, p);
    let mut truth = Vec::with_capacity(n * p);
    for (i, b) in boxes.iter().enumerate() {
        let a = detect::assign(points, side, b);
        truth.extend_from_slice(&a.class);
        for j in 0..p {
            if let Some(c) = a.class[j] {
                t.positives += 1;
                t.classes[(i * classes + c) * p + j] = 1.0;
                for (k, d) in a.ltrb[j].iter().enumerate() {
                    t.ltrb[(i * 4 + k) * p + j] = *d;
                }
                t.centerness[i * p + j] = a.centerness[j];
                t.positive[i * p + j] = 1.0;
            }
        }
    }
    t.centerness_sum = t.centerness.iter().sum();
    (t, truth)
}

/// [`target_values`] as tensors on `device`.
pub fn batch_targets(
    boxes: &[Vec<(Rect, usize)>],
    classes: usize,
    points: &[Point],
    side: usize,
    device: &Device,
) -> (DetectionTargets, Vec<Option<usize>>) {
    let (t, truth) = target_values(boxes, classes, points, side);
    (t.tensors(device), truth)
}

/// Each image's head output `[classes + 5, points]`, flattened.
fn per_image(out: Tensor<3>) -> Vec<Vec<f32>> {
    let [n, ..] = out.dims();
    let v: Vec<f32> = out.into_data().try_into_vec_as::<f32>().unwrap_or_default();
    let k = v.len() / n.max(1);
    v.chunks(k.max(1)).map(<[f32]>::to_vec).collect()
}

/// Positive points whose highest class logit is their box's class, and positive points.
/// `truth`: each point's class, as [`batch_targets`] gives it.
fn positive_accuracy(outs: &[Vec<f32>], truth: &[Option<usize>], classes: usize) -> (usize, usize) {
    let (mut right, mut total) = (0, 0);
    for (i, o) in outs.iter().enumerate() {
        let p = o.len() / (classes + 5);
        for j in 0..p {
            if let Some(truth) = truth[i * p + j] {
                total += 1;
                let best = (0..classes)
                    .max_by(|&a, &b| o[a * p + j].total_cmp(&o[b * p + j]))
                    .unwrap_or(0);
                right += usize::from(best == truth);
            }
        }
    }
    (right, total)
}

fn relative(b: &Rect, side: f32, label: &str, conf: f64) -> EvalBox {
    let r = b.scaled(1.0 / side, 1.0 / side);
    let q = |x: f32| (f64::from(x) * 1e4).round() / 1e4;
    EvalBox {
        label: label.to_owned(),
        // Unrounded: the served threshold is one of these scores, compared exactly.
        conf,
        xmin: q(r.x0),
        ymin: q(r.y0),
        xmax: q(r.x1),
        ymax: q(r.y1),
    }
}

/// Metrics of a model in eval mode on the validation samples: losses, mAP and the rest, and
/// the boxes per image for the model page. The head outputs come from the predict API's own
/// path ([`DetectorNet`]: the backbone on the serving executor), so the metrics describe
/// exactly what a service of the version answers.
pub fn evaluate(model: &Detector, data: &Data, device: &Device) -> DetectionMetrics {
    let classes = data.labels.len();
    let net = DetectorNet::new(model.clone());
    let mut scratch = Scratch::default();
    let (mut cls, mut loc, mut ctr, mut n) = (0.0, 0.0, 0.0, 0.0);
    let mut evals = Vec::with_capacity(data.val.len());
    let mut images = Vec::with_capacity(data.val.len());
    for chunk in data.val.chunks(EVAL_BATCH) {
        let side = chunk[0].image.width() as usize;
        let pts = detect::points(side);
        let mut buf = Vec::with_capacity(chunk.len() * 3 * side * side);
        for s in chunk {
            push_plain(&s.image.rgb(), &mut buf);
        }
        let outs = net.run(&buf, chunk.len(), side, &mut scratch);
        let out = Tensor::<3>::from_data(
            TensorData::new(outs.concat(), [chunk.len(), classes + 5, pts.len()]),
            device,
        );
        let boxes: Vec<Vec<(Rect, usize)>> = chunk.iter().map(|s| s.boxes.clone()).collect();
        let (t, _) = batch_targets(&boxes, classes, &pts, side, device);
        let loss = fcos_loss(out, &t);
        let k = chunk.len() as f64;
        cls += f64::from(loss.classification.into_scalar::<f32>()) * k;
        loc += f64::from(loss.localization.into_scalar::<f32>()) * k;
        ctr += f64::from(loss.centerness.into_scalar::<f32>()) * k;
        n += k;
        for (s, o) in chunk.iter().zip(outs) {
            let found = detect::decode(&o, classes, &pts, side, detect::MIN_SCORE);
            let sf = side as f32;
            images.push(EvalImage {
                image_id: s.image_id,
                truth: s
                    .boxes
                    .iter()
                    .map(|(r, c)| relative(r, sf, &data.labels[*c], 1.0))
                    .collect(),
                predicted: found
                    .iter()
                    .map(|d| relative(&d.rect, sf, &data.labels[d.class], f64::from(d.score)))
                    .collect(),
            });
            evals.push(Evaluated {
                truth: s.boxes.clone(),
                found,
            });
        }
    }
    let n = f64::max(n, 1.0);
    let mut m = detect::evaluate(&data.labels, &evals, None);
    m.classification_loss = cls / n;
    m.localization_loss = loc / n;
    m.loss = (cls + loc + ctr) / n;
    m.validation_images = data.val.len() as u64;
    m.train_images = data.train.len() as u64;
    m.images = images;
    m
}

/// One epoch's running figures, and what happens at each step and at its end.
struct Epoch {
    started: Instant,
    classes: usize,
    loss_sum: f64,
    right: usize,
    positives: usize,
    images: usize,
}

impl Epoch {
    fn new(classes: usize) -> Self {
        Self {
            started: Instant::now(),
            classes,
            loss_sum: 0.0,
            right: 0,
            positives: 0,
            images: 0,
        }
    }

    /// One optimiser step on the FCOS loss of `out` (the trainable `net`'s output).
    fn learn(
        &mut self,
        run: &mut Run<'_>,
        net: Detector,
        optim: &mut ModuleOptimizer,
        lr: f64,
        out: Tensor<3>,
        (targets, truth): &(DetectionTargets, Vec<Option<usize>>),
    ) -> Detector {
        let loss = fcos_loss(out.clone(), targets).total();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let net = optim.step(lr, net, grads);
        self.record(
            run,
            f64::from(loss.into_scalar::<f32>()),
            &per_image(out.inner()),
            truth,
        );
        net
    }

    /// Counts a step taken: its loss and the outputs of its images.
    fn record(&mut self, run: &mut Run<'_>, loss: f64, outs: &[Vec<f32>], truth: &[Option<usize>]) {
        run.step += 1;
        self.loss_sum += loss * outs.len() as f64;
        let (r, p) = positive_accuracy(outs, truth, self.classes);
        self.right += r;
        self.positives += p;
        self.images += outs.len();
    }

    /// Evaluates `current` on the validation images and reports the epoch.
    fn end(
        &self,
        run: &mut Run<'_>,
        phase: &str,
        epoch: u32,
        current: &Detector,
        data: &Data,
    ) -> DetectionMetrics {
        let val = evaluate(current, data, &run.device);
        let secs = self.started.elapsed().as_secs_f64();
        let train = (
            self.loss_sum / self.images.max(1) as f64,
            self.right as f64 / self.positives.max(1) as f64,
        );
        run.progress(phase, epoch, secs, train, Some((val.loss, val.map)));
        run.log(format!(
            "{phase} epoch {epoch}: train loss {:.4} | validation loss {:.4}, mAP@0.5 {:.3} ({secs:.1} s)",
            train.0, val.loss, val.map,
        ));
        val
    }
}

/// The frozen backbone's taps of training views `views` (view `v` is image `v / 2`,
/// mirrored when `v` is odd) at the model input size (NHWC, with their `(h, w, c)`), with
/// each view's boxes.
fn view_taps(
    frozen: &DetectorNet,
    data: &Data,
    views: &[usize],
    size: u32,
    scratch: &mut Scratch,
) -> (Vec<LevelTaps>, Vec<ViewBoxes>) {
    let side = size as usize;
    let mut buf = Vec::with_capacity(views.len() * 3 * side * side);
    let boxes = views
        .iter()
        .map(|&v| {
            let s = &data.train[v / 2];
            let rgb = s.image.rgb();
            let img =
                image::imageops::resize(&*rgb, size, size, image::imageops::FilterType::Triangle);
            let boxes = data::rescaled(&s.boxes, rgb.width(), size);
            if v % 2 == 1 {
                let (mirror, mirror_boxes) = data::flipped(&img, &boxes);
                push_plain(&mirror, &mut buf);
                mirror_boxes
            } else {
                push_plain(&img, &mut buf);
                boxes
            }
        })
        .collect();
    (frozen.taps(&buf, views.len(), side, scratch), boxes)
}

/// One pyramid level's taps of a batch (NHWC) and their `(h, w, c)`.
type LevelTaps = (Vec<f32>, (usize, usize, usize));
/// One view's boxes and their classes.
type ViewBoxes = Vec<(Rect, usize)>;

/// One view of a training image with its backbone taps (NHWC).
struct Cached {
    taps: Vec<Vec<f32>>,
    boxes: Vec<(Rect, usize)>,
}

/// Trains `model` (backbone weights loaded, neck and head new or from a base version) on
/// `data`. `None` when stopped or out of time before any epoch ended.
pub fn train(
    model: Detector,
    data: &Data,
    plan: &Plan,
    device: &Device,
    stop: &AtomicBool,
    emit: &dyn Fn(Signal),
) -> anyhow::Result<Option<Outcome>> {
    device.seed(plan.seed);
    let mut run = Run::new(plan, device, stop, emit);
    run.metric = Some("mAP@0.5");
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let side = plan.image_size as usize;
    let pts = detect::points(side);
    let classes = data.labels.len();
    let ad = device.clone().autodiff();

    // Phase 1: taps of the frozen backbone for a plain and a mirrored view of each training
    // image (view `v` is image `v / 2`, mirrored when odd), from the serving executor
    // (BatchNorm folded; several times faster than burn's CPU backend, on any device):
    // cached when the task's memory budget has room for them, else recomputed per batch.
    let frozen = DetectorNet::new(model.valid());
    let mut scratch = Scratch::default();
    let views = data.train.len() * 2;
    let (first, _) = view_taps(&frozen, data, &[0], plan.image_size, &mut scratch);
    let tap_dims: Vec<(usize, usize, usize)> = first.iter().map(|t| t.1).collect();
    let cache_bytes = views * first.iter().map(|t| t.0.len()).sum::<usize>() * 4;
    let mut cached: Option<Vec<Cached>> = None;
    if data.store.reserve(cache_bytes as u64) {
        let t0 = Instant::now();
        let mut all = Vec::with_capacity(views);
        let ids: Vec<usize> = (0..views).collect();
        for (i, chunk) in ids.chunks(EVAL_BATCH).enumerate() {
            if run.should_end() {
                return Ok(None);
            }
            let (taps, boxes) = view_taps(&frozen, data, chunk, plan.image_size, &mut scratch);
            let per_level: Vec<Vec<Vec<f32>>> = taps
                .into_iter()
                .map(|(values, _)| {
                    let k = values.len() / chunk.len();
                    values.chunks(k).map(<[f32]>::to_vec).collect()
                })
                .collect();
            for (j, boxes) in boxes.into_iter().enumerate() {
                all.push(Cached {
                    taps: per_level.iter().map(|l| l[j].clone()).collect(),
                    boxes,
                });
            }
            if i % 8 == 7 {
                let done = ((i + 1) * EVAL_BATCH / 2).min(data.train.len());
                run.log(format!(
                    "backbone features: {done}/{} training images",
                    data.train.len()
                ));
            }
        }
        run.log(format!(
            "backbone features of {} training images (and mirror images) in {:.1} s",
            data.train.len(),
            t0.elapsed().as_secs_f64()
        ));
        cached = Some(all);
    } else {
        run.log(format!(
            "the backbone features of {} training images need {} MB, more than the memory \
             budget leaves (AUTOLEARN_TRAIN_MEMORY_MB): computed for each batch instead",
            data.train.len(),
            cache_bytes >> 20
        ));
    }

    // On the CPU the neck and head train on the executor's kernels (several times faster
    // than burn's autodiff there, see `HeadTrainer`); on a GPU through burn.
    let mut native = (*device == Device::flex()).then(|| HeadTrainer::new(&model));
    let mut net = model.clone().train();
    let mut optim = AdamWConfig::new().with_weight_decay(WEIGHT_DECAY).init();
    let mut best: Option<(Detector, f64)> = None;
    let mut since_best = 0;
    let mut order: Vec<usize> = (0..views).collect();
    let tuning = plan.tuned_stages > 0 && plan.max_epochs != Some(0);
    let head_until = if tuning {
        let left = plan.deadline.saturating_duration_since(Instant::now());
        // At the latest after this share of the budget, so the backbone gets its turn.
        Instant::now() + left.mul_f64(plan.head_share)
    } else {
        plan.deadline
    };
    'head: for epoch in 1..=HEAD_MAX_EPOCHS {
        order.shuffle(&mut rng);
        let mut stats = Epoch::new(classes);
        let mut last = false;
        for batch in order.chunks(BATCH) {
            if run.should_end() {
                break 'head;
            }
            // Out of this phase's time: this epoch is evaluated and is the last.
            if Instant::now() >= head_until && stats.images > 0 {
                last = true;
                break;
            }
            let n = batch.len();
            // Each level's taps of the batch (NHWC), and the views' boxes.
            let (taps, boxes): (Vec<Vec<f32>>, Vec<ViewBoxes>) = match &cached {
                Some(cached) => (
                    (0..tap_dims.len())
                        .map(|l| {
                            batch
                                .iter()
                                .flat_map(|&i| cached[i].taps[l].iter().copied())
                                .collect()
                        })
                        .collect(),
                    batch.iter().map(|&i| cached[i].boxes.clone()).collect(),
                ),
                None => {
                    let (taps, boxes) =
                        view_taps(&frozen, data, batch, plan.image_size, &mut scratch);
                    (taps.into_iter().map(|(values, _)| values).collect(), boxes)
                }
            };
            let (values, truth) = target_values(&boxes, classes, &pts, side);
            match &mut native {
                Some(trainer) => {
                    let levels: Vec<(&[f32], (usize, usize))> = taps
                        .iter()
                        .zip(&tap_dims)
                        .map(|(v, &(h, w, _))| (v.as_slice(), (h, w)))
                        .collect();
                    let mut taken = None;
                    trainer.gradients(&levels, n, |out| {
                        let (loss, grad) = fcos_loss_grad(out, &values);
                        taken = Some((loss, out.to_vec()));
                        grad
                    });
                    trainer.adamw(HEAD_LR, WEIGHT_DECAY);
                    let (loss, out) = taken.expect("the step computed its loss");
                    let outs: Vec<Vec<f32>> =
                        out.chunks(out.len() / n).map(<[f32]>::to_vec).collect();
                    stats.record(&mut run, loss, &outs, &truth);
                }
                None => {
                    let taps = taps
                        .iter()
                        .zip(&tap_dims)
                        .map(|(v, &(h, w, c))| {
                            Tensor::<4>::from_data(
                                TensorData::new(nchw(v, n, (h, w, c)), [n, c, h, w]),
                                &ad,
                            )
                        })
                        .collect();
                    let out = net.detect(taps);
                    let targets = (values.tensors(&ad), truth);
                    net = stats.learn(&mut run, net, &mut optim, HEAD_LR, out, &targets);
                }
            }
        }
        let current = match &native {
            Some(trainer) => trainer.write_to(model.clone()),
            None => net.valid(),
        };
        let val = stats.end(&mut run, "head", epoch, &current, data);
        if best.as_ref().is_none_or(|(_, b)| val.map > *b + 1e-4) {
            best = Some((current, val.map));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= HEAD_PATIENCE {
                break;
            }
        }
        if last {
            break;
        }
    }
    drop((cached, frozen, scratch, native));
    let Some((mut best, mut best_map)) = best else {
        return Ok(None);
    };
    run.log(format!(
        "neck and head trained: validation mAP@0.5 {best_map:.3}"
    ));

    // Phase 2: fine-tuning the top of the backbone with the neck and head.
    let mut stopped = stop.load(Ordering::Relaxed);
    if tuning && !run.should_end() {
        let first = Detector::first_tuned_block(plan.tuned_stages);
        run.log(format!(
            "fine-tuning backbone blocks {first}..{} with the neck and head on augmented images",
            taps_end()
        ));
        // The frozen bottom runs on the serving executor (BatchNorm folded: the same as
        // burn's eval mode, which fine-tuning keeps for the whole backbone).
        let bottom = DetectorNet::new(best.clone());
        let mut scratch = Scratch::default();
        let mut tuned = best.clone().train().for_finetuning(first);
        let mut optim = AdamWConfig::new().with_weight_decay(WEIGHT_DECAY).init();
        let mut since_best = 0;
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        let max_epochs = plan.max_epochs.unwrap_or(u32::MAX);
        'epochs: for epoch in 1..=max_epochs {
            order.shuffle(&mut rng);
            let mut stats = Epoch::new(classes);
            for batch in order.chunks(BATCH) {
                if run.should_end() {
                    break 'epochs;
                }
                let mut buf = Vec::with_capacity(batch.len() * 3 * side * side);
                let boxes: Vec<Vec<(Rect, usize)>> = batch
                    .iter()
                    .map(|&i| {
                        data::push_augmented(&data.train[i], plan.image_size, &mut rng, &mut buf)
                    })
                    .collect();
                let n = batch.len();
                let (h, given) = bottom.bottom(&buf, n, side, &mut scratch, first);
                let tensor = |t: Tap| {
                    let [c, h, w] = t.dims;
                    Tensor::<4>::from_data(TensorData::new(t.values, [n, c, h, w]), &ad)
                };
                let given = given.into_iter().map(tensor).collect();
                let out = tuned.detect(tuned.taps_from(tensor(h), first, given));
                let targets = batch_targets(&boxes, classes, &pts, side, &ad);
                tuned = stats.learn(&mut run, tuned, &mut optim, TUNE_LR, out, &targets);
            }
            let current = tuned.valid();
            let val = stats.end(&mut run, "finetune", epoch, &current, data);
            if val.map > best_map + 1e-4 {
                best_map = val.map;
                best = current;
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= plan.patience {
                    run.log(format!(
                        "early stop: validation mAP has not improved for {} epochs",
                        plan.patience
                    ));
                    break;
                }
            }
        }
        stopped = stop.load(Ordering::Relaxed);
    }
    run.log_ending(stopped);
    // Evaluation on the validation split only, of the weights exactly as stored.
    let best = shared::model::artifact::to_storage_precision(best);
    let metrics = evaluate(&best, data, device);
    Ok(Some(Outcome {
        model: best,
        metrics,
        stopped,
    }))
}

/// The class rows of `base`'s classification output (trained for `base_labels`) moved to
/// `labels`' order; new labels keep `fresh`'s initialisation (incremental training).
pub fn remap_classes(
    base: &Detector,
    base_labels: &[String],
    labels: &[String],
    fresh: &Detector,
) -> burn::nn::conv::Conv2d {
    use burn::module::Param;
    let pick = |i: usize, l: &String| {
        base_labels
            .iter()
            .position(|b| b == l)
            .map_or((false, i), |j| (true, j))
    };
    let wb = base.head.cls_out.weight.val();
    let wf = fresh.head.cls_out.weight.val();
    let rows: Vec<Tensor<4>> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| match pick(i, l) {
            (true, j) => wb.clone().narrow(0, j, 1),
            (false, i) => wf.clone().narrow(0, i, 1),
        })
        .collect();
    let bias = match (&base.head.cls_out.bias, &fresh.head.cls_out.bias) {
        (Some(bb), Some(bf)) => {
            let (bb, bf) = (bb.val(), bf.val());
            let parts: Vec<Tensor<1>> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| match pick(i, l) {
                    (true, j) => bb.clone().narrow(0, j, 1),
                    (false, i) => bf.clone().narrow(0, i, 1),
                })
                .collect();
            Some(Param::from_tensor(Tensor::cat(parts, 0)))
        }
        _ => None,
    };
    let mut conv = fresh.head.cls_out.clone();
    conv.weight = Param::from_tensor(Tensor::cat(rows, 0));
    conv.bias = bias;
    conv
}
