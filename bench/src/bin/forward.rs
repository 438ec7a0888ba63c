//! Time of one forward pass of the served classifier (EfficientNet-Lite0 with BatchNorm
//! folded, 3 classes, 224 px) two ways in one run: burn's flex backend (what serving used
//! before, and what training evaluates with) and the serving executor
//! (`autolearn_server::serve::native`), at batch 1 and 8, plus the largest difference
//! between their logits. Weights are random: time does not depend on them. Given an image,
//! also the time of the predict API's pre-processing of it (`shared::predict::input::prepare`:
//! header check, decode, resize, normalise).
//!
//! Usage: forward [SECONDS_PER_CASE] [IMAGE]   (default 3 seconds)

use std::time::{Duration, Instant};

use autolearn_server::serve::native::{NativeNet, Scratch};
use burn::prelude::*;
use burn::tensor::Distribution;
use shared::model::{EfficientNetLite, FusedEfficientNetLite};

const SIDE: usize = 224;

/// Runs `f` for about `budget` after one warm-up call; returns milliseconds per call.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0u32;
    while calls == 0 || start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(calls)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).map_or(3.0, |s| s.parse().expect("seconds"));
    let budget = Duration::from_secs_f64(secs);
    if let Some(path) = args.get(2) {
        let bytes = std::fs::read(path).expect("read the image");
        let ms = time(budget, || {
            shared::predict::input::prepare(&bytes, SIDE as u32).expect("a decodable image");
        });
        println!("pre-processing {path} ({} bytes): {ms:.2} ms", bytes.len());
    }
    let device = Device::flex();
    device.seed(1);
    let fused = FusedEfficientNetLite::new(&EfficientNetLite::lite0(3, &device).valid());
    let net = NativeNet::new(&fused);
    let mut scratch = Scratch::default();
    println!(
        "threads: {} (rayon), image {SIDE} px",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| batch | burn flex ms/image | native ms/image | speed-up | max |Δlogit| |");
    println!("|---|---|---|---|---|");
    for n in [1usize, 8] {
        let x = Tensor::<4>::random([n, 3, SIDE, SIDE], Distribution::Normal(0.0, 1.0), &device);
        let input: Vec<f32> = x.clone().into_data().try_into_vec_as().expect("floats");
        let want: Vec<f32> = fused
            .forward(x.clone())
            .into_data()
            .try_into_vec_as()
            .expect("floats");
        let got = net.forward(&input, n, SIDE, &mut scratch);
        let diff = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let burn_ms = time(budget, || {
            let _ = fused.forward(x.clone()).into_data();
        }) / n as f64;
        let native_ms = time(budget, || {
            let _ = net.forward(&input, n, SIDE, &mut scratch);
        }) / n as f64;
        println!(
            "| {n} | {burn_ms:.2} | {native_ms:.2} | {:.1}x | {diff:.2e} |",
            burn_ms / native_ms
        );
    }
}
