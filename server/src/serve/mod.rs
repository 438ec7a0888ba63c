//! Serving models (SPEC §7): each predict service's model is loaded once into an
//! [`engine::Engine`] (fixed-size images for classifiers and detectors, whole pages for
//! OCR: [`Runner`]); the database says which version a service serves, checked at most
//! once a second, so a version swap (possibly made through another server) loads the new
//! model beside the old one and switches when it is ready. Requests already holding the
//! old engine finish on it; nothing in flight is dropped.

pub mod detection;
pub mod engine;
pub mod ocr;
pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::prelude::*;
use shared::InstanceType;
use shared::predict::{Prediction, classification_body, detection_body};

use crate::AppState;
use crate::artifact;
use engine::{Busy, Engine, ImageEngine, Square, Ticket};
use ocr::OcrEngine;

const RECHECK: Duration = Duration::from_secs(1);

/// What runs a service's model.
#[derive(Clone)]
pub enum Runner {
    /// A classifier or detector: `3×side×side` inputs, one output row each.
    Image {
        engine: Arc<ImageEngine>,
        side: usize,
    },
    /// An OCR reader: whole pages in, lines out.
    Ocr(Arc<OcrEngine>),
}

impl Runner {
    /// Takes a place for one image; `Busy` at once when all are taken.
    pub fn admit(&self) -> Result<Ticket, Busy> {
        match self {
            Self::Image { engine, .. } => engine.admit(),
            Self::Ocr(engine) => engine.admit(),
        }
    }
}

/// A service as loaded here.
pub struct Loaded {
    pub runner: Runner,
    /// What an image engine's outputs are: class probabilities or a detector's head output.
    pub kind: InstanceType,
    /// A detector's served confidence threshold.
    pub conf_threshold: f32,
    pub labels: Vec<String>,
    pub model_id: i64,
    pub replicas: i64,
    pub token_hash: String,
    checked: Instant,
}

#[derive(Default)]
pub struct PredictCache {
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    /// `loading`, `running` or `failed: ...` per service, for `GET /api/services/{name}`.
    status: Mutex<HashMap<String, String>>,
    /// One load at a time: loads are rare and CPU-heavy; waiters then find the model loaded.
    loading: tokio::sync::Mutex<()>,
    /// Failed loads per service: not retried before their backoff ends.
    failures: Mutex<HashMap<String, LoadFailure>>,
}

/// A failed load and when the next attempt may start.
struct LoadFailure {
    model_id: i64,
    attempts: u32,
    retry_at: Instant,
    message: String,
}

/// Longest wait between attempts to load a model that failed to load.
const MAX_LOAD_BACKOFF: Duration = Duration::from_secs(60);

/// Who asks for a service's model.
#[derive(Clone, Copy)]
pub enum Caller<'a> {
    /// A predict request, with the token it sent (checked before anything is loaded).
    Token(Option<&'a str>),
    /// The server itself (loading right after a deploy).
    Server,
}

/// Why a service cannot answer.
pub enum Unavailable {
    /// No such service, or not its token: one answer, so names cannot be probed.
    Refused,
    /// Loading failed; the message says why.
    Failed(String),
}

impl Loaded {
    /// The SPEC §7 body of one image's image-engine output (`side` its input side).
    pub fn body(&self, output: &[f32], side: usize) -> Vec<Prediction> {
        match self.kind {
            InstanceType::ObjectDetection => {
                let dets = detection::boxes(output, self.labels.len(), side, self.conf_threshold);
                detection_body(&self.labels, &dets, side)
            }
            _ => classification_body(&self.labels, output),
        }
    }
}

impl PredictCache {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self, name: &str) -> Option<String> {
        Self::lock(&self.status).get(name).cloned()
    }

    fn set_status(&self, name: &str, status: String) {
        Self::lock(&self.status).insert(name.to_owned(), status);
    }

    /// Failed attempts to load a service's current model since it last loaded.
    pub fn load_attempts(&self, name: &str) -> u32 {
        Self::lock(&self.failures)
            .get(name)
            .map_or(0, |f| f.attempts)
    }

    pub fn forget(&self, name: &str) {
        Self::lock(&self.loaded).remove(name);
        Self::lock(&self.status).remove(name);
        Self::lock(&self.failures).remove(name);
    }

    /// The service ready to answer, loading (or re-loading after a swap) when needed. A
    /// request's token is checked against the stored hash first: a request without the
    /// right one never causes a load.
    pub async fn get(
        &self,
        s: &AppState,
        name: &str,
        caller: Caller<'_>,
    ) -> Result<Arc<Loaded>, Unavailable> {
        let allowed = |hash: &str| match caller {
            Caller::Token(sent) => crate::auth::token_matches(sent, hash),
            Caller::Server => true,
        };
        let cached = Self::lock(&self.loaded).get(name).cloned();
        if let Some(c) = &cached
            && c.checked.elapsed() < RECHECK
        {
            return if allowed(&c.token_hash) {
                Ok(c.clone())
            } else {
                Err(Unavailable::Refused)
            };
        }
        let row =
            s.db.predict_service_auth(name)
                .await
                .map_err(|e| Unavailable::Failed(format!("database: {e}")))?;
        let Some((token_hash, model_id, replicas)) = row else {
            self.forget(name);
            return Err(Unavailable::Refused);
        };
        if !allowed(&token_hash) {
            return Err(Unavailable::Refused);
        }
        if let Some(c) = cached.clone()
            && c.model_id == model_id
            && c.replicas == replicas
        {
            let fresh = Arc::new(Loaded {
                runner: c.runner.clone(),
                kind: c.kind,
                conf_threshold: c.conf_threshold,
                labels: c.labels.clone(),
                model_id,
                replicas,
                token_hash,
                checked: Instant::now(),
            });
            Self::lock(&self.loaded).insert(name.to_owned(), fresh.clone());
            return Ok(fresh);
        }
        // While a new version loads, requests keep going to the old one.
        let _one = match (self.loading.try_lock(), cached) {
            (Ok(guard), _) => guard,
            (Err(_), Some(old)) => return Ok(old),
            (Err(_), None) => self.loading.lock().await,
        };
        // Someone may have loaded it while we waited.
        if let Some(c) = Self::lock(&self.loaded).get(name)
            && c.model_id == model_id
            && c.replicas == replicas
        {
            return Ok(c.clone());
        }
        if let Some(f) = Self::lock(&self.failures).get(name)
            && f.model_id == model_id
            && Instant::now() < f.retry_at
        {
            return Err(Unavailable::Failed(f.message.clone()));
        }
        if Self::lock(&self.loaded).get(name).is_none() {
            self.set_status(name, "loading".into());
        }
        match load_version(s, model_id, replicas).await {
            Ok(l) => {
                let l = Arc::new(Loaded { token_hash, ..l });
                Self::lock(&self.loaded).insert(name.to_owned(), l.clone());
                Self::lock(&self.failures).remove(name);
                self.set_status(name, "running".into());
                tracing::info!(
                    "service {name}: serving model {model_id} with {replicas} replica(s)"
                );
                Ok(l)
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::warn!("service {name}: loading model {model_id}: {msg}");
                self.set_status(name, format!("failed: {msg}"));
                let mut failures = Self::lock(&self.failures);
                let attempts = failures
                    .get(name)
                    .filter(|f| f.model_id == model_id)
                    .map_or(1, |f| f.attempts + 1);
                // 1 s, 2 s, 4 s, ... a minute: a broken artifact is not re-read per request.
                let backoff = Duration::from_secs(1 << (attempts - 1).min(6)).min(MAX_LOAD_BACKOFF);
                failures.insert(
                    name.to_owned(),
                    LoadFailure {
                        model_id,
                        attempts,
                        retry_at: Instant::now() + backoff,
                        message: msg.clone(),
                    },
                );
                Err(Unavailable::Failed(msg))
            }
        }
    }
}

/// Reads a model version's artifact and starts `replicas` engines for it, of the
/// artifact's kind. Services add their token's hash; pre-labelling runs a version this way
/// too (the same engine and answer as a service of it).
pub async fn load_version(s: &AppState, model_id: i64, replicas: i64) -> anyhow::Result<Loaded> {
    let (m, key) =
        s.db.model(model_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("model {model_id} no longer exists"))?;
    let store = s.storage.open_uri(&s.config.models_uri)?;
    let bytes = store.read(&key, artifact::MAX_ARTIFACT_BYTES).await?;
    let (runner, kind, threshold) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let (meta, weights) = artifact::unpack(&bytes)?;
        let device = Device::flex();
        let side = meta.image_size as usize;
        let replicas = usize::try_from(replicas).unwrap_or(1);
        let kind = meta.instance_type;
        let image = |engine: ImageEngine| Runner::Image {
            engine: Arc::new(engine),
            side,
        };
        let runner = match kind {
            InstanceType::ObjectDetection => {
                let net = detection::load(&meta, weights, &device)?;
                image(Engine::start(Square { net, side }, replicas))
            }
            InstanceType::Ocr => Runner::Ocr(Arc::new(Engine::start(
                ocr::PageReader::load(&meta, weights)?,
                replicas,
            ))),
            _ => {
                let model = artifact::load_weights(weights, meta.labels.len(), &device)?.valid();
                let net = shared::exec::NativeNet::new(&shared::model::FusedEfficientNetLite::new(
                    &model,
                ));
                image(Engine::start(Square { net, side }, replicas))
            }
        };
        Ok((runner, kind, meta.conf_threshold()))
    })
    .await??;
    Ok(Loaded {
        runner,
        kind,
        conf_threshold: threshold,
        labels: m.labels,
        model_id,
        replicas,
        token_hash: String::new(),
        checked: Instant::now(),
    })
}
