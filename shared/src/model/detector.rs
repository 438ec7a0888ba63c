//! The object detector of `detection-fast` and `detection-accurate`: the EfficientNet-Lite0
//! backbone (ImageNet weights), a feature pyramid over strides 8/16/32 and an anchor-free
//! FCOS head (Tian et al. 2019, with centre sampling and the centre-ness branch on the box
//! tower), shared across levels with a learnt scale per level.
//!
//! [`Detector::forward`] gives `[batch, classes + 5, points]`: class logits, the distances
//! (left, top, right, bottom) from each grid point to its box's sides in input pixels, and
//! the centre-ness logit, over [`crate::detect::points`]'s grid; [`crate::detect::decode`]
//! turns one image's slice into boxes. The losses burn lacks are in [`super::losses`].

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, relu6};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use super::EfficientNetLite;
use super::efficientnet::{MBConv, freeze_below, stage_starts};
use crate::detect::STRIDES;
use crate::train::Preset;

/// Backbone blocks after which the pyramid taps the features (ends of the stride-8, -16
/// and -32 stages) and their channels.
const TAPS: [(usize, usize); 3] = [(5, 40), (11, 112), (16, 320)];
/// Prior probability of an object at initialisation (FCOS/RetinaNet: the class bias starts
/// at `-ln((1 - π) / π)` so the focal loss of the many background points does not swamp
/// the first steps).
const PRIOR: f64 = 0.01;
/// Regression logits are clamped before `exp` (`exp(10)` strides is far outside any image).
const MAX_LOG_DISTANCE: f64 = 10.0;

/// Sizes of the neck and head, per preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorConfig {
    /// Channels of every pyramid level and of the head.
    pub channels: usize,
    /// Separable 3×3 convolutions (with GroupNorm and ReLU) in each of the head's two towers.
    pub tower_depth: usize,
}

impl DetectorConfig {
    pub fn for_preset(p: Preset) -> Self {
        match p {
            Preset::DetectionAccurate => Self {
                channels: 96,
                tower_depth: 3,
            },
            _ => Self {
                channels: 64,
                tower_depth: 2,
            },
        }
    }

    /// How artifacts name the architecture.
    pub fn architecture(&self) -> String {
        format!(
            "efficientnet-lite0-fpn{}-fcos{}",
            self.channels, self.tower_depth
        )
    }
}

fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Same)
        .init(device)
}

fn group_norm(channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(channels / 8, channels).init(device)
}

/// The top-down feature pyramid: a 1×1 lateral convolution per tap, each level plus the
/// upsampled level above, then a 3×3 smoothing convolution.
#[derive(Module, Debug)]
pub struct Pyramid {
    pub lateral: Vec<Conv2d>,
    pub smooth: Vec<Conv2d>,
}

impl Pyramid {
    fn new(channels: usize, device: &Device) -> Self {
        Self {
            lateral: TAPS
                .iter()
                .map(|&(_, c)| conv(c, channels, 1, device))
                .collect(),
            smooth: TAPS
                .iter()
                .map(|_| conv(channels, channels, 3, device))
                .collect(),
        }
    }

    fn forward(&self, taps: Vec<Tensor<4>>) -> Vec<Tensor<4>> {
        let mut lat: Vec<Tensor<4>> = taps
            .into_iter()
            .zip(&self.lateral)
            .map(|(t, l)| l.forward(t))
            .collect();
        for i in (0..lat.len() - 1).rev() {
            let [_, _, h, w] = lat[i].dims();
            let up = interpolate(
                lat[i + 1].clone(),
                InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h, w]),
            );
            lat[i] = lat[i].clone() + up;
        }
        lat.into_iter()
            .zip(&self.smooth)
            .map(|(x, s)| s.forward(x))
            .collect()
    }
}

/// One tower layer: a depthwise-separable 3×3 convolution (depthwise 3×3, pointwise 1×1;
/// as NanoDet's head, 8× cheaper than a full 3×3 at 64 channels), GroupNorm, ReLU.
#[derive(Module, Debug)]
pub struct TowerLayer {
    pub depthwise: Conv2d,
    pub pointwise: Conv2d,
    pub norm: GroupNorm,
}

impl TowerLayer {
    fn new(channels: usize, device: &Device) -> Self {
        Self {
            depthwise: Conv2dConfig::new([channels, channels], [3, 3])
                .with_groups(channels)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            pointwise: conv(channels, channels, 1, device),
            norm: group_norm(channels, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(
            self.norm
                .forward(self.pointwise.forward(self.depthwise.forward(x))),
        )
    }
}

/// The FCOS head, shared by every level.
#[derive(Module, Debug)]
pub struct Head {
    pub cls_tower: Vec<TowerLayer>,
    pub box_tower: Vec<TowerLayer>,
    pub cls_out: Conv2d,
    pub box_out: Conv2d,
    pub ctr_out: Conv2d,
    /// Learnt scale of the regression logits, one per level.
    pub scales: Param<Tensor<1>>,
}

impl Head {
    fn new(c: DetectorConfig, classes: usize, device: &Device) -> Self {
        let tower = || {
            (0..c.tower_depth)
                .map(|_| TowerLayer::new(c.channels, device))
                .collect()
        };
        let mut cls_out = conv(c.channels, classes, 3, device);
        let prior = -((1.0 - PRIOR) / PRIOR).ln();
        cls_out.bias = Some(Param::from_tensor(Tensor::full([classes], prior, device)));
        Self {
            cls_tower: tower(),
            box_tower: tower(),
            cls_out,
            box_out: conv(c.channels, 4, 3, device),
            ctr_out: conv(c.channels, 1, 3, device),
            scales: Param::from_tensor(Tensor::ones([STRIDES.len()], device)),
        }
    }

    /// `[batch, classes + 5, h·w]` of one level.
    fn forward(&self, x: Tensor<4>, level: usize) -> Tensor<3> {
        let [n, _, h, w] = x.dims();
        let mut c = x.clone();
        for l in &self.cls_tower {
            c = l.forward(c);
        }
        let mut b = x;
        for l in &self.box_tower {
            b = l.forward(b);
        }
        let cls = self.cls_out.forward(c);
        let classes = cls.dims()[1];
        let scale = self.scales.val().narrow(0, level, 1).reshape([1, 1, 1, 1]);
        let dist = (self.box_out.forward(b.clone()) * scale)
            .clamp(-MAX_LOG_DISTANCE, MAX_LOG_DISTANCE)
            .exp()
            * (STRIDES[level] as f64);
        let ctr = self.ctr_out.forward(b);
        Tensor::cat(
            vec![
                cls.reshape([n, classes, h * w]),
                dist.reshape([n, 4, h * w]),
                ctr.reshape([n, 1, h * w]),
            ],
            1,
        )
    }
}

#[derive(Module, Debug)]
pub struct Detector {
    pub conv_stem: Conv2d,
    pub bn0: BatchNorm,
    pub blocks: Vec<MBConv>,
    pub neck: Pyramid,
    pub head: Head,
}

impl Detector {
    /// A detector on `backbone`'s stem and blocks (its classifier is dropped), with a new
    /// neck and head for `classes` classes.
    pub fn new(
        backbone: EfficientNetLite,
        config: DetectorConfig,
        classes: usize,
        device: &Device,
    ) -> Self {
        Self {
            conv_stem: backbone.conv_stem,
            bn0: backbone.bn0,
            blocks: backbone.blocks,
            neck: Pyramid::new(config.channels, device),
            head: Head::new(config, classes, device),
        }
    }

    /// A randomly initialised detector (the shape weights load into).
    pub fn init(config: DetectorConfig, classes: usize, device: &Device) -> Self {
        Self::new(EfficientNetLite::lite0(1, device), config, classes, device)
    }

    pub fn classes(&self) -> usize {
        self.head.cls_out.weight.dims()[0]
    }

    /// Stem and blocks `0..end` of the backbone.
    pub fn bottom(&self, x: Tensor<4>, end: usize) -> Tensor<4> {
        let mut h = relu6(self.bn0.forward(self.conv_stem.forward(x)));
        for b in &self.blocks[..end] {
            h = b.forward(h);
        }
        h
    }

    /// Stem and blocks `0..end`, with the pyramid taps reached on the way.
    pub fn bottom_with_taps(&self, x: Tensor<4>, end: usize) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut h = relu6(self.bn0.forward(self.conv_stem.forward(x)));
        let mut taps = Vec::new();
        for (i, b) in self.blocks[..end].iter().enumerate() {
            h = b.forward(h);
            if TAPS.iter().any(|&(t, _)| t == i + 1) {
                taps.push(h.clone());
            }
        }
        (h, taps)
    }

    /// The pyramid taps from the activation after block `start` (`start` ≤ the first tap
    /// returns them all; a later start needs the earlier taps passed in `given`).
    pub fn taps_from(
        &self,
        mut h: Tensor<4>,
        start: usize,
        mut given: Vec<Tensor<4>>,
    ) -> Vec<Tensor<4>> {
        let mut at = start;
        for &(end, _) in &TAPS {
            if end <= start {
                continue;
            }
            for b in &self.blocks[at..end] {
                h = b.forward(h);
            }
            at = end;
            given.push(h.clone());
        }
        given
    }

    /// The head output from the backbone's three taps.
    pub fn detect(&self, taps: Vec<Tensor<4>>) -> Tensor<3> {
        let levels = self.neck.forward(taps);
        let outs: Vec<Tensor<3>> = levels
            .into_iter()
            .enumerate()
            .map(|(i, x)| self.head.forward(x, i))
            .collect();
        Tensor::cat(outs, 2)
    }

    /// `[batch, classes + 5, points]` of a normalised `[batch, 3, side, side]` image batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let h = self.bottom(x, 0);
        self.detect(self.taps_from(h, 0, Vec::new()))
    }

    /// Backbone blocks from which [`Self::for_finetuning`] trains, for `stages` of the last
    /// stages.
    pub fn first_tuned_block(stages: usize) -> usize {
        let starts = stage_starts();
        starts[starts.len() - 1 - stages.min(starts.len() - 1)]
    }

    /// Freezes the backbone below block `first` (BatchNorm running statistics stay fixed
    /// everywhere, as in the classifier's fine-tuning); the rest, neck and head train.
    pub fn for_finetuning(self, first: usize) -> Self {
        Self {
            conv_stem: self.conv_stem.freeze(),
            bn0: self.bn0.freeze(),
            blocks: freeze_below(self.blocks, first),
            neck: self.neck,
            head: self.head,
        }
    }
}

/// The last tap block: everything the pyramid needs is computed by then.
pub fn taps_end() -> usize {
    TAPS[TAPS.len() - 1].0
}

/// Tap block indices.
pub fn tap_blocks() -> [usize; 3] {
    TAPS.map(|(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::points;

    #[test]
    fn output_covers_the_grid_and_distances_are_positive() {
        let device = Device::flex();
        device.seed(3);
        let cfg = DetectorConfig::for_preset(Preset::DetectionFast);
        let m = Detector::init(cfg, 3, &device);
        assert_eq!(m.classes(), 3);
        let x = Tensor::<4>::random(
            [2, 3, 64, 64],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let out = m.forward(x.clone());
        assert_eq!(out.dims(), [2, 3 + 5, points(64).len()]);
        let v: Vec<f32> = out.clone().into_data().try_to_vec().unwrap();
        let p = points(64).len();
        // Distances are exp(·)·stride: positive.
        assert!(v[3 * p..7 * p].iter().all(|d| *d > 0.0));
        // The class bias starts at the prior: sigmoid ≈ 0.01 on average.
        let mean_logit = v[..3 * p].iter().sum::<f32>() / (3 * p) as f32;
        assert!((mean_logit + 4.6).abs() < 1.5, "{mean_logit}");
        // Splitting the backbone at a tap gives the same output.
        let mid = m.bottom(x.clone(), 8);
        let first = m.bottom(x, 5);
        let split = m.detect(m.taps_from(mid, 8, vec![first]));
        let w: Vec<f32> = split.into_data().try_to_vec().unwrap();
        for (a, b) in v.iter().zip(&w) {
            assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }
}
