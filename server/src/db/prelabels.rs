//! Pre-labels: a model version's drafts for unlabelled images, and the run making them.
//! Drafts live in their own table, so nothing that counts, lists, exports or trains on
//! labels ever sees them; the app saves an accepted draft as an ordinary annotation.

use shared::api::{Prelabel, PrelabelRun};
use sqlx::Row;

use super::{Db, now_rfc3339, rfc3339, unix_now};

/// A running run whose row was not updated for this long lost the server running it.
pub const STALE_AFTER_SECS: i64 = 60;

impl Db {
    /// Starts a run, replacing the previous run and its drafts, unless one is running (then
    /// `false`). One transaction, so two servers cannot both start one.
    pub async fn start_prelabel_run(
        &self,
        dataset_id: i64,
        model_id: i64,
        total: i64,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let now = now_rfc3339();
        // The row is claimed first (an UPDATE takes the row's, or SQLite's, write lock), so
        // the check below and the replacement are one decision.
        let claimed = sqlx::query(
            "UPDATE prelabel_runs SET state = 'running', model_id = $1, done = 0, total = $2, \
             message = NULL, started_at = $3, updated_at = $3 \
             WHERE dataset_id = $4 AND (state <> 'running' OR updated_at < $5)",
        )
        .bind(model_id)
        .bind(total)
        .bind(&now)
        .bind(dataset_id)
        .bind(rfc3339(unix_now() - STALE_AFTER_SECS))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            let exists = sqlx::query("SELECT 1 FROM prelabel_runs WHERE dataset_id = $1")
                .bind(dataset_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if exists {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO prelabel_runs (dataset_id, model_id, state, done, total, started_at, updated_at) \
                 VALUES ($1, $2, 'running', 0, $3, $4, $4)",
            )
            .bind(dataset_id)
            .bind(model_id)
            .bind(total)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM prelabels WHERE dataset_id = $1")
            .bind(dataset_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records progress (and that the run's server is alive).
    pub async fn prelabel_progress(&self, dataset_id: i64, done: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE prelabel_runs SET done = $1, updated_at = $2 WHERE dataset_id = $3 AND state = 'running'",
        )
        .bind(done)
        .bind(now_rfc3339())
        .bind(dataset_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends the run: `done` (with a note, if any) or `failed` (with the reason).
    pub async fn finish_prelabel_run(
        &self,
        dataset_id: i64,
        failed: bool,
        message: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE prelabel_runs SET state = $1, message = $2, updated_at = $3 WHERE dataset_id = $4",
        )
        .bind(if failed { "failed" } else { "done" })
        .bind(message)
        .bind(now_rfc3339())
        .bind(dataset_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores an image's drafts, only while the image is still unlabelled and present: the
    /// check is in the statement itself, so a label saved meanwhile always wins. Returns
    /// whether it was stored.
    pub async fn put_prelabel(&self, dataset_id: i64, p: &Prelabel) -> sqlx::Result<bool> {
        let draft = serde_json::to_string(p).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let n = sqlx::query(
            "INSERT INTO prelabels (image_id, dataset_id, model_id, draft, created_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM images m WHERE m.id = $1 \
               AND m.dataset_id = $2 AND m.labelled = 0 AND m.deleted = 0 AND m.removed = 0) \
             ON CONFLICT (image_id) DO UPDATE SET model_id = excluded.model_id, \
               draft = excluded.draft, created_at = excluded.created_at",
        )
        .bind(p.image_id)
        .bind(dataset_id)
        .bind(p.model_id)
        .bind(draft)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// The dataset's run, if any; a running one whose server stopped reads as failed.
    pub async fn prelabel_run(&self, dataset_id: i64) -> sqlx::Result<Option<PrelabelRun>> {
        let Some(r) = sqlx::query(
            "SELECT model_id, state, done, total, message, started_at, updated_at \
             FROM prelabel_runs WHERE dataset_id = $1",
        )
        .bind(dataset_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut run = PrelabelRun {
            model_id: r.try_get(0)?,
            state: r.try_get(1)?,
            done: r.try_get(2)?,
            total: r.try_get(3)?,
            message: r.try_get(4)?,
            started_at: r.try_get(5)?,
            updated_at: r.try_get(6)?,
        };
        if run.state == "running" && run.updated_at < rfc3339(unix_now() - STALE_AFTER_SECS) {
            run.state = "failed".into();
            run.message = Some("interrupted: the server running it stopped; start it again".into());
        }
        Ok(Some(run))
    }

    /// The drafts waiting for a decision, for images still present, in path order.
    pub async fn prelabels(&self, dataset_id: i64) -> sqlx::Result<Vec<Prelabel>> {
        sqlx::query(
            "SELECT p.draft FROM prelabels p JOIN images m ON m.id = p.image_id \
             WHERE p.dataset_id = $1 AND m.deleted = 0 AND m.removed = 0 ORDER BY m.rel_path",
        )
        .bind(dataset_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let json: String = r.try_get(0)?;
            serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
    }

    /// Drops an image's drafts (all accepted or rejected). Returns whether it had any.
    pub async fn delete_prelabel(&self, image_id: i64) -> sqlx::Result<bool> {
        let n = sqlx::query("DELETE FROM prelabels WHERE image_id = $1")
            .bind(image_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}
