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

    pub fn start(&self, instance_id: i64) -> CfJob {
        let job = CfJob {
            id: format!("cf-{:016x}", rand::random::<u64>()),
            instance_id,
            state: "running".into(),
            progress: 0.0,
            stage: "parsing the log".into(),
            error: None,
            stats: None,
        };
        self.lock().insert(
            job.id.clone(),
            Slot {
                job: job.clone(),
                done: Arc::default(),
                total: 0,
            },
        );
        job
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
