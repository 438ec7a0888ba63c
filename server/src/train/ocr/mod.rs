//! OCR (`ocr-fast`): the pretrained PP-OCRv4 mobile detector and recogniser
//! ([`pretrained`], imported from ONNX by [`onnx`]), the detector fine-tuned on the user's
//! boxes ([`detector`], the DB recipe), then the recogniser on the user's lines with CTC
//! ([`trainer`]), and end-to-end evaluation ([`evaluate`]) of the starting and the trained
//! models on the same validation images.

pub mod detector;
pub mod evaluate;
pub mod onnx;
pub mod pretrained;
pub mod trainer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::prelude::*;
use image::RgbImage;
use shared::model::ocr::{OcrModel, OcrReader};
use shared::ocr::Quad;
use shared::preprocess;
use shared::train::{Metrics, OcrEvalImage, OcrEvalLine, OcrMetrics, OcrScores, Task};

use crate::AppState;
use crate::artifact;
use crate::train::classification::data::MAX_DECODE_BYTES;
use crate::train::detection::data::split;
use crate::train::run::{self, Plan, Reporter, Trained};
use evaluate::{PageResult, read_pages, scores};
use trainer::LineSample;

/// How the artifact names the models.
pub const ARCHITECTURE: &str = "ppocrv4-mobile-det+rec";

/// The task's pages: decoded photos and their lines (boxes with text), split by image.
struct Pages {
    images: Vec<RgbImage>,
    ids: Vec<i64>,
    train: Vec<LineSample>,
    val: Vec<LineSample>,
    /// Index into `images` of every validation photo.
    val_images: Vec<usize>,
}

/// Loads the task's images and text boxes (boxes without text, or of labels the task did not
/// choose, are ignored; a photo without lines is left out).
async fn load(s: &AppState, task: &Task, log: &(dyn Fn(String) + Sync)) -> anyhow::Result<Pages> {
    let ds =
        s.db.dataset_ref(task.dataset_id)
            .await?
            .context("the task's dataset no longer exists")?;
    let source = s.storage.open_uri(&ds.location)?;
    let mut lines_of: BTreeMap<i64, (String, Vec<(Quad, String)>)> = BTreeMap::new();
    for img in s.db.labelled_images(task.dataset_id).await? {
        let lines: Vec<(Quad, String)> = img
            .annotation
            .boxes
            .iter()
            .filter(|b| task.labels.contains(&b.label))
            .filter_map(|b| {
                let text = b.text.as_deref()?.trim();
                let (x0, y0, x1, y1) = (b.xmin as f32, b.ymin as f32, b.xmax as f32, b.ymax as f32);
                (!text.is_empty())
                    .then(|| ([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], text.to_owned()))
            })
            .collect();
        if !lines.is_empty() {
            lines_of.insert(img.id, (img.path.clone(), lines));
        }
    }
    if lines_of.len() < 2 {
        bail!(
            "{} image(s) have boxes with text; at least 2 are needed (one to learn from, one to check)",
            lines_of.len()
        );
    }
    let ids: Vec<i64> = lines_of.keys().copied().collect();
    let (train_ids, val_ids) = split(&ids, task.seed);
    let mut pages = Pages {
        images: Vec::new(),
        ids: Vec::new(),
        train: Vec::new(),
        val: Vec::new(),
        val_images: Vec::new(),
    };
    let mut skipped = Vec::new();
    for (is_val, id) in train_ids
        .iter()
        .map(|&i| (false, i))
        .chain(val_ids.iter().map(|&i| (true, i)))
    {
        let (path, lines) = &lines_of[&id];
        let bytes = source.read(path, crate::indexer::MAX_IMAGE_BYTES).await;
        let decoded = match bytes {
            Ok(b) => {
                tokio::task::spawn_blocking(move || {
                    preprocess::decode(&b, MAX_DECODE_BYTES).map(|i| i.to_rgb8())
                })
                .await?
            }
            Err(e) => Err(e.to_string()),
        };
        let image = match decoded {
            Ok(i) => i,
            Err(e) => {
                skipped.push(format!("{path}: {e}"));
                continue;
            }
        };
        let index = pages.images.len();
        pages.images.push(image);
        pages.ids.push(id);
        if is_val {
            pages.val_images.push(index);
        }
        let target = if is_val {
            &mut pages.val
        } else {
            &mut pages.train
        };
        target.extend(lines.iter().map(|(quad, text)| LineSample {
            image: index,
            quad: *quad,
            text: text.clone(),
        }));
    }
    log(format!(
        "{} images with {} text lines: {} for training, {} held out for validation (seed {})",
        ids.len(),
        pages.train.len() + pages.val.len(),
        train_ids.len(),
        val_ids.len(),
        task.seed
    ));
    if !skipped.is_empty() {
        log(format!(
            "{} image(s) could not be read and are left out, e.g. {}",
            skipped.len(),
            skipped[0]
        ));
    }
    if pages.train.is_empty() || pages.val.is_empty() {
        bail!("after unreadable images were left out, no lines remain to learn from or to check");
    }
    Ok(pages)
}

/// The reader to start from: an earlier version (incremental), else the pretrained models.
async fn initial_reader(
    s: &AppState,
    task: &Task,
    device: &Device,
    report: &Reporter,
) -> anyhow::Result<OcrReader> {
    if let Some(base_id) = task.base_model_id {
        let (_, meta, weights) = run::base_version(s, task, base_id, report).await?;
        let dev = device.clone();
        let model =
            tokio::task::spawn_blocking(move || artifact::load_into(OcrModel::new(&dev), weights))
                .await??;
        return Ok(OcrReader::from_model(model, meta.charset, device.clone()));
    }
    let dir = s.config.weights_dir.clone();
    let dev = device.clone();
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<OcrReader> {
        pretrained::load(&pretrained::ensure(&dir)?, &dev)
    })
    .await?
    .context(
        "the pretrained PP-OCR models are needed for ocr-fast and could not be fetched \
         (pip download rapidocr-onnxruntime==1.4.4 from PyPI)",
    )?;
    report.log(format!(
        "models: PP-OCRv4 mobile detector and recogniser (RapidOCR 1.4.4, {} characters)",
        reader.charset.len()
    ));
    Ok(reader)
}

fn eval_lines(lines: &[(Quad, String)], conf: f64) -> Vec<OcrEvalLine> {
    lines
        .iter()
        .map(|(q, t)| OcrEvalLine {
            pos: *q,
            text: t.clone(),
            conf,
        })
        .collect()
}

fn eval_images(
    ids: &[i64],
    images: &[RgbImage],
    val_images: &[usize],
    pages: &[PageResult],
) -> Vec<OcrEvalImage> {
    val_images
        .iter()
        .zip(pages)
        .map(|(&i, p)| OcrEvalImage {
            image_id: ids[i],
            width: images[i].width(),
            height: images[i].height(),
            truth: eval_lines(&p.truth, 1.0),
            read: p
                .read
                .iter()
                .map(|l| OcrEvalLine {
                    pos: l.quad,
                    text: l.text.clone(),
                    conf: f64::from(l.conf),
                })
                .collect(),
        })
        .collect()
}

fn to_scores(s: evaluate::Scores) -> OcrScores {
    OcrScores {
        exact_match: s.exact_match,
        cer: s.cer,
        precision: s.precision,
        recall: s.recall,
        hmean: s.hmean,
    }
}

/// Each page of `lines` with its true lines, in the order of their first line.
fn val_pages<'a>(
    images: &'a [RgbImage],
    lines: &[LineSample],
) -> Vec<(&'a RgbImage, Vec<(Quad, String)>)> {
    trainer::by_page(lines)
        .into_iter()
        .map(|(i, on)| {
            let truth = on.iter().map(|l| (l.quad, l.text.clone())).collect();
            (&images[i], truth)
        })
        .collect()
}

/// An imported model with its batch norms frozen for fine-tuning: they keep normalising with
/// the pretrained running statistics and leave them alone. The ONNX files give momentum 0.9 in
/// ONNX's sense (the weight of the old statistics) and burn reads it as the weight of the new
/// batch, so training would replace the statistics with each small batch's; a few crops'
/// statistics are poor ones anyway (the usual choice when fine-tuning with small batches).
pub fn with_frozen_batch_norms<M: burn::module::Module>(model: M) -> M {
    model.freeze_group(burn::module::ParamGroup::from_predicate(
        "batchnormalization",
    ))
}

/// What [`fine_tune`] ended with.
pub struct Tuned {
    /// A stop request ended it.
    pub stopped: bool,
    /// The starting models' end-to-end scores on the validation pages.
    pub starting: evaluate::Scores,
}

/// `ocr-fast`'s training: the detector on the pages' boxes with its share of the time
/// (`plan.head_share`), then the recogniser on the lines framed the way the tuned detector
/// frames them, each phase keeping its best weights in `reader`. `None` when nothing was
/// trained (stopped or out of time before any epoch ended). Fails before any training when a
/// text has a character the recogniser cannot write.
#[allow(clippy::too_many_arguments)]
pub fn fine_tune(
    reader: &mut OcrReader,
    images: &[RgbImage],
    train: &[LineSample],
    val: &[LineSample],
    plan: &Plan,
    device: &Device,
    stop: &AtomicBool,
    emit: &dyn Fn(run::Signal),
) -> anyhow::Result<Option<Tuned>> {
    trainer::encode_all(train, &reader.charset)?;
    trainer::encode_all(val, &reader.charset)?;
    let left = plan.deadline.saturating_duration_since(Instant::now());
    let detector_plan = Plan {
        deadline: Instant::now() + left.mul_f64(plan.head_share),
        ..*plan
    };
    let pages = val_pages(images, val);
    let (starting, read_before) = (reader.detector.clone(), scores(&read_pages(reader, &pages)));
    emit(run::Signal::Log(format!(
        "starting models on the {} validation images: exact match {:.3}, CER {:.3}, detection H-mean {:.3}",
        pages.len(),
        read_before.exact_match,
        read_before.cer,
        read_before.hmean
    )));
    let tuned = detector::train(
        reader,
        images,
        train,
        val,
        &detector_plan,
        device,
        stop,
        emit,
    )?;
    if tuned.as_ref().is_some_and(|o| o.hmean > o.starting_hmean) {
        // A detector that finds the user's boxes better may still frame lines the
        // recogniser reads worse (a whole plate, its country band included): the tuned
        // detector stays only if the validation pages read at least as well end to end.
        let read_after = scores(&read_pages(reader, &pages));
        let better = (read_after.exact_match, -read_after.cer)
            >= (read_before.exact_match, -read_before.cer);
        emit(run::Signal::Log(format!(
            "validation pages read with the starting recogniser: exact match {:.3}, CER {:.3} with the tuned detector, {:.3} / {:.3} with the starting one: keeping the {} detector",
            read_after.exact_match,
            read_after.cer,
            read_before.exact_match,
            read_before.cer,
            if better { "tuned" } else { "starting" }
        )));
        if !better {
            reader.detector = starting;
        }
    }
    if stop.load(Ordering::Relaxed) {
        // Stopped in the detector's phase: the tuned detector, the recogniser as it was.
        return Ok(tuned.map(|_| Tuned {
            stopped: true,
            starting: read_before,
        }));
    }
    let (train, framed) = trainer::detector_framing(reader, images, train);
    let (val, _) = trainer::detector_framing(reader, images, val);
    emit(run::Signal::Log(format!(
        "{framed} of {} training lines framed by the detector",
        train.len()
    )));
    let stopped = match trainer::train(reader, images, &train, &val, plan, device, stop, emit)? {
        Some(o) => o.stopped,
        // Out of time before the recogniser's first epoch: the tuned detector alone.
        None if tuned.is_some() => stop.load(Ordering::Relaxed),
        None => return Ok(None),
    };
    Ok(Some(Tuned {
        stopped,
        starting: read_before,
    }))
}

/// Loads the task's lines, fine-tunes the detector and the recogniser ([`fine_tune`]) and
/// evaluates both the starting and the trained models on the validation images; `None` when
/// stopped or out of time before an epoch ended.
pub async fn run(
    s: &AppState,
    task: &Task,
    plan: Plan,
    device: Device,
    stop: Arc<AtomicBool>,
    report: &Reporter,
) -> anyhow::Result<Option<Trained>> {
    let log = |line: String| report.log(line);
    let pages = load(s, task, &log).await?;
    let mut reader = initial_reader(s, task, &device, report).await?;
    // The task's image size is the detector input's longer side.
    reader.max_side = task.image_size;
    let dev = device.clone();
    let outcome = run::on_training_thread(report, move |emit| {
        let val_pages = val_pages(&pages.images, &pages.val);
        let targets = trainer::encode_all(&pages.val, &reader.charset)?;
        let (pretrained_loss, _) = trainer::validate(&reader, &pages.images, &pages.val, &targets);
        let Some(tuned) = fine_tune(
            &mut reader,
            &pages.images,
            &pages.train,
            &pages.val,
            &plan,
            &dev,
            &stop,
            emit,
        )?
        else {
            return Ok(None);
        };
        // Evaluate exactly what is stored: the weights at storage precision (f16).
        let weights = artifact::weights_f16(&reader.model())?;
        let stored = artifact::load_into(OcrModel::new(&dev), weights.clone())?;
        let max_side = reader.max_side;
        reader = OcrReader::from_model(stored, reader.charset.clone(), dev.clone());
        reader.max_side = max_side;
        let read = read_pages(&reader, &val_pages);
        let after = scores(&read);
        let (loss, _) = trainer::validate(&reader, &pages.images, &pages.val, &targets);
        let metrics = OcrMetrics {
            scores: to_scores(after),
            pretrained: to_scores(tuned.starting),
            loss,
            pretrained_loss,
            validation_lines: pages.val.len() as u64,
            model_size: 0,
            validation_images: pages.val_images.len() as u64,
            train_images: (pages.images.len() - pages.val_images.len()) as u64,
            images: eval_images(&pages.ids, &pages.images, &pages.val_images, &read),
        };
        Ok(Some((reader.charset, weights, metrics, tuned.stopped)))
    })
    .await?;
    let Some((charset, weights, m, stopped)) = outcome else {
        return Ok(None);
    };
    let summary = format!(
        "validation ({} images, {} lines): exact match {:.3} (starting models {:.3}), CER {:.3} ({:.3}), detection precision {:.3} recall {:.3} H-mean {:.3}, CTC loss {:.4}",
        m.validation_images,
        m.validation_lines,
        m.scores.exact_match,
        m.pretrained.exact_match,
        m.scores.cer,
        m.pretrained.cer,
        m.scores.precision,
        m.scores.recall,
        m.scores.hmean,
        m.loss,
    );
    Ok(Some(Trained {
        weights,
        metrics: Metrics::Ocr(m),
        architecture: ARCHITECTURE.into(),
        pretrained: true,
        stopped,
        summary,
        charset,
    }))
}

/// What the OCR learning tests train on.
#[cfg(test)]
pub(crate) mod test_plates {
    use std::path::{Path, PathBuf};

    use burn::prelude::Device;
    use image::RgbImage;
    use shared::model::ocr::OcrReader;

    use super::pretrained;
    use super::trainer::LineSample;
    use crate::train::weights::{cannot_run, test_weights_dir};

    /// The pretrained reader and the first `n` European plates (by file name, one line
    /// each), or `None` when the dataset or the pretrained models are absent (said why).
    pub fn load(n: usize) -> Option<(OcrReader, Vec<RgbImage>, Vec<LineSample>)> {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/openalpr-plates/eu");
        if !root.is_dir() {
            cannot_run(&format!("{} is absent", root.display()));
            return None;
        }
        let files = match pretrained::ensure(&test_weights_dir()) {
            Ok(p) => p,
            Err(e) => {
                cannot_run(&format!("pretrained OCR models unavailable: {e:#}"));
                return None;
            }
        };
        let reader = pretrained::load(&files, &Device::flex()).unwrap();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        names.sort();
        let (mut images, mut lines) = (Vec::new(), Vec::new());
        for name in names.iter().take(n) {
            let txt = std::fs::read_to_string(name).unwrap();
            let f: Vec<&str> = txt.trim().split('\t').collect();
            let [x, y, w, h]: [f32; 4] = std::array::from_fn(|k| f[k + 1].parse().unwrap());
            images.push(image::open(root.join(f[0])).unwrap().to_rgb8());
            lines.push(LineSample {
                image: images.len() - 1,
                quad: [[x, y], [x + w, y], [x + w, y + h], [x, y + h]],
                text: f[5].to_owned(),
            });
        }
        Some((reader, images, lines))
    }
}
