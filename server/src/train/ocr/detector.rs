//! Fine-tunes the pretrained DB text detector on the user's boxes, so it learns where this
//! kind of text is (a plate, not the dealer's sign above it) and how tightly the user frames
//! it. The DB recipe for the probability map (Liao et al. 2020; PaddleOCR's `MakeShrinkMap`
//! and `DBLoss`): each true box shrunk by `D = A (1 - r²) / L` (r = 0.4) is text, the rest of
//! the page background; the loss is binary cross-entropy with online hard-negative mining
//! (at most three hard background pixels per text pixel) plus the dice loss. The exported
//! models carry only the probability branch, so the threshold map is not trained.
//!
//! Training views are whole pages scaled as serving scales them (the task's image size)
//! times 0.75-1.25, with colour jitter, one per step. Whole pages, not DB's usual crops:
//! the network's squeeze-excitation blocks pool over the whole image, and on crops around the
//! lines (tried first) the loss fell on the crops and rose on the pages. Rounds of 48 random
//! pages each end with the detector run on the whole validation pages as serving runs it:
//! the detection H-mean (IoU ≥ 0.5) picks the weights kept (the starting ones unless a round
//! beats them). The deadline and stop request are checked before every step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::model::ocr::{OcrReader, TextDetector};
use shared::ocr::{Quad, input, text_regions};

use super::evaluate::{detection_scores, match_quads};
use super::trainer::{LineSample, by_page};
use crate::train::run::{Plan, Run, Signal};

/// DB's shrink ratio for the text kernels.
pub const SHRINK_RATIO: f32 = 0.4;
/// Pages per round: validation (and early stopping) come after each round, an epoch on at
/// most this many pages, so big datasets are checked every few minutes.
const ROUND: usize = 48;
const LR: f64 = 1e-4;
/// Hard background pixels kept per text pixel.
const NEGATIVE_RATIO: f32 = 3.0;
/// Shrunk boxes thinner than this (map pixels) are too small to learn from: they are left
/// out of the loss rather than taught as background.
const MIN_TEXT_SIDE: f32 = 2.0;

/// What detector fine-tuning ended with.
pub struct Outcome {
    /// Validation detection H-mean of the kept weights and of the starting ones.
    pub hmean: f64,
    pub starting_hmean: f64,
    /// The validation map loss of the starting weights and after each round.
    pub starting_loss: f64,
    pub round_losses: Vec<f64>,
    /// Rounds trained (each [`ROUND`] pages at most; `plan.max_epochs` counts them).
    pub rounds: u32,
    pub stopped: bool,
}

/// A convex quad with every side moved inward by `A (1 - r²) / L`; `None` when nothing is
/// left of it.
pub fn shrink_quad(q: &Quad, ratio: f32) -> Option<Quad> {
    let area = polygon_area(q);
    let perimeter: f32 = (0..4).map(|i| dist(q[i], q[(i + 1) % 4])).sum();
    if area <= 0.0 || perimeter <= 0.0 {
        return None;
    }
    let d = area * (1.0 - ratio * ratio) / perimeter;
    // Orientation: inward is to the left of each side for counter-clockwise corners.
    let sign = if signed_area(q) > 0.0 { 1.0 } else { -1.0 };
    let side = |i: usize| {
        let (a, b) = (q[i], q[(i + 1) % 4]);
        let len = dist(a, b).max(f32::EPSILON);
        let n = [-(b[1] - a[1]) / len * sign, (b[0] - a[0]) / len * sign];
        let moved = |p: [f32; 2]| [p[0] + n[0] * d, p[1] + n[1] * d];
        (moved(a), moved(b))
    };
    let mut out = [[0.0; 2]; 4];
    for (i, corner) in out.iter_mut().enumerate() {
        *corner = intersect(side((i + 3) % 4), side(i))?;
    }
    // Sides that crossed over (the kernel vanished) flip the orientation.
    (signed_area(&out) * signed_area(q) > 0.0 && polygon_area(&out) >= 1.0).then_some(out)
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

fn signed_area(q: &Quad) -> f32 {
    0.5 * (0..4)
        .map(|i| {
            let (a, b) = (q[i], q[(i + 1) % 4]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f32>()
}

fn polygon_area(q: &Quad) -> f32 {
    signed_area(q).abs()
}

/// Where the lines through `a` and `b` cross.
fn intersect(a: ([f32; 2], [f32; 2]), b: ([f32; 2], [f32; 2])) -> Option<[f32; 2]> {
    let (p, r) = (a.0, [a.1[0] - a.0[0], a.1[1] - a.0[1]]);
    let (q, s) = (b.0, [b.1[0] - b.0[0], b.1[1] - b.0[1]]);
    let cross = r[0] * s[1] - r[1] * s[0];
    if cross.abs() < 1e-6 {
        return None;
    }
    let t = ((q[0] - p[0]) * s[1] - (q[1] - p[1]) * s[0]) / cross;
    Some([p[0] + t * r[0], p[1] + t * r[1]])
}

/// Whether `(x, y)` lies inside a convex quad (either orientation).
fn inside(q: &Quad, x: f32, y: f32) -> bool {
    let mut sign = 0.0f32;
    for i in 0..4 {
        let (a, b) = (q[i], q[(i + 1) % 4]);
        let c = (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
        if c != 0.0 {
            if sign != 0.0 && c.signum() != sign {
                return false;
            }
            sign = c.signum();
        }
    }
    true
}

/// Fills `value` into the `w × h` map's pixels whose centres lie in `q`.
fn fill(map: &mut [f32], w: usize, h: usize, q: &Quad, value: f32) {
    let (x0, x1) = q
        .iter()
        .fold((f32::MAX, f32::MIN), |r, p| (r.0.min(p[0]), r.1.max(p[0])));
    let (y0, y1) = q
        .iter()
        .fold((f32::MAX, f32::MIN), |r, p| (r.0.min(p[1]), r.1.max(p[1])));
    let clampi = |v: f32, n: usize| (v.max(0.0) as usize).min(n);
    for y in clampi(y0.floor(), h)..clampi(y1.ceil() + 1.0, h) {
        for x in clampi(x0.floor(), w)..clampi(x1.ceil() + 1.0, w) {
            if inside(q, x as f32 + 0.5, y as f32 + 0.5) {
                map[y * w + x] = value;
            }
        }
    }
}

/// DB's probability-map target for boxes in map pixels: 1 on each box's shrunk kernel,
/// and the loss mask (0 over boxes too small to learn from, 1 elsewhere).
pub fn text_target(quads: &[Quad], w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut target, mut mask) = (vec![0.0; w * h], vec![1.0; w * h]);
    for q in quads {
        let short = dist(q[0], q[3]).min(dist(q[1], q[2]));
        match shrink_quad(q, SHRINK_RATIO) {
            Some(k) if short * (1.0 - SHRINK_RATIO) >= MIN_TEXT_SIDE => {
                fill(&mut target, w, h, &k, 1.0)
            }
            _ => fill(&mut mask, w, h, q, 0.0),
        }
    }
    (target, mask)
}

/// The loss of a probability map `[n, 1, h, w]` against its target and mask: balanced
/// cross-entropy over the text pixels and the hardest `3 ×` as many background pixels, plus
/// the dice loss. `hard` marks the background pixels kept (chosen on the detached map).
pub fn map_loss(prob: Tensor<4>, target: Tensor<4>, mask: Tensor<4>, hard: Tensor<4>) -> Tensor<1> {
    let p = prob.clamp(1e-6, 1.0 - 1e-6);
    let bce = -(target.clone() * p.clone().log()
        + (target.clone().neg() + 1.0) * (p.clone().neg() + 1.0).log());
    let positive = target.clone() * mask.clone();
    let counted = positive.clone() + hard;
    let bce = (bce * counted.clone()).sum() / (counted.sum() + 1e-6);
    let inter = (p.clone() * positive.clone()).sum();
    let union = (p * mask).sum() + positive.sum() + 1e-6;
    let dice = (inter * 2.0 / union).neg() + 1.0;
    bce + dice
}

/// The background pixels online hard-negative mining keeps: the `3 × positives` (at least
/// one) whose cross-entropy is highest under `prob`.
pub fn hard_negatives(prob: &[f32], target: &[f32], mask: &[f32]) -> Vec<f32> {
    let positives = target
        .iter()
        .zip(mask)
        .filter(|&(&t, &m)| t > 0.5 && m > 0.5)
        .count();
    let bce = |p: f32| -(1.0 - p.clamp(1e-6, 1.0 - 1e-6)).ln();
    let mut negatives: Vec<f32> = (0..prob.len())
        .filter(|&i| target[i] < 0.5 && mask[i] > 0.5)
        .map(|i| bce(prob[i]))
        .collect();
    let keep = ((positives as f32 * NEGATIVE_RATIO) as usize)
        .max(1)
        .min(negatives.len());
    if keep == 0 {
        return vec![0.0; prob.len()];
    }
    let (_, &mut cut, _) = negatives.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
    let mut left = keep;
    (0..prob.len())
        .map(|i| {
            let take = target[i] < 0.5 && mask[i] > 0.5 && bce(prob[i]) >= cut && left > 0;
            left -= usize::from(take);
            f32::from(u8::from(take))
        })
        .collect()
}

/// A page as the detector sees it with its longer side at most `side`: the model input
/// floats, their size, and `lines` in their pixels.
fn page_input(img: &RgbImage, lines: &[Quad], side: u32) -> (Vec<f32>, (usize, usize), Vec<Quad>) {
    let (x, (w, h)) = input::det_input(img, side);
    let (sx, sy) = (
        w as f32 / img.width() as f32,
        h as f32 / img.height() as f32,
    );
    let scaled = lines
        .iter()
        .map(|q| q.map(|[x, y]| [x * sx, y * sy]))
        .collect();
    (x, (w as usize, h as usize), scaled)
}

/// One training view: the whole page scaled as serving scales it, its longer side the
/// detector's `max_side` times 0.75-1.25 (never above the photo's own), brightness and
/// contrast jittered.
fn training_view(
    img: &RgbImage,
    lines: &[Quad],
    max_side: u32,
    rng: &mut StdRng,
) -> (Vec<f32>, (usize, usize), Vec<Quad>) {
    let side = (max_side as f32 * rng.gen_range(0.75f32..1.25)) as u32;
    let (mut x, size, scaled) = page_input(img, lines, side);
    // The jitter `v · gain + bias` of 8-bit values, in the models' [-1, 1] range.
    let (gain, bias) = (rng.gen_range(0.7f32..1.3), rng.gen_range(-30.0f32..30.0));
    for v in &mut x {
        *v = (gain * (*v + 1.0) + bias / 127.5 - 1.0).clamp(-1.0, 1.0);
    }
    (x, size, scaled)
}

/// A validation page: the detector input, its target and mask, and the true boxes.
struct ValPage {
    x: Vec<f32>,
    size: (usize, usize),
    target: Vec<f32>,
    mask: Vec<f32>,
    truth: Vec<Quad>,
    image: (u32, u32),
}

fn val_pages(images: &[RgbImage], lines: &[LineSample], max_side: u32) -> Vec<ValPage> {
    by_page(lines)
        .into_iter()
        .map(|(i, on)| {
            let img = &images[i];
            let truth: Vec<Quad> = on.iter().map(|l| l.quad).collect();
            let (x, size, scaled) = page_input(img, &truth, max_side);
            let (target, mask) = text_target(&scaled, size.0, size.1);
            ValPage {
                x,
                size,
                target,
                mask,
                truth,
                image: (img.width(), img.height()),
            }
        })
        .collect()
}

/// The detector's map loss and detection H-mean (IoU ≥ 0.5, one to one) on whole
/// validation pages, run as serving runs it.
fn validate(detector: &TextDetector, reader: &OcrReader, pages: &[ValPage]) -> (f64, f64) {
    let device = &reader.device;
    let (mut loss, mut found, mut predicted, mut truths) = (0.0f64, 0usize, 0usize, 0usize);
    for p in pages {
        let (w, h) = p.size;
        let plane =
            |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, h, w]), device);
        let x = Tensor::<4>::from_data(TensorData::new(p.x.clone(), [1, 3, h, w]), device);
        let prob = detector.forward(x);
        let map: Vec<f32> = prob.clone().into_data().try_to_vec().expect("f32 map");
        let hard = hard_negatives(&map, &p.target, &p.mask);
        let l = map_loss(prob, plane(&p.target), plane(&p.mask), plane(&hard));
        loss += f64::from(l.into_scalar::<f32>());
        let regions = text_regions(&map, w, h, p.image.0, p.image.1, &reader.params);
        let quads: Vec<Quad> = regions.iter().map(|r| r.quad).collect();
        found += match_quads(&p.truth, &quads).iter().flatten().count();
        predicted += quads.len();
        truths += p.truth.len();
    }
    let (_, _, hmean) = detection_scores(found, predicted, truths);
    (loss / pages.len().max(1) as f64, hmean)
}

/// Fine-tunes `reader.detector` on the boxes of the `train` lines' pages until `plan`'s
/// deadline, epochs or patience end it; the kept weights (the best validation H-mean, the
/// starting ones on ties) are left in `reader`. `None` when stopped or out of time before the
/// first round ended (the starting detector is kept).
#[allow(clippy::too_many_arguments)]
pub fn train(
    reader: &mut OcrReader,
    images: &[RgbImage],
    train: &[LineSample],
    val: &[LineSample],
    plan: &Plan,
    device: &Device,
    stop: &AtomicBool,
    emit: &dyn Fn(Signal),
) -> anyhow::Result<Option<Outcome>> {
    device.seed(plan.seed);
    let mut run = Run::new(plan, device, stop, emit);
    run.metric = Some("detection H-mean");
    let mut rng = StdRng::seed_from_u64(plan.seed ^ 0xdb);
    let pages: Vec<(usize, Vec<Quad>)> = by_page(train)
        .into_iter()
        .map(|(i, on)| (i, on.iter().map(|l| l.quad).collect()))
        .collect();
    let checks = val_pages(images, val, reader.max_side);
    let (start_loss, start_hmean) = validate(&reader.detector, reader, &checks);
    run.log(format!(
        "text detector: starting H-mean {start_hmean:.3} on {} validation images (map loss {start_loss:.3}); fine-tuning on {} images",
        checks.len(),
        pages.len()
    ));
    let ad = device.clone().autodiff();
    let mut net = super::with_frozen_batch_norms(reader.detector.clone()).train();
    let mut optim: ModuleOptimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
    let mut best = (start_hmean, start_loss, reader.detector.clone());
    let mut tuned_kept = false;
    let (mut epoch, mut stale, mut stopped) = (0u32, 0u32, false);
    let mut round_losses = Vec::new();
    'epochs: while plan.max_epochs.is_none_or(|m| epoch < m) && stale < plan.patience {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..pages.len()).collect();
        rand::seq::SliceRandom::shuffle(&mut order[..], &mut rng);
        let (mut loss_sum, mut steps, mut hits, mut marked) = (0.0f64, 0usize, 0usize, 0usize);
        for &k in order.iter().take(ROUND) {
            if run.should_end() {
                stopped = stop.load(Ordering::Relaxed);
                break 'epochs;
            }
            let (img, quads) = (&images[pages[k].0], &pages[k].1);
            let (x, (w, h), moved) = training_view(img, quads, reader.max_side, &mut rng);
            let (target, mask) = text_target(&moved, w, h);
            let plane = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, h, w]), &ad);
            let input = Tensor::<4>::from_data(TensorData::new(x, [1, 3, h, w]), &ad);
            let prob = net.forward(input);
            let map: Vec<f32> = prob.clone().into_data().try_to_vec().expect("f32 map");
            let hard = hard_negatives(&map, &target, &mask);
            // Pixel agreement with the target at the serving threshold, for the curves.
            for (p, t) in map.iter().zip(&target) {
                let (p, t) = (*p > reader.params.thresh, *t > 0.5);
                hits += usize::from(p && t);
                marked += usize::from(p) + usize::from(t);
            }
            let loss = map_loss(prob, plane(target), plane(mask), plane(hard));
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(LR, net, grads);
            run.step += 1;
            loss_sum += f64::from(loss.into_scalar::<f32>());
            steps += 1;
        }
        epoch += 1;
        let current = net.valid();
        let (val_loss, hmean) = validate(&current, reader, &checks);
        round_losses.push(val_loss);
        let train_loss = loss_sum / steps.max(1) as f64;
        let pixel_f1 = 2.0 * hits as f64 / marked.max(1) as f64;
        run.progress(
            "detector",
            epoch,
            started.elapsed().as_secs_f64(),
            (train_loss, pixel_f1),
            Some((val_loss, hmean)),
        );
        run.log(format!(
            "detector round {epoch} ({steps} pages): map loss {train_loss:.3} (validation {val_loss:.3}), validation H-mean {hmean:.3} ({:.0} s)",
            started.elapsed().as_secs_f64()
        ));
        if hmean > best.0 || (hmean == best.0 && val_loss < best.1) {
            best = (hmean, val_loss, current);
            tuned_kept = true;
            stale = 0;
        } else {
            stale += 1;
        }
    }
    run.log_ending(stopped);
    if epoch == 0 {
        return Ok(None);
    }
    let (hmean, _, detector) = best;
    if !tuned_kept {
        run.log(
            "no round found the validation lines better than the starting detector; keeping it"
                .into(),
        );
    }
    reader.detector = detector;
    Ok(Some(Outcome {
        hmean,
        starting_hmean: start_hmean,
        starting_loss: start_loss,
        round_losses,
        rounds: epoch,
        stopped,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::train::ocr::test_plates;

    fn rect(x: f32, y: f32, w: f32, h: f32) -> Quad {
        [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    }

    fn close(a: Quad, b: Quad) -> bool {
        a.iter()
            .zip(&b)
            .all(|(p, q)| (p[0] - q[0]).abs() < 1e-3 && (p[1] - q[1]).abs() < 1e-3)
    }

    #[test]
    fn boxes_shrink_by_db_offset() {
        // 100 × 20: A = 2000, L = 240, D = 2000 × 0.84 / 240 = 7.
        let k = shrink_quad(&rect(10.0, 10.0, 100.0, 20.0), 0.4).unwrap();
        assert!(close(k, rect(17.0, 17.0, 86.0, 6.0)), "{k:?}");
        // Either corner order gives the same kernel.
        let mut ccw = rect(10.0, 10.0, 100.0, 20.0);
        ccw.reverse();
        let k2 = shrink_quad(&ccw, 0.4).unwrap();
        assert!((polygon_area(&k2) - 86.0 * 6.0).abs() < 1e-2, "{k2:?}");
        // A box turned 30° keeps its kernel's area: (100 - 14) × (20 - 14).
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let turned = rect(-50.0, -10.0, 100.0, 20.0).map(|[x, y]| [x * c - y * s, x * s + y * c]);
        let k3 = shrink_quad(&turned, 0.4).unwrap();
        assert!(
            (polygon_area(&k3) - 516.0).abs() < 0.1,
            "{}",
            polygon_area(&k3)
        );
        // A 1 px sliver has no kernel: ratio 0 moves each side in by A / L ≈ 0.5 px.
        assert_eq!(shrink_quad(&rect(0.0, 0.0, 100.0, 1.0), 0.0), None);
    }

    #[test]
    fn targets_fill_kernels_and_mask_tiny_boxes() {
        let (t, m) = text_target(
            &[rect(10.0, 10.0, 100.0, 20.0), rect(0.0, 50.0, 30.0, 2.0)],
            128,
            64,
        );
        // Kernel x 17..103, y 17..23: pixel centres inside are x 17..=102, y 17..=22.
        let text: usize = t.iter().filter(|&&v| v > 0.5).count();
        assert_eq!(text, 86 * 6);
        assert_eq!(t[20 * 128 + 17], 1.0);
        assert_eq!(t[20 * 128 + 16], 0.0);
        assert_eq!(t[16 * 128 + 50], 0.0);
        // The 2 px box is too thin: masked out, not taught as background.
        assert_eq!(m[51 * 128 + 10], 0.0);
        assert_eq!(m[40 * 128 + 10], 1.0);
        assert_eq!(t[51 * 128 + 10], 0.0);
    }

    #[test]
    fn hard_negatives_keep_three_per_text_pixel_the_worst_first() {
        let prob = [0.9, 0.1, 0.8, 0.2, 0.7, 0.05, 0.6, 0.3];
        let target = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0];
        // One text pixel: three background pixels, the most confident wrong ones (0.8, 0.7,
        // 0.3); index 6 is masked out.
        assert_eq!(
            hard_negatives(&prob, &target, &mask),
            vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
        );
    }

    #[test]
    fn map_loss_is_balanced_cross_entropy_plus_dice() {
        let device = Device::flex();
        let t = |v: [f32; 4]| {
            Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 2, 2]), &device)
        };
        let (prob, target) = (t([0.8, 0.4, 0.1, 0.5]), t([1.0, 0.0, 0.0, 0.0]));
        let (mask, hard) = (t([1.0, 1.0, 1.0, 0.0]), t([0.0, 1.0, 0.0, 0.0]));
        // BCE over pixels 0 and 1: (-ln 0.8 - ln 0.6) / 2; dice: 1 - 2 × 0.8 / (1.3 + 1).
        let bce = (-(0.8f32.ln()) - 0.6f32.ln()) / 2.0;
        let dice = 1.0 - 1.6 / 2.3;
        let got = map_loss(prob, target, mask, hard).into_scalar::<f32>();
        assert!((got - (bce + dice)).abs() < 1e-4, "{got} vs {}", bce + dice);
    }

    /// Fine-tuning learns: four rounds on 24 European plates, whose boxes frame the whole
    /// plate where the pretrained detector finds its characters and other text too, lower the
    /// map loss on those whole pages (as serving sizes them) by a fifth or more and find the
    /// plates with a better H-mean (1.19 -> 0.73 and 0.63 -> 0.84 when written).
    #[test]
    fn fine_tuning_the_detector_learns_the_users_boxes() {
        let Some((mut reader, images, lines)) = test_plates::load(24) else {
            return;
        };
        let device = reader.device.clone();
        reader.max_side = 640;
        // Checked on the training pages themselves: this tests that the optimiser learns what
        // it is shown (the benchmark measures how well it generalises).
        let plan = Plan {
            image_size: 0,
            tuned_stages: 0,
            head_share: 1.0,
            max_epochs: Some(4),
            deadline: Instant::now() + Duration::from_secs(900),
            seed: 5,
            patience: 4,
        };
        let stop = AtomicBool::new(false);
        let outcome = train(
            &mut reader,
            &images,
            &lines,
            &lines,
            &plan,
            &device,
            &stop,
            &|s| {
                if let Signal::Log(l) = s {
                    eprintln!("{l}");
                }
            },
        )
        .unwrap()
        .expect("four rounds");
        assert_eq!(outcome.rounds, 4);
        let best = outcome
            .round_losses
            .iter()
            .copied()
            .fold(f64::MAX, f64::min);
        eprintln!(
            "training pages: map loss {:.3} -> {:?}, H-mean {:.3} -> kept {:.3}",
            outcome.starting_loss, outcome.round_losses, outcome.starting_hmean, outcome.hmean
        );
        assert!(
            best < 0.8 * outcome.starting_loss,
            "map loss {} -> {:?}",
            outcome.starting_loss,
            outcome.round_losses
        );
        assert!(outcome.hmean > outcome.starting_hmean);
        let (_, hmean_kept) = validate(
            &reader.detector,
            &reader,
            &val_pages(&images, &lines, reader.max_side),
        );
        assert_eq!(
            hmean_kept, outcome.hmean,
            "the kept weights are in the reader"
        );
    }
}
