//! Files that belong to deleted rows, removed once the rows are gone (so nothing can reach
//! them any more): model artifacts and their web form, grid thumbnails, the images a demo
//! template generated. Never a user's dataset source files: those are indexed in place
//! and stay theirs.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::AppState;
use crate::storage::StorageError;

#[derive(Default)]
pub struct Leftovers {
    /// Model artifact keys in the models store (each with its web form).
    pub artifacts: Vec<String>,
    /// Stored behaviour logs of the instance's open CF builds, in the models store.
    pub cf_logs: Vec<String>,
    /// Images whose thumbnails go.
    pub image_ids: Vec<i64>,
    /// A template instance's generated images.
    pub template_dir: Option<PathBuf>,
}

impl Leftovers {
    /// What an instance leaves behind: read before its rows are deleted.
    pub async fn of_instance(s: &AppState, id: i64) -> sqlx::Result<Self> {
        let dir = s
            .config
            .data_dir
            .join("templates")
            .join(format!("instance-{id}"));
        Ok(Self {
            artifacts: s.db.instance_artifacts(id).await?,
            cf_logs: s.db.instance_cf_logs(id).await?,
            image_ids: s.db.instance_image_ids(id).await?,
            template_dir: dir.is_dir().then_some(dir),
        })
    }

    /// Removes everything listed; a failure is logged (the rows are gone already, so a
    /// leftover file is unreachable, not lost data). `whose` names the deleted thing.
    pub async fn remove(self, s: &AppState, whose: &str) {
        if !self.artifacts.is_empty() || !self.cf_logs.is_empty() {
            match s.storage.open_uri(&s.config.models_uri) {
                Ok(store) => {
                    let artifacts = self
                        .artifacts
                        .iter()
                        .flat_map(|key| [crate::artifact::web_key(key), key.clone()]);
                    for k in artifacts.chain(self.cf_logs) {
                        if let Err(e) = store.delete(&k).await
                            && !matches!(e, StorageError::NotFound(_))
                        {
                            tracing::warn!("{whose} deleted, but {k} could not be removed: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!("{whose} deleted, but its artifacts stay: {e}"),
            }
        }
        let thumbs = s.config.data_dir.join("thumbs");
        let ids: HashSet<i64> = self.image_ids.into_iter().collect();
        let template = self.template_dir;
        let whose = whose.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            if !ids.is_empty()
                && let Err(e) = crate::thumbnail::remove_of(&thumbs, &ids)
            {
                tracing::warn!("{whose} deleted, but some thumbnails stay: {e}");
            }
            if let Some(dir) = template
                && let Err(e) = std::fs::remove_dir_all(&dir)
            {
                tracing::warn!("{whose} deleted, but {} stays: {e}", dir.display());
            }
        })
        .await;
    }
}
