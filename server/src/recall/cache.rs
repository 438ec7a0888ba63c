//! Loaded recall models per service. A request checks the database version of its instance
//! at most once a second, so changes made through any server (sharing one database) take
//! effect within a second, and changes made through this one at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::engine::RecallModel;
use crate::auth::token_matches;
use crate::db::Db;

const RECHECK: Duration = Duration::from_secs(1);

pub struct Entry {
    pub instance_id: i64,
    pub token_hash: String,
    version: i64,
    checked: Mutex<Instant>,
    pub model: Arc<RecallModel>,
}

#[derive(Default)]
pub struct RecallCache {
    services: RwLock<HashMap<String, Arc<Entry>>>,
    /// Built models by instance, with the recall version they were built at: the services
    /// of an instance and its test console share one.
    models: Mutex<HashMap<i64, (i64, Arc<RecallModel>)>>,
    /// One model build at a time (a build reads whole tables); waiters then find it built.
    building: tokio::sync::Mutex<()>,
}

/// The answer to a recall request's credentials.
pub enum Access {
    Granted(Arc<Entry>),
    /// No such service, or not its token: the same answer, so names cannot be probed.
    Refused,
}

/// Loads an instance's tables, strategies and filters into a model.
pub async fn load_model(db: &Db, instance_id: i64) -> sqlx::Result<RecallModel> {
    let rows = db.recall_rows(instance_id).await?;
    let strategies = db.strategies(instance_id).await?;
    let filters = db.filters(instance_id).await?;
    Ok(tokio::task::spawn_blocking(move || {
        RecallModel::from_rows(
            rows.iter().map(|(t, k, v)| (*t, k.as_str(), v.as_str())),
            strategies,
            filters,
        )
    })
    .await
    .expect("model building does not panic"))
}

impl RecallCache {
    /// The entry of a recall service for a request carrying `token`, fresh to within a
    /// second. The token is checked against the stored hash before any model is built.
    pub async fn get(&self, db: &Db, service: &str, token: Option<&str>) -> sqlx::Result<Access> {
        let cached = self
            .services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(service)
            .cloned();
        if let Some(e) = &cached {
            let fresh = {
                let mut checked = e
                    .checked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let fresh = checked.elapsed() < RECHECK;
                if !fresh {
                    // Claim this check so that concurrent requests keep using the entry.
                    *checked = Instant::now();
                }
                fresh
            };
            if fresh {
                return Ok(if token_matches(token, &e.token_hash) {
                    Access::Granted(e.clone())
                } else {
                    Access::Refused
                });
            }
        }
        let Some((instance_id, token_hash, version)) = db.recall_service_auth(service).await?
        else {
            self.invalidate_service(service);
            return Ok(Access::Refused);
        };
        if !token_matches(token, &token_hash) {
            return Ok(Access::Refused);
        }
        if let Some(e) = cached.filter(|e| e.version == version && e.token_hash == token_hash) {
            return Ok(Access::Granted(e));
        }
        let model = self.model(db, instance_id, version).await?;
        let entry = Arc::new(Entry {
            instance_id,
            token_hash,
            version,
            checked: Mutex::new(Instant::now()),
            model,
        });
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(service.to_owned(), entry.clone());
        Ok(Access::Granted(entry))
    }

    /// An instance's model at its recall `version`, built once however many requests ask.
    pub async fn model(
        &self,
        db: &Db,
        instance_id: i64,
        version: i64,
    ) -> sqlx::Result<Arc<RecallModel>> {
        let built = || {
            self.models
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&instance_id)
                .filter(|(v, _)| *v == version)
                .map(|(_, m)| m.clone())
        };
        if let Some(m) = built() {
            return Ok(m);
        }
        let _one = self.building.lock().await;
        if let Some(m) = built() {
            return Ok(m);
        }
        let model = Arc::new(load_model(db, instance_id).await?);
        self.models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(instance_id, (version, model.clone()));
        Ok(model)
    }

    /// Forgets the models of an instance (after a change through this server).
    pub fn invalidate_instance(&self, instance_id: i64) {
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, e| e.instance_id != instance_id);
        self.models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&instance_id);
    }

    pub fn invalidate_service(&self, service: &str) {
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(service);
    }
}
