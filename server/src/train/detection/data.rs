//! Detection training data: the labelled images of a task's dataset with their boxes of the
//! task's labels (boxes of other labels are ignored; an image left without boxes is kept as
//! background), a seeded 10% validation split by image, and augmentation that moves the
//! boxes with the image.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use image::RgbImage;
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use shared::detect::Rect;
use shared::train::Task;

use crate::AppState;
use crate::train::classification::data::{
    VALIDATION_SHARE, log_spilled, push_plain, read_squares, task_store,
};
use crate::train::pixels::{PixelStore, Pixels};

/// Boxes smaller than this many input pixels on a side after resizing are left out: no
/// grid point can see them.
const MIN_BOX_SIDE: f32 = 2.0;

/// A labelled image before loading: where it is, its boxes (original pixels), its size.
#[derive(Clone)]
struct Labelled {
    path: String,
    boxes: Vec<(Rect, usize)>,
    size: (u32, u32),
}

/// One decoded image, squeezed to a square, with its boxes in that square's pixels.
pub struct Sample {
    pub image_id: i64,
    pub image: Pixels,
    pub boxes: Vec<(Rect, usize)>,
}

pub struct Data {
    /// The task's memory budget (what the images left of it is for the taps cache).
    pub store: Arc<PixelStore>,
    pub labels: Vec<String>,
    /// At [`train_side`], for scale and crop jitter.
    pub train: Vec<Sample>,
    /// At the model input size, prepared exactly as the predict path prepares images.
    pub val: Vec<Sample>,
}

/// Side of the in-memory training copies: 5/4 of the input, so crops keep detail.
pub fn train_side(image_size: u32) -> u32 {
    image_size * 5 / 4
}

/// Image ids split by image with a seeded shuffle: about 10% to validation, at least one.
pub fn split(ids: &[i64], seed: u64) -> (Vec<i64>, Vec<i64>) {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_val = ((ids.len() as f64 * VALIDATION_SHARE).round() as usize)
        .max(1)
        .min(ids.len().saturating_sub(1));
    let train = ids.split_off(n_val);
    (train, ids)
}

/// Loads the task's images and boxes from the dataset's storage, decoding in parallel.
pub async fn load(
    s: &AppState,
    task: &Task,
    log: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Data> {
    let ds =
        s.db.dataset_ref(task.dataset_id)
            .await?
            .context("the task's dataset no longer exists")?;
    let source = s.storage.open_uri(&ds.location)?;
    let images = s.db.labelled_images(task.dataset_id).await?;
    let mut boxes_of: BTreeMap<i64, Labelled> = BTreeMap::new();
    let (mut n_boxes, mut ignored) = (0usize, 0usize);
    for img in &images {
        let mut boxes = Vec::new();
        for b in &img.annotation.boxes {
            match task.labels.iter().position(|l| *l == b.label) {
                Some(c) => boxes.push((
                    Rect::new(b.xmin as f32, b.ymin as f32, b.xmax as f32, b.ymax as f32),
                    c,
                )),
                None => ignored += 1,
            }
        }
        n_boxes += boxes.len();
        let size = (
            u32::try_from(img.width).unwrap_or(0),
            u32::try_from(img.height).unwrap_or(0),
        );
        boxes_of.insert(
            img.id,
            Labelled {
                path: img.path.clone(),
                boxes,
                size,
            },
        );
    }
    for (c, label) in task.labels.iter().enumerate() {
        let n = boxes_of
            .values()
            .filter(|l| l.boxes.iter().any(|(_, k)| *k == c))
            .count();
        if n < 2 {
            bail!("label {label:?} has boxes in {n} image(s); at least 2 are needed");
        }
    }
    let ids: Vec<i64> = boxes_of.keys().copied().collect();
    let (train_ids, val_ids) = split(&ids, task.seed);
    let background = boxes_of.values().filter(|l| l.boxes.is_empty()).count();
    log(format!(
        "{} images with {n_boxes} boxes ({background} background images; {ignored} boxes of other labels ignored): {} for training, {} held out for validation (seed {})",
        ids.len(),
        train_ids.len(),
        val_ids.len(),
        task.seed
    ));
    let jobs = train_ids
        .into_iter()
        .map(|id| (id, train_side(task.image_size), false))
        .chain(val_ids.into_iter().map(|id| (id, task.image_size, true)))
        .map(|(id, side, is_val)| ((id, side, is_val), boxes_of[&id].path.clone(), side));
    let store = task_store(s);
    let results = read_squares(&source, &store, jobs).await?;
    log_spilled(&store, log);
    let mut data = Data {
        store,
        labels: task.labels.clone(),
        train: Vec::new(),
        val: Vec::new(),
    };
    let mut skipped = Vec::new();
    for ((image_id, side, is_val), path, decoded) in results {
        let Labelled {
            boxes,
            size: (w, h),
            ..
        } = boxes_of[&image_id].clone();
        let image = match decoded {
            Ok(image) => image,
            Err(e) => {
                skipped.push(format!("{path}: {e}"));
                continue;
            }
        };
        // Boxes are in the original's pixels; the stored copy is the whole image squeezed.
        let s = side as f32;
        let (sx, sy) = (s / w.max(1) as f32, s / h.max(1) as f32);
        let boxes = boxes
            .into_iter()
            .map(|(r, c)| (r.scaled(sx, sy).clipped(s, s), c))
            .filter(|(r, _)| r.width() >= MIN_BOX_SIDE && r.height() >= MIN_BOX_SIDE)
            .collect();
        let sample = Sample {
            image_id,
            image,
            boxes,
        };
        if is_val {
            data.val.push(sample);
        } else {
            data.train.push(sample);
        }
    }
    data.train.sort_by_key(|s| s.image_id);
    data.val.sort_by_key(|s| s.image_id);
    if !skipped.is_empty() {
        log(format!(
            "{} image(s) could not be read and are left out, e.g. {}",
            skipped.len(),
            skipped[0]
        ));
    }
    if data.val.is_empty() || data.train.is_empty() {
        bail!("too few readable images to train and validate");
    }
    Ok(data)
}

/// The image mirrored left to right with its boxes.
pub fn flipped(rgb: &RgbImage, boxes: &[(Rect, usize)]) -> (RgbImage, Vec<(Rect, usize)>) {
    let w = rgb.width() as f32;
    let img = image::imageops::flip_horizontal(rgb);
    let boxes = boxes
        .iter()
        .map(|(r, c)| (Rect::new(w - r.x1, r.y0, w - r.x0, r.y1), *c))
        .collect();
    (img, boxes)
}

/// Scales `boxes` of a `from`-pixel square to a `to`-pixel square.
pub fn rescaled(boxes: &[(Rect, usize)], from: u32, to: u32) -> Vec<(Rect, usize)> {
    let k = to as f32 / from as f32;
    boxes.iter().map(|(r, c)| (r.scaled(k, k), *c)).collect()
}

/// Random square crop (60-100% of the side, anywhere), resized to `side`; random mirror;
/// brightness/contrast jitter of ±20%. Boxes move with the image; a box keeping less than
/// 40% of its area in the crop is dropped (its remains would teach a wrong extent).
/// Appends the normalised image to `out` and returns its boxes.
pub fn push_augmented(
    s: &Sample,
    side: u32,
    rng: &mut StdRng,
    out: &mut Vec<f32>,
) -> Vec<(Rect, usize)> {
    let rgb = s.image.rgb();
    let full = rgb.width();
    let crop = ((f64::from(full) * rng.gen_range(0.6..=1.0)) as u32).clamp(1, full);
    let x = rng.gen_range(0..=full - crop);
    let y = rng.gen_range(0..=full - crop);
    let view = image::imageops::crop_imm(&*rgb, x, y, crop, crop).to_image();
    let mut img = image::imageops::resize(&view, side, side, image::imageops::FilterType::Triangle);
    let k = side as f32 / crop as f32;
    let c = crop as f32;
    let mut boxes: Vec<(Rect, usize)> = s
        .boxes
        .iter()
        .filter_map(|(r, cls)| {
            let moved = Rect::new(
                r.x0 - x as f32,
                r.y0 - y as f32,
                r.x1 - x as f32,
                r.y1 - y as f32,
            );
            let kept = moved.clipped(c, c);
            (kept.area() >= 0.4 * moved.area()).then(|| (kept.scaled(k, k), *cls))
        })
        .filter(|(r, _)| r.width() >= MIN_BOX_SIDE && r.height() >= MIN_BOX_SIDE)
        .collect();
    if rng.r#gen::<bool>() {
        image::imageops::flip_horizontal_in_place(&mut img);
        let w = side as f32;
        for (r, _) in &mut boxes {
            *r = Rect::new(w - r.x1, r.y0, w - r.x0, r.y1);
        }
    }
    let brightness: f32 = rng.gen_range(-0.2..=0.2) * 255.0;
    let contrast: f32 = rng.gen_range(0.8..=1.2);
    for v in img.iter_mut() {
        *v = ((f32::from(*v) - 128.0) * contrast + 128.0 + brightness).clamp(0.0, 255.0) as u8;
    }
    push_plain(&img, out);
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_by_image_and_disjoint() {
        let ids: Vec<i64> = (1..=40).collect();
        let (t1, v1) = split(&ids, 5);
        assert_eq!(split(&ids, 5), (t1.clone(), v1.clone()));
        assert_eq!(v1.len(), 4);
        assert_eq!(t1.len() + v1.len(), 40);
        assert!(t1.iter().all(|i| !v1.contains(i)));
        assert_ne!(split(&ids, 6).1, v1);
        // Two images: one each way.
        assert_eq!(split(&[1, 2], 1).0.len(), 1);
    }

    #[test]
    fn augmentation_moves_boxes_with_the_pixels() {
        // A white 20×20 square at (40, 40) on black: after any crop, flip and scale the
        // box must still frame the white pixels.
        let mut rgb = RgbImage::new(100, 100);
        for y in 40..60 {
            for x in 40..60 {
                rgb.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        let s = Sample {
            image_id: 1,
            image: Pixels::Resident(rgb),
            boxes: vec![(Rect::new(40.0, 40.0, 60.0, 60.0), 0)],
        };
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = 0;
        for _ in 0..20 {
            let mut out = Vec::new();
            let boxes = push_augmented(&s, 64, &mut rng, &mut out);
            assert_eq!(out.len(), 3 * 64 * 64);
            for (r, _) in boxes {
                seen += 1;
                // The centre of the box is bright (the red plane, normalised, is high).
                let (cx, cy) = (
                    ((r.x0 + r.x1) / 2.0) as usize,
                    ((r.y0 + r.y1) / 2.0) as usize,
                );
                assert!(out[cy * 64 + cx] > 1.0, "box {r:?} off the square");
                // Just outside the box is dark (unless the crop cut the image there).
                if r.x0 >= 3.0 {
                    assert!(
                        out[cy * 64 + (r.x0 as usize - 2)] < 0.0,
                        "box {r:?} too wide"
                    );
                }
            }
        }
        assert!(seen > 10, "most crops keep the square");
        let (img, boxes) = flipped(&s.image.rgb(), &s.boxes);
        assert_eq!(boxes[0].0, Rect::new(40.0, 40.0, 60.0, 60.0));
        assert_eq!(img.get_pixel(45, 45)[0], 255);
    }
}
