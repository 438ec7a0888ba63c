//! Time of one forward pass of the served classifier (EfficientNet-Lite0 with BatchNorm
//! folded, 224 px) two ways in one run: burn's flex backend (what serving used before, and
//! what training evaluates with) and the serving executor
//! (`shared::exec`), at batch 1 and 8, plus the largest difference
//! between their logits.
//!
//! Weights: the ImageNet-pretrained network (1000 classes) when its converted file is in
//! `$AUTOLEARN_WEIGHTS_DIR` (default `~/.cache/autolearn/weights`, where the server fetches
//! it), else random ones with 3 classes. Random weights are not representative: their
//! activations shrink towards zero layer by layer, and near-zero (subnormal) floats slow
//! some CPUs down. Input: the given image, pre-processed as the predict API does (and the
//! time of that pre-processing — header check, decode, resize, normalise — printed), else
//! Gaussian noise.
//!
//! Usage: forward [SECONDS_PER_CASE] [IMAGE]   (default 3 seconds)

use std::time::Duration;

use bench::time;

use burn::prelude::*;
use burn::tensor::Distribution;
use shared::exec::{NativeNet, Scratch};
use shared::model::{EfficientNetLite, FusedEfficientNetLite};

const SIDE: usize = 224;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).map_or(3.0, |s| s.parse().expect("seconds"));
    let budget = Duration::from_secs_f64(secs);
    let image = args.get(2).map(|path| {
        let bytes = std::fs::read(path).expect("read the image");
        let ms = time(budget, || {
            shared::predict::input::prepare(&bytes, SIDE as u32).expect("a decodable image");
        });
        println!("pre-processing {path} ({} bytes): {ms:.2} ms", bytes.len());
        shared::predict::input::prepare(&bytes, SIDE as u32)
            .expect("a decodable image")
            .0
    });
    let device = Device::flex();
    device.seed(1);
    let dir = std::env::var_os("AUTOLEARN_WEIGHTS_DIR").map_or_else(
        || {
            std::path::PathBuf::from(
                std::env::var("HOME").unwrap_or_default() + "/.cache/autolearn/weights",
            )
        },
        Into::into,
    );
    let pretrained = dir.join("efficientnet-lite0-imagenet.bpk");
    let model = if pretrained.is_file() {
        println!("weights: ImageNet-pretrained ({})", pretrained.display());
        autolearn_server::train::weights::load_imagenet(&pretrained, &device).expect("weights")
    } else {
        println!("weights: random, 3 classes (no {})", pretrained.display());
        EfficientNetLite::lite0(3, &device)
    };
    let fused = FusedEfficientNetLite::new(&model.valid());
    let net = NativeNet::new(&fused);
    let mut scratch = Scratch::default();
    println!(
        "threads: {} (rayon), image {SIDE} px, input: {}",
        std::thread::available_parallelism().map_or(1, usize::from),
        if image.is_some() {
            "the image"
        } else {
            "Gaussian noise"
        }
    );
    println!("| batch | burn flex ms/image | native ms/image | speed-up | max |Δlogit| |");
    println!("|---|---|---|---|---|");
    for n in [1usize, 8] {
        let x = match &image {
            Some(one) => {
                Tensor::<4>::from_data(TensorData::new(one.repeat(n), [n, 3, SIDE, SIDE]), &device)
            }
            None => {
                Tensor::<4>::random([n, 3, SIDE, SIDE], Distribution::Normal(0.0, 1.0), &device)
            }
        };
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
