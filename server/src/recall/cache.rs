//! Loaded recall models per service. A request checks the database version of its instance
//! at most once a second, so changes made through any server (sharing one database) take
//! effect within a second, and changes made through this one at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::engine::RecallModel;
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
    /// The entry of a recall service, fresh to within a second; `None` if there is no such
    /// service.
    pub async fn get(&self, db: &Db, service: &str) -> sqlx::Result<Option<Arc<Entry>>> {
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
                return Ok(cached);
            }
        }
        let Some((instance_id, token_hash, version)) = db.recall_service_auth(service).await?
        else {
            self.services
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(service);
            return Ok(None);
        };
        if let Some(e) = cached.filter(|e| e.version == version && e.token_hash == token_hash) {
            return Ok(Some(e));
        }
        let model = Arc::new(load_model(db, instance_id).await?);
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
        Ok(Some(entry))
    }

    /// Forgets the models of an instance (after a change through this server).
    pub fn invalidate_instance(&self, instance_id: i64) {
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, e| e.instance_id != instance_id);
    }

    pub fn invalidate_service(&self, service: &str) {
        self.services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(service);
    }
}
