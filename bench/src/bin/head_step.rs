//! Where the time of one detection-fast training step of the head phase goes (batch 8, the
//! 320 px taps of the frozen backbone): the whole step on the executor's kernels
//! (`HeadTrainer`: forward, hand-written backward, AdamW), and on burn's CPU backend with
//! autodiff its forward, forward + backward, and each kind of layer it is built from,
//! forward + backward on its own at the shapes of the largest pyramid level.
//!
//! Usage: head_step [SECONDS_PER_CASE]   (default 3 seconds)

use std::time::Duration;

use bench::time;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use shared::exec::head_training::{HeadTrainer, nhwc_of};
use shared::model::{Detector, DetectorConfig};
use shared::train::Preset;

const BATCH: usize = 8;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map_or(3.0, |s| s.parse().expect("seconds"));
    let budget = Duration::from_secs_f64(secs);
    let device = Device::flex();
    device.seed(1);
    let ad = device.clone().autodiff();
    let net = Detector::init(DetectorConfig::for_preset(Preset::DetectionFast), 3, &ad).train();
    // The three taps' channels and sides at 320 px.
    let fixed: Vec<Tensor<4>> = [(40, 40), (112, 20), (320, 10)]
        .iter()
        .map(|&(c, s)| Tensor::random([BATCH, c, s, s], Distribution::Normal(0.0, 1.0), &ad))
        .collect();
    // The same step on the executor's kernels: forward, backward from a fixed output
    // gradient (the loss's own gradient is burn's in training, timed by the trainer's log)
    // and the AdamW step.
    let mut trainer = HeadTrainer::new(&net.valid());
    let nhwc: Vec<(Vec<f32>, (usize, usize))> =
        fixed.iter().map(|t| nhwc_of(t.clone().inner())).collect();
    let levels: Vec<(&[f32], (usize, usize))> =
        nhwc.iter().map(|(x, s)| (x.as_slice(), *s)).collect();
    let ms = time(budget, || {
        trainer.gradients(&levels, BATCH, |out| out.iter().map(|v| v * 1e-4).collect());
        trainer.adamw(1e-3, 1e-4);
    });
    println!("neck + head step on the executor (forward, backward, AdamW): {ms:.1} ms");
    let ms = time(budget, || {
        let out = net.detect(fixed.clone());
        let _ = out.sum().into_scalar::<f32>();
    });
    println!("neck + head forward (autodiff graph kept): {ms:.1} ms");
    let ms = time(budget, || {
        let out = net.detect(fixed.clone());
        let _ = (out.clone() * out).mean().backward();
    });
    println!("neck + head forward + backward: {ms:.1} ms");

    // Each layer kind at the largest level (64 channels, 40×40), forward + backward.
    let x = || {
        Tensor::<4>::random([BATCH, 64, 40, 40], Distribution::Normal(0.0, 1.0), &ad).require_grad()
    };
    let depthwise = Conv2dConfig::new([64, 64], [3, 3])
        .with_groups(64)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(&ad);
    let pointwise = Conv2dConfig::new([64, 64], [1, 1]).init(&ad);
    let dense = Conv2dConfig::new([64, 64], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(&ad);
    let norm = GroupNormConfig::new(8, 64).init(&ad);
    let cases: [(&str, &dyn Fn(Tensor<4>) -> Tensor<4>); 5] = [
        ("depthwise 3×3", &|t| depthwise.forward(t)),
        ("pointwise 1×1", &|t| pointwise.forward(t)),
        ("dense 3×3", &|t| dense.forward(t)),
        ("GroupNorm", &|t| norm.forward(t)),
        ("ReLU", &|t| burn::tensor::activation::relu(t)),
    ];
    for (name, f) in cases {
        let fwd = time(budget, || {
            let _ = f(x()).sum().into_scalar::<f32>();
        });
        let both = time(budget, || {
            let _ = f(x()).sum().backward();
        });
        println!(
            "{name} [{BATCH}, 64, 40, 40]: forward {fwd:.1} ms, forward + backward {both:.1} ms"
        );
    }
    let input = time(budget, || {
        let _ = x().sum().into_scalar::<f32>();
    });
    println!("(making the random input: {input:.1} ms, included above)");
}
