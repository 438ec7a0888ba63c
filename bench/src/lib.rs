//! What the benchmark programs in `src/bin/` share.

use std::time::{Duration, Instant};

/// Runs `f` for about `budget` after one warm-up call; returns milliseconds per call.
pub fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0u32;
    while calls == 0 || start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(calls)
}
