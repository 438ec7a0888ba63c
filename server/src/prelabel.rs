//! Pre-labelling: a model version runs over a dataset's unlabelled images, on the serving
//! path (the same engine, batching and answer as `POST /api/predict`), and each image's
//! answer is stored as drafts ([`crate::db::prelabels`]), never as labels. The run is a
//! background job whose progress is a database row, so every API server can show it.

use std::sync::Arc;

use shared::InstanceType;
use shared::api::{BoxAnnotation, DraftBox, DraftLabel, OCR_LABEL, Prelabel, saved_px};
use shared::predict::Prediction;

use crate::AppState;
use crate::db::datasets::DatasetRef;
use crate::indexer::{MAX_IMAGE_BYTES, check_box};
use crate::routes::images::MAX_TEXT_CHARS;
use crate::serve::Loaded;

/// Images per call to the engine: enough for its batching, few enough for a timely
/// progress row.
const BATCH: usize = 8;

/// One image to pre-label.
pub struct Target {
    pub id: i64,
    pub path: String,
    pub width: i64,
    pub height: i64,
}

/// Runs a started run to its end, recording progress and the outcome in its row: failed
/// when the model could not run at all, done otherwise (saying how many images could not
/// be read, if any).
pub async fn run(s: AppState, dataset: DatasetRef, model_id: i64, targets: Vec<Target>) {
    let (failed, message) = match label_all(&s, &dataset, model_id, &targets).await {
        Ok(0) => (false, None),
        Ok(unread) => (
            false,
            Some(format!(
                "{unread} image(s) could not be read or decoded and have no drafts"
            )),
        ),
        Err(e) => (true, Some(format!("{e:#}"))),
    };
    if let Err(e) =
        s.db.finish_prelabel_run(dataset.id, failed, message.as_deref())
            .await
    {
        tracing::error!(
            "pre-labelling dataset {}: recording the end: {e}",
            dataset.id
        );
    }
}

/// Labels every target; returns how many could not be read or decoded.
async fn label_all(
    s: &AppState,
    dataset: &DatasetRef,
    model_id: i64,
    targets: &[Target],
) -> anyhow::Result<usize> {
    let loaded = Arc::new(crate::serve::load_version(s, model_id, 1).await?);
    let store = s.storage.open_uri(&dataset.location)?;
    let mut unread = 0;
    let mut done = 0;
    for chunk in targets.chunks(BATCH) {
        let mut read = Vec::with_capacity(chunk.len());
        for t in chunk {
            match store.read(&t.path, MAX_IMAGE_BYTES).await {
                Ok(bytes) => read.push((t, bytes)),
                Err(_) => unread += 1,
            }
        }
        // The whole batch at once; when one image spoils it, each alone.
        let answers = match answer(s, &loaded, read.iter().map(|r| r.1.to_vec()).collect()).await {
            Ok(bodies) => read
                .iter()
                .map(|r| r.0)
                .zip(bodies.into_iter().map(Some))
                .collect(),
            Err(_) => {
                let mut each = Vec::with_capacity(read.len());
                for (t, bytes) in &read {
                    let body = answer(s, &loaded, vec![bytes.to_vec()]).await.ok();
                    each.push((*t, body.and_then(|mut b| b.pop())));
                }
                each
            }
        };
        for (t, body) in answers {
            let Some(body) = body else {
                unread += 1;
                continue;
            };
            // An image the model finds nothing on gets no entry: nothing to decide.
            let p = drafts(&loaded, t, &body);
            if !p.boxes.is_empty() || p.label.is_some() {
                s.db.put_prelabel(dataset.id, &p).await?;
            }
        }
        done += chunk.len() as i64;
        s.db.prelabel_progress(dataset.id, done).await?;
    }
    Ok(unread)
}

/// The predict API's answer for each image (its SPEC §7 body), waiting for a place in the
/// engine when the service is busy rather than failing.
async fn answer(
    s: &AppState,
    loaded: &Loaded,
    images: Vec<Vec<u8>>,
) -> anyhow::Result<Vec<Vec<Prediction>>> {
    let ticket = loop {
        match loaded.runner.admit() {
            Ok(t) => break t,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let result = crate::routes::predict::answer(s, loaded, images, ticket)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.body().error_msg))?;
    Ok(result.output.into_iter().map(|o| o.body).collect())
}

/// An image's drafts from its predict answer: the answer's boxes in pixels of the image
/// (relative corners times its size; OCR's rotated corners as their enclosing box),
/// clipped to it and rounded as the labelling page saves boxes; boxes left without area
/// are dropped. A classifier's most likely label.
pub fn drafts(loaded: &Loaded, t: &Target, body: &[Prediction]) -> Prelabel {
    let (w, h) = (t.width as f64, t.height as f64);
    let mut p = Prelabel {
        image_id: t.id,
        model_id: loaded.model_id,
        boxes: Vec::new(),
        label: None,
    };
    if loaded.kind == InstanceType::ImageClassification {
        p.label = body.first().map(|b| DraftLabel {
            label: b.label.clone(),
            conf: b.conf,
        });
        return p;
    }
    let ocr = loaded.kind == InstanceType::Ocr;
    for b in body {
        let Some(pos) = &b.pos else { continue };
        let points = pos.points();
        let scale = match pos {
            shared::predict::Corners::Relative(_) => (w, h),
            shared::predict::Corners::Pixels(_) => (1.0, 1.0),
        };
        let xs = points.map(|[x, _]| (x * scale.0).clamp(0.0, w));
        let ys = points.map(|[_, y]| (y * scale.1).clamp(0.0, h));
        let min = |v: [f64; 4]| saved_px(v.into_iter().fold(f64::INFINITY, f64::min));
        let max = |v: [f64; 4]| saved_px(v.into_iter().fold(f64::NEG_INFINITY, f64::max));
        let (label, text) = if ocr {
            (
                OCR_LABEL.to_owned(),
                Some(b.label.chars().take(MAX_TEXT_CHARS).collect()),
            )
        } else {
            (b.label.clone(), None)
        };
        let rect = BoxAnnotation {
            label,
            xmin: min(xs),
            ymin: min(ys),
            xmax: max(xs),
            ymax: max(ys),
            text,
        };
        let (wu, hu) = (
            u32::try_from(t.width).unwrap_or(0),
            u32::try_from(t.height).unwrap_or(0),
        );
        if check_box(
            &rect.label,
            rect.xmin,
            rect.ymin,
            rect.xmax,
            rect.ymax,
            wu,
            hu,
        )
        .is_ok()
        {
            p.boxes.push(DraftBox { rect, conf: b.conf });
        }
    }
    p
}
