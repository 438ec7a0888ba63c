//! Fine-tunes the pretrained recogniser on the user's lines with CTC loss, on whatever burn
//! device the worker chose, on a blocking thread. The lines are cut from the true boxes
//! (perspective crops, so rotated boxes come out straight), jittered (box corners, colour)
//! per epoch; each epoch ends with the validation lines read by greedy CTC decoding, and
//! the weights with the best validation exact match are kept (early stopping). The time
//! budget is a hard deadline checked before every step, and so is a stop request.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::nn::loss::CTCLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shared::model::ocr::{OcrReader, TextRecognizer};
use shared::ocr::{self, Quad, input};

use crate::train::run::{Plan, Run, Signal};

/// One text line of a training or validation image: the picture and where and what it is.
#[derive(Debug, Clone)]
pub struct LineSample {
    pub image: usize,
    pub quad: Quad,
    pub text: String,
}

/// The lines grouped by page: each image index with its lines, pages in the order of their
/// first line.
pub fn by_page(lines: &[LineSample]) -> Vec<(usize, Vec<&LineSample>)> {
    let mut pages: Vec<(usize, Vec<&LineSample>)> = Vec::new();
    for l in lines {
        match pages.iter_mut().find(|(i, _)| *i == l.image) {
            Some((_, on)) => on.push(l),
            None => pages.push((l.image, vec![l])),
        }
    }
    pages
}

pub struct Outcome {
    pub recogniser: TextRecognizer,
    /// Validation line exact match (on the true boxes) of the kept weights.
    pub line_accuracy: f64,
    /// ... and of the pretrained recogniser, before training.
    pub pretrained_line_accuracy: f64,
    pub epochs: u32,
    pub stopped: bool,
}

const BATCH: usize = 16;
const LR: f64 = 2e-4;

/// The class of each character in the recogniser's charset (class `i + 1` is `charset[i]`).
pub fn class_index(charset: &[String]) -> HashMap<&str, usize> {
    charset
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i + 1))
        .collect()
}

/// The classes of a text, or the first character the recogniser cannot write.
pub fn encode(text: &str, classes: &HashMap<&str, usize>) -> Result<Vec<usize>, char> {
    text.chars()
        .map(|c| {
            let mut buf = [0u8; 4];
            classes.get(&*c.encode_utf8(&mut buf)).copied().ok_or(c)
        })
        .collect()
}

/// A training view of a line: the box's corners moved by up to 6% of its height each
/// (crop and perspective jitter), then brightness and contrast jitter.
fn augmented_crop(img: &RgbImage, quad: &Quad, rng: &mut StdRng) -> RgbImage {
    let h = ((quad[3][1] - quad[0][1]).abs())
        .max((quad[2][1] - quad[1][1]).abs())
        .max(4.0);
    let j = 0.06 * h;
    let moved: Quad = quad.map(|[x, y]| [x + rng.gen_range(-j..=j), y + rng.gen_range(-j..=j)]);
    let mut crop = input::crop_line(img, &moved);
    let (gain, bias) = (rng.gen_range(0.7f32..1.3), rng.gen_range(-30.0f32..30.0));
    for p in crop.pixels_mut() {
        for v in &mut p.0 {
            *v = (f32::from(*v) * gain + bias).clamp(0.0, 255.0) as u8;
        }
    }
    if rng.gen_bool(0.5) {
        // Blur half the views a little: plates in photos are often soft.
        crop = image::imageops::blur(&crop, 0.8);
    }
    crop
}

/// Greedy texts and the mean CTC loss of a batch's recogniser output (`[n, T, C]`).
fn decode_and_loss(
    probs: Tensor<3>,
    texts: &[Vec<usize>],
    charset: &[String],
) -> (Vec<String>, Tensor<1>) {
    let [n, steps, classes] = probs.dims();
    let device = probs.device();
    let values: Vec<f32> = probs
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let read = values
        .chunks_exact(steps * classes)
        .map(|p| ocr::ctc_greedy(p, classes, charset).0)
        .collect();
    let longest = texts.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut flat = vec![0i64; n * longest];
    for (k, t) in texts.iter().enumerate() {
        for (j, &c) in t.iter().enumerate() {
            flat[k * longest + j] = c as i64;
        }
    }
    let ints = |v: Vec<i64>| {
        let len = v.len();
        Tensor::<1, Int>::from_data(TensorData::new(v, [len]), &device)
    };
    let loss = CTCLossConfig::new()
        .with_zero_infinity(true)
        .init()
        .forward(
            probs.clamp_min(1e-7).log().swap_dims(0, 1),
            ints(flat).reshape([n, longest]),
            ints(vec![steps as i64; n]),
            ints(texts.iter().map(|t| t.len() as i64).collect()),
        )
        .mean();
    (read, loss)
}

/// Validation on the true boxes: (mean CTC loss, exact-match rate of normalised texts).
pub fn validate(
    reader: &OcrReader,
    images: &[RgbImage],
    lines: &[LineSample],
    targets: &[Vec<usize>],
) -> (f64, f64) {
    if lines.is_empty() {
        return (0.0, 0.0);
    }
    let (mut loss, mut right) = (0.0f64, 0usize);
    for (chunk, t) in lines.chunks(BATCH).zip(targets.chunks(BATCH)) {
        let crops: Vec<RgbImage> = chunk
            .iter()
            .map(|l| input::crop_line(&images[l.image], &l.quad))
            .collect();
        let mut x = Vec::new();
        let w = input::rec_batch(&crops, &mut x);
        let x = Tensor::<4>::from_data(
            TensorData::new(x, [crops.len(), 3, ocr::REC_HEIGHT, w]),
            &reader.device,
        );
        let (read, l) = decode_and_loss(reader.recogniser.forward(x), t, &reader.charset);
        loss += f64::from(l.into_scalar::<f32>()) * chunk.len() as f64;
        right += read
            .iter()
            .zip(chunk)
            .filter(|(r, l)| ocr::same_text(r, &l.text))
            .count();
    }
    (loss / lines.len() as f64, right as f64 / lines.len() as f64)
}

/// The classes of every line's text, or an error naming a character the recogniser cannot
/// write.
pub fn encode_all(lines: &[LineSample], charset: &[String]) -> anyhow::Result<Vec<Vec<usize>>> {
    let classes = class_index(charset);
    lines
        .iter()
        .map(|l| match encode(&l.text, &classes) {
            Ok(t) if !t.is_empty() => Ok(t),
            Ok(_) => anyhow::bail!("a line has no text"),
            Err(c) => anyhow::bail!(
                "{:?} contains {c:?}, which the recogniser's character set does not have",
                l.text
            ),
        })
        .collect()
}

/// Each line framed as the detector frames it: the detected region that best overlaps the
/// true box (IoU ≥ 0.5), else the true box. The recogniser then learns from crops cut the way
/// serving will cut them (DB's regions hug the characters; a labelled box may include a
/// plate's rim). Returns the lines and how many took the detector's frame.
pub fn detector_framing(
    reader: &OcrReader,
    images: &[RgbImage],
    lines: &[LineSample],
) -> (Vec<LineSample>, usize) {
    let mut regions: HashMap<usize, Vec<Quad>> = HashMap::new();
    let mut framed = 0;
    let out = lines
        .iter()
        .map(|l| {
            let found = regions.entry(l.image).or_insert_with(|| {
                reader
                    .detect(&images[l.image])
                    .into_iter()
                    .map(|r| r.quad)
                    .collect()
            });
            let best = found
                .iter()
                .map(|q| (ocr::quad_iou(q, &l.quad), q))
                .filter(|(iou, _)| *iou >= 0.5)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((_, q)) => {
                    framed += 1;
                    LineSample {
                        quad: *q,
                        ..l.clone()
                    }
                }
                None => l.clone(),
            }
        })
        .collect();
    (out, framed)
}

/// Fine-tunes `reader.recogniser` on `train` lines; `reader` is used (with the current
/// weights swapped in) to read the `val` lines after each epoch. `None` when stopped or out
/// of time before the first epoch ended.
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
    run.metric = Some("line exact match");
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let targets = encode_all(train, &reader.charset)?;
    let val_targets = encode_all(val, &reader.charset)?;
    let (pretrained_loss, pretrained_accuracy) = validate(reader, images, val, &val_targets);
    run.log(format!(
        "pretrained recogniser: {:.1}% of {} validation lines read exactly (CTC loss {pretrained_loss:.3})",
        100.0 * pretrained_accuracy,
        val.len()
    ));
    let ad = device.clone().autodiff();
    let mut net = super::with_frozen_batch_norms(reader.recogniser.clone()).train();
    let mut optim: ModuleOptimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
    let mut best = (pretrained_accuracy, reader.recogniser.clone());
    let (mut epoch, mut stale, mut stopped) = (0u32, 0u32, false);
    let mut order: Vec<usize> = (0..train.len()).collect();
    'epochs: while plan.max_epochs.is_none_or(|m| epoch < m) && stale < plan.patience {
        let started = Instant::now();
        order.shuffle(&mut rng);
        let (mut loss_sum, mut seen, mut right) = (0.0f64, 0usize, 0usize);
        for batch in order.chunks(BATCH) {
            if run.should_end() {
                stopped = stop.load(std::sync::atomic::Ordering::Relaxed);
                break 'epochs;
            }
            let crops: Vec<RgbImage> = batch
                .iter()
                .map(|&i| augmented_crop(&images[train[i].image], &train[i].quad, &mut rng))
                .collect();
            let mut x = Vec::new();
            let w = input::rec_batch(&crops, &mut x);
            let n = batch.len();
            let x = Tensor::<4>::from_data(TensorData::new(x, [n, 3, ocr::REC_HEIGHT, w]), &ad);
            let texts: Vec<Vec<usize>> = batch.iter().map(|&i| targets[i].clone()).collect();
            let (read, loss) = decode_and_loss(net.forward(x), &texts, &reader.charset);
            right += read
                .iter()
                .zip(batch)
                .filter(|&(r, &i)| ocr::same_text(r, &train[i].text))
                .count();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(LR, net, grads);
            run.step += 1;
            loss_sum += f64::from(loss.into_scalar::<f32>()) * n as f64;
            seen += n;
        }
        epoch += 1;
        reader.recogniser = net.valid();
        let (val_loss, accuracy) = validate(reader, images, val, &val_targets);
        let train_loss = loss_sum / seen.max(1) as f64;
        run.progress(
            "finetune",
            epoch,
            started.elapsed().as_secs_f64(),
            (train_loss, right as f64 / seen.max(1) as f64),
            Some((val_loss, accuracy)),
        );
        run.log(format!(
            "epoch {epoch}: CTC loss {train_loss:.3}, validation lines read exactly {:.1}% ({:.0} s)",
            100.0 * accuracy,
            started.elapsed().as_secs_f64()
        ));
        if accuracy > best.0 {
            best = (accuracy, reader.recogniser.clone());
            stale = 0;
        } else {
            stale += 1;
        }
    }
    run.log_ending(stopped);
    if epoch == 0 {
        return Ok(None);
    }
    let (line_accuracy, recogniser) = best;
    if line_accuracy <= pretrained_accuracy {
        run.log(
            "no epoch read the validation lines better than the pretrained recogniser; keeping it"
                .into(),
        );
    }
    reader.recogniser = recogniser.clone();
    Ok(Some(Outcome {
        recogniser,
        line_accuracy,
        pretrained_line_accuracy: pretrained_accuracy,
        epochs: epoch,
        stopped,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::train::ocr::test_plates;

    #[test]
    fn texts_encode_to_the_recognisers_classes() {
        let charset: Vec<String> = ["A", "B", "漢"].iter().map(|s| s.to_string()).collect();
        let classes = class_index(&charset);
        assert_eq!(encode("BA漢", &classes), Ok(vec![2, 1, 3]));
        assert_eq!(encode("AZ", &classes), Err('Z'));
    }

    /// Fine-tuning learns: two epochs on 48 European plates lower the CTC loss on those lines
    /// by a third or more and read more of them exactly than before.
    #[test]
    fn fine_tuning_the_recogniser_learns_the_users_lines() {
        let Some((mut reader, images, lines)) = test_plates::load(64) else {
            return;
        };
        let device = reader.device.clone();
        // Selection on some of the training lines themselves: this checks that the optimiser
        // learns what it is shown, not how well it generalises (the benchmark measures that).
        let train_lines = &lines[..48];
        let val_lines = &lines[..16];
        let targets = encode_all(train_lines, &reader.charset).unwrap();
        let (loss_before, read_before) = validate(&reader, &images, train_lines, &targets);
        let plan = Plan {
            image_size: 0,
            tuned_stages: 0,
            head_share: 1.0,
            max_epochs: Some(2),
            deadline: Instant::now() + Duration::from_secs(600),
            seed: 3,
            patience: 5,
        };
        let stop = AtomicBool::new(false);
        let outcome = train(
            &mut reader,
            &images,
            train_lines,
            val_lines,
            &plan,
            &device,
            &stop,
            &|_| {},
        )
        .unwrap()
        .expect("two epochs");
        assert_eq!(outcome.epochs, 2);
        reader.recogniser = outcome.recogniser;
        let (loss_after, read_after) = validate(&reader, &images, train_lines, &targets);
        eprintln!(
            "training lines: CTC loss {loss_before:.3} -> {loss_after:.3}, read exactly {read_before:.3} -> {read_after:.3}"
        );
        assert!(
            loss_after < 0.67 * loss_before,
            "CTC loss {loss_before} -> {loss_after}"
        );
        assert!(read_after > read_before, "{read_before} -> {read_after}");
    }
}
