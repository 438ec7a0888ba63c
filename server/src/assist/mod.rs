//! Assisted labelling for image classification: every image's ImageNet-backbone embedding
//! is computed once per server (a background job with progress, re-done for an image whose
//! file changed size), a small softmax head ([`head`]) fits on the labelled images'
//! embeddings on each request, and the answer lists the unlabelled images with their
//! suggested label, least certain first, and the labelled images a cross-validated fit
//! doubts. Suggestions are never stored as labels: the app saves an accepted one through
//! the ordinary annotation path.

pub mod head;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use burn::prelude::Device;
use shared::api::{Doubtful, Image, LabelCount, Suggestion, Suggestions};
use shared::model::FusedEfficientNetLite;
use shared::predict::input;

use crate::AppState;
use shared::exec::{NativeNet, Scratch};

/// Labelled images each label needs before suggestions are shown (docs/benchmarks.md has
/// the accuracy measured against this).
pub const MIN_PER_LABEL: usize = 3;
/// Input side of the embeddings: the classification-fast preset's.
const SIDE: u32 = 224;
/// Images per forward pass of the embedding job.
const BATCH: usize = 8;
/// Cross-validation folds for the doubtful list.
const FOLDS: usize = 5;

/// One image's embedding, with the file size it was computed from; `None` when the image
/// could not be read or decoded (it gets no suggestion).
type Entry = (i64, Option<Arc<[f32]>>);

#[derive(Default)]
struct DatasetVectors {
    vectors: HashMap<i64, Entry>,
    /// `(done, total)` of the job computing the missing ones, while it runs.
    running: Option<Arc<(AtomicUsize, usize)>>,
}

/// The server's embeddings, per dataset, and the network that computes them.
#[derive(Default)]
pub struct Assist {
    net: tokio::sync::OnceCell<Arc<NativeNet>>,
    datasets: Mutex<HashMap<i64, DatasetVectors>>,
}

/// Clears a dataset's running job when dropped.
struct Running {
    assist: Arc<Assist>,
    dataset: i64,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut all = self
            .assist
            .datasets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.entry(self.dataset).or_default().running = None;
    }
}

/// What [`Assist::embeddings`] found.
enum Vectors {
    Ready(HashMap<i64, Arc<[f32]>>),
    Computing { done: usize, total: usize },
}

impl Assist {
    /// The ImageNet backbone on the serving executor, loaded on first use.
    async fn net(&self, s: &AppState) -> anyhow::Result<Arc<NativeNet>> {
        anyhow::ensure!(
            s.config.pretrained,
            "suggestions need the ImageNet weights, and this server runs with \
             AUTOLEARN_PRETRAINED=none"
        );
        let dir = s.config.weights_dir.clone();
        self.net
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let path = crate::train::weights::ensure(&dir)?;
                    let model = crate::train::weights::load_imagenet(&path, &Device::flex())?;
                    Ok(Arc::new(NativeNet::new(&FusedEfficientNetLite::new(
                        &model,
                    ))))
                })
                .await
                .context("loading the ImageNet backbone")?
            })
            .await
            .cloned()
    }

    /// The embeddings of `images` when all are there; else starts (or reports) the job
    /// computing the missing ones.
    async fn embeddings(
        self: &Arc<Self>,
        s: &AppState,
        dataset: i64,
        location: &str,
        images: &[Image],
    ) -> anyhow::Result<Vectors> {
        let net = self.net(s).await?;
        let store = s.storage.open_uri(location)?;
        let mut all = self.datasets.lock().unwrap_or_else(|e| e.into_inner());
        let ds = all.entry(dataset).or_default();
        if let Some(job) = &ds.running {
            return Ok(Vectors::Computing {
                done: job.0.load(Ordering::Relaxed),
                total: job.1,
            });
        }
        let missing: Vec<(i64, String, i64)> = images
            .iter()
            .filter(|i| {
                ds.vectors
                    .get(&i.id)
                    .is_none_or(|(size, _)| *size != i.size_bytes)
            })
            .map(|i| (i.id, i.path.clone(), i.size_bytes))
            .collect();
        if missing.is_empty() {
            return Ok(Vectors::Ready(
                images
                    .iter()
                    .filter_map(|i| Some((i.id, ds.vectors.get(&i.id)?.1.clone()?)))
                    .collect(),
            ));
        }
        let total = missing.len();
        let job = Arc::new((AtomicUsize::new(0), total));
        ds.running = Some(job.clone());
        drop(all);
        let (me, s) = (self.clone(), s.clone());
        tokio::spawn(async move {
            // However the job ends (done, or its task dropped), the next request may start
            // another for what is still missing.
            let _running = Running {
                assist: me.clone(),
                dataset,
            };
            let mut scratch = Scratch::default();
            for chunk in missing.chunks(BATCH) {
                let mut inputs = Vec::new();
                let mut entries: Vec<(i64, i64, bool)> = Vec::new();
                for (id, path, size) in chunk {
                    let prepared = match store.read(path, crate::indexer::MAX_IMAGE_BYTES).await {
                        Ok(bytes) => {
                            let Ok(permit) = s.decode_permits.clone().acquire_owned().await else {
                                return;
                            };
                            tokio::task::spawn_blocking(move || {
                                let _permit = permit;
                                input::prepare(&bytes, SIDE).ok()
                            })
                            .await
                            .ok()
                            .flatten()
                        }
                        Err(_) => None,
                    };
                    let ok = prepared.is_some();
                    if let Some((x, _)) = prepared {
                        inputs.extend(x);
                    }
                    entries.push((*id, *size, ok));
                }
                let n = entries.iter().filter(|e| e.2).count();
                let net = net.clone();
                let features = if n == 0 {
                    Vec::new()
                } else {
                    // The executor's buffers go to the blocking thread and come back for
                    // the next batch.
                    match tokio::task::spawn_blocking(move || {
                        let f = net.features(&inputs, n, SIDE as usize, &mut scratch);
                        (f, scratch)
                    })
                    .await
                    {
                        Ok((f, back)) => {
                            scratch = back;
                            f
                        }
                        // A panicked pass: these images get no embedding, so no suggestion.
                        Err(_) => {
                            scratch = Scratch::default();
                            Vec::new()
                        }
                    }
                };
                let dim = features.len() / n.max(1);
                let mut rows = features.chunks(dim.max(1));
                let mut all = me.datasets.lock().unwrap_or_else(|e| e.into_inner());
                let ds = all.entry(dataset).or_default();
                for (id, size, ok) in entries {
                    let v = if ok { rows.next().map(Arc::from) } else { None };
                    ds.vectors.insert(id, (size, v));
                }
                job.0.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        });
        Ok(Vectors::Computing { done: 0, total })
    }

    /// Suggestions for a classification dataset's images (all not deleted).
    pub async fn suggestions(
        self: &Arc<Self>,
        s: &AppState,
        dataset: i64,
        location: &str,
        images: Vec<Image>,
        with_doubtful: bool,
    ) -> anyhow::Result<Suggestions> {
        let vectors = match self.embeddings(s, dataset, location, &images).await? {
            Vectors::Computing { done, total } => {
                return Ok(Suggestions {
                    state: "computing".into(),
                    progress: done as f64 / total.max(1) as f64,
                    min_per_label: MIN_PER_LABEL,
                    ..Suggestions::default()
                });
            }
            Vectors::Ready(v) => v,
        };
        tokio::task::spawn_blocking(move || fit_and_rank(&images, &vectors, with_doubtful))
            .await
            .context("fitting suggestions")
    }
}

/// Fits the head on the images with exactly one label and ranks the rest; with
/// `with_doubtful`, also cross-validates the labelled ones for the doubtful list (several
/// fits more: asked for by the review list, not by every refresh).
pub fn fit_and_rank(
    images: &[Image],
    vectors: &HashMap<i64, Arc<[f32]>>,
    with_doubtful: bool,
) -> Suggestions {
    let t0 = Instant::now();
    let with_vec: Vec<&Image> = images
        .iter()
        .filter(|i| vectors.contains_key(&i.id))
        .collect();
    let raw: Vec<&[f32]> = with_vec.iter().map(|i| &*vectors[&i.id]).collect();
    let x = head::prepare(&raw);
    let mut per_label: BTreeMap<String, usize> = BTreeMap::new();
    for img in &with_vec {
        if let [l] = img.annotation.labels.as_slice() {
            *per_label.entry(l.clone()).or_default() += 1;
        }
    }
    let labels: Vec<String> = per_label.keys().cloned().collect();
    let mut out = Suggestions {
        state: "ready".into(),
        progress: 1.0,
        min_per_label: MIN_PER_LABEL,
        labels: per_label
            .iter()
            .map(|(name, &count)| LabelCount {
                name: name.clone(),
                count: count as i64,
            })
            .collect(),
        ..Suggestions::default()
    };
    if labels.len() < 2 || per_label.values().any(|&n| n < MIN_PER_LABEL) {
        return out;
    }
    let (mut lx, mut ly, mut lid) = (Vec::new(), Vec::new(), Vec::new());
    let mut unlabelled = Vec::new();
    for (img, xi) in with_vec.iter().zip(&x) {
        match img.annotation.labels.as_slice() {
            [l] => {
                lx.push(xi.as_slice());
                ly.push(labels.binary_search(l).expect("counted above"));
                lid.push(img.id);
            }
            [] if !img.labelled => unlabelled.push((img.id, xi.as_slice())),
            _ => {}
        }
    }
    let fitted = head::Head::fit(&lx, &ly, labels.len());
    out.suggestions = unlabelled
        .iter()
        .map(|&(id, xi)| {
            let p = fitted.probs(xi);
            let best = head::argmax(&p).unwrap_or(0);
            Suggestion {
                image_id: id,
                label: labels[best].clone(),
                confidence: f64::from(p[best]),
            }
        })
        .collect();
    out.suggestions
        .sort_by(|a, b| a.confidence.total_cmp(&b.confidence));
    if !with_doubtful {
        out.fit_ms = t0.elapsed().as_secs_f64() * 1e3;
        return out;
    }
    let oof = head::out_of_fold(&lx, &ly, labels.len(), FOLDS);
    out.doubtful = head::doubtful(&oof, &ly)
        .into_iter()
        .map(|(i, suggested, p_given)| Doubtful {
            image_id: lid[i],
            label: labels[ly[i]].clone(),
            suggested: labels[suggested].clone(),
            confidence: f64::from(p_given),
        })
        .collect();
    out.fit_ms = t0.elapsed().as_secs_f64() * 1e3;
    out
}
