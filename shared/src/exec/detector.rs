//! The detector on the CPU executor (no lock: replicas run side by side): the backbone as
//! [`Trunk`] (the classifier's, BatchNorm folded), then the feature pyramid and FCOS head of
//! [`crate::model::detector`] re-laid for NHWC ([`Neck`], [`HeadNet`]). Its output is
//! `Detector::forward`'s, which `crate::detect` decodes into boxes on the server and in the
//! browser alike.

use burn::nn::GroupNorm;
use burn::prelude::*;
use rayon::prelude::*;

use super::{Depthwise, Pointwise, Scratch, Trunk, floats, im2col};
use crate::detect::STRIDES;
use crate::model::Detector;
use crate::model::detector::{Head, Pyramid, TowerLayer, tap_blocks, taps_end};
use crate::model::fused::fuse_trunk;

/// Regression logits are clamped before `exp`, as `Detector::forward` does.
pub(super) const MAX_LOG_DISTANCE: f32 = 10.0;
/// The head's narrow outputs are computed this many columns at a time (one AVX2 register,
/// two wasm ones).
const OUTPUT_LANES: usize = 8;

pub struct DetectorNet {
    /// Stem and blocks up to the last pyramid tap.
    trunk: Trunk,
    neck: Neck,
    head: HeadNet,
}

/// The top-down pyramid: 1×1 laterals, nearest upsampling added level to level, 3×3
/// smoothing (as products over im2col rows).
struct Neck {
    lateral: Vec<Pointwise>,
    smooth: Vec<Pointwise>,
}

/// One tower layer: depthwise 3×3 (no activation), pointwise 1×1, GroupNorm, ReLU.
struct Tower {
    depthwise: Depthwise,
    pointwise: Pointwise,
    norm: Norm,
}

/// GroupNorm's groups, ε and affine weights.
struct Norm {
    groups: usize,
    epsilon: f32,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// The FCOS head: class tower and logits, box tower with distances and centre-ness (the
/// two 3×3 outputs on the box tower share one product, 4 + 1 columns).
struct HeadNet {
    classes: usize,
    cls_tower: Vec<Tower>,
    box_tower: Vec<Tower>,
    cls_out: Pointwise,
    box_out: Pointwise,
    scales: Vec<f32>,
}

impl Neck {
    fn new(p: &Pyramid) -> Self {
        Self {
            lateral: p.lateral.iter().map(Pointwise::new).collect(),
            smooth: p.smooth.iter().map(Pointwise::kxk).collect(),
        }
    }

    /// The pyramid levels (NHWC, `n` images) and their sides, from the backbone taps.
    fn run(
        &self,
        n: usize,
        taps: &[(Vec<f32>, (usize, usize))],
        cols: &mut Vec<f32>,
    ) -> Vec<(Vec<f32>, (usize, usize))> {
        let c = self.lateral[0].cout();
        let mut lat: Vec<(Vec<f32>, (usize, usize))> = taps
            .iter()
            .zip(&self.lateral)
            .map(|((x, (h, w)), l)| {
                let mut out = Vec::new();
                l.run(x, n * h * w, false, None, &mut out);
                (out, (*h, *w))
            })
            .collect();
        for i in (0..lat.len() - 1).rev() {
            let (above, rest) = lat.split_at_mut(i + 1);
            let ((x, (h, w)), (up, (uh, uw))) = (&mut above[i], &rest[0]);
            add_nearest(x, (n, *h, *w, c), up, (*uh, *uw));
        }
        lat.into_iter()
            .zip(&self.smooth)
            .map(|((x, (h, w)), s)| {
                im2col(&x, (n, h, w, c), 3, cols);
                let mut out = Vec::new();
                s.run(cols, n * h * w, false, None, &mut out);
                (out, (h, w))
            })
            .collect()
    }
}

/// `x += nearest(up)`: burn's nearest resize (source index ⌊o·in/out⌋) of `up` (`uh×uw`) to
/// `x`'s `h×w`, per image and channel.
pub(super) fn add_nearest(
    x: &mut [f32],
    (n, h, w, c): (usize, usize, usize, usize),
    up: &[f32],
    (uh, uw): (usize, usize),
) {
    for img in 0..n {
        for y in 0..h {
            let sy = nearest(y, uh, h);
            for xx in 0..w {
                let sx = nearest(xx, uw, w);
                let dst = &mut x[((img * h + y) * w + xx) * c..][..c];
                let src = &up[((img * uh + sy) * uw + sx) * c..][..c];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
    }
}

/// The source index of output index `o` of burn's nearest resize from `i` to `out` samples.
pub(super) fn nearest(o: usize, i: usize, out: usize) -> usize {
    (((o as f64) * (i as f64 / out as f64)).floor() as usize).min(i - 1)
}

impl Norm {
    fn new(g: &GroupNorm) -> Self {
        let c = g.num_channels;
        Self {
            groups: g.num_groups,
            epsilon: g.epsilon as f32,
            gamma: g
                .gamma
                .as_ref()
                .map_or_else(|| vec![1.0; c], |p| floats(p.val())),
            beta: g
                .beta
                .as_ref()
                .map_or_else(|| vec![0.0; c], |p| floats(p.val())),
        }
    }

    /// ReLU of GroupNorm, in place, over `n` NHWC images of `hw` pixels: statistics per image
    /// and group of channels. Sums run per channel along the contiguous channel rows (which
    /// the compiler vectorises) and are combined per group in f64.
    fn relu(&self, x: &mut [f32], n: usize, hw: usize) {
        let c = self.gamma.len();
        let per = c / self.groups;
        let count = (hw * per) as f64;
        let per_group = |acc: &[f32]| -> Vec<f64> {
            acc.chunks_exact(per)
                .map(|g| g.iter().map(|&v| f64::from(v)).sum::<f64>() / count)
                .collect()
        };
        x.par_chunks_mut(hw * c).take(n).for_each(|img| {
            let mut acc = vec![0.0f32; c];
            for px in img.chunks_exact(c) {
                acc.iter_mut().zip(px).for_each(|(a, v)| *a += v);
            }
            let mean = per_group(&acc);
            let m: Vec<f32> = (0..c).map(|ch| mean[ch / per] as f32).collect();
            acc.fill(0.0);
            for px in img.chunks_exact(c) {
                for ((a, v), m) in acc.iter_mut().zip(px).zip(&m) {
                    let d = v - m;
                    *a += d * d;
                }
            }
            let var = per_group(&acc);
            // y = (x − mean)·γ/σ + β = x·scale + shift, per channel.
            let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
                .map(|ch| {
                    let g = ch / per;
                    let scale =
                        f64::from(self.gamma[ch]) / (var[g] + f64::from(self.epsilon)).sqrt();
                    (
                        scale as f32,
                        (f64::from(self.beta[ch]) - mean[g] * scale) as f32,
                    )
                })
                .unzip();
            for px in img.chunks_exact_mut(c) {
                for ((v, a), b) in px.iter_mut().zip(&scale).zip(&shift) {
                    *v = (*v * a + b).max(0.0);
                }
            }
        });
    }
}

impl Tower {
    fn new(t: &TowerLayer) -> Self {
        Self {
            depthwise: Depthwise::linear(&t.depthwise),
            pointwise: Pointwise::new(&t.pointwise),
            norm: Norm::new(&t.norm),
        }
    }
}

/// Runs `tower` over `n` images of `h×w` (NHWC), leaving the result in `x`.
fn run_tower(
    tower: &[Tower],
    x: &mut Vec<f32>,
    (n, h, w): (usize, usize, usize),
    t: &mut Vec<f32>,
) {
    for layer in tower {
        layer.depthwise.run(x, n, h, w, t);
        layer.pointwise.run(t, n * h * w, false, None, x);
        let c = layer.pointwise.cout();
        layer.norm.relu(&mut x[..n * h * w * c], n, h * w);
    }
}

impl HeadNet {
    fn new(h: &Head) -> Self {
        // The two outputs of the box tower as one 3×3 convolution: distances, then centre-ness.
        let merged = {
            let weight = Tensor::cat(vec![h.box_out.weight.val(), h.ctr_out.weight.val()], 0);
            let bias = |c: &burn::nn::conv::Conv2d| c.bias.as_ref().expect("output bias").val();
            let mut conv = h.box_out.clone();
            conv.weight = burn::module::Param::from_tensor(weight);
            conv.bias = Some(burn::module::Param::from_tensor(Tensor::cat(
                vec![bias(&h.box_out), bias(&h.ctr_out)],
                0,
            )));
            conv
        };
        Self {
            classes: h.cls_out.weight.dims()[0],
            cls_tower: h.cls_tower.iter().map(Tower::new).collect(),
            box_tower: h.box_tower.iter().map(Tower::new).collect(),
            cls_out: Pointwise::kxk(&h.cls_out).padded(OUTPUT_LANES),
            box_out: Pointwise::kxk(&merged).padded(OUTPUT_LANES),
            scales: floats(h.scales.val()),
        }
    }

    /// Writes one level's outputs into `out` (`n` images of `[classes + 5][points]`, this
    /// level's points from `offset`).
    fn run(
        &self,
        x: &[f32],
        (n, h, w, level): (usize, usize, usize, usize),
        (offset, points): (usize, usize),
        s: &mut LevelScratch<'_>,
        out: &mut [f32],
    ) {
        let hw = h * w;
        let c = self.cls_out.cin() / 9;
        let (classes, cls_stride) = (self.classes, self.cls_out.cout());
        let reg_stride = self.box_out.cout();
        let rows = classes + 5;
        s.cls.clear();
        s.cls.extend_from_slice(&x[..n * hw * c]);
        run_tower(&self.cls_tower, s.cls, (n, h, w), s.t);
        im2col(s.cls, (n, h, w, c), 3, s.cols);
        self.cls_out.run(s.cols, n * hw, false, None, s.logits);
        s.reg.clear();
        s.reg.extend_from_slice(&x[..n * hw * c]);
        run_tower(&self.box_tower, s.reg, (n, h, w), s.t);
        im2col(s.reg, (n, h, w, c), 3, s.cols);
        self.box_out.run(s.cols, n * hw, false, None, s.t);
        let (scale, stride) = (self.scales[level], STRIDES[level] as f32);
        for img in 0..n {
            let o = &mut out[img * rows * points..(img + 1) * rows * points];
            for p in 0..hw {
                let cls = &s.logits[(img * hw + p) * cls_stride..][..classes];
                for (k, v) in cls.iter().enumerate() {
                    o[k * points + offset + p] = *v;
                }
                let reg = &s.t[(img * hw + p) * reg_stride..][..5];
                for k in 0..4 {
                    let d = (reg[k] * scale).clamp(-MAX_LOG_DISTANCE, MAX_LOG_DISTANCE);
                    o[(classes + k) * points + offset + p] = d.exp() * stride;
                }
                o[(classes + 4) * points + offset + p] = reg[4];
            }
        }
    }
}

/// Buffers of the neck and head (a replica's [`Scratch::extra`], kept between requests).
struct LevelScratch<'a> {
    cls: &'a mut Vec<f32>,
    reg: &'a mut Vec<f32>,
    t: &'a mut Vec<f32>,
    cols: &'a mut Vec<f32>,
    logits: &'a mut Vec<f32>,
}

/// `n` images of `h×w×c` (NHWC, the executor's layout) as burn's NCHW.
pub fn nchw(x: &[f32], n: usize, (h, w, c): (usize, usize, usize)) -> Vec<f32> {
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
    pub fn new(model: Detector) -> Self {
        let (stem, blocks) = fuse_trunk(&model.conv_stem, &model.bn0, &model.blocks[..taps_end()]);
        Self {
            trunk: Trunk::new(&stem, &blocks),
            neck: Neck::new(&model.neck),
            head: HeadNet::new(&model.head),
        }
    }

    /// The backbone's pyramid taps of `n` normalised `3×side×side` images laid end to end
    /// (NHWC, the executor's layout) and their `(h, w, c)`: the frozen backbone's part of
    /// detection training.
    pub fn taps(
        &self,
        input: &[f32],
        n: usize,
        side: usize,
        scratch: &mut Scratch,
    ) -> Vec<(Vec<f32>, (usize, usize, usize))> {
        let taps_at = tap_blocks();
        let mut taps = Vec::with_capacity(taps_at.len());
        self.trunk
            .run(input, n, side, scratch, taps_end(), |done, x, dims| {
                if taps_at.contains(&done) {
                    taps.push((x.to_vec(), dims));
                }
            });
        taps
    }

    /// The activation after backbone block `end` of `n` normalised `3×side×side` images and
    /// the pyramid taps reached by then, in burn's layout: what `Detector::bottom_with_taps`
    /// computes, for fine-tuning's frozen bottom.
    pub fn bottom(
        &self,
        input: &[f32],
        n: usize,
        side: usize,
        scratch: &mut Scratch,
        end: usize,
    ) -> (Tap, Vec<Tap>) {
        let taps_at = tap_blocks();
        let mut taps = Vec::new();
        let mut last = None;
        let tap = |x: &[f32], (h, w, c)| Tap {
            values: nchw(x, n, (h, w, c)),
            dims: [c, h, w],
        };
        self.trunk
            .run(input, n, side, scratch, end, |done, x, dims| {
                if taps_at.contains(&done) {
                    taps.push(tap(x, dims));
                }
                if done == end {
                    last = Some(tap(x, dims));
                }
            });
        (last.expect("the trunk reports its last block"), taps)
    }

    /// The head output (`[classes + 5][points]`, as `Detector::forward`) of each of `n`
    /// normalised `3×side×side` images laid end to end.
    pub fn forward(
        &self,
        input: &[f32],
        n: usize,
        side: usize,
        scratch: &mut Scratch,
    ) -> Vec<Vec<f32>> {
        let taps: Vec<(Vec<f32>, (usize, usize))> = self
            .taps(input, n, side, scratch)
            .into_iter()
            .map(|(x, (h, w, _))| (x, (h, w)))
            .collect();
        let [cls, reg, t, cols, logits] = &mut scratch.extra;
        let levels = self.neck.run(n, &taps, cols);
        let points: usize = levels.iter().map(|(_, (h, w))| h * w).sum();
        let rows = self.head.classes + 5;
        let mut out = vec![0.0; n * rows * points];
        let mut s = LevelScratch {
            cls,
            reg,
            t,
            cols,
            logits,
        };
        let mut offset = 0;
        for (level, (x, (h, w))) in levels.iter().enumerate() {
            self.head
                .run(x, (n, *h, *w, level), (offset, points), &mut s, &mut out);
            offset += h * w;
        }
        out.chunks_exact(rows * points)
            .map(<[f32]>::to_vec)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect;
    use crate::model::DetectorConfig;
    use crate::train::Preset;
    use burn::module::Param;
    use burn::tensor::Distribution;

    /// The executor gives what the whole detector gives in burn (non-trivial BatchNorm
    /// statistics, so the folding matters; GroupNorm weights and level scales away from their
    /// initial ones; an odd side for SAME padding's uneven case and an upsampling that is not
    /// exactly 2×).
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
        let uniform = |c: usize, lo: f64, hi: f64| {
            Param::from_tensor(Tensor::random([c], Distribution::Uniform(lo, hi), &device))
        };
        for t in model
            .head
            .cls_tower
            .iter_mut()
            .chain(&mut model.head.box_tower)
        {
            let c = t.norm.num_channels;
            t.norm.gamma = Some(uniform(c, 0.5, 1.5));
            t.norm.beta = Some(uniform(c, -0.5, 0.5));
        }
        model.head.scales = uniform(STRIDES.len(), 0.5, 1.5);
        let model = model.valid();
        let net = DetectorNet::new(model.clone());
        let mut scratch = Scratch::default();
        for (n, side) in [(2, 64), (1, 72)] {
            let x =
                Tensor::<4>::random([n, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
            let want: Vec<f32> = model
                .forward(x.clone())
                .into_data()
                .try_into_vec_as()
                .unwrap();
            let input: Vec<f32> = x.clone().into_data().try_into_vec_as().unwrap();
            // Fine-tuning's frozen bottom, ending between taps and at one.
            for end in [8, 11] {
                let (want_h, want_taps) = model.bottom_with_taps(x.clone(), end);
                let (h, taps) = net.bottom(&input, n, side, &mut scratch, end);
                assert_eq!(taps.len(), want_taps.len());
                for (got, want) in std::iter::once(h)
                    .chain(taps)
                    .zip(std::iter::once(want_h).chain(want_taps))
                {
                    assert_eq!(got.dims, <[usize; 3]>::try_from(&want.dims()[1..]).unwrap());
                    let want: Vec<f32> = want.into_data().try_into_vec_as().unwrap();
                    assert!(
                        got.values
                            .iter()
                            .zip(&want)
                            .all(|(g, w)| (g - w).abs() <= 1e-3 * (1.0 + w.abs())),
                        "bottom to block {end}"
                    );
                }
            }
            let got: Vec<f32> = net.forward(&input, n, side, &mut scratch).concat();
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
