//! The detector's neck and head trained on the executor's kernels: the frozen-backbone phase
//! of detection training on the CPU. burn's autodiff runs each operation of the neck and
//! head as its own NCHW pass with a generic backward, several times slower than the
//! executor's NHWC kernels; this runs the same network forward on those kernels, keeping
//! what the backward needs, then hand-written backward passes:
//!
//! - a dense convolution's weight gradient `Xᵀ·dY` (X the input rows, or im2col rows for a
//!   3×3) is [`add_at_b`], register tiles of the weight matrix summed over the pixels; its
//!   input gradient is the same kind of product the forward runs ([`Pointwise`]), with the
//!   weights transposed (a 3×3 also flips its taps: the gradient of a stride-1 SAME
//!   convolution is the convolution of `dY` with the flipped kernel);
//! - a depthwise convolution's input gradient is the executor's depthwise kernel with the
//!   taps flipped, its weight gradient a sum over pixels per tap and channel;
//! - GroupNorm with its ReLU, nearest upsampling, the level scales and `exp` of the
//!   distances are written out below.
//!
//! The loss gradient on the head output is written out too (`losses::fcos_loss_grad`).
//! The optimiser is AdamW as burn's (`AdamWConfig`: β 0.9 / 0.999, ε 1e-5, decoupled weight
//! decay) on the flat weights. A test holds the gradients and one optimiser step to burn's.

use std::cell::RefCell;

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;

use super::detector::{MAX_LOG_DISTANCE, add_nearest, nearest};
use super::{Depthwise, Isa, Lanes, MR_OTHER, Pointwise, floats, im2col, vectorised};
use crate::detect::STRIDES;
use crate::model::Detector;
use crate::model::detector::TowerLayer;

/// The head's narrow outputs (a few classes, 4 + 1 box columns) are padded to this many
/// columns, as the serving executor does; the padding's weights have zero gradient and
/// stay zero.
const OUTPUT_LANES: usize = 8;
/// AdamW as burn's `AdamWConfig` defaults.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// Activation and gradient buffers reused from step to step. A step touches a few hundred
/// MB of them; fresh allocations each step cost more in page faults and zeroing than the
/// arithmetic of many layers (measured: 224 ms per step allocating, 145 ms reusing).
#[derive(Default)]
struct Pool(RefCell<Vec<Vec<f32>>>);

impl Pool {
    /// A buffer of `len` floats whose contents are unspecified (every caller writes all of
    /// them, or zeroes it first).
    fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self.0.borrow_mut();
        // The smallest that is large enough, else the largest (which grows).
        let fit = (0..free.len())
            .filter(|&i| free[i].capacity() >= len)
            .min_by_key(|&i| free[i].capacity())
            .or_else(|| (0..free.len()).max_by_key(|&i| free[i].capacity()));
        let mut v = fit.map(|i| free.swap_remove(i)).unwrap_or_default();
        v.truncate(len);
        v.resize(len, 0.0);
        v
    }

    fn zeros(&self, len: usize) -> Vec<f32> {
        let mut v = self.take(len);
        v.fill(0.0);
        v
    }

    fn give(&self, v: Vec<f32>) {
        self.0.borrow_mut().push(v);
    }
}

/// One trainable tensor in the layout its kernel reads, its gradient and AdamW's moments.
struct Weight {
    w: Vec<f32>,
    g: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Weight {
    fn new(w: Vec<f32>) -> Self {
        let n = w.len();
        Self {
            w,
            g: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One AdamW step (`t` counts steps from 1): burn's `AdamW::step`, element by element.
    fn adamw(&mut self, lr: f32, weight_decay: f32, t: i32) {
        let (c1, c2) = (1.0 - BETA_1.powi(t), 1.0 - BETA_2.powi(t));
        let decay = 1.0 - lr * weight_decay;
        for (((w, g), m), v) in self
            .w
            .iter_mut()
            .zip(&self.g)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = *m * BETA_1 + g * (1.0 - BETA_1);
            *v = *v * BETA_2 + g * g * (1.0 - BETA_2);
            *w = *w * decay - lr * ((*m / c1) / ((*v / c2).sqrt() + EPSILON));
        }
    }
}

/// A dense convolution (1×1, or 3×3 over im2col rows): weights `[tap·cin][cout_p]` as
/// [`Pointwise`] keeps them, output columns padded to `cout_p`.
struct Dense {
    w: Weight,
    b: Weight,
    cin: usize,
    taps: usize,
    cout_p: usize,
}

impl Dense {
    /// The convolutions' outputs side by side (the box tower's distances and centre-ness
    /// are one product), padded to a multiple of `lanes` columns.
    fn new(convs: &[&Conv2d], lanes: usize) -> Self {
        let weight = Tensor::cat(convs.iter().map(|c| c.weight.val()).collect(), 0);
        let bias = Tensor::cat(
            convs
                .iter()
                .map(|c| c.bias.as_ref().expect("a bias").val())
                .collect(),
            0,
        );
        let [cout, cin, k, _] = weight.dims();
        let p = Pointwise::from_oihw(&floats(weight), cout, cin, k * k, floats(bias)).padded(lanes);
        Self {
            cin,
            taps: k * k,
            cout_p: p.cout,
            w: Weight::new(p.w),
            b: Weight::new(p.b),
        }
    }

    fn product(&self) -> Pointwise {
        Pointwise {
            cin: self.taps * self.cin,
            cout: self.cout_p,
            w: self.w.w.clone(),
            b: self.b.w.clone(),
        }
    }

    /// `x`'s product (`x` the input rows of a 1×1, im2col rows of a 3×3).
    fn forward(&self, x: &[f32], rows: usize, pool: &Pool) -> Vec<f32> {
        let mut out = pool.take(rows * self.cout_p);
        self.product().run(x, rows, false, None, &mut out);
        out
    }

    /// The input gradient of `n` images of `h×w` from the output gradient `dy`: `dY·Wᵀ`,
    /// over im2col rows of `dy` with the taps flipped for a 3×3.
    fn input_grad(&self, dy: &[f32], (n, h, w): (usize, usize, usize), pool: &Pool) -> Vec<f32> {
        let (cin, cp, t) = (self.cin, self.cout_p, self.taps);
        let mut wt = vec![0.0; t * cp * cin];
        for tap in 0..t {
            for ci in 0..cin {
                let row = &self.w.w[(tap * cin + ci) * cp..][..cp];
                for (co, v) in row.iter().enumerate() {
                    wt[((t - 1 - tap) * cp + co) * cin + ci] = *v;
                }
            }
        }
        let product = Pointwise {
            cin: t * cp,
            cout: cin,
            w: wt,
            b: vec![0.0; cin],
        };
        let mut out = pool.take(n * h * w * cin);
        if t == 1 {
            product.run(dy, n * h * w, false, None, &mut out);
        } else {
            let mut cols = pool.take(n * h * w * t * cp);
            im2col(dy, (n, h, w, cp), 3, &mut cols);
            product.run(&cols, n * h * w, false, None, &mut out);
            pool.give(cols);
        }
        out
    }

    /// Adds the weight and bias gradients of `rows` output rows `dy` over input rows `x`.
    fn weight_grad(&mut self, x: &[f32], dy: &[f32], rows: usize) {
        add_at_b(
            x,
            dy,
            rows,
            self.taps * self.cin,
            self.cout_p,
            &mut self.w.g,
        );
        for r in dy[..rows * self.cout_p].chunks_exact(self.cout_p) {
            self.b.g.iter_mut().zip(r).for_each(|(g, d)| *g += d);
        }
    }

    /// Output columns `from..to` as burn's `[cout][cin][k][k]` weight and bias.
    fn oihw(&self, w: &[f32], b: &[f32], (from, to): (usize, usize)) -> (Vec<f32>, Vec<f32>) {
        let (cin, t, cp) = (self.cin, self.taps, self.cout_p);
        let mut out = vec![0.0; (to - from) * cin * t];
        for o in 0..to - from {
            for ci in 0..cin {
                for tap in 0..t {
                    out[(o * cin + ci) * t + tap] = w[(tap * cin + ci) * cp + from + o];
                }
            }
        }
        (out, b[from..to].to_vec())
    }
}

/// One tower layer: depthwise 3×3 (`[tap][c]`, no bias), pointwise, GroupNorm, ReLU.
struct Layer {
    depthwise: Weight,
    pointwise: Dense,
    gamma: Weight,
    beta: Weight,
    groups: usize,
    epsilon: f32,
}

impl Layer {
    fn new(t: &TowerLayer) -> Self {
        let c = t.norm.num_channels;
        let affine = |p: &Option<Param<Tensor<1>>>, init: f32| {
            Weight::new(
                p.as_ref()
                    .map_or_else(|| vec![init; c], |p| floats(p.val())),
            )
        };
        Self {
            depthwise: Weight::new(Depthwise::linear(&t.depthwise).w),
            pointwise: Dense::new(&[&t.pointwise], 1),
            gamma: affine(&t.norm.gamma, 1.0),
            beta: affine(&t.norm.beta, 0.0),
            groups: t.norm.num_groups,
            epsilon: t.norm.epsilon as f32,
        }
    }

    /// The depthwise convolution with weights `w` (`[tap][c]`).
    fn depthwise(w: Vec<f32>) -> Depthwise {
        let c = w.len() / 9;
        Depthwise {
            c,
            k: 3,
            stride: 1,
            w,
            b: vec![0.0; c],
            relu6: false,
        }
    }

    fn forward(
        &self,
        x: &[f32],
        (n, h, w): (usize, usize, usize),
        pool: &Pool,
    ) -> (LayerTape, Vec<f32>) {
        let mut d = pool.take(x.len());
        Self::depthwise(self.depthwise.w.clone()).run(x, n, h, w, &mut d);
        let q = self.pointwise.forward(&d, n * h * w, pool);
        let (y, stats) = self.norm_forward(&q, n, h * w, pool);
        (LayerTape { d, q, stats }, y)
    }

    /// ReLU of GroupNorm of `q` (`n` NHWC images of `hw` pixels), and each image and
    /// group's mean and 1/σ.
    fn norm_forward(
        &self,
        q: &[f32],
        n: usize,
        hw: usize,
        pool: &Pool,
    ) -> (Vec<f32>, Vec<(f32, f32)>) {
        let c = self.gamma.w.len();
        let per = c / self.groups;
        let count = (hw * per) as f64;
        let mut y = pool.take(q.len());
        let stats: Vec<Vec<(f32, f32)>> = y
            .par_chunks_mut(hw * c)
            .zip(q.par_chunks(hw * c))
            .take(n)
            .map(|(y, q)| {
                let mut s1 = vec![0.0f64; c];
                let mut s2 = vec![0.0f64; c];
                let mut a1 = vec![0.0f32; c];
                for px in q.chunks_exact(c) {
                    a1.iter_mut().zip(px).for_each(|(a, v)| *a += v);
                }
                s1.iter_mut().zip(&a1).for_each(|(s, a)| *s = f64::from(*a));
                let mean: Vec<f64> = s1
                    .chunks_exact(per)
                    .map(|g| g.iter().sum::<f64>() / count)
                    .collect();
                let m: Vec<f32> = (0..c).map(|ch| mean[ch / per] as f32).collect();
                a1.fill(0.0);
                for px in q.chunks_exact(c) {
                    for ((a, v), m) in a1.iter_mut().zip(px).zip(&m) {
                        let d = v - m;
                        *a += d * d;
                    }
                }
                s2.iter_mut().zip(&a1).for_each(|(s, a)| *s = f64::from(*a));
                let stats: Vec<(f32, f32)> = s2
                    .chunks_exact(per)
                    .zip(&mean)
                    .map(|(g, &mean)| {
                        let var = g.iter().sum::<f64>() / count;
                        (
                            mean as f32,
                            (1.0 / (var + f64::from(self.epsilon)).sqrt()) as f32,
                        )
                    })
                    .collect();
                let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
                    .map(|ch| {
                        let (mean, rstd) = stats[ch / per];
                        let s = self.gamma.w[ch] * rstd;
                        (s, self.beta.w[ch] - mean * s)
                    })
                    .unzip();
                for (o, px) in y.chunks_exact_mut(c).zip(q.chunks_exact(c)) {
                    for (((o, v), a), b) in o.iter_mut().zip(px).zip(&scale).zip(&shift) {
                        *o = (v * a + b).max(0.0);
                    }
                }
                stats
            })
            .collect();
        (y, stats.concat())
    }

    /// The gradient of GroupNorm's input from that of the ReLU's output `dy` (`y` the
    /// output), adding γ's and β's gradients.
    fn norm_backward(
        &mut self,
        tape: &LayerTape,
        y: &[f32],
        dy: &[f32],
        (n, hw): (usize, usize),
        pool: &Pool,
    ) -> Vec<f32> {
        let c = self.gamma.w.len();
        let per = c / self.groups;
        let count = (hw * per) as f32;
        let gamma = &self.gamma.w;
        let mut dq = pool.take(n * hw * c);
        let sums: Vec<(Vec<f32>, Vec<f32>)> = dq
            .par_chunks_mut(hw * c)
            .enumerate()
            .map(|(img, dq)| {
                let at = img * hw * c..(img + 1) * hw * c;
                let (q, y, dy) = (&tape.q[at.clone()], &y[at.clone()], &dy[at]);
                let stats = &tape.stats[img * self.groups..(img + 1) * self.groups];
                let mean: Vec<f32> = (0..c).map(|ch| stats[ch / per].0).collect();
                let rstd: Vec<f32> = (0..c).map(|ch| stats[ch / per].1).collect();
                // Per channel: Σ dy and Σ dy·x̂ (β's and γ's gradients).
                let (mut s1, mut s2) = (vec![0.0f32; c], vec![0.0f32; c]);
                for ((q, y), dy) in q
                    .chunks_exact(c)
                    .zip(y.chunks_exact(c))
                    .zip(dy.chunks_exact(c))
                {
                    for ch in 0..c {
                        let g = if y[ch] > 0.0 { dy[ch] } else { 0.0 };
                        s1[ch] += g;
                        s2[ch] += g * (q[ch] - mean[ch]) * rstd[ch];
                    }
                }
                // dq = 1/σ·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) per group, dx̂ = dy·γ.
                let group = |s: &[f32]| -> Vec<f32> {
                    (0..self.groups)
                        .map(|g| {
                            (g * per..(g + 1) * per)
                                .map(|ch| gamma[ch] * s[ch])
                                .sum::<f32>()
                                / count
                        })
                        .collect()
                };
                let (a, b) = (group(&s1), group(&s2));
                let a: Vec<f32> = (0..c).map(|ch| a[ch / per]).collect();
                let b: Vec<f32> = (0..c).map(|ch| b[ch / per]).collect();
                for (((dq, q), y), dy) in dq
                    .chunks_exact_mut(c)
                    .zip(q.chunks_exact(c))
                    .zip(y.chunks_exact(c))
                    .zip(dy.chunks_exact(c))
                {
                    for ch in 0..c {
                        let g = if y[ch] > 0.0 { dy[ch] } else { 0.0 };
                        let xhat = (q[ch] - mean[ch]) * rstd[ch];
                        dq[ch] = rstd[ch] * (g * gamma[ch] - a[ch] - xhat * b[ch]);
                    }
                }
                (s1, s2)
            })
            .collect();
        for (s1, s2) in sums {
            self.beta.g.iter_mut().zip(&s1).for_each(|(g, s)| *g += s);
            self.gamma.g.iter_mut().zip(&s2).for_each(|(g, s)| *g += s);
        }
        dq
    }

    /// Backward through the layer from the gradient of its output `dy` (`x` its input,
    /// `y` its output): adds the weight gradients, returns the input's.
    fn backward(
        &mut self,
        tape: &LayerTape,
        (x, y): (&[f32], &[f32]),
        dy: &[f32],
        (n, h, w): (usize, usize, usize),
        pool: &Pool,
    ) -> Vec<f32> {
        let dq = self.norm_backward(tape, y, dy, (n, h * w), pool);
        self.pointwise.weight_grad(&tape.d, &dq, n * h * w);
        let dd = self.pointwise.input_grad(&dq, (n, h, w), pool);
        pool.give(dq);
        depthwise_weight_grad(x, &dd, (n, h, w), &mut self.depthwise.g);
        let c = self.gamma.w.len();
        let mut flipped = vec![0.0; 9 * c];
        for tap in 0..9 {
            flipped[(8 - tap) * c..][..c].copy_from_slice(&self.depthwise.w[tap * c..][..c]);
        }
        let mut dx = pool.take(dd.len());
        Self::depthwise(flipped).run(&dd, n, h, w, &mut dx);
        pool.give(dd);
        dx
    }
}

/// What a layer's backward needs of its forward: the depthwise output, the pointwise
/// output and GroupNorm's statistics per image and group.
struct LayerTape {
    d: Vec<f32>,
    q: Vec<f32>,
    stats: Vec<(f32, f32)>,
}

/// A tower's forward: its input and each layer's output (`acts[i]` is layer `i`'s input),
/// and the layers' tapes.
struct TowerTape {
    acts: Vec<Vec<f32>>,
    layers: Vec<LayerTape>,
}

fn tower_forward(
    tower: &[Layer],
    x: Vec<f32>,
    dims: (usize, usize, usize),
    pool: &Pool,
) -> TowerTape {
    let mut acts = vec![x];
    let mut layers = Vec::with_capacity(tower.len());
    for layer in tower {
        let (tape, y) = layer.forward(acts.last().expect("an input"), dims, pool);
        layers.push(tape);
        acts.push(y);
    }
    TowerTape { acts, layers }
}

fn tower_backward(
    tower: &mut [Layer],
    tape: &TowerTape,
    mut dy: Vec<f32>,
    dims: (usize, usize, usize),
    pool: &Pool,
) -> Vec<f32> {
    for (i, layer) in tower.iter_mut().enumerate().rev() {
        let dx = layer.backward(
            &tape.layers[i],
            (&tape.acts[i], &tape.acts[i + 1]),
            &dy,
            dims,
            pool,
        );
        pool.give(std::mem::replace(&mut dy, dx));
    }
    dy
}

impl TowerTape {
    fn recycle(self, pool: &Pool) {
        for v in self.acts {
            pool.give(v);
        }
        for l in self.layers {
            pool.give(l.d);
            pool.give(l.q);
        }
    }
}

impl LevelTape {
    fn recycle(self, pool: &Pool) {
        self.cls.recycle(pool);
        self.reg.recycle(pool);
        for v in [self.smooth_cols, self.cls_cols, self.box_cols, self.raw_box] {
            pool.give(v);
        }
    }
}

/// One pyramid level's forward: the smoothing convolution's im2col rows, the towers, the
/// output convolutions' im2col rows and the raw box outputs (distance logits, centre-ness).
struct LevelTape {
    dims: (usize, usize, usize),
    smooth_cols: Vec<f32>,
    cls: TowerTape,
    reg: TowerTape,
    cls_cols: Vec<f32>,
    box_cols: Vec<f32>,
    raw_box: Vec<f32>,
}

/// The neck and head being trained, with their gradients and optimiser state.
pub struct HeadTrainer {
    classes: usize,
    channels: usize,
    lateral: Vec<Dense>,
    smooth: Vec<Dense>,
    cls_tower: Vec<Layer>,
    box_tower: Vec<Layer>,
    cls_out: Dense,
    /// Distances then centre-ness, one product.
    box_out: Dense,
    scales: Weight,
    /// AdamW steps taken.
    steps: i32,
    pool: Pool,
}

impl HeadTrainer {
    /// The neck and head of `model` (new, or an earlier version's), ready to train.
    pub fn new(model: &Detector) -> Self {
        let (neck, head) = (&model.neck, &model.head);
        Self {
            classes: model.classes(),
            channels: neck.lateral[0].weight.dims()[0],
            lateral: neck.lateral.iter().map(|c| Dense::new(&[c], 1)).collect(),
            smooth: neck.smooth.iter().map(|c| Dense::new(&[c], 1)).collect(),
            cls_tower: head.cls_tower.iter().map(Layer::new).collect(),
            box_tower: head.box_tower.iter().map(Layer::new).collect(),
            cls_out: Dense::new(&[&head.cls_out], OUTPUT_LANES),
            box_out: Dense::new(&[&head.box_out, &head.ctr_out], OUTPUT_LANES),
            scales: Weight::new(floats(head.scales.val())),
            steps: 0,
            pool: Pool::default(),
        }
    }

    fn weights(&mut self) -> Vec<&mut Weight> {
        let mut all: Vec<&mut Weight> = Vec::new();
        for d in self.lateral.iter_mut().chain(&mut self.smooth) {
            all.extend([&mut d.w, &mut d.b]);
        }
        for l in self.cls_tower.iter_mut().chain(&mut self.box_tower) {
            all.extend([
                &mut l.depthwise,
                &mut l.pointwise.w,
                &mut l.pointwise.b,
                &mut l.gamma,
                &mut l.beta,
            ]);
        }
        all.extend([
            &mut self.cls_out.w,
            &mut self.cls_out.b,
            &mut self.box_out.w,
            &mut self.box_out.b,
            &mut self.scales,
        ]);
        all
    }

    /// Computes the gradients of one batch: the forward over `n` images' backbone taps
    /// (NHWC, with each level's sides) gives the head output (`[n][classes + 5][points]`,
    /// as `Detector::detect`), `loss_grad` turns it into the loss's gradient with respect to
    /// that output, and the backward gives every weight's.
    pub fn gradients(
        &mut self,
        taps: &[(&[f32], (usize, usize))],
        n: usize,
        loss_grad: impl FnOnce(&[f32]) -> Vec<f32>,
    ) {
        let c = self.channels;
        for w in self.weights() {
            w.g.fill(0.0);
        }
        let pool = std::mem::take(&mut self.pool);
        // Neck: laterals, top-down sums, smoothing.
        let mut merged: Vec<Vec<f32>> = taps
            .iter()
            .zip(&self.lateral)
            .map(|((x, (h, w)), l)| l.forward(x, n * h * w, &pool))
            .collect();
        for i in (0..merged.len() - 1).rev() {
            let (lower, upper) = merged.split_at_mut(i + 1);
            let ((h, w), (uh, uw)) = (taps[i].1, taps[i + 1].1);
            add_nearest(&mut lower[i], (n, h, w, c), &upper[0], (uh, uw));
        }
        let points: usize = taps.iter().map(|(_, (h, w))| h * w).sum();
        let rows = self.classes + 5;
        let mut out = vec![0.0; n * rows * points];
        let mut tapes = Vec::with_capacity(taps.len());
        let mut offset = 0;
        for (level, (m, &(_, (h, w)))) in merged.iter().zip(taps).enumerate() {
            let dims = (n, h, w);
            let rows_l = n * h * w;
            let mut smooth_cols = pool.take(rows_l * 9 * c);
            im2col(m, (n, h, w, c), 3, &mut smooth_cols);
            let p = self.smooth[level].forward(&smooth_cols, rows_l, &pool);
            let mut copy = pool.take(p.len());
            copy.copy_from_slice(&p);
            let cls = tower_forward(&self.cls_tower, copy, dims, &pool);
            let reg = tower_forward(&self.box_tower, p, dims, &pool);
            let (mut cls_cols, mut box_cols) =
                (pool.take(rows_l * 9 * c), pool.take(rows_l * 9 * c));
            im2col(
                cls.acts.last().expect("tower output"),
                (n, h, w, c),
                3,
                &mut cls_cols,
            );
            im2col(
                reg.acts.last().expect("tower output"),
                (n, h, w, c),
                3,
                &mut box_cols,
            );
            let logits = self.cls_out.forward(&cls_cols, rows_l, &pool);
            let raw_box = self.box_out.forward(&box_cols, rows_l, &pool);
            let (cp, bp) = (self.cls_out.cout_p, self.box_out.cout_p);
            let (scale, stride) = (self.scales.w[level], STRIDES[level] as f32);
            let hw = h * w;
            for img in 0..n {
                let o = &mut out[img * rows * points..(img + 1) * rows * points];
                for p in 0..hw {
                    let cls = &logits[(img * hw + p) * cp..][..self.classes];
                    for (k, v) in cls.iter().enumerate() {
                        o[k * points + offset + p] = *v;
                    }
                    let reg = &raw_box[(img * hw + p) * bp..][..5];
                    for k in 0..4 {
                        let d = (reg[k] * scale).clamp(-MAX_LOG_DISTANCE, MAX_LOG_DISTANCE);
                        o[(self.classes + k) * points + offset + p] = d.exp() * stride;
                    }
                    o[(self.classes + 4) * points + offset + p] = reg[4];
                }
            }
            offset += hw;
            pool.give(logits);
            tapes.push(LevelTape {
                dims,
                smooth_cols,
                cls,
                reg,
                cls_cols,
                box_cols,
                raw_box,
            });
        }
        for m in merged {
            pool.give(m);
        }

        let d_out = loss_grad(&out);
        assert_eq!(d_out.len(), out.len(), "one gradient per head output");
        let mut d_merged = Vec::with_capacity(tapes.len());
        let mut offset = 0;
        for (level, tape) in tapes.iter().enumerate() {
            let (n, h, w) = tape.dims;
            let hw = h * w;
            let (cp, bp) = (self.cls_out.cout_p, self.box_out.cout_p);
            let (scale, stride) = (self.scales.w[level], STRIDES[level] as f32);
            let mut d_logits = pool.zeros(n * hw * cp);
            let mut d_box = pool.zeros(n * hw * bp);
            let mut d_scale = 0.0;
            for img in 0..n {
                let d = &d_out[img * rows * points..(img + 1) * rows * points];
                for p in 0..hw {
                    let r = img * hw + p;
                    for k in 0..self.classes {
                        d_logits[r * cp + k] = d[k * points + offset + p];
                    }
                    for k in 0..4 {
                        let raw = tape.raw_box[r * bp + k];
                        let z = raw * scale;
                        // The clamp passes no gradient outside its range.
                        if z.abs() < MAX_LOG_DISTANCE {
                            let g = d[(self.classes + k) * points + offset + p] * z.exp() * stride;
                            d_box[r * bp + k] = g * scale;
                            d_scale += g * raw;
                        }
                    }
                    d_box[r * bp + 4] = d[(self.classes + 4) * points + offset + p];
                }
            }
            self.scales.g[level] += d_scale;
            offset += hw;
            let rows_l = n * hw;
            self.cls_out.weight_grad(&tape.cls_cols, &d_logits, rows_l);
            self.box_out.weight_grad(&tape.box_cols, &d_box, rows_l);
            let d_cls = self.cls_out.input_grad(&d_logits, tape.dims, &pool);
            let d_reg = self.box_out.input_grad(&d_box, tape.dims, &pool);
            pool.give(d_logits);
            pool.give(d_box);
            let mut dp = tower_backward(&mut self.cls_tower, &tape.cls, d_cls, tape.dims, &pool);
            let dr = tower_backward(&mut self.box_tower, &tape.reg, d_reg, tape.dims, &pool);
            dp.iter_mut().zip(&dr).for_each(|(a, b)| *a += b);
            pool.give(dr);
            self.smooth[level].weight_grad(&tape.smooth_cols, &dp, rows_l);
            d_merged.push(self.smooth[level].input_grad(&dp, tape.dims, &pool));
            pool.give(dp);
        }
        for tape in tapes {
            tape.recycle(&pool);
        }
        // Down the pyramid: each level's sum passed its gradient to the level above.
        for i in 0..d_merged.len() - 1 {
            let (lower, upper) = d_merged.split_at_mut(i + 1);
            let ((h, w), (uh, uw)) = (taps[i].1, taps[i + 1].1);
            add_nearest_grad(&lower[i], (n, h, w, c), &mut upper[0], (uh, uw));
        }
        for ((l, (x, (h, w))), dm) in self.lateral.iter_mut().zip(taps).zip(&d_merged) {
            l.weight_grad(x, dm, n * h * w);
        }
        for d in d_merged {
            pool.give(d);
        }
        self.pool = pool;
    }

    /// One AdamW step on the gradients [`Self::gradients`] left.
    pub fn adamw(&mut self, lr: f64, weight_decay: f32) {
        self.steps += 1;
        let t = self.steps;
        for w in self.weights() {
            w.adamw(lr as f32, weight_decay, t);
        }
    }

    /// `model` with this neck and head's weights (the rest of it unchanged).
    pub fn write_to(&self, model: Detector) -> Detector {
        self.write(model, |w| &w.w)
    }

    /// `model` with the neck and head's weights replaced by `pick` of each (the weights, or
    /// in the tests the gradients).
    fn write(&self, mut model: Detector, pick: impl Fn(&Weight) -> &[f32]) -> Detector {
        fn set<const D: usize>(p: &mut Param<Tensor<D>>, values: Vec<f32>) {
            *p = p.clone().map(|t| {
                let (shape, device) = (t.shape(), t.device());
                Tensor::from_data(TensorData::new(values, shape), &device)
            });
        }
        let conv = |c: &mut Conv2d, d: &Dense, cols: (usize, usize)| {
            let (w, b) = d.oihw(pick(&d.w), pick(&d.b), cols);
            set(&mut c.weight, w);
            set(c.bias.as_mut().expect("a bias"), b);
        };
        let neck = &mut model.neck;
        for (c, d) in neck.lateral.iter_mut().zip(&self.lateral) {
            let cout = c.weight.dims()[0];
            conv(c, d, (0, cout));
        }
        for (c, d) in neck.smooth.iter_mut().zip(&self.smooth) {
            let cout = c.weight.dims()[0];
            conv(c, d, (0, cout));
        }
        let head = &mut model.head;
        for (t, l) in head
            .cls_tower
            .iter_mut()
            .chain(&mut head.box_tower)
            .zip(self.cls_tower.iter().chain(&self.box_tower))
        {
            let dw = pick(&l.depthwise);
            let c = dw.len() / 9;
            let mut oihw = vec![0.0; 9 * c];
            for tap in 0..9 {
                for ch in 0..c {
                    oihw[ch * 9 + tap] = dw[tap * c + ch];
                }
            }
            set(&mut t.depthwise.weight, oihw);
            conv(&mut t.pointwise, &l.pointwise, (0, c));
            set(
                t.norm.gamma.as_mut().expect("GroupNorm γ"),
                pick(&l.gamma).to_vec(),
            );
            set(
                t.norm.beta.as_mut().expect("GroupNorm β"),
                pick(&l.beta).to_vec(),
            );
        }
        conv(&mut head.cls_out, &self.cls_out, (0, self.classes));
        conv(&mut head.box_out, &self.box_out, (0, 4));
        conv(&mut head.ctr_out, &self.box_out, (4, 5));
        set(&mut head.scales, pick(&self.scales).to_vec());
        model
    }
}

/// A burn NCHW tensor's values in the executor's layout (NHWC), and its `(h, w)`.
pub fn nhwc_of(t: Tensor<4>) -> (Vec<f32>, (usize, usize)) {
    let [n, c, h, w] = t.dims();
    let v: Vec<f32> = floats(t);
    let mut x = vec![0.0; v.len()];
    for img in 0..n {
        for ch in 0..c {
            for p in 0..h * w {
                x[(img * h * w + p) * c + ch] = v[(img * c + ch) * h * w + p];
            }
        }
    }
    (x, (h, w))
}

/// The gradient of `x += nearest(up)` ([`add_nearest`]) with respect to `up`: each pixel
/// of `up` gathers the gradients of the pixels it was copied to.
fn add_nearest_grad(
    dx: &[f32],
    (n, h, w, c): (usize, usize, usize, usize),
    dup: &mut [f32],
    (uh, uw): (usize, usize),
) {
    for img in 0..n {
        for y in 0..h {
            let sy = nearest(y, uh, h);
            for xx in 0..w {
                let sx = nearest(xx, uw, w);
                let src = &dx[((img * h + y) * w + xx) * c..][..c];
                let dst = &mut dup[((img * uh + sy) * uw + sx) * c..][..c];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            }
        }
    }
}

/// Adds the gradient of a stride-1 SAME depthwise 3×3's weights (`[tap][c]`) from its
/// input `x` and output gradient `dy` (`n` NHWC images of `h×w`).
fn depthwise_weight_grad(x: &[f32], dy: &[f32], (n, h, w): (usize, usize, usize), g: &mut [f32]) {
    let c = g.len() / 9;
    let parts: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map(|img| {
            let x = &x[img * h * w * c..(img + 1) * h * w * c];
            let dy = &dy[img * h * w * c..(img + 1) * h * w * c];
            let mut part = vec![0.0f32; 9 * c];
            for y in 0..h {
                for xx in 0..w {
                    let d = &dy[(y * w + xx) * c..][..c];
                    for kh in 0..3 {
                        let Some(iy) = (y + kh).checked_sub(1).filter(|&v| v < h) else {
                            continue;
                        };
                        for kw in 0..3 {
                            let Some(ix) = (xx + kw).checked_sub(1).filter(|&v| v < w) else {
                                continue;
                            };
                            let src = &x[(iy * w + ix) * c..][..c];
                            let acc = &mut part[(kh * 3 + kw) * c..][..c];
                            for ((a, s), d) in acc.iter_mut().zip(src).zip(d) {
                                *a += s * d;
                            }
                        }
                    }
                }
            }
            part
        })
        .collect();
    for p in parts {
        g.iter_mut().zip(&p).for_each(|(g, p)| *g += p);
    }
}

/// Rows per block of [`add_at_b`]: a block's rows of `b` (a panel 2 registers wide) stay in
/// the first-level cache while each tile of output rows passes over them.
const ROW_BLOCK: usize = 128;

/// `out += aᵀ·b` for `a` (`rows × k`) and `b` (`rows × n`), row-major: the weight gradient
/// of a product over `rows` pixels. The pixels are split over the threads, each summing
/// into its own copy of `out`, added up after.
fn add_at_b(a: &[f32], b: &[f32], rows: usize, k: usize, n: usize, out: &mut [f32]) {
    let (a, b) = (&a[..rows * k], &b[..rows * n]);
    assert_eq!(out.len(), k * n);
    let threads = rayon::current_num_threads();
    let per = rows.div_ceil(threads).max(ROW_BLOCK);
    let parts: Vec<Vec<f32>> = (0..rows.div_ceil(per))
        .into_par_iter()
        .map(|i| {
            let (r0, r1) = (i * per, ((i + 1) * per).min(rows));
            let mut part = vec![0.0; k * n];
            vectorised(
                #[inline(always)]
                |isa| at_b_rows(isa, &a[r0 * k..r1 * k], &b[r0 * n..r1 * n], k, n, &mut part),
            );
            part
        })
        .collect();
    for p in parts {
        out.iter_mut().zip(&p).for_each(|(o, p)| *o += p);
    }
}

/// [`add_at_b`] of some rows, on this thread: blocks of rows, and in each, panels of output
/// columns as wide as two vector registers, then one, then one column at a time.
#[inline(always)]
fn at_b_rows(isa: Isa, a: &[f32], b: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let rows = a.len() / k;
    let mut r = 0;
    while r < rows {
        let m = (rows - r).min(ROW_BLOCK);
        let (a, b) = (&a[r * k..(r + m) * k], &b[r * n..(r + m) * n]);
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                use std::arch::x86_64::{__m256, __m512};
                let j = at_b_panels::<__m512, { super::MR_AVX512 }, 2>(0, a, b, k, n, out);
                let j = at_b_panels::<__m256, MR_OTHER, 1>(j, a, b, k, n, out);
                at_b_panels::<f32, MR_OTHER, 1>(j, a, b, k, n, out);
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                use std::arch::x86_64::__m256;
                let j = at_b_panels::<__m256, MR_OTHER, 2>(0, a, b, k, n, out);
                let j = at_b_panels::<__m256, MR_OTHER, 1>(j, a, b, k, n, out);
                at_b_panels::<f32, MR_OTHER, 1>(j, a, b, k, n, out);
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                use std::arch::wasm32::v128;
                let j = at_b_panels::<v128, { super::MR_WASM }, 2>(0, a, b, k, n, out);
                let j = at_b_panels::<v128, { super::MR_WASM }, 1>(j, a, b, k, n, out);
                at_b_panels::<f32, { super::MR_WASM }, 1>(j, a, b, k, n, out);
            }
            _ => {
                let j = at_b_panels::<f32, MR_OTHER, 8>(0, a, b, k, n, out);
                at_b_panels::<f32, MR_OTHER, 1>(j, a, b, k, n, out);
            }
        }
        r += m;
    }
}

/// Panels of `V` registers of output columns from column `j` while whole ones fit, each
/// over all `k` output rows, `MR` at a time; returns the first column left.
#[inline(always)]
fn at_b_panels<L: Lanes, const MR: usize, const V: usize>(
    mut j: usize,
    a: &[f32],
    b: &[f32],
    k: usize,
    n: usize,
    out: &mut [f32],
) -> usize {
    let rows = a.len() / k;
    assert!(a.len() == rows * k && b.len() == rows * n && out.len() == k * n);
    while j + V * L::N <= n {
        let mut i = 0;
        while i < k {
            let m = (k - i).min(MR);
            // SAFETY: `a` holds `rows × k` floats, `b` `rows × n`, `out` `k × n`; the tile
            // reads columns `i..i + m ≤ k` of `a` and `j..j + V·N ≤ n` of `b` and `out`; `Isa`
            // told the caller the CPU has `L`'s instructions.
            unsafe {
                match m {
                    8 => at_b_tile::<L, 8, V>(a, b, (k, n), (i, j), out),
                    7 => at_b_tile::<L, 7, V>(a, b, (k, n), (i, j), out),
                    6 => at_b_tile::<L, 6, V>(a, b, (k, n), (i, j), out),
                    5 => at_b_tile::<L, 5, V>(a, b, (k, n), (i, j), out),
                    4 => at_b_tile::<L, 4, V>(a, b, (k, n), (i, j), out),
                    3 => at_b_tile::<L, 3, V>(a, b, (k, n), (i, j), out),
                    2 => at_b_tile::<L, 2, V>(a, b, (k, n), (i, j), out),
                    _ => at_b_tile::<L, 1, V>(a, b, (k, n), (i, j), out),
                }
            }
            i += m;
        }
        j += V * L::N;
    }
    j
}

/// One register tile of `out += aᵀ·b`: output rows `i..i + M` × columns `j..j + V·N`,
/// summed over every row of `a` and `b`.
///
/// # Safety
/// The CPU has `L`'s instructions; `a` is `rows × k`, `b` `rows × n`, `out` `k × n`,
/// `i + M ≤ k` and `j + V·N ≤ n`.
#[inline(always)]
unsafe fn at_b_tile<L: Lanes, const M: usize, const V: usize>(
    a: &[f32],
    b: &[f32],
    (k, n): (usize, usize),
    (i, j): (usize, usize),
    out: &mut [f32],
) {
    let rows = a.len() / k;
    let (ap, bp, op) = (a.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    // SAFETY: by the contract, a[r·k + i + m] (m < M), b[r·n + j + v·N..][..N] (v < V) for
    // r < rows, and out[(i + m)·n + j + v·N..][..N] are inside their slices.
    unsafe {
        let mut acc: [[L; V]; M] = std::array::from_fn(|m| {
            std::array::from_fn(|v| L::load(op.add((i + m) * n + j + v * L::N)))
        });
        for r in 0..rows {
            let bv: [L; V] = std::array::from_fn(|v| L::load(bp.add(r * n + j + v * L::N)));
            for (m, acc) in acc.iter_mut().enumerate() {
                let av = L::splat(*ap.add(r * k + i + m));
                for (s, &bv) in acc.iter_mut().zip(&bv) {
                    *s = L::fma(av, bv, *s);
                }
            }
        }
        for (m, acc) in acc.into_iter().enumerate() {
            for (v, s) in acc.into_iter().enumerate() {
                s.store(op.add((i + m) * n + j + v * L::N));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DetectorConfig;
    use crate::train::Preset;
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::Distribution;

    /// `out += aᵀ·b` on every instruction set this CPU has, against the plain sum, at
    /// sizes that leave partial tiles and panels.
    #[test]
    fn at_b_is_the_transposed_product() {
        use super::super::testing::values;
        for (rows, k, n) in [(300, 27, 8), (5, 13, 37), (257, 64, 64), (130, 576, 3)] {
            let (a, b) = (values(rows * k, 1), values(rows * n, 2));
            let mut want = vec![0.5f32; k * n];
            for r in 0..rows {
                for i in 0..k {
                    for j in 0..n {
                        want[i * n + j] += a[r * k + i] * b[r * n + j];
                    }
                }
            }
            let mut got = vec![0.5f32; k * n];
            add_at_b(&a, &b, rows, k, n, &mut got);
            let worst = super::super::testing::largest_difference(&got, &want);
            assert!(worst < 1e-3, "{rows}×{k}×{n}: off by {worst}");
        }
    }

    /// Every gradient of the neck and head, and one AdamW step, equal burn's autodiff and
    /// optimiser on the same model and loss (a fixed random weighting of every head
    /// output), with GroupNorm weights and level scales away from their initial values, and
    /// levels of an odd side (nearest upsampling that is not exactly 2×).
    #[test]
    fn gradients_and_step_match_burn() {
        let device = Device::flex();
        device.seed(11);
        let ad = device.clone().autodiff();
        let mut model = Detector::init(
            DetectorConfig::for_preset(Preset::DetectionFast),
            3,
            &device,
        );
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
        model.head.scales = uniform(STRIDES.len(), 0.1, 0.3);
        let n = 2;
        let sides = [(9, 9), (5, 5), (3, 3)];
        let taps: Vec<Tensor<4>> = [40, 112, 320]
            .iter()
            .zip(sides)
            .map(|(&c, (h, w))| {
                Tensor::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device)
            })
            .collect();
        let points: usize = sides.iter().map(|(h, w)| h * w).sum();
        // Small, so that AdamW's first step (g / (|g| + ε)) stays about linear in the
        // gradients: where a gradient is near zero, rounding alone could flip its sign.
        let weighting =
            Tensor::<3>::random([n, 3 + 5, points], Distribution::Normal(0.0, 1e-5), &device);

        // burn: autodiff through the whole neck and head.
        let net = model.clone().train();
        let out = net.detect(
            taps.iter()
                .map(|t| Tensor::from_data(t.to_data(), &ad))
                .collect(),
        );
        let want_out: Vec<f32> = out.clone().inner().into_data().try_into_vec_as().unwrap();
        let loss = (out * Tensor::from_data(weighting.to_data(), &ad)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &net);

        // Here: the same forward and the loss's gradient (the weighting).
        let mut trainer = HeadTrainer::new(&model);
        let nhwc: Vec<(Vec<f32>, (usize, usize))> =
            taps.iter().map(|t| nhwc_of(t.clone())).collect();
        let views: Vec<(&[f32], (usize, usize))> =
            nhwc.iter().map(|(x, s)| (x.as_slice(), *s)).collect();
        let d_out: Vec<f32> = weighting.into_data().try_into_vec_as().unwrap();
        let mut got_out = Vec::new();
        trainer.gradients(&views, n, |out| {
            got_out = out.to_vec();
            d_out
        });
        let close = |got: &[f32], want: &[f32], what: &str, tol: f32| {
            assert_eq!(got.len(), want.len(), "{what}");
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
            let worst = super::super::testing::largest_difference(got, want);
            assert!(
                worst <= tol * scale,
                "{what}: off by {worst} (largest {scale})"
            );
        };
        close(&got_out, &want_out, "head output", 1e-4);

        let got = trainer.write(model.clone(), |w| &w.g);
        let value4 = |p: &Param<Tensor<4>>| floats(p.val());
        let value1 = |p: &Param<Tensor<1>>| floats(p.val());
        let grad4 = |p: &Param<Tensor<4>>| floats(grads.get::<4>(p.id).expect("a gradient"));
        let grad1 = |p: &Param<Tensor<1>>| floats(grads.get::<1>(p.id).expect("a gradient"));
        for ((name, got), (_, want)) in tensors(&got, &value4, &value1)
            .into_iter()
            .zip(tensors(&net, &grad4, &grad1))
        {
            close(&got, &want, &format!("gradient of {name}"), 2e-3);
        }

        // One AdamW step each.
        let lr = 1e-2;
        let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
        let stepped = optim.step(lr, net, grads).valid();
        trainer.adamw(lr, 1e-4);
        let mine = trainer.write_to(model.clone());
        for ((name, got), (_, want)) in tensors(&mine, &value4, &value1)
            .into_iter()
            .zip(tensors(&stepped, &value4, &value1))
        {
            close(&got, &want, &format!("{name} after a step"), 1e-3);
        }
    }

    /// The neck and head's tensors of `m`, named, each read by `read4` or `read1`.
    fn tensors(
        m: &Detector,
        read4: &dyn Fn(&Param<Tensor<4>>) -> Vec<f32>,
        read1: &dyn Fn(&Param<Tensor<1>>) -> Vec<f32>,
    ) -> Vec<(String, Vec<f32>)> {
        let mut v = Vec::new();
        let mut conv = |name: String, c: &Conv2d| {
            v.push((name.clone(), read4(&c.weight)));
            if let Some(b) = &c.bias {
                v.push((format!("{name} bias"), read1(b)));
            }
        };
        for i in 0..3 {
            conv(format!("lateral {i}"), &m.neck.lateral[i]);
            conv(format!("smooth {i}"), &m.neck.smooth[i]);
        }
        for (i, t) in m.head.cls_tower.iter().chain(&m.head.box_tower).enumerate() {
            conv(format!("tower {i} depthwise"), &t.depthwise);
            conv(format!("tower {i} pointwise"), &t.pointwise);
        }
        conv("cls_out".into(), &m.head.cls_out);
        conv("box_out".into(), &m.head.box_out);
        conv("ctr_out".into(), &m.head.ctr_out);
        for (i, t) in m.head.cls_tower.iter().chain(&m.head.box_tower).enumerate() {
            v.push((
                format!("tower {i} γ"),
                read1(t.norm.gamma.as_ref().unwrap()),
            ));
            v.push((format!("tower {i} β"), read1(t.norm.beta.as_ref().unwrap())));
        }
        v.push(("scales".into(), read1(&m.head.scales)));
        v
    }
}
