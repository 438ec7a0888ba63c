//! Training data: the labelled images of a task's labels, decoded once into memory, a
//! seeded stratified validation split, and augmentation.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shared::preprocess::{self, IMAGENET_MEAN, IMAGENET_STD};
use shared::train::Task;

use crate::AppState;
use crate::storage::Store;

/// Share of each label's images held out for validation.
pub const VALIDATION_SHARE: f64 = 0.1;
/// A decode may allocate at most this much (decompression bombs fail, not the worker).
const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// One image in memory: `side`×`side` interleaved RGB.
pub struct Sample {
    pub image_id: i64,
    pub class: usize,
    pub rgb: RgbImage,
}

pub struct Data {
    pub labels: Vec<String>,
    /// At [`train_side`] (slightly larger than the model input, for random crops).
    pub train: Vec<Sample>,
    /// At the model input size, prepared exactly as the predict path prepares images.
    pub val: Vec<Sample>,
    pub skipped: Vec<String>,
}

/// Side of the in-memory training copies: 8/7 of the input, as in the usual 256→224 recipe.
pub fn train_side(image_size: u32) -> u32 {
    (image_size * 8).div_ceil(7)
}

/// `(image id, class)` pairs.
pub type Labelled = Vec<(i64, usize)>;

/// Splits each class's items (already in a fixed order) with a seeded shuffle: about 10% to
/// validation, at least one when the class has two or more images.
pub fn split(per_class: &BTreeMap<usize, Vec<i64>>, seed: u64) -> (Labelled, Labelled) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (&class, ids) in per_class {
        let mut ids = ids.clone();
        ids.shuffle(&mut rng);
        let n_val = if ids.len() >= 2 {
            ((ids.len() as f64 * VALIDATION_SHARE).round() as usize).max(1)
        } else {
            0
        };
        for (i, id) in ids.into_iter().enumerate() {
            if i < n_val {
                val.push((id, class));
            } else {
                train.push((id, class));
            }
        }
    }
    (train, val)
}

/// Loads the task's images from the dataset's storage and decodes them in parallel.
pub async fn load(
    s: &AppState,
    task: &Task,
    log: &(dyn Fn(String) + Sync),
) -> anyhow::Result<Data> {
    let ds =
        s.db.dataset_ref(task.dataset_id)
            .await?
            .context("the task's dataset no longer exists")?;
    let store = s.storage.open_uri(&ds.location)?;
    let images = s.db.labelled_images(task.dataset_id).await?;
    let mut per_class: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    let mut paths = BTreeMap::new();
    let mut ambiguous = 0;
    for img in &images {
        let classes: Vec<usize> = img
            .annotation
            .label_set()
            .iter()
            .filter_map(|l| task.labels.iter().position(|t| t == l))
            .collect();
        match classes.as_slice() {
            [c] => {
                per_class.entry(*c).or_default().push(img.id);
                paths.insert(img.id, img.path.clone());
            }
            [] => {}
            _ => ambiguous += 1,
        }
    }
    if ambiguous > 0 {
        log(format!(
            "{ambiguous} image(s) carry more than one of the task's labels and are left out"
        ));
    }
    for (i, label) in task.labels.iter().enumerate() {
        let n = per_class.get(&i).map_or(0, Vec::len);
        if n < 2 {
            bail!("label {label:?} has {n} usable image(s); at least 2 are needed");
        }
    }
    let (train_ids, val_ids) = split(&per_class, task.seed);
    log(format!(
        "{} images: {} for training, {} held out for validation (seed {})",
        train_ids.len() + val_ids.len(),
        train_ids.len(),
        val_ids.len(),
        task.seed
    ));
    let side_train = train_side(task.image_size);
    let side_val = task.image_size;
    let jobs = train_ids
        .into_iter()
        .map(|x| (x, side_train, false))
        .chain(val_ids.into_iter().map(|x| (x, side_val, true)))
        .map(|((id, class), side, is_val)| ((id, class, is_val), paths[&id].clone(), side));
    let results = read_squares(&store, jobs).await;
    let mut data = Data {
        labels: task.labels.clone(),
        train: Vec::new(),
        val: Vec::new(),
        skipped: Vec::new(),
    };
    for ((image_id, class, is_val), path, decoded) in results {
        match decoded {
            Ok(rgb) => {
                let s = Sample {
                    image_id,
                    class,
                    rgb,
                };
                if is_val {
                    data.val.push(s);
                } else {
                    data.train.push(s);
                }
            }
            Err(e) => data.skipped.push(format!("{path}: {e}")),
        }
    }
    // Completion order is arbitrary; the order must not depend on it.
    data.train.sort_by_key(|s| s.image_id);
    data.val.sort_by_key(|s| s.image_id);
    if !data.skipped.is_empty() {
        log(format!(
            "{} image(s) could not be read and are left out, e.g. {}",
            data.skipped.len(),
            data.skipped[0]
        ));
    }
    if data.val.is_empty() || data.train.is_empty() {
        bail!("too few readable images to train and validate");
    }
    Ok(data)
}

/// Reads and decodes images in parallel, each squeezed to a `side`×`side` square (as the
/// predict path prepares them), in no particular order: `(key, path, side)` in,
/// `(key, path, image or why not)` out.
pub async fn read_squares<K: Send + 'static>(
    store: &Store,
    jobs: impl Iterator<Item = (K, String, u32)>,
) -> Vec<(K, String, Result<RgbImage, String>)> {
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    futures_util::stream::iter(jobs)
        .map(|(key, path, side)| {
            let store = store.clone();
            async move {
                let bytes = store.read(&path, crate::indexer::MAX_IMAGE_BYTES).await;
                let decoded = match bytes {
                    Ok(b) => tokio::task::spawn_blocking(move || {
                        preprocess::decode_near(&b, MAX_DECODE_BYTES, side)
                            .map(|(img, _)| preprocess::resize_square(&img, side))
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string())),
                    Err(e) => Err(e.to_string()),
                };
                (key, path, decoded)
            }
        })
        .buffer_unordered(threads * 2)
        .collect()
        .await
}

/// Appends the normalised tensor data of an image already at the input size.
pub fn push_plain(rgb: &RgbImage, out: &mut Vec<f32>) {
    preprocess::normalise_chw(
        rgb.as_raw(),
        rgb.width() as usize,
        IMAGENET_MEAN,
        IMAGENET_STD,
        out,
    );
}

/// Appends the horizontally mirrored image.
pub fn push_flipped(rgb: &RgbImage, out: &mut Vec<f32>) {
    push_plain(&image::imageops::flip_horizontal(rgb), out);
}

/// Random crop (75-100% of the side, anywhere), resize to `side`, random mirror, and
/// brightness/contrast jitter of ±20%.
pub fn push_augmented(rgb: &RgbImage, side: u32, rng: &mut StdRng, out: &mut Vec<f32>) {
    let full = rgb.width();
    let crop = ((f64::from(full) * rng.gen_range(0.75..=1.0)) as u32).clamp(1, full);
    let x = rng.gen_range(0..=full - crop);
    let y = rng.gen_range(0..=full - crop);
    let view = image::imageops::crop_imm(rgb, x, y, crop, crop).to_image();
    let mut img = image::imageops::resize(&view, side, side, image::imageops::FilterType::Triangle);
    if rng.r#gen::<bool>() {
        image::imageops::flip_horizontal_in_place(&mut img);
    }
    let brightness: f32 = rng.gen_range(-0.2..=0.2) * 255.0;
    let contrast: f32 = rng.gen_range(0.8..=1.2);
    for v in img.iter_mut() {
        *v = ((f32::from(*v) - 128.0) * contrast + 128.0 + brightness).clamp(0.0, 255.0) as u8;
    }
    push_plain(&img, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_stratified_and_disjoint() {
        let per_class = BTreeMap::from([
            (0, (0..50).collect::<Vec<i64>>()),
            (1, (100..103).collect()),
        ]);
        let (t1, v1) = split(&per_class, 9);
        let (t2, v2) = split(&per_class, 9);
        assert_eq!((t1.clone(), v1.clone()), (t2, v2));
        assert_eq!(v1.iter().filter(|(_, c)| *c == 0).count(), 5);
        assert_eq!(v1.iter().filter(|(_, c)| *c == 1).count(), 1);
        assert_eq!(t1.len() + v1.len(), 53);
        assert!(t1.iter().all(|t| !v1.contains(t)));
        let (_, v3) = split(&per_class, 10);
        assert_ne!(v1, v3, "another seed gives another split");
    }

    #[test]
    fn augmentation_keeps_the_shape() {
        let img = RgbImage::from_pixel(64, 64, image::Rgb([10, 200, 30]));
        let mut rng = StdRng::seed_from_u64(1);
        let mut out = Vec::new();
        push_augmented(&img, 56, &mut rng, &mut out);
        assert_eq!(out.len(), 3 * 56 * 56);
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
