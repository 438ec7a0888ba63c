//! The serving executor of [`FusedEfficientNetLite`]: the same folded weights, laid out once
//! for channels-last (NHWC) inference on the CPU. Every 1×1 convolution (nine tenths of the
//! multiply-adds) is one matrix product over all pixels of the batch, run by `gemm` with the
//! CPU's widest vector unit; the depthwise ones walk contiguous channel rows, compiled for
//! AVX-512 or AVX2 when the CPU has them; bias, ReLU6 and the residual are fused into one
//! pass after each product, and the activations live in three buffers reused across layers
//! and requests. burn's flex backend runs the same network in NCHW one operation at a time
//! (separate passes for padding, bias and activation, fresh tensors for each); this executor
//! computes the same outputs (tested against it below) several times faster, which is what
//! the predict API's throughput needs. Training and the browser keep using burn.
//!
//! All convolutions use TF "SAME" padding, as the model does (`PaddingConfig2d::Same`).

// `gemm` takes raw pointers, and the vector-unit dispatch calls `#[target_feature]`
// functions; both are wrapped in safe functions that check what they rely on.
#![allow(unsafe_code)]

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;
use shared::model::FusedEfficientNetLite;

/// A 1×1 convolution as a `cin × cout` row-major matrix.
struct Pointwise {
    cin: usize,
    cout: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

/// A depthwise `k×k` convolution: weights `[k·k][c]`, so one tap is a contiguous row.
struct Depthwise {
    c: usize,
    k: usize,
    stride: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// The network ready to run; shareable between replica threads (it is only read).
pub struct NativeNet {
    /// Stem 3×3 stride-2 convolution as a `27 × stem_out` matrix over im2col rows ordered
    /// (kh, kw, channel).
    stem_w: Vec<f32>,
    stem_b: Vec<f32>,
    stem_out: usize,
    blocks: Vec<Block>,
    head: Pointwise,
    /// Classifier `[features][classes]` (burn's `Linear` layout already).
    fc_w: Vec<f32>,
    fc_b: Vec<f32>,
    classes: usize,
}

/// Activation buffers a replica keeps between requests (the largest layer of a 224 px batch
/// of 8 is 38 MB; allocating that per request would cost page faults on every call).
#[derive(Default)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("float weights")
}

/// A layer's bias, or zeros when it has none.
fn bias_or_zeros(bias: Option<&Param<Tensor<1>>>, channels: usize) -> Vec<f32> {
    bias.map_or_else(|| vec![0.0; channels], |b| floats(b.val()))
}

/// A convolution's bias, checking the padding every layer here assumes.
fn bias(conv: &Conv2d, channels: usize) -> Vec<f32> {
    assert!(
        matches!(conv.padding, PaddingConfig2d::Same),
        "SAME padding"
    );
    bias_or_zeros(conv.bias.as_ref(), channels)
}

impl Pointwise {
    fn new(conv: &Conv2d) -> Self {
        let [cout, cin, kh, kw] = conv.weight.dims();
        assert_eq!((kh, kw), (1, 1), "a pointwise convolution");
        let w = floats(conv.weight.val());
        // [cout][cin] -> [cin][cout]
        let mut t = vec![0.0; cin * cout];
        for o in 0..cout {
            for i in 0..cin {
                t[i * cout + o] = w[o * cin + i];
            }
        }
        Self {
            cin,
            cout,
            w: t,
            b: bias(conv, cout),
        }
    }

    /// `out = act(x · W + b (+ residual))` over `rows` pixels.
    fn run(
        &self,
        x: &[f32],
        rows: usize,
        relu6: bool,
        residual: Option<&[f32]>,
        out: &mut Vec<f32>,
    ) {
        let out = buf(out, rows * self.cout);
        matmul(
            out,
            &x[..rows * self.cin],
            &self.w,
            rows,
            self.cin,
            self.cout,
        );
        epilogue(out, &self.b, relu6, residual);
    }
}

impl Depthwise {
    fn new(conv: &Conv2d) -> Self {
        let [c, one, k, k2] = conv.weight.dims();
        assert!(
            one == 1 && k == k2 && conv.groups == c,
            "a depthwise convolution"
        );
        let w = floats(conv.weight.val());
        let mut t = vec![0.0; k * k * c];
        for ch in 0..c {
            for tap in 0..k * k {
                t[tap * c + ch] = w[ch * k * k + tap];
            }
        }
        Self {
            c,
            k,
            stride: conv.stride[0],
            w: t,
            b: bias(conv, c),
        }
    }

    /// ReLU6 of the convolution of `n` images of `h×w` pixels; returns the output size.
    fn run(&self, x: &[f32], n: usize, h: usize, w: usize, out: &mut Vec<f32>) -> (usize, usize) {
        let (oh, pad_t) = same(h, self.k, self.stride);
        let (ow, pad_l) = same(w, self.k, self.stride);
        let c = self.c;
        buf(out, n * oh * ow * c)
            .par_chunks_mut(ow * c)
            .with_min_len(4)
            .enumerate()
            .for_each(|(r, row)| {
                let (img, y) = (r / oh, r % oh);
                let x = &x[img * h * w * c..(img + 1) * h * w * c];
                vectorised(
                    #[inline(always)]
                    || self.row(x, h, w, y, pad_t, pad_l, row),
                );
            });
        (oh, ow)
    }

    /// One output row `y` (all its columns and channels). Channels go in groups of
    /// [`LANES`] whose sums stay in vector registers across all `k×k` taps; a remainder (no
    /// layer of Lite0 has one) takes the plain loop.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        y: usize,
        pad_t: usize,
        pad_l: usize,
        row: &mut [f32],
    ) {
        let (c, k, s) = (self.c, self.k, self.stride);
        let whole = c / LANES * LANES;
        let mut taps = [(0usize, 0usize); MAX_K * MAX_K];
        for (ox, out) in row.chunks_exact_mut(c).enumerate() {
            // The taps inside the image: (input offset, weight offset) pairs.
            let mut n = 0;
            for kh in 0..k {
                let Some(iy) = (y * s + kh).checked_sub(pad_t).filter(|&iy| iy < h) else {
                    continue;
                };
                for kw in 0..k {
                    if let Some(ix) = (ox * s + kw).checked_sub(pad_l).filter(|&ix| ix < w) {
                        taps[n] = ((iy * w + ix) * c, (kh * k + kw) * c);
                        n += 1;
                    }
                }
            }
            let taps = &taps[..n];
            for g in (0..whole).step_by(LANES) {
                let mut acc: [f32; LANES] = self.b[g..g + LANES].try_into().expect("LANES");
                for &(xo, wo) in taps {
                    let xs: &[f32; LANES] = x[xo + g..][..LANES].try_into().expect("LANES");
                    let ws: &[f32; LANES] = self.w[wo + g..][..LANES].try_into().expect("LANES");
                    for ((a, &xv), &wv) in acc.iter_mut().zip(xs).zip(ws) {
                        *a += xv * wv;
                    }
                }
                for (o, a) in out[g..g + LANES].iter_mut().zip(acc) {
                    *o = a.clamp(0.0, 6.0);
                }
            }
            if whole < c {
                let out = &mut out[whole..];
                out.copy_from_slice(&self.b[whole..]);
                for &(xo, wo) in taps {
                    for ((a, &xv), &wv) in out
                        .iter_mut()
                        .zip(&x[xo + whole..xo + c])
                        .zip(&self.w[wo + whole..wo + c])
                    {
                        *a += xv * wv;
                    }
                }
                for a in out {
                    *a = a.clamp(0.0, 6.0);
                }
            }
        }
    }
}

/// The largest depthwise kernel (Lite0 has 3×3 and 5×5).
const MAX_K: usize = 5;
/// Channels one depthwise step keeps in registers: one AVX-512 vector, two AVX2 ones.
const LANES: usize = 16;

/// TF "SAME" padding: output size `ceil(n / stride)` and the padding before the first pixel
/// (the odd one, when the total is odd, goes after the last).
fn same(n: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(n);
    (out, total / 2)
}

/// The first `len` floats of a reused buffer, which only ever grows (shrinking and growing
/// again would zero the tail on every layer). Every element is written before it is read.
fn buf(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// `dst (m×n) = lhs (m×k) · rhs (k×n)`, all row-major and contiguous.
fn matmul(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    let (m_, k_, n_) = (m as isize, k as isize, n as isize);
    debug_assert!(m_ >= 0 && k_ >= 0 && n_ >= 0);
    // SAFETY: `dst`, `lhs` and `rhs` hold exactly the row-major m×n, m×k and k×n matrices
    // the strides below describe (asserted above), and `dst` is a unique borrow, so it
    // aliases neither input. `read_dst` is false: `dst`'s old values are not read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n_,
            false,
            lhs.as_ptr(),
            1,
            k_,
            rhs.as_ptr(),
            1,
            n_,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// Adds the bias (per column) and the residual, then ReLU6 if asked, in one pass.
fn epilogue(out: &mut [f32], b: &[f32], relu6: bool, residual: Option<&[f32]>) {
    let cols = b.len();
    const ROWS: usize = 256;
    out.par_chunks_mut(ROWS * cols)
        .enumerate()
        .for_each(|(i, chunk)| {
            let res = residual.map(|r| &r[i * ROWS * cols..][..chunk.len()]);
            vectorised(
                #[inline(always)]
                || {
                    for (j, row) in chunk.chunks_exact_mut(cols).enumerate() {
                        for (v, &bv) in row.iter_mut().zip(b) {
                            *v += bv;
                        }
                        if let Some(res) = res {
                            for (v, &r) in row.iter_mut().zip(&res[j * cols..][..cols]) {
                                *v += r;
                            }
                        }
                        if relu6 {
                            for v in row.iter_mut() {
                                *v = v.clamp(0.0, 6.0);
                            }
                        }
                    }
                },
            );
        });
}

/// Runs `f` compiled for the widest vector unit this CPU has (AVX-512, else AVX2 with FMA,
/// else the baseline). `f` and what it calls must be `#[inline(always)]`: the target
/// features reach only code inlined into the dispatching function.
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { with_avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

impl NativeNet {
    pub fn new(m: &FusedEfficientNetLite) -> Self {
        let [stem_out, cin, k, _] = m.stem.weight.dims();
        assert_eq!((cin, k), (3, 3), "a 3×3 stem over RGB");
        let w = floats(m.stem.weight.val());
        let mut stem_w = vec![0.0; 27 * stem_out];
        for o in 0..stem_out {
            for ci in 0..3 {
                for tap in 0..9 {
                    stem_w[(tap * 3 + ci) * stem_out + o] = w[(o * 3 + ci) * 9 + tap];
                }
            }
        }
        let [features, classes] = m.fc.weight.dims();
        let head = Pointwise::new(&m.head);
        assert_eq!(head.cout, features, "head and classifier agree");
        Self {
            stem_w,
            stem_b: bias(&m.stem, stem_out),
            stem_out,
            blocks: m
                .blocks
                .iter()
                .map(|b| Block {
                    expand: b.expand.as_ref().map(Pointwise::new),
                    depthwise: Depthwise::new(&b.depthwise),
                    project: Pointwise::new(&b.project),
                    residual: b.residual,
                })
                .collect(),
            head,
            fc_w: floats(m.fc.weight.val()),
            fc_b: bias_or_zeros(m.fc.bias.as_ref(), classes),
            classes,
        }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Logits (`n × classes`) of `n` normalised `3×side×side` images laid end to end (the
    /// layout of `shared::predict::input::prepare`).
    pub fn forward(&self, input: &[f32], n: usize, side: usize, s: &mut Scratch) -> Vec<f32> {
        assert_eq!(input.len(), n * 3 * side * side, "n images of 3×side×side");
        let (mut h, mut w) = self.stem(input, n, side, &mut s.b, &mut s.a);
        let mut c = self.stem_out;
        for blk in &self.blocks {
            let rows = n * h * w;
            // a: block input; b: expanded; c: depthwise output; the projection goes to b,
            // which then becomes the next block's input.
            let expanded: &[f32] = match &blk.expand {
                Some(e) => {
                    e.run(&s.a, rows, true, None, &mut s.b);
                    &s.b[..rows * e.cout]
                }
                None => &s.a,
            };
            let (oh, ow) = blk.depthwise.run(expanded, n, h, w, &mut s.c);
            let orows = n * oh * ow;
            let residual = blk.residual.then_some(&s.a[..orows * c]);
            blk.project.run(&s.c, orows, false, residual, &mut s.b);
            std::mem::swap(&mut s.a, &mut s.b);
            (h, w, c) = (oh, ow, blk.project.cout);
        }
        let hw = h * w;
        self.head.run(&s.a, n * hw, true, None, &mut s.b);
        let features = self.head.cout;
        // Global average pooling.
        let mut pooled = vec![0.0f32; n * features];
        for (img, p) in pooled.chunks_exact_mut(features).enumerate() {
            for px in s.b[img * hw * features..(img + 1) * hw * features].chunks_exact(features) {
                for (a, &v) in p.iter_mut().zip(px) {
                    *a += v;
                }
            }
            let inv = 1.0 / hw as f32;
            p.iter_mut().for_each(|a| *a *= inv);
        }
        let mut logits = vec![0.0; n * self.classes];
        matmul(&mut logits, &pooled, &self.fc_w, n, features, self.classes);
        epilogue(&mut logits, &self.fc_b, false, None);
        logits
    }

    /// The stem: im2col of the CHW input into `cols`, one product, bias and ReLU6 into `out`.
    fn stem(
        &self,
        input: &[f32],
        n: usize,
        side: usize,
        cols: &mut Vec<f32>,
        out: &mut Vec<f32>,
    ) -> (usize, usize) {
        let (o, pad) = same(side, 3, 2);
        let plane = side * side;
        let cols = buf(cols, n * o * o * 27);
        cols.par_chunks_mut(o * 27)
            .enumerate()
            .for_each(|(r, row)| {
                let (img, y) = (r / o, r % o);
                let src = &input[img * 3 * plane..(img + 1) * 3 * plane];
                for (x, px) in row.chunks_exact_mut(27).enumerate() {
                    for kh in 0..3 {
                        for kw in 0..3 {
                            let iy = (y * 2 + kh).checked_sub(pad).filter(|&v| v < side);
                            let ix = (x * 2 + kw).checked_sub(pad).filter(|&v| v < side);
                            for ci in 0..3 {
                                px[(kh * 3 + kw) * 3 + ci] = match (iy, ix) {
                                    (Some(iy), Some(ix)) => src[ci * plane + iy * side + ix],
                                    _ => 0.0,
                                };
                            }
                        }
                    }
                }
            });
        let out = buf(out, n * o * o * self.stem_out);
        matmul(out, cols, &self.stem_w, n * o * o, 27, self.stem_out);
        epilogue(out, &self.stem_b, true, None);
        (o, o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Distribution;
    use shared::model::EfficientNetLite;

    /// A Lite0 with non-trivial BatchNorm statistics everywhere, folded.
    fn model(classes: usize, device: &Device) -> FusedEfficientNetLite {
        device.seed(7);
        let mut m = EfficientNetLite::lite0(classes, device);
        let jitter = |bn: &mut burn::nn::BatchNorm| {
            let c = bn.gamma.dims()[0];
            bn.gamma =
                Param::from_tensor(Tensor::random([c], Distribution::Uniform(0.5, 1.5), device));
            bn.beta = Param::from_tensor(Tensor::random(
                [c],
                Distribution::Uniform(-0.5, 0.5),
                device,
            ));
        };
        jitter(&mut m.bn0);
        jitter(&mut m.bn1);
        for b in &mut m.blocks {
            jitter(&mut b.bn1);
            jitter(&mut b.bn2);
            if let Some(bn) = &mut b.bn0 {
                jitter(bn);
            }
        }
        FusedEfficientNetLite::new(&m.valid())
    }

    /// NCHW floats of a tensor laid out NHWC.
    fn nhwc(t: Tensor<4>) -> Vec<f32> {
        floats(t.permute([0, 2, 3, 1]))
    }

    #[test]
    fn depthwise_matches_burn_with_a_channel_remainder() {
        let device = Device::flex();
        device.seed(11);
        // 20 channels: one register group of 16 and a remainder of 4.
        for (k, stride, side) in [(5, 2, 13), (3, 1, 9)] {
            let conv = burn::nn::conv::Conv2dConfig::new([20, 20], [k, k])
                .with_groups(20)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Same)
                .init(&device);
            let x =
                Tensor::<4>::random([2, 20, side, side], Distribution::Normal(0.0, 2.0), &device);
            let want = nhwc(burn::tensor::activation::relu6(conv.forward(x.clone())));
            let mut got = Vec::new();
            let (oh, ow) = Depthwise::new(&conv).run(&nhwc(x), 2, side, side, &mut got);
            assert_eq!((oh, ow), (side.div_ceil(stride), side.div_ceil(stride)));
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-5, "k {k}: largest difference {worst}");
        }
    }

    #[test]
    fn computes_what_burn_computes() {
        let device = Device::flex();
        let fused = model(5, &device);
        let net = NativeNet::new(&fused);
        let mut scratch = Scratch::default();
        // Even and odd sides exercise both SAME-padding cases; a batch of 2 the batching.
        for (n, side) in [(2, 64), (1, 45)] {
            let x =
                Tensor::<4>::random([n, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
            let want = floats(fused.forward(x.clone()));
            let got = net.forward(&floats(x), n, side, &mut scratch);
            assert_eq!(got.len(), n * 5);
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst <= 1e-4 * scale,
                "side {side}: largest difference {worst} (scale {scale})"
            );
        }
    }
}
