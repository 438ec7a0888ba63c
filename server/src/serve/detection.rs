//! Serving a detector: the backbone on the serving executor ([`Trunk`], the classifier's
//! kernels, BatchNorm folded), the feature pyramid and FCOS head on burn's CPU backend, and
//! the boxes the predict API answers with (the same decoding and suppression as the browser
//! and the evaluation, from `shared::detect`).

use std::sync::Mutex;

use burn::prelude::*;
use shared::detect::{self, Detection};
use shared::model::detector::{tap_blocks, taps_end};
use shared::model::fused::fuse_trunk;
use shared::model::{Detector, DetectorConfig};
use shared::train::ModelMeta;

use super::engine::Network;
use super::native::{Scratch, Trunk};
use crate::artifact;

pub struct DetectorNet {
    /// Stem and blocks up to the last pyramid tap; read-only, so replicas share it.
    trunk: Trunk,
    /// The neck and head (its backbone blocks dropped: the trunk runs them). burn modules
    /// are `Send`, not `Sync`: replicas take turns here, for the smaller part of the work.
    top: Mutex<Detector>,
    device: Device,
}

impl DetectorNet {
    pub fn load(meta: &ModelMeta, weights: Vec<u8>, device: &Device) -> anyhow::Result<Self> {
        let config = DetectorConfig::for_preset(meta.preset);
        let model =
            artifact::load_into(Detector::init(config, meta.labels.len(), device), weights)?;
        Ok(Self::new(model.valid(), device))
    }

    pub fn new(mut model: Detector, device: &Device) -> Self {
        let (stem, blocks) = fuse_trunk(&model.conv_stem, &model.bn0, &model.blocks[..taps_end()]);
        model.blocks = Vec::new();
        Self {
            trunk: Trunk::new(&stem, &blocks),
            top: Mutex::new(model),
            device: device.clone(),
        }
    }
}

/// `n` images of `h×w×c` (NHWC, the executor's layout) as burn's NCHW.
fn nchw(x: &[f32], n: usize, (h, w, c): (usize, usize, usize)) -> Vec<f32> {
    let mut out = vec![0.0; n * c * h * w];
    for (src, dst) in x
        .chunks_exact(h * w * c)
        .zip(out.chunks_exact_mut(c * h * w))
    {
        for (p, px) in src.chunks_exact(c).enumerate() {
            for (ch, v) in px.iter().enumerate() {
                dst[ch * h * w + p] = *v;
            }
        }
    }
    out
}

/// One pyramid tap of a batch: NCHW floats and `[c, h, w]`.
pub struct Tap {
    pub values: Vec<f32>,
    pub dims: [usize; 3],
}

impl DetectorNet {
    /// The backbone's pyramid taps of `n` normalised `3×side×side` images laid end to end,
    /// computed by the serving executor.
    pub fn taps(&self, input: &[f32], n: usize, side: usize, scratch: &mut Scratch) -> Vec<Tap> {
        let taps_at = tap_blocks();
        let mut taps = Vec::with_capacity(taps_at.len());
        self.trunk
            .run(input, n, side, scratch, taps_end(), |done, x, (h, w, c)| {
                if taps_at.contains(&done) {
                    taps.push(Tap {
                        values: nchw(x, n, (h, w, c)),
                        dims: [c, h, w],
                    });
                }
            });
        taps
    }
}

impl Network for DetectorNet {
    fn run(&self, input: &[f32], n: usize, side: usize, scratch: &mut Scratch) -> Vec<Vec<f32>> {
        let taps = self
            .taps(input, n, side, scratch)
            .into_iter()
            .map(|t| {
                let [c, h, w] = t.dims;
                Tensor::<4>::from_data(TensorData::new(t.values, [n, c, h, w]), &self.device)
            })
            .collect();
        let out = {
            let top = self
                .top
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            top.detect(taps)
        };
        let v: Vec<f32> = out.into_data().try_into_vec_as::<f32>().unwrap_or_default();
        let k = v.len() / n.max(1);
        v.chunks(k.max(1)).map(<[f32]>::to_vec).collect()
    }
}

/// The served boxes of one image's head output: at or above the model's confidence
/// threshold, after suppression, in input pixels.
pub fn boxes(output: &[f32], classes: usize, side: usize, threshold: f32) -> Vec<Detection> {
    let points = detect::points(side);
    detect::decode(output, classes, &points, side, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Distribution;
    use shared::train::Preset;

    /// The executor's backbone with burn's neck and head gives what the whole detector gives
    /// in burn (non-trivial BatchNorm statistics, so the folding matters; an odd side for
    /// SAME padding's uneven case).
    #[test]
    fn computes_what_burn_computes() {
        let device = Device::flex();
        device.seed(5);
        let mut model = Detector::init(
            DetectorConfig::for_preset(Preset::DetectionFast),
            3,
            &device,
        );
        for b in &mut model.blocks {
            let c = b.bn1.gamma.dims()[0];
            b.bn1.gamma = Param::from_tensor(Tensor::random(
                [c],
                Distribution::Uniform(0.5, 1.5),
                &device,
            ));
            b.bn1.beta = Param::from_tensor(Tensor::random(
                [c],
                Distribution::Uniform(-0.5, 0.5),
                &device,
            ));
        }
        let model = model.valid();
        let net = DetectorNet::new(model.clone(), &device);
        let mut scratch = Scratch::default();
        for (n, side) in [(2, 64), (1, 72)] {
            let x =
                Tensor::<4>::random([n, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
            let want: Vec<f32> = model
                .forward(x.clone())
                .into_data()
                .try_into_vec_as()
                .unwrap();
            let input: Vec<f32> = x.into_data().try_into_vec_as().unwrap();
            let got: Vec<f32> = net.run(&input, n, side, &mut scratch).concat();
            assert_eq!(got.len(), want.len());
            assert_eq!(want.len(), n * 8 * detect::points(side).len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-3 * (1.0 + w.abs()),
                    "side {side}, output {i}: {g} here, {w} in burn"
                );
            }
        }
    }
}
