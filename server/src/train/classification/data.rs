//! Training data: the labelled images of a task's labels, decoded once (into memory within
//! the task's budget, beyond it into a spill file: [`PixelStore`]), a seeded stratified
//! validation split, and augmentation.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shared::model::efficientnet::FEATURES;
use shared::preprocess::{self, IMAGENET_MEAN, IMAGENET_STD};
use shared::train::Task;

use crate::AppState;
use crate::storage::Store;
use crate::train::pixels::{PixelStore, Pixels};

/// Share of each label's images held out for validation.
pub const VALIDATION_SHARE: f64 = 0.1;
/// A decode may allocate at most this much (decompression bombs fail, not the worker).
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// One decoded image: `side`×`side` interleaved RGB.
pub struct Sample {
    pub image_id: i64,
    pub class: usize,
    pub image: Pixels,
}

pub struct Data {
    /// The task's memory budget (what the images left of it is for caches).
    pub store: Arc<PixelStore>,
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
    let source = s.storage.open_uri(&ds.location)?;
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
    // The head trains on cached backbone features (a plain and a mirrored view of each
    // training image): those are taken from the budget first, images get the rest.
    let store = task_store(s);
    let feature_bytes = (train_ids.len() * 2 * FEATURES * 4) as u64;
    if !store.reserve(feature_bytes) {
        bail!(
            "{} training images need {} MB of backbone features, more than \
             AUTOLEARN_TRAIN_MEMORY_MB ({} MB) allows; raise it or train on fewer images",
            train_ids.len(),
            feature_bytes.div_ceil(1 << 20),
            s.config.train_memory_bytes >> 20
        );
    }
    let side_train = train_side(task.image_size);
    let side_val = task.image_size;
    let jobs = train_ids
        .into_iter()
        .map(|x| (x, side_train, false))
        .chain(val_ids.into_iter().map(|x| (x, side_val, true)))
        .map(|((id, class), side, is_val)| ((id, class, is_val), paths[&id].clone(), side));
    let results = read_squares(&source, &store, jobs).await?;
    log_spilled(&store, log);
    let mut data = Data {
        store,
        labels: task.labels.clone(),
        train: Vec::new(),
        val: Vec::new(),
        skipped: Vec::new(),
    };
    for ((image_id, class, is_val), path, decoded) in results {
        match decoded {
            Ok(image) => {
                let s = Sample {
                    image_id,
                    class,
                    image,
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

/// The memory budget of one training task, spilling under `<data dir>/tmp`.
pub fn task_store(s: &AppState) -> Arc<PixelStore> {
    Arc::new(PixelStore::new(
        s.config.train_memory_bytes,
        &s.config.data_dir.join("tmp"),
    ))
}

/// Says how many images went to disk, if any.
pub fn log_spilled(store: &PixelStore, log: &(dyn Fn(String) + Sync)) {
    if store.spilled() > 0 {
        log(format!(
            "{} decoded images did not fit in AUTOLEARN_TRAIN_MEMORY_MB and are read from a \
             spill file on disk",
            store.spilled()
        ));
    }
}

/// Reads and decodes images in parallel, each squeezed to a `side`×`side` square (as the
/// predict path prepares them) and kept by `pixels`, in no particular order:
/// `(key, path, side)` in, `(key, path, image or why it could not be read)` out. Failing to
/// write the spill file fails the whole load (a full disk must not quietly drop images).
pub async fn read_squares<K: Send + 'static>(
    source: &Store,
    pixels: &Arc<PixelStore>,
    jobs: impl Iterator<Item = (K, String, u32)>,
) -> anyhow::Result<Vec<(K, String, Result<Pixels, String>)>> {
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let results: Vec<_> = futures_util::stream::iter(jobs)
        .map(|(key, path, side)| {
            let (source, pixels) = (source.clone(), pixels.clone());
            async move {
                let decoded = match source.read(&path, crate::indexer::MAX_IMAGE_BYTES).await {
                    Ok(b) => tokio::task::spawn_blocking(move || {
                        match preprocess::decode_near(&b, MAX_DECODE_BYTES, side) {
                            Ok((img, _)) => {
                                pixels.keep(preprocess::resize_square(&img, side)).map(Ok)
                            }
                            Err(e) => Ok(Err(e)),
                        }
                    })
                    .await
                    .unwrap_or_else(|e| Ok(Err(e.to_string()))),
                    Err(e) => Ok(Err(e.to_string())),
                };
                (key, path, decoded)
            }
        })
        .buffer_unordered(threads * 2)
        .collect()
        .await;
    results
        .into_iter()
        .map(|(key, path, decoded)| {
            let decoded = decoded.context("writing a training image to the spill file")?;
            Ok((key, path, decoded))
        })
        .collect()
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
