//! What keeps login from being a lever against the server or its users: password hashing
//! (argon2, ~20 MB and tens of milliseconds each) runs on a bounded pool with a bounded
//! queue, and failed logins are throttled per account name and per client address with an
//! exponential backoff. Account names are throttled whether or not they exist, so the
//! answers never tell which do.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Failed attempts a key gets before backoff starts.
const FREE_FAILURES: u32 = 5;
/// Longest wait the backoff imposes.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// A key quiet this long starts over.
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Keys tracked at most; a flood of made-up names cannot grow memory beyond this.
const MAX_TRACKED: usize = 50_000;

/// Why a login is refused before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many recent failures for this account name or client address.
    Throttled { retry_after: Duration },
    /// Every hashing slot and queue place is taken.
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Instant,
}

pub struct LoginLimits {
    hashing: Semaphore,
    /// Logins holding or waiting for a hashing slot.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    failures: Mutex<HashMap<String, Failures>>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self::new(cores, 8 * cores)
    }
}

/// A hashing slot; the login that holds it may run argon2.
pub struct HashSlot<'a> {
    _permit: SemaphorePermit<'a>,
    _counted: Counted<'a>,
}

/// One place among the logins in flight, given back on drop, also when a waiting login is
/// cancelled (its client went away).
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn keys(username: &str, addr: Option<IpAddr>) -> [Option<String>; 2] {
    [
        Some(format!("user:{}", username.trim().to_lowercase())),
        addr.map(|a| format!("addr:{a}")),
    ]
}

impl LoginLimits {
    /// `slots` hashes at once, `queue` more logins waiting; beyond that, [`Refusal::Busy`].
    pub fn new(slots: usize, queue: usize) -> Self {
        Self {
            hashing: Semaphore::new(slots.max(1)),
            in_flight: AtomicUsize::new(0),
            max_in_flight: slots.max(1) + queue,
            failures: Mutex::default(),
        }
    }

    /// Whether a login for `username` from `addr` may go ahead now.
    pub fn check(&self, username: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), Refusal> {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let wait = keys(username, addr)
            .iter()
            .flatten()
            .filter_map(|k| map.get(k))
            .map(|f| f.locked_until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Refusal::Throttled {
                retry_after: wait.max(Duration::from_secs(1)),
            })
        }
    }

    /// A slot to hash in, waiting for one if the queue has room.
    pub async fn hash_slot(&self) -> Result<HashSlot<'_>, Refusal> {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(&self.in_flight);
        if before >= self.max_in_flight {
            return Err(Refusal::Busy);
        }
        let permit = self.hashing.acquire().await.map_err(|_| Refusal::Busy)?;
        Ok(HashSlot {
            _permit: permit,
            _counted: counted,
        })
    }

    /// Records a wrong name or password: after [`FREE_FAILURES`], each failure locks the
    /// account name and the address for twice as long as the last (2 s, 4 s, ... 15 min).
    pub fn failed(&self, username: &str, addr: Option<IpAddr>, now: Instant) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_TRACKED {
            map.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if map.len() >= MAX_TRACKED {
                // Still full: a flood; drop the oldest half rather than grow.
                let mut lasts: Vec<Instant> = map.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                map.retain(|_, f| f.last > cut);
            }
        }
        for key in keys(username, addr).into_iter().flatten() {
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: now,
            });
            if now.saturating_duration_since(f.last) >= FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count > FREE_FAILURES {
                let doublings = (f.count - FREE_FAILURES - 1).min(20);
                f.locked_until = now + Duration::from_secs(2u64 << doublings).min(MAX_LOCK);
            }
        }
    }

    /// A successful login clears its account name's record (the address keeps its own: one
    /// good password must not reset a guessing campaign from that address on other names).
    pub fn succeeded(&self, username: &str) {
        let [user, _] = keys(username, None);
        if let Some(k) = user {
            self.failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&k);
        }
    }

    /// Keys tracked now (for the load benchmark's memory figure and tests).
    pub fn tracked(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn backoff_starts_after_the_free_failures_and_doubles() {
        let l = LoginLimits::new(1, 1);
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(l.check("Admin", ADDR, t0), Ok(()));
            l.failed("admin", ADDR, t0);
        }
        assert_eq!(l.check("admin", None, t0), Ok(()), "five failures are free");
        l.failed("admin", ADDR, t0);
        let two = Refusal::Throttled {
            retry_after: Duration::from_secs(2),
        };
        assert_eq!(
            l.check("ADMIN", None, t0),
            Err(two),
            "names compare without case"
        );
        assert_eq!(
            l.check("someone-else", ADDR, t0),
            Err(two),
            "the address too"
        );
        assert_eq!(l.check("someone-else", None, t0), Ok(()));
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(l.check("admin", ADDR, t1), Ok(()));
        l.failed("admin", ADDR, t1);
        assert_eq!(
            l.check("admin", None, t1),
            Err(Refusal::Throttled {
                retry_after: Duration::from_secs(4)
            })
        );
        // A success clears the name, not the address.
        l.succeeded("admin");
        assert_eq!(l.check("admin", None, t1), Ok(()));
        assert!(l.check("x", ADDR, t1).is_err());
        // Quiet long enough, a key starts over.
        let later = t1 + FORGET_AFTER;
        l.failed("y", ADDR, later);
        assert_eq!(l.check("y", ADDR, later), Ok(()));
    }

    #[test]
    fn the_lock_is_capped() {
        let l = LoginLimits::new(1, 1);
        let t = Instant::now();
        for _ in 0..100 {
            l.failed("victim", None, t);
        }
        assert_eq!(
            l.check("victim", None, t),
            Err(Refusal::Throttled {
                retry_after: MAX_LOCK
            })
        );
    }

    #[test]
    fn made_up_names_cannot_grow_memory_without_bound() {
        let l = LoginLimits::new(1, 1);
        let t = Instant::now();
        for i in 0..(MAX_TRACKED + 10) {
            l.failed(&format!("u{i}"), None, t + Duration::from_millis(i as u64));
        }
        assert!(l.tracked() <= MAX_TRACKED, "{}", l.tracked());
    }

    #[tokio::test]
    async fn the_hashing_queue_is_bounded() {
        let l = LoginLimits::new(1, 2);
        let a = l.hash_slot().await.unwrap();
        let (mut b, mut c) = (Box::pin(l.hash_slot()), Box::pin(l.hash_slot()));
        // b and c wait (queue of 2); a fourth is refused at once.
        assert!(futures_poll_pending(&mut b).await && futures_poll_pending(&mut c).await);
        assert!(matches!(l.hash_slot().await, Err(Refusal::Busy)));
        drop(a);
        assert!(b.await.is_ok());
        // A cancelled waiter gives its place back.
        drop(c);
        assert_eq!(l.in_flight.load(Ordering::Relaxed), 0);
    }

    /// Polls a future once; true when it is still pending.
    async fn futures_poll_pending<F: Future + Unpin>(f: &mut F) -> bool {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx).is_pending())
        })
        .await
    }
}
