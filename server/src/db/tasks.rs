//! Training tasks as a queue, their events, and the model versions they yield.
//!
//! Workers claim the oldest queued task with `FOR UPDATE SKIP LOCKED` on PostgreSQL (so
//! many workers on many machines never take the same row and never wait on each other);
//! SQLite serialises writers, so the same statement without the locking clause is atomic
//! there. A claimed task carries a lease its worker renews; a task whose lease ran out is
//! re-queued once, then failed.

use shared::train::{
    CreateTask, DeviceChoice, Metrics, ModelVersion, Preset, Progress, Task, TaskEvent,
    TaskEventBody, TaskStatus,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, now_rfc3339, unix_now};

/// A worker whose lease ran out this many times loses the task for good.
pub const MAX_ATTEMPTS: i64 = 2;

const TASK_COLUMNS: &str = "id, instance_id, name, description, dataset_id, labels, preset, device, \
    max_minutes, base_model_id, image_size, max_epochs, seed, status, progress, stop_requested, \
    device_used, worker, attempts, error, model_id, created_at, started_at, finished_at, last_progress, patience";

fn decode_err(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("{what}: {e}").into())
}

fn task_from_row(r: &AnyRow) -> sqlx::Result<Task> {
    let labels: String = r.try_get(5)?;
    let preset: String = r.try_get(6)?;
    let device: String = r.try_get(7)?;
    let status: String = r.try_get(13)?;
    let last: Option<String> = r.try_get(24)?;
    Ok(Task {
        id: r.try_get(0)?,
        instance_id: r.try_get(1)?,
        name: r.try_get(2)?,
        description: r.try_get(3)?,
        dataset_id: r.try_get(4)?,
        labels: serde_json::from_str(&labels).map_err(|e| decode_err("labels", e))?,
        preset: Preset::parse(&preset).ok_or_else(|| decode_err("preset", &preset))?,
        device: DeviceChoice::parse(&device).ok_or_else(|| decode_err("device", &device))?,
        max_minutes: r.try_get(8)?,
        base_model_id: r.try_get(9)?,
        image_size: u32::try_from(r.try_get::<i64, _>(10)?).map_err(|e| decode_err("size", e))?,
        max_epochs: r
            .try_get::<Option<i64>, _>(11)?
            .map(|e| u32::try_from(e).unwrap_or(u32::MAX)),
        seed: r.try_get::<i64, _>(12)?.cast_unsigned(),
        patience: r
            .try_get::<Option<i64>, _>(25)?
            .map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
        status: TaskStatus::parse(&status).ok_or_else(|| decode_err("status", &status))?,
        progress: r.try_get(14)?,
        stop_requested: r.try_get::<i64, _>(15)? != 0,
        device_used: r.try_get(16)?,
        worker: r.try_get(17)?,
        attempts: r.try_get(18)?,
        error: r.try_get(19)?,
        model_id: r.try_get(20)?,
        created_at: r.try_get(21)?,
        started_at: r.try_get(22)?,
        finished_at: r.try_get(23)?,
        last_progress: last
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| decode_err("last_progress", e))?,
    })
}

const MODEL_COLUMNS: &str = "id, instance_id, task_id, version, preset, labels, image_size, metrics, \
    size_bytes, pretrained, base_model_id, created_at, artifact";

fn model_from_row(r: &AnyRow) -> sqlx::Result<(ModelVersion, String)> {
    let preset: String = r.try_get(4)?;
    let labels: String = r.try_get(5)?;
    let metrics: String = r.try_get(7)?;
    let m = ModelVersion {
        id: r.try_get(0)?,
        instance_id: r.try_get(1)?,
        task_id: r.try_get(2)?,
        version: r.try_get(3)?,
        preset: Preset::parse(&preset).ok_or_else(|| decode_err("preset", &preset))?,
        labels: serde_json::from_str(&labels).map_err(|e| decode_err("labels", e))?,
        image_size: u32::try_from(r.try_get::<i64, _>(6)?).map_err(|e| decode_err("size", e))?,
        metrics: serde_json::from_str(&metrics).map_err(|e| decode_err("metrics", e))?,
        size_bytes: r.try_get::<i64, _>(8)?.cast_unsigned(),
        pretrained: r.try_get::<i64, _>(9)? != 0,
        base_model_id: r.try_get(10)?,
        created_at: r.try_get(11)?,
    };
    Ok((m, r.try_get(12)?))
}

/// What a finished training run hands to [`Db::finish_with_model`].
pub struct NewModel<'a> {
    pub task: &'a Task,
    pub labels: &'a [String],
    pub metrics: &'a Metrics,
    pub pretrained: bool,
    pub artifact: &'a str,
}

impl Db {
    pub async fn create_task(
        &self,
        instance_id: i64,
        req: &CreateTask,
        image_size: u32,
        seed: u64,
    ) -> sqlx::Result<i64> {
        let now = now_rfc3339();
        let id: i64 = sqlx::query(
            "INSERT INTO tasks (instance_id, name, description, dataset_id, labels, preset, device, \
             max_minutes, base_model_id, image_size, max_epochs, seed, status, created_at, patience) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $14) RETURNING id",
        )
        .bind(instance_id)
        .bind(&req.name)
        .bind(&req.description)
        .bind(req.dataset_id)
        .bind(serde_json::to_string(&req.labels).unwrap_or_default())
        .bind(req.preset.as_str())
        .bind(req.device.as_str())
        .bind(req.max_minutes)
        .bind(req.base_model_id)
        .bind(i64::from(image_size))
        .bind(req.max_epochs.map(i64::from))
        .bind(seed.cast_signed())
        .bind(&now)
        .bind(req.patience.map(i64::from))
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        self.append_event(
            id,
            &TaskEventBody::Status {
                status: TaskStatus::Queued,
                error: None,
                model_id: None,
            },
        )
        .await?;
        Ok(id)
    }

    pub async fn task(&self, id: i64) -> sqlx::Result<Option<Task>> {
        sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(task_from_row)
            .transpose()
    }

    pub async fn tasks(&self, instance_id: i64) -> sqlx::Result<Vec<Task>> {
        sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE instance_id = $1 ORDER BY id DESC"
        ))
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(task_from_row)
        .collect()
    }

    /// Stops a queued task at once; asks the worker of a running one to stop.
    pub async fn request_stop(&self, id: i64) -> sqlx::Result<()> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let stopped = sqlx::query(
            "UPDATE tasks SET status = 'stopped', finished_at = $2, stop_requested = 1 \
             WHERE id = $1 AND status = 'queued'",
        )
        .bind(id)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if stopped > 0 {
            insert_event(
                &mut tx,
                id,
                &TaskEventBody::Status {
                    status: TaskStatus::Stopped,
                    error: None,
                    model_id: None,
                },
            )
            .await?;
            return tx.commit().await;
        }
        tx.commit().await?;
        sqlx::query("UPDATE tasks SET stop_requested = 1 WHERE id = $1 AND status = 'running'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Re-queues (or, after [`MAX_ATTEMPTS`], fails) running tasks whose lease ran out.
    pub async fn reap_expired_tasks(&self) -> sqlx::Result<u64> {
        let now = unix_now();
        let expired: Vec<(i64, i64, Option<String>)> = sqlx::query(
            "SELECT id, attempts, worker FROM tasks WHERE status = 'running' AND lease_until < $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<sqlx::Result<_>>()?;
        let mut n = 0;
        for (id, attempts, worker) in expired {
            let who = worker.unwrap_or_else(|| "?".into());
            let (status, msg) = if attempts >= MAX_ATTEMPTS {
                (
                    TaskStatus::Failed,
                    format!(
                        "worker {who} stopped answering (lease expired) on attempt {attempts}; giving up"
                    ),
                )
            } else {
                (
                    TaskStatus::Queued,
                    format!("worker {who} stopped answering (lease expired); re-queued"),
                )
            };
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE tasks SET status = $2, worker = NULL, error = $3, \
                 finished_at = CASE WHEN $2 = 'failed' THEN $4 ELSE NULL END \
                 WHERE id = $1 AND status = 'running' AND lease_until < $5",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(&msg)
            .bind(now_rfc3339())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done > 0 {
                n += 1;
                insert_event(&mut tx, id, &TaskEventBody::Log { line: msg.clone() }).await?;
                insert_event(
                    &mut tx,
                    id,
                    &TaskEventBody::Status {
                        status,
                        error: (status == TaskStatus::Failed).then_some(msg),
                        model_id: None,
                    },
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(n)
    }

    /// Takes the oldest queued task for `worker`, leased for `lease_secs`.
    pub async fn claim_task(&self, worker: &str, lease_secs: i64) -> sqlx::Result<Option<Task>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE tasks SET status = 'running', worker = $1, lease_until = $2, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $3), error = NULL \
             WHERE status = 'queued' AND id = \
             (SELECT id FROM tasks WHERE status = 'queued' ORDER BY id LIMIT 1{lock}) \
             RETURNING id"
        ))
        .bind(worker)
        .bind(unix_now() + lease_secs)
        .bind(now_rfc3339())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get(0)?;
        insert_event(
            &mut tx,
            id,
            &TaskEventBody::Status {
                status: TaskStatus::Running,
                error: None,
                model_id: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.task(id).await
    }

    /// Extends the lease; `None` when the task is no longer this worker's (reaped), else
    /// whether a stop was requested.
    pub async fn renew_lease(
        &self,
        id: i64,
        worker: &str,
        lease_secs: i64,
    ) -> sqlx::Result<Option<bool>> {
        let row = sqlx::query(
            "UPDATE tasks SET lease_until = $3 WHERE id = $1 AND worker = $2 AND status = 'running' \
             RETURNING stop_requested",
        )
        .bind(id)
        .bind(worker)
        .bind(unix_now() + lease_secs)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<i64, _>(0).map(|s| s != 0))
            .transpose()
    }

    pub async fn set_device_used(&self, id: i64, device: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE tasks SET device_used = $2 WHERE id = $1")
            .bind(id)
            .bind(device)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn record_progress(&self, id: i64, p: &Progress) -> sqlx::Result<()> {
        let json = serde_json::to_string(p).unwrap_or_default();
        sqlx::query("UPDATE tasks SET progress = $2, last_progress = $3 WHERE id = $1")
            .bind(id)
            .bind(p.progress)
            .bind(&json)
            .execute(&self.pool)
            .await?;
        self.append_event(id, &TaskEventBody::Progress(p.clone()))
            .await
    }

    pub async fn append_event(&self, task_id: i64, body: &TaskEventBody) -> sqlx::Result<()> {
        insert_event(&mut *self.pool.acquire().await?, task_id, body).await
    }

    /// Events after `seq` (0: from the start), oldest first; `kind` narrows to one kind.
    pub async fn task_events(
        &self,
        task_id: i64,
        after: i64,
        kind: Option<&str>,
        limit: i64,
    ) -> sqlx::Result<Vec<TaskEvent>> {
        sqlx::query(
            "SELECT id, body, at FROM task_events WHERE task_id = $1 AND id > $2 \
             AND ($3 = '' OR kind = $3) ORDER BY id LIMIT $4",
        )
        .bind(task_id)
        .bind(after)
        .bind(kind.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let body: String = r.try_get(1)?;
            Ok(TaskEvent {
                seq: r.try_get(0)?,
                at: r.try_get(2)?,
                body: serde_json::from_str(&body).map_err(|e| decode_err("event", e))?,
            })
        })
        .collect()
    }

    /// Ends a task this worker holds without a model (failed, or stopped before any).
    pub async fn finish_task(
        &self,
        id: i64,
        worker: &str,
        status: TaskStatus,
        error: Option<&str>,
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tasks SET status = $3, error = $4, finished_at = $5 \
             WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(worker)
        .bind(status.as_str())
        .bind(error)
        .bind(now_rfc3339())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if done {
            insert_event(
                &mut tx,
                id,
                &TaskEventBody::Status {
                    status,
                    error: error.map(str::to_owned),
                    model_id: None,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Records the model version and ends the task in one transaction; `None` when the task
    /// is no longer this worker's (its lease ran out and someone else has it).
    pub async fn finish_with_model(
        &self,
        worker: &str,
        status: TaskStatus,
        m: &NewModel<'_>,
    ) -> sqlx::Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let now = now_rfc3339();
        let owned = sqlx::query(
            "UPDATE tasks SET status = $3, finished_at = $4, progress = 1 \
             WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind(m.task.id)
        .bind(worker)
        .bind(status.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !owned {
            return Ok(None);
        }
        if self.backend == Backend::Postgres {
            // Version numbers are per instance: workers finishing at the same moment take
            // turns here (SQLite already serialises write transactions).
            sqlx::query("SELECT id FROM instances WHERE id = $1 FOR UPDATE")
                .bind(m.task.instance_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let version: i64 =
            sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE instance_id = $1")
                .bind(m.task.instance_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let model_id: i64 = sqlx::query(
            "INSERT INTO models (instance_id, task_id, version, preset, labels, image_size, metrics, \
             size_bytes, pretrained, base_model_id, artifact, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(m.task.instance_id)
        .bind(m.task.id)
        .bind(version)
        .bind(m.task.preset.as_str())
        .bind(serde_json::to_string(m.labels).unwrap_or_default())
        .bind(i64::from(m.task.image_size))
        .bind(serde_json::to_string(m.metrics).unwrap_or_default())
        .bind(m.metrics.model_size().cast_signed())
        .bind(i64::from(m.pretrained))
        .bind(m.task.base_model_id)
        .bind(m.artifact)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        sqlx::query("UPDATE tasks SET model_id = $2 WHERE id = $1")
            .bind(m.task.id)
            .bind(model_id)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            m.task.id,
            &TaskEventBody::Status {
                status,
                error: None,
                model_id: Some(model_id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(model_id))
    }

    pub async fn models(&self, instance_id: i64) -> sqlx::Result<Vec<ModelVersion>> {
        sqlx::query(&format!(
            "SELECT {MODEL_COLUMNS} FROM models WHERE instance_id = $1 ORDER BY version DESC"
        ))
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| model_from_row(r).map(|(m, _)| m))
        .collect()
    }

    /// A model version and the storage key of its artifact.
    pub async fn model(&self, id: i64) -> sqlx::Result<Option<(ModelVersion, String)>> {
        sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(model_from_row)
            .transpose()
    }

    /// Names of the services serving a model version.
    pub async fn services_of_model(&self, id: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query("SELECT name FROM services WHERE model_id = $1 ORDER BY name")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    }

    pub async fn delete_model(&self, id: i64) -> sqlx::Result<bool> {
        Ok(sqlx::query("DELETE FROM models WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }
}

/// Appends an event on `conn`: a transaction's, so that a status change and its event
/// commit together (a stream never sees one without the other).
async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    task_id: i64,
    body: &TaskEventBody,
) -> sqlx::Result<()> {
    let kind = match body {
        TaskEventBody::Log { .. } => "log",
        TaskEventBody::Progress(_) => "progress",
        TaskEventBody::Status { .. } => "status",
    };
    sqlx::query("INSERT INTO task_events (task_id, kind, body, at) VALUES ($1, $2, $3, $4)")
        .bind(task_id)
        .bind(kind)
        .bind(serde_json::to_string(body).unwrap_or_default())
        .bind(now_rfc3339())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
