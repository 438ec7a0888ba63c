//! Behaviour-log (CF) build jobs as rows, leased like training tasks: the server receiving
//! a log holds a `receiving` row while it parses, stores the parsed log and queues the job;
//! any server's builder claims it (`running`, leased and renewed with its progress) and
//! finishes it together with the tables it writes. A lease that runs out re-queues the job
//! (or fails it after [`MAX_ATTEMPTS`]); a receiving row whose server died fails, since its
//! log may not have been stored whole.

use shared::recall::{CfJob, CfStats};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::recall::replace_cf_rows;
use super::{Backend, Db, now_rfc3339, unix_now};

/// A build whose builder's lease ran out this many times fails for good.
pub const MAX_ATTEMPTS: i64 = 3;

/// Why a build cannot start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The instance has a build open.
    InstanceBusy,
    /// As many builds as allowed are open across the deployment.
    Full,
}

/// A claimed build: what the builder needs to run it. `owner` is this claim's own token, so a
/// build re-queued and claimed again by the same server is not renewed or ended through
/// the earlier claim.
#[derive(Debug, Clone)]
pub struct ClaimedCfJob {
    pub id: String,
    pub owner: String,
    pub instance_id: i64,
    pub top_n: i64,
    pub log_key: String,
    pub attempts: i64,
}

const OPEN: &str = "state IN ('receiving', 'queued', 'running')";
/// The stage of a build while its log arrives.
pub const RECEIVING_THE_LOG: &str = "receiving the log";
/// The stage of a queued build.
pub const WAITING_FOR_A_BUILDER: &str = "waiting for a builder";
/// The stage of a build just claimed.
pub const LOADING_THE_LOG: &str = "loading the log";
/// PostgreSQL advisory lock key taken while a build is opened.
const OPEN_LOCK: i64 = 0x0a17_cf00;

fn job_from_row(r: &AnyRow) -> sqlx::Result<CfJob> {
    let state: String = r.try_get(2)?;
    let stats: Option<String> = r.try_get(6)?;
    Ok(CfJob {
        id: r.try_get(0)?,
        instance_id: r.try_get(1)?,
        // Waiting (for its log or a builder) is running to a client: the job is under way.
        state: match state.as_str() {
            "receiving" | "queued" => "running".to_owned(),
            _ => state,
        },
        progress: r.try_get(3)?,
        stage: r.try_get(4)?,
        error: r.try_get(5)?,
        stats: stats
            .map(|s| serde_json::from_str::<CfStats>(&s))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
    })
}

impl Db {
    /// Opens a build in `receiving` for `owner`, its log to be stored under `log_key`,
    /// unless the instance has one open or `max_open` are open in all. One statement, which
    /// takes SQLite's write lock at once; on PostgreSQL a transaction-scoped advisory lock
    /// makes the count and the insert one decision across servers.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_cf_job(
        &self,
        id: &str,
        instance_id: i64,
        top_n: i64,
        log_key: &str,
        owner: &str,
        lease_secs: i64,
        max_open: i64,
    ) -> sqlx::Result<Result<(), Refused>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                .bind(OPEN_LOCK)
                .fetch_one(&mut *tx)
                .await?;
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO cf_jobs (id, instance_id, state, stage, progress, top_n, log_key, owner, \
             lease_until, created_at, updated_at) \
             SELECT $1, $2, 'receiving', $9, 0, $3, $4, $5, $6, $7, $7 \
             WHERE (SELECT COUNT(*) FROM cf_jobs WHERE {OPEN}) < $8"
        ))
        .bind(id)
        .bind(instance_id)
        .bind(top_n)
        .bind(log_key)
        .bind(owner)
        .bind(unix_now() + lease_secs)
        .bind(now_rfc3339())
        .bind(max_open)
        .bind(RECEIVING_THE_LOG)
        .execute(&mut *tx)
        .await;
        let refused = match inserted {
            Ok(r) if r.rows_affected() > 0 => None,
            // The instance's open build (the partial unique index decides, also between
            // servers).
            Err(e) if super::is_unique_violation(&e) => Some(Refused::InstanceBusy),
            Err(e) => return Err(e),
            Ok(_) => {
                let mine = sqlx::query(&format!(
                    "SELECT 1 FROM cf_jobs WHERE instance_id = $1 AND {OPEN}"
                ))
                .bind(instance_id)
                .fetch_optional(&mut *tx)
                .await?;
                Some(if mine.is_some() {
                    Refused::InstanceBusy
                } else {
                    Refused::Full
                })
            }
        };
        match refused {
            None => {
                tx.commit().await?;
                Ok(Ok(()))
            }
            Some(why) => Ok(Err(why)),
        }
    }

    /// Forgets a build whose log was refused (or whose client went away) while receiving;
    /// returns where its log would be stored, for the caller to remove.
    pub async fn drop_cf_job(&self, id: &str) -> sqlx::Result<Option<String>> {
        sqlx::query("DELETE FROM cf_jobs WHERE id = $1 AND state = 'receiving' RETURNING log_key")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<Option<String>, _>(0))
            .transpose()
            .map(Option::flatten)
    }

    /// Hands a received build, its log stored, to the builders; `false` when the row is no
    /// longer `owner`'s receiving row (its lease ran out meanwhile).
    pub async fn queue_cf_job(&self, id: &str, owner: &str) -> sqlx::Result<bool> {
        let n = sqlx::query(
            "UPDATE cf_jobs SET state = 'queued', stage = $3, owner = NULL, lease_until = 0, \
             updated_at = $4 WHERE id = $1 AND owner = $2 AND state = 'receiving'",
        )
        .bind(id)
        .bind(owner)
        .bind(WAITING_FOR_A_BUILDER)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Extends `owner`'s lease on a receiving or running build and records its progress;
    /// `false` when the build is no longer `owner`'s.
    pub async fn renew_cf_job(
        &self,
        id: &str,
        owner: &str,
        lease_secs: i64,
        (stage, progress): (&str, f64),
    ) -> sqlx::Result<bool> {
        let n = sqlx::query(
            "UPDATE cf_jobs SET lease_until = $3, stage = $4, progress = $5, updated_at = $6 \
             WHERE id = $1 AND owner = $2 AND state IN ('receiving', 'running')",
        )
        .bind(id)
        .bind(owner)
        .bind(unix_now() + lease_secs)
        .bind(stage)
        .bind(progress)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Settles builds whose server stopped answering: a receiving one fails (its log was
    /// perhaps not stored whole), a running one is queued again or, after [`MAX_ATTEMPTS`],
    /// fails. Returns the stored logs of the builds failed, for the caller to remove.
    pub async fn reap_cf_jobs(&self) -> sqlx::Result<Vec<String>> {
        let (now, at) = (unix_now(), now_rfc3339());
        let received = sqlx::query(
            "UPDATE cf_jobs SET state = 'failed', owner = NULL, updated_at = $2, \
             error = 'the server receiving this log stopped before the log was stored; upload it again' \
             WHERE state = 'receiving' AND lease_until < $1 RETURNING log_key",
        )
        .bind(now)
        .bind(&at)
        .fetch_all(&self.pool)
        .await?;
        let given_up = sqlx::query(
            "UPDATE cf_jobs SET state = 'failed', owner = NULL, updated_at = $3, \
             error = 'the servers building from this log stopped answering ' || attempts || ' times; giving up' \
             WHERE state = 'running' AND lease_until < $1 AND attempts >= $2 RETURNING log_key",
        )
        .bind(now)
        .bind(MAX_ATTEMPTS)
        .bind(&at)
        .fetch_all(&self.pool)
        .await?;
        sqlx::query(
            "UPDATE cf_jobs SET state = 'queued', owner = NULL, progress = 0, updated_at = $2, \
             stage = 'waiting for a builder (the previous one stopped answering)' \
             WHERE state = 'running' AND lease_until < $1",
        )
        .bind(now)
        .bind(&at)
        .execute(&self.pool)
        .await?;
        received
            .iter()
            .chain(&given_up)
            .filter_map(|r| r.try_get::<Option<String>, _>(0).transpose())
            .collect()
    }

    /// Takes the oldest queued build for `owner`, leased for `lease_secs`.
    pub async fn claim_cf_job(
        &self,
        owner: &str,
        lease_secs: i64,
    ) -> sqlx::Result<Option<ClaimedCfJob>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "UPDATE cf_jobs SET state = 'running', owner = $1, lease_until = $2, \
             attempts = attempts + 1, stage = $4, progress = 0, updated_at = $3 \
             WHERE state = 'queued' AND id = \
             (SELECT id FROM cf_jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1{lock}) \
             RETURNING id, instance_id, top_n, log_key, attempts"
        ))
        .bind(owner)
        .bind(unix_now() + lease_secs)
        .bind(now_rfc3339())
        .bind(LOADING_THE_LOG)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ClaimedCfJob {
                id: r.try_get(0)?,
                owner: owner.to_owned(),
                instance_id: r.try_get(1)?,
                top_n: r.try_get(2)?,
                log_key: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                attempts: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Succeeds `owner`'s running build and replaces user_item and item_item with its
    /// output, in one transaction; `false` (nothing written) when the build is no longer
    /// `owner`'s.
    pub async fn succeed_cf_job(
        &self,
        id: &str,
        owner: &str,
        stats: &CfStats,
        user_item: &[(String, String)],
        item_item: &[(String, String)],
    ) -> sqlx::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE cf_jobs SET state = 'succeeded', progress = 1, stage = 'done', stats = $3, \
             owner = NULL, updated_at = $4 WHERE id = $1 AND owner = $2 AND state = 'running' \
             RETURNING instance_id",
        )
        .bind(id)
        .bind(owner)
        .bind(serde_json::to_string(stats).map_err(|e| sqlx::Error::Encode(e.into()))?)
        .bind(now_rfc3339())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let instance_id: i64 = row.try_get(0)?;
        replace_cf_rows(&mut tx, instance_id, user_item, item_item).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Fails `owner`'s running build with `error`; `false` when it is no longer `owner`'s.
    pub async fn fail_cf_job(&self, id: &str, owner: &str, error: &str) -> sqlx::Result<bool> {
        let n = sqlx::query(
            "UPDATE cf_jobs SET state = 'failed', error = $3, owner = NULL, updated_at = $4 \
             WHERE id = $1 AND owner = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(error)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    pub async fn cf_job(&self, id: &str) -> sqlx::Result<Option<CfJob>> {
        sqlx::query(
            "SELECT id, instance_id, state, progress, stage, error, stats FROM cf_jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(job_from_row)
        .transpose()
    }

    /// Stored logs of the instance's builds (removed with the instance).
    pub async fn instance_cf_logs(&self, instance_id: i64) -> sqlx::Result<Vec<String>> {
        sqlx::query("SELECT log_key FROM cf_jobs WHERE instance_id = $1 AND log_key IS NOT NULL")
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    }
}
