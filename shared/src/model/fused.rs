//! The inference form of [`EfficientNetLite`]: every BatchNorm folded into the convolution
//! before it (`w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`), which removes four elementwise
//! passes over every activation per layer. Same outputs as the model in eval mode (within
//! float rounding); used for serving and previews, never for training.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu6;

use super::efficientnet::{EfficientNetLite, MBConv};

#[derive(Module, Debug)]
pub struct FusedBlock {
    pub expand: Option<Conv2d>,
    pub depthwise: Conv2d,
    pub project: Conv2d,
    /// Whether the block adds its input to its output.
    #[module(skip)]
    pub residual: bool,
}

#[derive(Module, Debug)]
pub struct FusedEfficientNetLite {
    pub stem: Conv2d,
    pub blocks: Vec<FusedBlock>,
    pub head: Conv2d,
    pub fc: Linear,
}

/// The convolution with the BatchNorm after it folded in.
fn fold(conv: &Conv2d, bn: &BatchNorm) -> Conv2d {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let [out, ..] = conv.weight.dims();
    let weight = conv.weight.val() * scale.clone().reshape([out, 1, 1, 1]);
    let bias = bn.beta.val() - bn.running_mean.value() * scale;
    Conv2d {
        weight: Param::from_tensor(weight),
        bias: Some(Param::from_tensor(bias)),
        stride: conv.stride,
        kernel_size: conv.kernel_size,
        dilation: conv.dilation,
        groups: conv.groups,
        padding: conv.padding.clone(),
    }
}

impl FusedBlock {
    fn new(b: &MBConv) -> Self {
        Self {
            expand: match (&b.expand_conv, &b.bn0) {
                (Some(c), Some(n)) => Some(fold(c, n)),
                _ => None,
            },
            depthwise: fold(&b.depthwise_conv, &b.bn1),
            project: fold(&b.project_conv, &b.bn2),
            residual: b.has_residual(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let Some(c) = &self.expand {
            h = relu6(c.forward(h));
        }
        h = relu6(self.depthwise.forward(h));
        h = self.project.forward(h);
        if self.residual { h + x } else { h }
    }
}

/// The stem and `blocks` of a backbone with their BatchNorms folded: the part a classifier
/// and a detector share (the detector's serving executor runs it).
pub fn fuse_trunk(
    conv_stem: &Conv2d,
    bn0: &BatchNorm,
    blocks: &[MBConv],
) -> (Conv2d, Vec<FusedBlock>) {
    (
        fold(conv_stem, bn0),
        blocks.iter().map(FusedBlock::new).collect(),
    )
}

impl FusedEfficientNetLite {
    pub fn new(m: &EfficientNetLite) -> Self {
        let (stem, blocks) = fuse_trunk(&m.conv_stem, &m.bn0, &m.blocks);
        Self {
            stem,
            blocks,
            head: fold(&m.conv_head, &m.bn1),
            fc: m.fc.clone(),
        }
    }

    /// Stem and blocks `0..end` (see [`EfficientNetLite::bottom`]).
    pub fn bottom(&self, x: Tensor<4>, end: usize) -> Tensor<4> {
        let mut h = relu6(self.stem.forward(x));
        for b in &self.blocks[..end] {
            h = b.forward(h);
        }
        h
    }

    /// Pooled `[batch, 1280]` features of a normalised `[batch, 3, side, side]` batch.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut h = self.bottom(x, self.blocks.len());
        h = relu6(self.head.forward(h));
        h.mean_dim(3).mean_dim(2).flatten(1, 3)
    }

    /// Logits of a normalised `[batch, 3, side, side]` batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.features(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_the_outputs() {
        let device = Device::flex();
        device.seed(3);
        let mut m = EfficientNetLite::lite0(5, &device);
        // Non-trivial statistics, so folding has something to fold.
        for b in &mut m.blocks {
            let c = b.bn1.gamma.dims()[0];
            b.bn1.gamma = Param::from_tensor(Tensor::<1>::random(
                [c],
                burn::tensor::Distribution::Uniform(0.5, 1.5),
                &device,
            ));
            b.bn1.beta = Param::from_tensor(Tensor::<1>::random(
                [c],
                burn::tensor::Distribution::Uniform(-0.5, 0.5),
                &device,
            ));
        }
        let m = m.valid();
        let x = Tensor::<4>::random(
            [2, 3, 64, 64],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let a: Vec<f32> = m
            .forward(x.clone())
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let b: Vec<f32> = FusedEfficientNetLite::new(&m)
            .forward(x)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "largest difference {worst}");
    }
}
