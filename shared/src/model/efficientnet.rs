//! EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile: ReLU6, no
//! squeeze-and-excite, fixed stem and head), laid out so the pretrained PyTorch weights
//! (lukemelas naming: `_blocks.N._depthwise_conv`, ...) map onto it by stripping
//! underscores. TF "SAME" padding and BatchNorm epsilon 1e-3 as in the original.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::relu6;

/// Features the head sees.
pub const FEATURES: usize = 1280;
/// ImageNet classes of the pretrained head.
pub const IMAGENET_CLASSES: usize = 1000;
const BN_EPS: f64 = 1e-3;
/// TF's BatchNorm decay 0.99, in PyTorch's (and burn's) momentum convention.
const BN_MOMENTUM: f64 = 0.01;

/// Stages: (repeats, kernel, stride, expand ratio, in, out).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Index of the first block of each stage, and the block count at the end.
pub fn stage_starts() -> Vec<usize> {
    let mut starts = vec![0];
    for (r, ..) in STAGES {
        starts.push(starts.last().copied().unwrap_or(0) + r);
    }
    starts
}

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout / groups * groups], [k, k])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device)
}

fn bn(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(BN_EPS)
        .with_momentum(BN_MOMENTUM)
        .init(device)
}

/// Inverted residual block: 1×1 expand, k×k depthwise, 1×1 linear projection, with a skip
/// connection when shapes allow.
#[derive(Module, Debug)]
pub struct MBConv {
    pub expand_conv: Option<Conv2d>,
    pub bn0: Option<BatchNorm>,
    pub depthwise_conv: Conv2d,
    pub bn1: BatchNorm,
    pub project_conv: Conv2d,
    pub bn2: BatchNorm,
    #[module(skip)]
    residual: bool,
}

impl MBConv {
    fn new(
        k: usize,
        stride: usize,
        expand: usize,
        cin: usize,
        cout: usize,
        device: &Device,
    ) -> Self {
        let mid = cin * expand;
        let (expand_conv, bn0) = if expand == 1 {
            (None, None)
        } else {
            (Some(conv(cin, mid, 1, 1, 1, device)), Some(bn(mid, device)))
        };
        Self {
            expand_conv,
            bn0,
            depthwise_conv: conv(mid, mid, k, stride, mid, device),
            bn1: bn(mid, device),
            project_conv: conv(mid, cout, 1, 1, 1, device),
            bn2: bn(cout, device),
            residual: stride == 1 && cin == cout,
        }
    }

    /// Whether the block adds its input to its output.
    pub fn has_residual(&self) -> bool {
        self.residual
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let (Some(c), Some(b)) = (&self.expand_conv, &self.bn0) {
            h = relu6(b.forward(c.forward(h)));
        }
        h = relu6(self.bn1.forward(self.depthwise_conv.forward(h)));
        h = self.bn2.forward(self.project_conv.forward(h));
        if self.residual { h + x } else { h }
    }
}

/// The blocks with those before `first` frozen (no gradients) and every BatchNorm keeping
/// its running statistics; later blocks' weights, scales and shifts train.
pub fn freeze_below(blocks: Vec<MBConv>, first: usize) -> Vec<MBConv> {
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let b = b.freeze();
            if i >= first {
                b.set_require_grad(true)
            } else {
                b
            }
        })
        .collect()
}

#[derive(Module, Debug)]
pub struct EfficientNetLite {
    pub conv_stem: Conv2d,
    pub bn0: BatchNorm,
    pub blocks: Vec<MBConv>,
    pub conv_head: Conv2d,
    pub bn1: BatchNorm,
    pub dropout: Dropout,
    pub fc: Linear,
}

impl EfficientNetLite {
    /// EfficientNet-Lite0 with a `classes`-way head.
    pub fn lite0(classes: usize, device: &Device) -> Self {
        let mut blocks = Vec::new();
        for (repeats, k, stride, expand, cin, cout) in STAGES {
            for i in 0..repeats {
                let (s, c) = if i == 0 { (stride, cin) } else { (1, cout) };
                blocks.push(MBConv::new(k, s, expand, c, cout, device));
            }
        }
        Self {
            conv_stem: conv(3, 32, 3, 2, 1, device),
            bn0: bn(32, device),
            blocks,
            conv_head: conv(320, FEATURES, 1, 1, 1, device),
            bn1: bn(FEATURES, device),
            dropout: DropoutConfig::new(0.2).init(),
            fc: LinearConfig::new(FEATURES, classes).init(device),
        }
    }

    pub fn classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }

    /// Stem and blocks `0..end`: the activation where a partly frozen network splits.
    pub fn bottom(&self, x: Tensor<4>, end: usize) -> Tensor<4> {
        let mut h = relu6(self.bn0.forward(self.conv_stem.forward(x)));
        for b in &self.blocks[..end] {
            h = b.forward(h);
        }
        h
    }

    /// Blocks `start..`, head convolution and global pooling: `[batch, 1280]` features.
    pub fn top(&self, mut h: Tensor<4>, start: usize) -> Tensor<2> {
        for b in &self.blocks[start..] {
            h = b.forward(h);
        }
        let h = relu6(self.bn1.forward(self.conv_head.forward(h)));
        h.mean_dim(3).mean_dim(2).flatten(1, 3)
    }

    /// Pooled features of a normalised `[batch, 3, side, side]` image batch.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let start = self.blocks.len();
        self.top(self.bottom(x, start), start)
    }

    /// Logits from features (dropout is active only while training).
    pub fn classify(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(self.dropout.forward(features))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.classify(self.features(x))
    }

    /// Prepares partial fine-tuning from block `first` on: earlier blocks get no gradients,
    /// and every BatchNorm keeps its running statistics (batches of a few hundred images
    /// would only make them noisier) while later weights, scales and shifts train.
    pub fn for_finetuning(self, first: usize) -> Self {
        let blocks = freeze_below(self.blocks, first);
        Self {
            conv_stem: self.conv_stem.freeze(),
            bn0: self.bn0.freeze(),
            blocks,
            conv_head: self.conv_head.freeze().set_require_grad(true),
            bn1: self.bn1.freeze().set_require_grad(true),
            dropout: self.dropout,
            fc: self.fc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite0_has_the_published_size_and_shapes() {
        let device = Device::flex();
        let m = EfficientNetLite::lite0(IMAGENET_CLASSES, &device);
        assert_eq!(m.blocks.len(), 16);
        assert_eq!(*stage_starts().last().unwrap(), 16);
        // 4.65 M parameters (the published 4.7 M), plus BatchNorm running statistics.
        let n = m.num_params();
        assert!((4_600_000..4_850_000).contains(&n), "{n}");
        let x = Tensor::<4>::zeros([2, 3, 64, 64], &device);
        assert_eq!(m.bottom(x.clone(), 16).dims(), [2, 320, 2, 2]);
        assert_eq!(m.forward(x).dims(), [2, IMAGENET_CLASSES]);
    }
}
