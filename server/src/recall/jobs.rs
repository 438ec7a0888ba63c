//! Collaborative-filtering build jobs: run in the background, their progress readable while
//! they run. Kept in memory: a job lives as long as the server process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shared::recall::CfJob;

struct Slot {
    job: CfJob,
    /// Items whose similarities are done, and how many there are.
    done: Arc<AtomicUsize>,
    total: usize,
}

pub struct Pending<'a> {
    jobs: &'a CfJobs,
    id: Option<String>,
}

impl Pending<'_> {
    /// The job's work is running: it finishes through [`CfJobs::finish`].
    pub fn launched(mut self) {
        self.id = None;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.jobs.lock().remove(&id);
        }
    }
}

/// CF builds running at once in one server (each holds a log and a similarity table).
pub const MAX_RUNNING: usize = 2;

/// Why a CF build cannot start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The instance has a build running.
    InstanceBusy,
    /// [`MAX_RUNNING`] builds are running.
    Full,
}

#[derive(Default)]
pub struct CfJobs {
    jobs: Mutex<HashMap<String, Slot>>,
}

impl CfJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a job, unless [`MAX_RUNNING`] jobs are running or the instance has one.
    pub fn start(&self, instance_id: i64) -> Result<CfJob, Refused> {
        let mut jobs = self.lock();
        let running = jobs.values().filter(|s| s.job.state == "running");
        let (mut all, mut mine) = (0, 0);
        for s in running {
            all += 1;
            mine += usize::from(s.job.instance_id == instance_id);
        }
        if mine > 0 {
            return Err(Refused::InstanceBusy);
        }
        if all >= MAX_RUNNING {
            return Err(Refused::Full);
        }
        let job = CfJob {
            id: format!("cf-{:016x}", rand::random::<u64>()),
            instance_id,
            state: "running".into(),
            progress: 0.0,
            stage: "parsing the log".into(),
            error: None,
            stats: None,
        };
        jobs.insert(
            job.id.clone(),
            Slot {
                job: job.clone(),
                done: Arc::default(),
                total: 0,
            },
        );
        Ok(job)
    }

    /// A started job that is forgotten unless [`Pending::launched`] is called: a refused log,
    /// or a client gone while its log was parsed, leaves no job "running" for ever.
    pub fn pending(&self, id: &str) -> Pending<'_> {
        Pending {
            jobs: self,
            id: Some(id.to_owned()),
        }
    }

    /// Enters a stage; `total` items of work are counted through the returned counter.
    pub fn stage(&self, id: &str, stage: &str, total: usize) -> Arc<AtomicUsize> {
        let mut jobs = self.lock();
        let slot = jobs.get_mut(id).expect("job exists while it runs");
        slot.job.stage = stage.to_owned();
        slot.done = Arc::default();
        slot.total = total;
        slot.done.clone()
    }

    pub fn finish(&self, id: &str, result: Result<shared::recall::CfStats, String>) {
        if let Some(slot) = self.lock().get_mut(id) {
            match result {
                Ok(stats) => {
                    slot.job.state = "succeeded".into();
                    slot.job.progress = 1.0;
                    slot.job.stage = "done".into();
                    slot.job.stats = Some(stats);
                }
                Err(e) => {
                    slot.job.state = "failed".into();
                    slot.job.error = Some(e);
                }
            }
        }
    }

    /// The job as it stands; progress is 10% parsing, 80% similarities, 10% writing.
    pub fn get(&self, id: &str) -> Option<CfJob> {
        let jobs = self.lock();
        let slot = jobs.get(id)?;
        let mut job = slot.job.clone();
        if job.state == "running" {
            let frac = if slot.total == 0 {
                0.0
            } else {
                slot.done.load(Ordering::Relaxed) as f64 / slot.total as f64
            };
            job.progress = match job.stage.as_str() {
                "parsing the log" => 0.0,
                "computing item similarities" => 0.1 + 0.8 * frac,
                _ => 0.9,
            };
        }
        Some(job)
    }
}
