//! The tags of a dataset: listed with counts, added, renamed and deleted across images.

use shared::api::{Annotation, LabelCount};
use sqlx::Row;

use super::datasets::{annotation_json, replace_labels};
use super::{Db, now_rfc3339};

impl Db {
    /// Every tag of the dataset with the number of (present, not deleted) images carrying it.
    pub async fn dataset_labels(&self, dataset_id: i64) -> sqlx::Result<Vec<LabelCount>> {
        sqlx::query(
            "SELECT d.name, (SELECT COUNT(*) FROM image_labels l JOIN images m ON m.id = l.image_id \
               WHERE m.dataset_id = d.dataset_id AND l.label = d.name AND m.removed = 0 AND m.deleted = 0) \
             FROM dataset_labels d WHERE d.dataset_id = $1 ORDER BY d.name",
        )
        .bind(dataset_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(LabelCount { name: r.try_get(0)?, count: r.try_get(1)? }))
        .collect()
    }

    /// Adds a tag; a unique violation means it exists.
    pub async fn add_label(&self, dataset_id: i64, name: &str) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO dataset_labels (dataset_id, name) VALUES ($1, $2)")
            .bind(dataset_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Renames a tag (`new = Some`) or deletes it (`None`) on the dataset and on every image
    /// carrying it, in one transaction. Returns `false` if the dataset has no such tag.
    pub async fn relabel(
        &self,
        dataset_id: i64,
        old: &str,
        new: Option<&str>,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("DELETE FROM dataset_labels WHERE dataset_id = $1 AND name = $2")
            .bind(dataset_id)
            .bind(old)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            return Ok(false);
        }
        if let Some(n) = new {
            sqlx::query("INSERT INTO dataset_labels (dataset_id, name) VALUES ($1, $2)")
                .bind(dataset_id)
                .bind(n)
                .execute(&mut *tx)
                .await?;
        }
        let rows = sqlx::query(
            "SELECT m.id, m.annotation, m.revision FROM images m JOIN image_labels l ON l.image_id = m.id \
             WHERE m.dataset_id = $1 AND l.label = $2",
        )
        .bind(dataset_id)
        .bind(old)
        .fetch_all(&mut *tx)
        .await?;
        let now = now_rfc3339();
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let (mut json, mut revision): (String, i64) = (r.try_get(1)?, r.try_get(2)?);
            // Each rewrite names the revision it read: a save that landed since (PostgreSQL
            // lets one in between) is read again and rewritten, never overwritten.
            loop {
                let mut a: Annotation =
                    serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                if !a.relabel(old, new) {
                    break;
                }
                let done = sqlx::query(
                    "UPDATE images SET annotation = $1, labelled = $2, edited = 1, updated_at = $3, \
                     revision = revision + 1 WHERE id = $4 AND revision = $5",
                )
                .bind(annotation_json(&a))
                .bind(i64::from(!a.is_empty()))
                .bind(&now)
                .bind(id)
                .bind(revision)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done == 1 {
                    replace_labels(&mut tx, id, &a).await?;
                    break;
                }
                let Some(again) =
                    sqlx::query("SELECT annotation, revision FROM images WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?
                else {
                    break;
                };
                (json, revision) = (again.try_get(0)?, again.try_get(1)?);
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}
