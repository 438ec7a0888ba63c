//! Behaviour-log (CF) builds as database-backed jobs ([`crate::db::cf_jobs`]): every API
//! server's builder claims queued builds, renews its lease with the progress while it runs,
//! and finishes a build together with the tables it writes. The parsed log waits in the
//! models store, so a build whose server died is resumed by another server (or the same
//! one restarted) once the lease runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shared::recall::CfStats;
use tokio::sync::{Notify, Semaphore, watch};

use crate::AppState;
use crate::db::cf_jobs::{ClaimedCfJob, LOADING_THE_LOG, RECEIVING_THE_LOG};
use crate::recall::cf;

/// Builds open (receiving, queued or running) at once across the deployment.
pub const MAX_OPEN: i64 = 4;
/// How often a builder looks for queued builds and expired leases when nothing wakes it.
const POLL: Duration = Duration::from_secs(2);
/// How often a lease is renewed with the progress (leases are 3 s or more).
const BEAT: Duration = Duration::from_secs(1);
/// A stored log is read whole; the largest a 256 MB upload can parse into, with room.
const MAX_STORED_LOG_BYTES: u64 = 2 << 30;

/// This server's side of the builds: who it is in the job rows, and a wake-up for its
/// builder when it queued a build itself.
pub struct CfJobs {
    /// Names this server; each claim on a build adds a token of its own ([`CfJobs::claim`]).
    server: String,
    wake: Notify,
}

impl Default for CfJobs {
    fn default() -> Self {
        Self {
            server: format!(
                "{}-{}-{:08x}",
                crate::host_name(),
                std::process::id(),
                rand::random::<u32>()
            ),
            wake: Notify::new(),
        }
    }
}

impl CfJobs {
    /// A new claim's `cf_jobs.owner`: this server and a token of the claim's own.
    pub fn claim(&self) -> String {
        format!("{}#{:08x}", self.server, rand::random::<u32>())
    }

    /// A build was queued: the builder looks now instead of at its next poll.
    pub fn queued(&self) {
        self.wake.notify_one();
    }
}

/// Where a build's parsed log is kept (in the models store) while it is open.
pub fn log_key(job: &str) -> String {
    format!("recall-logs/{job}.bin")
}

/// Renews a claim's lease on a build every [`BEAT`], with the progress read from
/// `progress`, until dropped or the build is no longer the claim's.
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    pub fn start(s: &AppState, job: &str, owner: &str, progress: Arc<Progress>) -> Self {
        let (s, job, owner) = (s.clone(), job.to_owned(), owner.to_owned());
        let lease = s.config.task_lease_secs;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(BEAT).await;
                let (stage, frac) = progress.read();
                match s.db.renew_cf_job(&job, &owner, lease, (stage, frac)).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // The database may come back before the lease runs out.
                    Err(e) => tracing::warn!("CF job {job}: renewing its lease: {e}"),
                }
            }
        });
        Self { task }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A build's stage and progress as its heartbeat reports them.
#[derive(Default)]
pub struct Progress {
    stage: AtomicU8,
    done: Arc<AtomicUsize>,
    total: AtomicUsize,
}

const STAGES: [&str; 4] = [
    RECEIVING_THE_LOG,
    LOADING_THE_LOG,
    "computing item similarities",
    "writing user_item and item_item",
];

impl Progress {
    fn enter(&self, stage: usize, total: usize) -> Arc<AtomicUsize> {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.stage.store(stage as u8, Ordering::Relaxed);
        self.done.clone()
    }

    /// The stage and the build's progress: 0 while receiving and loading, 0.1 to 0.9 over
    /// the similarities, 0.9 writing.
    fn read(&self) -> (&'static str, f64) {
        let stage = usize::from(self.stage.load(Ordering::Relaxed)).min(STAGES.len() - 1);
        let total = self.total.load(Ordering::Relaxed);
        let frac = if total == 0 {
            0.0
        } else {
            self.done.load(Ordering::Relaxed) as f64 / total as f64
        };
        let progress = match stage {
            0 | 1 => 0.0,
            2 => 0.1 + 0.8 * frac.min(1.0),
            _ => 0.9,
        };
        (STAGES[stage], progress)
    }
}

/// The builder of one server: runs up to `slots` builds at once until `shutdown`. A build
/// still running at shutdown is left to its lease (another server resumes it).
pub async fn run(s: AppState, slots: usize, mut shutdown: watch::Receiver<bool>) {
    if slots == 0 {
        tracing::info!(
            "AUTOLEARN_CF_BUILDERS is 0: behaviour-log builds taken here wait for a server with builders"
        );
    }
    let permits = Arc::new(Semaphore::new(slots));
    loop {
        if *shutdown.borrow() {
            return;
        }
        match s.db.reap_cf_jobs().await {
            Ok(given_up) => {
                for key in given_up {
                    remove_log(&s, &key).await;
                }
            }
            Err(e) => tracing::warn!("settling CF builds whose server stopped: {e}"),
        }
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            match s
                .db
                .claim_cf_job(&s.cf_jobs.claim(), s.config.task_lease_secs)
                .await
            {
                Ok(Some(job)) => {
                    let s = s.clone();
                    tokio::spawn(async move {
                        build(&s, job).await;
                        drop(permit);
                        s.cf_jobs.queued();
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("claiming a CF build: {e}");
                    break;
                }
            }
        }
        tokio::select! {
            () = s.cf_jobs.wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            changed = shutdown.changed() => {
                // The sender gone is a shutdown too (else this loop would spin).
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs a claimed build to its end. The stored log goes once the build has ended here;
/// a build taken away (its lease ran out) keeps it for the builder that has it now.
async fn build(s: &AppState, job: ClaimedCfJob) {
    let progress = Arc::new(Progress::default());
    let _heartbeat = Heartbeat::start(s, &job.id, &job.owner, progress.clone());
    let owner = &job.owner;
    let ended = match build_tables(s, &job, &progress).await {
        Ok((user_item, item_item, stats)) => {
            s.db.succeed_cf_job(&job.id, owner, &stats, &user_item, &item_item)
                .await
        }
        Err(e) => {
            tracing::warn!("CF job {} (attempt {}): {e:#}", job.id, job.attempts);
            s.db.fail_cf_job(&job.id, owner, &format!("{e:#}")).await
        }
    };
    match ended {
        Ok(true) => {
            s.recall.invalidate_instance(job.instance_id);
            remove_log(s, &job.log_key).await;
        }
        Ok(false) => tracing::warn!(
            "CF job {}: its lease ran out before it finished here; another builder has it",
            job.id
        ),
        // The lease runs out and the build is resumed elsewhere.
        Err(e) => tracing::error!("CF job {}: recording its end: {e}", job.id),
    }
}

/// Removes a build's stored log once the build has ended (a leftover is only disk space).
pub async fn remove_log(s: &AppState, key: &str) {
    let removed = match s.storage.open_uri(&s.config.models_uri) {
        Ok(store) => store.delete(key).await,
        Err(e) => Err(e),
    };
    if let Err(e) = removed
        && !matches!(e, crate::storage::StorageError::NotFound(_))
    {
        tracing::warn!("removing the stored behaviour log {key}: {e}");
    }
}

type Tables = (Vec<(String, String)>, Vec<(String, String)>, CfStats);

async fn build_tables(
    s: &AppState,
    job: &ClaimedCfJob,
    progress: &Progress,
) -> anyhow::Result<Tables> {
    let started = Instant::now();
    progress.enter(1, 0);
    let store = s.storage.open_uri(&s.config.models_uri)?;
    let bytes = store
        .read(&job.log_key, MAX_STORED_LOG_BYTES)
        .await
        .map_err(|e| anyhow::anyhow!("the stored log could not be read ({e}); upload it again"))?;
    let log = tokio::task::spawn_blocking(move || cf::Log::decode(&bytes)).await??;
    let counter = progress.enter(2, log.items.len());
    let top_n = usize::try_from(job.top_n).unwrap_or(1);
    let (log, out) = tokio::task::spawn_blocking(move || {
        let out = cf::build(&log, top_n, &counter);
        (log, out)
    })
    .await?;
    progress.enter(3, 0);
    let stats = CfStats {
        interactions: log.interactions.len() as i64,
        users: log.users.len() as i64,
        items: log.items.len() as i64,
        item_item_rows: out.item_item.len() as i64,
        elapsed_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
    };
    Ok((out.user_item, out.item_item, stats))
}
