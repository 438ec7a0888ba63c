//! The CPU executor of [`FusedEfficientNetLite`] and of the detector ([`detector`]): the
//! same folded weights, laid out once for channels-last (NHWC) inference. burn's flex
//! backend runs the network in NCHW one operation at a time (separate passes for padding,
//! bias and activation, fresh tensors for each); this executor computes the same outputs
//! (tested against it below) several times faster. The server's predict API and
//! evaluation run it, and so does the browser when it has no WebGPU (compiled to wasm32,
//! on the page's one thread: rayon falls back to the calling thread there). Training and
//! WebGPU keep using burn.
//!
//! - Every 1×1 convolution (nine tenths of the multiply-adds) is a matrix product over
//!   pixels, computed by [`Pointwise::rows`] in register tiles of a few pixels × 32 output
//!   channels with bias, residual and ReLU6 applied before the tile is stored.
//! - Depthwise convolutions walk contiguous channel rows, keeping up to four vector
//!   registers of channel sums (independent, so the multiply-adds overlap) across the k×k
//!   taps.
//! - An inverted-residual block whose image is large runs fused ([`Block::strip`]): each
//!   thread takes a strip of output rows and, row by row, expands only the input rows the
//!   depthwise window needs (into a ring of k rows), convolves them, and projects the result,
//!   so the expanded activations — the largest tensors of the network — never leave the
//!   cache. Small images (the 7-pixel last stage of a single image, where a strip per thread
//!   would re-expand too many shared window rows) run layer by layer; a product over few
//!   pixels there splits its columns over the threads, so each reads only its share of the
//!   weights.
//! - All of it is compiled for AVX-512 or AVX2 with FMA when the CPU has them
//!   ([`vectorised`]), for wasm SIMD (128-bit) in the browser build, with plain `f32` code
//!   elsewhere; a unit test holds every variant this CPU runs to the plain one (the wasm one
//!   is held to the server's answers by the browser tests).
//!
//! All convolutions use TF "SAME" padding, as the model does (`PaddingConfig2d::Same`).

// The kernels use `std::arch` intrinsics and raw-pointer loads and stores, and the dispatch
// calls `#[target_feature]` functions; each unsafe block states what it relies on, which
// the safe function around it asserts (sizes) or checks (the CPU's features).
#![allow(unsafe_code)]

pub mod detector;
pub mod head_training;

use std::cell::RefCell;

use crate::model::FusedEfficientNetLite;
use crate::model::fused::FusedBlock;
use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;

/// A 1×1 convolution (or any product with a bias, such as a k×k convolution over im2col
/// rows) as a `cin × cout` row-major matrix.
pub struct Pointwise {
    cin: usize,
    cout: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

/// A depthwise `k×k` convolution: weights `[k·k][c]`, so one tap is a contiguous row.
pub(crate) struct Depthwise {
    c: usize,
    k: usize,
    stride: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    /// ReLU6 after the sums (the backbone's blocks) or none (the detector's head towers).
    relu6: bool,
}

struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// The stem and inverted-residual blocks, which a classifier and a detector share.
pub struct Trunk {
    /// Stem 3×3 stride-2 convolution over im2col rows ordered (kh, kw, channel).
    stem: Pointwise,
    blocks: Vec<Block>,
}

/// The classifier ready to run; shareable between replica threads (it is only read).
pub struct NativeNet {
    trunk: Trunk,
    head: Pointwise,
    fc: Pointwise,
}

/// Activation buffers a replica keeps between requests (the largest layer of a 224 px batch
/// of 8 is 38 MB; allocating that per request would cost page faults on every call).
#[derive(Default)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    d: Vec<f32>,
    /// Buffers of the layers a network runs after the trunk (the detector's neck and head).
    pub(crate) extra: [Vec<f32>; 5],
    /// Activation buffers of the server's OCR plans (`serve::plan`), reused from request to
    /// request.
    pub pool: Vec<Vec<f32>>,
}

thread_local! {
    /// A fused block's ring of expanded input rows and its depthwise output row, per thread
    /// (rayon's threads live as long as the process, so these are allocated once).
    static STRIP: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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

/// Pixels per register tile: on AVX-512 (32 vector registers) 8 pixels × 2 vectors of sums,
/// 2 of weights and a broadcast (7% faster at batch 8 than 6 pixels); elsewhere (16
/// registers) 6 × 2, the 15 registers of the classic AVX2 6×16 kernel (4 × 2 took 22 ms for
/// the detector's backbone at 320 px on an AVX2 EPYC, 6 × 2 takes 16). Panels one vector
/// wide take 12 pixels, so there are still enough independent sums to hide the latency of
/// a multiply-add. At most 12 (the tile sizes `Pointwise::panels` instantiates).
const MR_AVX512: usize = 8;
/// Pixels per tile of the one-vector-wide panels on AVX-512.
#[cfg(target_arch = "x86_64")]
const MR_AVX512_NARROW: usize = 12;
const MR_OTHER: usize = 6;
/// Pixels per register tile with wasm SIMD: 4 × 2 registers of sums, 2 of weights, one
/// broadcast input and one product (no fused multiply-add) stay within the 15 vector
/// registers an x86 browser leaves to compiled wasm.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const MR_WASM: usize = 4;
/// At most this many pixels, a wide product splits its columns over the threads rather than
/// its pixels.
const COLUMN_SPLIT_ROWS: usize = 512;
/// Output columns of the widest panel.
const NR: usize = 32;

impl Pointwise {
    pub(crate) fn new(conv: &Conv2d) -> Self {
        let [cout, cin, kh, kw] = conv.weight.dims();
        assert_eq!((kh, kw), (1, 1), "a pointwise convolution");
        Self::from_oihw(&floats(conv.weight.val()), cout, cin, 1, bias(conv, cout))
    }

    /// A dense `k×k` convolution as a product over im2col rows ordered (kh, kw, channel)
    /// ([`im2col`]'s layout).
    pub(crate) fn kxk(conv: &Conv2d) -> Self {
        let [cout, cin, k, k2] = conv.weight.dims();
        assert!(k == k2 && conv.groups == 1, "a dense square convolution");
        Self::from_oihw(
            &floats(conv.weight.val()),
            cout,
            cin,
            k * k,
            bias(conv, cout),
        )
    }

    /// The product of a dense convolution's weights laid out `[cout][cin][taps]` (burn's and
    /// ONNX's order), over rows ordered (tap, channel).
    pub fn from_oihw(w: &[f32], cout: usize, cin: usize, taps: usize, b: Vec<f32>) -> Self {
        assert_eq!(w.len(), cout * cin * taps, "weights of {cout}×{cin}×{taps}");
        assert_eq!(b.len(), cout, "one bias per output channel");
        let mut t = vec![0.0; taps * cin * cout];
        for o in 0..cout {
            for ci in 0..cin {
                for tap in 0..taps {
                    t[(tap * cin + ci) * cout + o] = w[(o * cin + ci) * taps + tap];
                }
            }
        }
        Self {
            cin: taps * cin,
            cout,
            w: t,
            b,
        }
    }

    /// The same product with its output columns padded with zeros to a multiple of `lanes`,
    /// for outputs narrower than a vector register (a detector's 3 class or 5 box columns),
    /// which would otherwise run one column at a time.
    pub(crate) fn padded(mut self, lanes: usize) -> Self {
        let cout = self.cout.next_multiple_of(lanes);
        let mut w = vec![0.0; self.cin * cout];
        for (dst, src) in w.chunks_exact_mut(cout).zip(self.w.chunks_exact(self.cout)) {
            dst[..self.cout].copy_from_slice(src);
        }
        self.b.resize(cout, 0.0);
        self.w = w;
        self.cout = cout;
        self
    }

    pub fn cin(&self) -> usize {
        self.cin
    }

    pub fn cout(&self) -> usize {
        self.cout
    }

    /// `out = act(x · W + b (+ residual))` over `rows` pixels, split over the threads.
    pub fn run(
        &self,
        x: &[f32],
        rows: usize,
        relu6: bool,
        residual: Option<&[f32]>,
        out: &mut Vec<f32>,
    ) {
        let (cin, cout) = (self.cin, self.cout);
        let threads = rayon::current_num_threads();
        let out = buf(out, rows * cout);
        // (The buffers passed in may be longer: they only grow.)
        let x = &x[..rows * cin];
        let residual = residual.map(|r| &r[..rows * cout]);
        if rows <= COLUMN_SPLIT_ROWS && cout >= 2 * NR * threads {
            // Few pixels and many columns (the head, the last stage of one image): every
            // piece of pixels would read all the weights, so split the columns instead, each
            // thread reading its share of the weights once (measured: batch 1 4.8 -> 4.1 ms,
            // batch 8 3.76 -> 3.5 ms). Each piece fills its columns of its own copy of the
            // output, merged after.
            let per = cout.div_ceil(threads).next_multiple_of(NR);
            let pieces: Vec<(usize, usize, Vec<f32>)> = (0..cout.div_ceil(per))
                .into_par_iter()
                .map(|i| {
                    let cols = (i * per, ((i + 1) * per).min(cout));
                    let mut part = vec![0.0; rows * cout];
                    vectorised(
                        #[inline(always)]
                        |isa| self.columns(isa, x, relu6, residual, &mut part, cols),
                    );
                    (cols.0, cols.1, part)
                })
                .collect();
            for (from, to, part) in pieces {
                for (o, p) in out.chunks_exact_mut(cout).zip(part.chunks_exact(cout)) {
                    o[from..to].copy_from_slice(&p[from..to]);
                }
            }
            return;
        }
        // About four pieces per thread, whole register tiles each.
        let per = rows.div_ceil(4 * threads).next_multiple_of(MR_AVX512);
        out.par_chunks_mut(per * cout)
            .enumerate()
            .for_each(|(i, out)| {
                let (r, m) = (i * per, out.len() / cout);
                let x = &x[r * cin..(r + m) * cin];
                let res = residual.map(|res| &res[r * cout..(r + m) * cout]);
                vectorised(
                    #[inline(always)]
                    |isa| self.rows(isa, x, relu6, res, out),
                );
            });
    }

    /// `out = act(x · W + b (+ residual))` for the pixels `out` has room for, on this thread.
    /// Output columns go in panels as wide as two vector registers, then one, then (on
    /// AVX-512) one AVX2 register, then one at a time.
    #[inline(always)]
    fn rows(&self, isa: Isa, x: &[f32], relu6: bool, res: Option<&[f32]>, out: &mut [f32]) {
        self.columns(isa, x, relu6, res, out, (0, self.cout));
    }

    /// [`Pointwise::rows`] for output columns `from..to` only (`from` a multiple of 32, or
    /// where the previous range ended).
    #[inline(always)]
    fn columns(
        &self,
        isa: Isa,
        x: &[f32],
        relu6: bool,
        res: Option<&[f32]>,
        out: &mut [f32],
        (from, to): (usize, usize),
    ) {
        assert!(from <= to && to <= self.cout);
        let mut j = from;
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                use std::arch::x86_64::{__m256, __m512};
                j = self.panels::<__m512, MR_AVX512, 2>(j, to, x, relu6, res, out);
                j = self.panels::<__m512, MR_AVX512_NARROW, 1>(j, to, x, relu6, res, out);
                j = self.panels::<__m256, MR_AVX512_NARROW, 1>(j, to, x, relu6, res, out);
                self.panels::<f32, MR_AVX512, 1>(j, to, x, relu6, res, out);
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                use std::arch::x86_64::__m256;
                j = self.panels::<__m256, MR_OTHER, 2>(j, to, x, relu6, res, out);
                j = self.panels::<__m256, { 2 * MR_OTHER }, 1>(j, to, x, relu6, res, out);
                self.panels::<f32, MR_OTHER, 1>(j, to, x, relu6, res, out);
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                use std::arch::wasm32::v128;
                j = self.panels::<v128, MR_WASM, 2>(j, to, x, relu6, res, out);
                j = self.panels::<v128, MR_WASM, 1>(j, to, x, relu6, res, out);
                self.panels::<f32, MR_WASM, 1>(j, to, x, relu6, res, out);
            }
            _ => {
                j = self.panels::<f32, MR_OTHER, 8>(j, to, x, relu6, res, out);
                self.panels::<f32, MR_OTHER, 1>(j, to, x, relu6, res, out);
            }
        }
    }

    /// Panels of `V` vectors of output columns from column `j` on, while whole ones fit before
    /// column `to` (at most `cout`), over
    /// every pixel, `MR` pixels at a time; returns the first column left. A panel of weights
    /// (`cin × V·L::N`) stays in cache while every pixel of `x` passes over it.
    #[inline(always)]
    fn panels<L: Lanes, const MR: usize, const V: usize>(
        &self,
        mut j: usize,
        to: usize,
        x: &[f32],
        relu6: bool,
        res: Option<&[f32]>,
        out: &mut [f32],
    ) -> usize {
        let (cin, cout) = (self.cin, self.cout);
        let rows = out.len() / cout;
        assert!(to <= cout && x.len() == rows * cin && res.is_none_or(|r| r.len() == out.len()));
        while j + V * L::N <= to {
            let mut r = 0;
            while r < rows {
                let m = (rows - r).min(MR);
                let x = &x[r * cin..(r + m) * cin];
                let res = res.map(|res| &res[r * cout..(r + m) * cout]);
                let out = &mut out[r * cout..(r + m) * cout];
                // SAFETY: `x`, `res` and `out` hold `m` pixels (`cin`, `cout`, `cout` floats
                // each), `j + V·L::N ≤ to ≤ cout`, and `Isa` told the caller the CPU has `L`'s
                // instructions.
                unsafe {
                    match m {
                        12 => self.tile::<L, 12, V>(x, j, relu6, res, out),
                        11 => self.tile::<L, 11, V>(x, j, relu6, res, out),
                        10 => self.tile::<L, 10, V>(x, j, relu6, res, out),
                        9 => self.tile::<L, 9, V>(x, j, relu6, res, out),
                        8 => self.tile::<L, 8, V>(x, j, relu6, res, out),
                        7 => self.tile::<L, 7, V>(x, j, relu6, res, out),
                        6 => self.tile::<L, 6, V>(x, j, relu6, res, out),
                        5 => self.tile::<L, 5, V>(x, j, relu6, res, out),
                        4 => self.tile::<L, 4, V>(x, j, relu6, res, out),
                        3 => self.tile::<L, 3, V>(x, j, relu6, res, out),
                        2 => self.tile::<L, 2, V>(x, j, relu6, res, out),
                        _ => self.tile::<L, 1, V>(x, j, relu6, res, out),
                    }
                }
                r += m;
            }
            j += V * L::N;
        }
        j
    }

    /// One register tile: `M` pixels × columns `j..j + V·L::N`, summed over all inputs
    /// (starting from the bias), then residual and ReLU6, then stored.
    ///
    /// # Safety
    /// The CPU has `L`'s instructions; `x` holds `M·cin` floats, `out` (and `res`) `M·cout`,
    /// and `j + V·L::N ≤ cout`.
    #[inline(always)]
    unsafe fn tile<L: Lanes, const M: usize, const V: usize>(
        &self,
        x: &[f32],
        j: usize,
        relu6: bool,
        res: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (cin, cout) = (self.cin, self.cout);
        let (xp, wp, op) = (x.as_ptr(), self.w.as_ptr(), out.as_mut_ptr());
        // SAFETY: every offset below is inside its slice by the contract above: x[m·cin + i]
        // with i < cin; w[i·cout + j + v·N ..][..N] ≤ cin·cout; b, res and out likewise
        // within their `cout`-wide rows.
        unsafe {
            let bias: [L; V] = std::array::from_fn(|v| L::load(self.b.as_ptr().add(j + v * L::N)));
            let mut acc = [bias; M];
            for i in 0..cin {
                let w: [L; V] = std::array::from_fn(|v| L::load(wp.add(i * cout + j + v * L::N)));
                for (m, a) in acc.iter_mut().enumerate() {
                    let xv = L::splat(*xp.add(m * cin + i));
                    for (av, &wv) in a.iter_mut().zip(&w) {
                        *av = L::fma(xv, wv, *av);
                    }
                }
            }
            for (m, a) in acc.into_iter().enumerate() {
                for (v, mut av) in a.into_iter().enumerate() {
                    let o = m * cout + j + v * L::N;
                    if let Some(res) = res {
                        av = L::add(av, L::load(res.as_ptr().add(o)));
                    }
                    if relu6 {
                        av = L::relu6(av);
                    }
                    av.store(op.add(o));
                }
            }
        }
    }
}

/// One vector register of floats (or one float) and what the pointwise kernel does with
/// it. Implemented for AVX-512, AVX2 and plain `f32`; the methods are only called where
/// [`vectorised`] found the instructions.
trait Lanes: Copy {
    /// Floats per register.
    const N: usize;
    /// # Safety
    /// The CPU has the instructions; `p` is valid for `N` floats (all methods alike).
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// As [`Lanes::load`], for writing.
    unsafe fn store(self, p: *mut f32);
    /// # Safety
    /// The CPU has the instructions.
    unsafe fn splat(v: f32) -> Self;
    /// `a·b + c`.
    /// # Safety
    /// The CPU has the instructions.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// # Safety
    /// The CPU has the instructions.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// # Safety
    /// The CPU has the instructions.
    unsafe fn relu6(self) -> Self;
}

impl Lanes for f32 {
    const N: usize = 1;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's contract.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe { *p = self }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        v
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        a * b + c
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        a + b
    }
    #[inline(always)]
    unsafe fn relu6(self) -> Self {
        self.clamp(0.0, 6.0)
    }
}

/// [`Lanes`] for one x86 vector type, from its intrinsics (AVX-512 and AVX2 differ only in
/// names and width).
macro_rules! x86_lanes {
    ($t:ident, $n:expr, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $add:ident,
     $min:ident, $max:ident, $zero:ident) => {
        #[cfg(target_arch = "x86_64")]
        impl Lanes for std::arch::x86_64::$t {
            const N: usize = $n;
            // SAFETY (all methods): the caller's contract.
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                unsafe { std::arch::x86_64::$load(p) }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                unsafe { std::arch::x86_64::$store(p, self) }
            }
            #[inline(always)]
            unsafe fn splat(v: f32) -> Self {
                unsafe { std::arch::x86_64::$set1(v) }
            }
            #[inline(always)]
            unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
                unsafe { std::arch::x86_64::$fmadd(a, b, c) }
            }
            #[inline(always)]
            unsafe fn add(a: Self, b: Self) -> Self {
                unsafe { std::arch::x86_64::$add(a, b) }
            }
            #[inline(always)]
            unsafe fn relu6(self) -> Self {
                use std::arch::x86_64::{$max, $min, $set1, $zero};
                unsafe { $min($max(self, $zero()), $set1(6.0)) }
            }
        }
    };
}

x86_lanes!(
    __m512,
    16,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps,
    _mm512_min_ps,
    _mm512_max_ps,
    _mm512_setzero_ps
);
x86_lanes!(
    __m256,
    8,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps,
    _mm256_min_ps,
    _mm256_max_ps,
    _mm256_setzero_ps
);

/// [`Lanes`] for wasm SIMD. It has no fused multiply-add (outside the relaxed-SIMD
/// proposal), so `fma` rounds twice; `pmin`/`pmax` are the single-instruction min and max
/// (NaN handling aside, which ReLU6 of finite sums does not meet).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
impl Lanes for std::arch::wasm32::v128 {
    const N: usize = 4;
    // SAFETY (all methods): the caller's contract; wasm loads and stores need no alignment.
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { std::arch::wasm32::v128_load(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { std::arch::wasm32::v128_store(p.cast(), self) }
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        std::arch::wasm32::f32x4_splat(v)
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        use std::arch::wasm32::{f32x4_add, f32x4_mul};
        f32x4_add(f32x4_mul(a, b), c)
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        std::arch::wasm32::f32x4_add(a, b)
    }
    #[inline(always)]
    unsafe fn relu6(self) -> Self {
        use std::arch::wasm32::{f32x4_pmax, f32x4_pmin, f32x4_splat};
        f32x4_pmin(f32x4_pmax(self, f32x4_splat(0.0)), f32x4_splat(6.0))
    }
}

impl Depthwise {
    fn new(conv: &Conv2d) -> Self {
        let [c, one, k, k2] = conv.weight.dims();
        assert!(
            one == 1 && k == k2 && conv.groups == c && k <= MAX_K,
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
            relu6: true,
        }
    }

    /// The same convolution without an activation.
    pub(crate) fn linear(conv: &Conv2d) -> Self {
        Self {
            relu6: false,
            ..Self::new(conv)
        }
    }

    /// The convolution (ReLU6 of it, unless [`Depthwise::linear`]) of `n` images of `h×w`
    /// pixels; returns the output size.
    pub(crate) fn run(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut Vec<f32>,
    ) -> (usize, usize) {
        let (oh, pad_t) = same(h, self.k, self.stride);
        let (ow, pad_l) = same(w, self.k, self.stride);
        let c = self.c;
        buf(out, n * oh * ow * c)
            .par_chunks_mut(ow * c)
            .with_min_len(4)
            .enumerate()
            .for_each(|(r, out)| {
                let (img, y) = (r / oh, r % oh);
                let x = &x[img * h * w * c..(img + 1) * h * w * c];
                let rows = self.window(y, h, pad_t, |iy| &x[iy * w * c..(iy + 1) * w * c]);
                vectorised(
                    #[inline(always)]
                    |isa| self.row(isa, &rows, w, pad_l, out),
                );
            });
        (oh, ow)
    }

    /// The input rows (each `w × c`) under output row `y`'s window; `None` for padding.
    #[inline(always)]
    fn window<'a>(
        &self,
        y: usize,
        h: usize,
        pad_t: usize,
        row: impl Fn(usize) -> &'a [f32],
    ) -> [Option<&'a [f32]>; MAX_K] {
        std::array::from_fn(|kh| {
            (kh < self.k)
                .then(|| (y * self.stride + kh).checked_sub(pad_t))
                .flatten()
                .filter(|&iy| iy < h)
                .map(&row)
        })
    }

    /// One output row (all its columns and channels) from its window's input rows, each
    /// `w` pixels wide. Channels go in groups of vector registers whose sums stay in
    /// registers across all `k×k` taps.
    #[inline(always)]
    fn row(
        &self,
        isa: Isa,
        rows: &[Option<&[f32]>; MAX_K],
        w: usize,
        pad_l: usize,
        out: &mut [f32],
    ) {
        let (c, k, s) = (self.c, self.k, self.stride);
        // What the kernels' unchecked offsets rely on, checked once per row.
        // (SAME geometry: every output pixel's window overlaps the image.)
        assert!(
            out.len().is_multiple_of(c)
                && (out.len() / c, pad_l) == same(w, k, s)
                && rows.iter().flatten().all(|r| r.len() == w * c)
                && rows[k..].iter().all(Option::is_none)
                && self.w.len() == k * k * c
                && self.b.len() == c
        );
        for (ox, out) in out.chunks_exact_mut(c).enumerate() {
            // The window's columns inside the image: kw in kw_lo..kw_hi, at input column
            // ix = ox·s + kw − pad_l.
            let kw_lo = pad_l.saturating_sub(ox * s);
            let kw_hi = k.min((w + pad_l).saturating_sub(ox * s));
            let px = Window {
                rows,
                first: ox * s + kw_lo - pad_l,
                kw_lo,
                taps: kw_hi.saturating_sub(kw_lo),
            };
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => {
                    use std::arch::x86_64::{__m256, __m512};
                    let g = self.groups::<__m512, 4>(0, &px, out);
                    let g = self.groups::<__m512, 2>(g, &px, out);
                    let g = self.groups::<__m512, 1>(g, &px, out);
                    let g = self.groups::<__m256, 1>(g, &px, out);
                    self.groups::<f32, 1>(g, &px, out);
                }
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => {
                    use std::arch::x86_64::__m256;
                    let g = self.groups::<__m256, 4>(0, &px, out);
                    let g = self.groups::<__m256, 2>(g, &px, out);
                    let g = self.groups::<__m256, 1>(g, &px, out);
                    self.groups::<f32, 1>(g, &px, out);
                }
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Isa::Simd128 => {
                    use std::arch::wasm32::v128;
                    let g = self.groups::<v128, 4>(0, &px, out);
                    let g = self.groups::<v128, 2>(g, &px, out);
                    let g = self.groups::<v128, 1>(g, &px, out);
                    self.groups::<f32, 1>(g, &px, out);
                }
                _ => {
                    let g = self.groups::<f32, 8>(0, &px, out);
                    self.groups::<f32, 1>(g, &px, out);
                }
            }
        }
    }

    /// Channels from `g` on, `G` registers of them at a time while whole ones fit, of one
    /// output pixel: ReLU6 of the bias plus each tap's input times its weights. `G`
    /// independent sums keep the vector unit busy (one sum alone would wait on each
    /// multiply-add's latency). Returns the first channel left.
    #[inline(always)]
    fn groups<L: Lanes, const G: usize>(
        &self,
        mut g: usize,
        px: &Window<'_>,
        out: &mut [f32],
    ) -> usize {
        let (c, k) = (self.c, self.k);
        while g + G * L::N <= c {
            // SAFETY: `row` asserted that each window row holds `w` pixels of `c` channels,
            // the weights `k·k·c` and the bias `c`; `first + taps ≤ w` and
            // `kw_lo + taps ≤ k` by construction, and every channel offset is under
            // `g + G·L::N ≤ c`. `Isa` told the caller the CPU has `L`'s instructions.
            unsafe {
                let mut acc: [L; G] =
                    std::array::from_fn(|v| L::load(self.b.as_ptr().add(g + v * L::N)));
                for (kh, row) in px.rows.iter().enumerate() {
                    let Some(row) = row else { continue };
                    let xp = row.as_ptr().add(px.first * c + g);
                    let wp = self.w.as_ptr().add((kh * k + px.kw_lo) * c + g);
                    for t in 0..px.taps {
                        for (v, a) in acc.iter_mut().enumerate() {
                            let o = t * c + v * L::N;
                            *a = L::fma(L::load(xp.add(o)), L::load(wp.add(o)), *a);
                        }
                    }
                }
                for (v, a) in acc.into_iter().enumerate() {
                    let a = if self.relu6 { a.relu6() } else { a };
                    a.store(out.as_mut_ptr().add(g + v * L::N));
                }
            }
            g += G * L::N;
        }
        g
    }
}

/// The part of one output pixel's depthwise window inside the image: the window's rows
/// (`None` above or below the image) and, in each, `taps` pixels from input column `first`,
/// which meet the kernel's column `kw_lo` onwards.
struct Window<'a> {
    rows: &'a [Option<&'a [f32]>; MAX_K],
    first: usize,
    kw_lo: usize,
    taps: usize,
}

/// The smallest strip of output rows a fused block gives one thread. Strips of one image
/// each expand the input rows their windows share, and for a 7-pixel image split in two
/// that repeats a third of the expansion, more than fusion saves; at 14 pixels it is 15-30%
/// of the expansion, which fusion more than repays (both measured with `bench`'s `forward`).
const MIN_STRIP: usize = 7;

impl Block {
    /// The block over `n` images of `h×w`; returns the output size. `x` is the block's
    /// input; `out` receives its output; `t1`, `t2` are scratch for the layer-by-layer path.
    fn run(
        &self,
        x: &[f32],
        (n, h, w): (usize, usize, usize),
        out: &mut Vec<f32>,
        t1: &mut Vec<f32>,
        t2: &mut Vec<f32>,
    ) -> (usize, usize) {
        let d = &self.depthwise;
        let (oh, _) = same(h, d.k, d.stride);
        let (ow, _) = same(w, d.k, d.stride);
        // Strips per image so that every thread has one.
        let strips = rayon::current_num_threads().div_ceil(n);
        if strips == 1 || oh / strips >= MIN_STRIP {
            let per = oh.div_ceil(strips);
            let cout = self.project.cout;
            buf(out, n * oh * ow * cout)
                .par_chunks_mut(oh * ow * cout)
                .enumerate()
                .for_each(|(img, out)| {
                    let cin = self.input_channels();
                    let x = &x[img * h * w * cin..(img + 1) * h * w * cin];
                    out.par_chunks_mut(per * ow * cout)
                        .enumerate()
                        .for_each(|(s, out)| self.strip(x, (h, w), s * per, out));
                });
        } else {
            let rows = n * h * w;
            let expanded: &[f32] = match &self.expand {
                Some(e) => {
                    e.run(x, rows, true, None, t1);
                    &t1[..rows * e.cout]
                }
                None => x,
            };
            d.run(expanded, n, h, w, t2);
            let residual = self.residual.then_some(x);
            self.project.run(t2, n * oh * ow, false, residual, out);
        }
        (oh, ow)
    }

    /// Channels of the block's input.
    fn input_channels(&self) -> usize {
        self.expand.as_ref().map_or(self.depthwise.c, |e| e.cin)
    }

    /// Output rows `y0..` (as many as `out` holds) of one `h×w` image `x`, fused: each input
    /// row is expanded once, into a ring of the `k` rows the depthwise window spans.
    fn strip(&self, x: &[f32], (h, w): (usize, usize), y0: usize, out: &mut [f32]) {
        let d = &self.depthwise;
        let (k, ce, cin) = (d.k, d.c, self.input_channels());
        let (_, pad_t) = same(h, k, d.stride);
        let (ow, pad_l) = same(w, k, d.stride);
        let row_out = ow * self.project.cout;
        STRIP.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (ring, dw) = buf(&mut cell, k * w * ce + ow * ce).split_at_mut(k * w * ce);
            let input = |iy: usize| &x[iy * w * cin..(iy + 1) * w * cin];
            vectorised(
                #[inline(always)]
                |isa| {
                    // The first input row not yet in the ring.
                    let mut next = 0;
                    for (i, out) in out.chunks_exact_mut(row_out).enumerate() {
                        let y = y0 + i;
                        if let Some(e) = &self.expand {
                            let lo = (y * d.stride).saturating_sub(pad_t);
                            let hi = (y * d.stride + k - pad_t).min(h);
                            for iy in next.max(lo)..hi {
                                let slot = &mut ring[iy % k * w * ce..][..w * ce];
                                e.rows(isa, input(iy), true, None, slot);
                            }
                            next = next.max(hi);
                        }
                        let rows = d.window(y, h, pad_t, |iy| match self.expand {
                            Some(_) => &ring[iy % k * w * ce..][..w * ce],
                            None => input(iy),
                        });
                        d.row(isa, &rows, w, pad_l, dw);
                        let res = self.residual.then(|| input(y));
                        self.project.rows(isa, dw, false, res, out);
                    }
                },
            );
        });
    }
}

/// The im2col rows of a stride-1 SAME `k×k` convolution over `n` NHWC images of `h×w×c`:
/// one row per output pixel, ordered (kh, kw, channel), zeros where the window leaves the
/// image ([`Pointwise::kxk`] multiplies them).
pub(crate) fn im2col(
    x: &[f32],
    (n, h, w, c): (usize, usize, usize, usize),
    k: usize,
    out: &mut Vec<f32>,
) {
    let (_, pad) = same(h, k, 1);
    let (_, pad_l) = same(w, k, 1);
    let row = k * k * c;
    buf(out, n * h * w * row)
        .par_chunks_mut(w * row)
        .enumerate()
        .for_each(|(r, cols)| {
            let (img, y) = (r / h, r % h);
            let src = &x[img * h * w * c..(img + 1) * h * w * c];
            for (ox, px) in cols.chunks_exact_mut(row).enumerate() {
                for kh in 0..k {
                    let iy = (y + kh).checked_sub(pad).filter(|&v| v < h);
                    for kw in 0..k {
                        let ix = (ox + kw).checked_sub(pad_l).filter(|&v| v < w);
                        let dst = &mut px[(kh * k + kw) * c..][..c];
                        match (iy, ix) {
                            (Some(iy), Some(ix)) => {
                                dst.copy_from_slice(&src[(iy * w + ix) * c..][..c]);
                            }
                            _ => dst.fill(0.0),
                        }
                    }
                }
            }
        });
}

/// The largest depthwise kernel (Lite0 has 3×3 and 5×5).
const MAX_K: usize = 5;

/// TF "SAME" padding: output size `ceil(n / stride)` and the padding before the first pixel
/// (the odd one, when the total is odd, goes after the last).
fn same(n: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(n);
    (out, total / 2)
}

/// The first `len` floats of a reused buffer, which only ever grows (shrinking and growing
/// again would zero the tail on every layer). Every element is written before it is read.
pub(crate) fn buf(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// The vector unit [`vectorised`] compiled its code for; kernels pick their registers and
/// tile sizes from it (a constant once inlined). Ordered: each includes the ones before.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Isa {
    Baseline,
    /// wasm SIMD, fixed at compile time (`+simd128`: every current browser has it).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
    Avx2,
    Avx512,
}

/// The widest vector unit this CPU has: AVX-512 (with AVX2 and FMA), else AVX2 with FMA,
/// else the baseline.
fn best_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            return if has!("avx512f") {
                Isa::Avx512
            } else {
                Isa::Avx2
            };
        }
    }
    BUILT_FOR
}

/// The vector unit every machine this build can run on has.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const BUILT_FOR: Isa = Isa::Simd128;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
const BUILT_FOR: Isa = Isa::Baseline;

/// Runs `f` compiled for the widest vector unit this CPU has, telling it which. `f` and
/// what it calls must be `#[inline(always)]`: the target features reach only code inlined
/// into the dispatching function.
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce(Isa) -> R) -> R {
    // SAFETY: `best_isa` is what this CPU has.
    unsafe { dispatch(best_isa(), f) }
}

/// Runs `f` compiled for `isa`, which the CPU must have (checked: `Isa` is ordered); the
/// tests use it to run each instruction set.
#[cfg(test)]
fn on<R>(isa: Isa, f: impl FnOnce(Isa) -> R) -> R {
    assert!(
        isa <= best_isa(),
        "the CPU lacks the instructions asked for"
    );
    // SAFETY: asserted just above.
    unsafe { dispatch(isa, f) }
}

/// Runs `f` compiled for `isa`.
///
/// # Safety
/// The CPU has `isa`'s instructions (`isa <= best_isa()`).
#[inline(always)]
unsafe fn dispatch<R>(isa: Isa, f: impl FnOnce(Isa) -> R) -> R {
    match isa {
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA (the caller's contract).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { with_avx512(f) },
        // SAFETY: the CPU has AVX2 and FMA (the caller's contract).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { with_avx2(f) },
        // The whole module is compiled with simd128 (the build's target feature).
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => f(Isa::Simd128),
        _ => f(Isa::Baseline),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn with_avx512<R>(f: impl FnOnce(Isa) -> R) -> R {
    f(Isa::Avx512)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn with_avx2<R>(f: impl FnOnce(Isa) -> R) -> R {
    f(Isa::Avx2)
}

impl Trunk {
    /// The folded stem and blocks, laid out for this executor.
    pub fn new(stem: &Conv2d, blocks: &[FusedBlock]) -> Self {
        let [_, cin, k, _] = stem.weight.dims();
        assert_eq!((cin, k), (3, 3), "a 3×3 stem over RGB");
        Self {
            stem: Pointwise::kxk(stem),
            blocks: blocks
                .iter()
                .map(|b| Block {
                    expand: b.expand.as_ref().map(Pointwise::new),
                    depthwise: Depthwise::new(&b.depthwise),
                    project: Pointwise::new(&b.project),
                    residual: b.residual,
                })
                .collect(),
        }
    }

    /// Stem and blocks `0..end` over `n` normalised `3×side×side` images laid end to end;
    /// the result (NHWC) is left in `s.a` and its size returned. `seen(done, x, (h, w, c))`
    /// sees the activation after the stem (`done` 0) and after each block.
    pub fn run(
        &self,
        input: &[f32],
        n: usize,
        side: usize,
        s: &mut Scratch,
        end: usize,
        mut seen: impl FnMut(usize, &[f32], (usize, usize, usize)),
    ) -> (usize, usize) {
        assert_eq!(input.len(), n * 3 * side * side, "n images of 3×side×side");
        let (mut h, mut w) = self.stem(input, n, side, &mut s.b, &mut s.a);
        let c = self.stem.cout;
        seen(0, &s.a[..n * h * w * c], (h, w, c));
        for (i, blk) in self.blocks[..end].iter().enumerate() {
            // a: block input; b: its output, which becomes the next block's input.
            (h, w) = blk.run(&s.a, (n, h, w), &mut s.b, &mut s.c, &mut s.d);
            std::mem::swap(&mut s.a, &mut s.b);
            let c = blk.project.cout;
            seen(i + 1, &s.a[..n * h * w * c], (h, w, c));
        }
        (h, w)
    }

    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The stem: im2col of the CHW input into `cols`, then one product with bias and ReLU6
    /// into `out`.
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
        buf(cols, n * o * o * 27)
            .par_chunks_mut(o * 27)
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
        self.stem.run(cols, n * o * o, true, None, out);
        (o, o)
    }
}

impl NativeNet {
    pub fn new(m: &FusedEfficientNetLite) -> Self {
        let [features, classes] = m.fc.weight.dims();
        let head = Pointwise::new(&m.head);
        assert_eq!(head.cout, features, "head and classifier agree");
        Self {
            trunk: Trunk::new(&m.stem, &m.blocks),
            head,
            // burn's `Linear` is `[features][classes]` already.
            fc: Pointwise {
                cin: features,
                cout: classes,
                w: floats(m.fc.weight.val()),
                b: bias_or_zeros(m.fc.bias.as_ref(), classes),
            },
        }
    }

    pub fn classes(&self) -> usize {
        self.fc.cout
    }

    /// Logits (`n × classes`) of `n` normalised `3×side×side` images laid end to end (the
    /// layout of `shared::predict::input::prepare`).
    pub fn forward(&self, input: &[f32], n: usize, side: usize, s: &mut Scratch) -> Vec<f32> {
        let pooled = self.features(input, n, side, s);
        let mut logits = Vec::new();
        self.fc.run(&pooled, n, false, None, &mut logits);
        logits
    }

    /// The backbone's pooled features (`n × 1280`), what the classifier reads: the
    /// embeddings assisted labelling fits its suggestions on.
    pub fn features(&self, input: &[f32], n: usize, side: usize, s: &mut Scratch) -> Vec<f32> {
        let end = self.trunk.blocks();
        let (h, w) = self.trunk.run(input, n, side, s, end, |_, _, _| {});
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
        pooled
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{largest_difference, values};
    use super::*;
    use crate::model::EfficientNetLite;
    use burn::module::Param;
    use burn::tensor::Distribution;

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
            let worst = largest_difference(&want, &got);
            assert!(worst < 1e-5, "k {k}: largest difference {worst}");
        }
    }

    #[test]
    fn every_instruction_set_computes_the_same() {
        // 61 channels: on AVX-512 a 32-wide panel, a 16-wide, an 8-wide (AVX2) and 5 single
        // columns; 29 pixels: whole tiles and a remainder. The baseline is plain f32 code.
        let (cin, cout, rows) = (19, 61, 29);
        let pw = Pointwise {
            cin,
            cout,
            w: values(cin * cout, 1),
            b: values(cout, 2),
        };
        let x = values(rows * cin, 3);
        let res = values(rows * cout, 4);
        let dw = Depthwise {
            c: cout,
            k: 3,
            stride: 1,
            w: values(9 * cout, 5),
            b: values(cout, 6),
            relu6: true,
        };
        let (side, pad) = (7, 1);
        let img = values(side * side * cout, 7);
        let run = |isa: Isa| {
            let mut p = vec![0.0; rows * cout];
            on(isa, |isa| pw.rows(isa, &x, true, Some(&res), &mut p));
            let mut d = vec![0.0; side * cout];
            let window = dw.window(3, side, pad, |iy| &img[iy * side * cout..][..side * cout]);
            on(isa, |isa| dw.row(isa, &window, side, pad, &mut d));
            (p, d)
        };
        let (p0, d0) = run(Isa::Baseline);
        // The baseline against a direct computation.
        for r in 0..rows {
            for o in 0..cout {
                let sum: f32 = (0..cin).map(|i| x[r * cin + i] * pw.w[i * cout + o]).sum();
                let want = (sum + pw.b[o] + res[r * cout + o]).clamp(0.0, 6.0);
                assert!(
                    (p0[r * cout + o] - want).abs() < 1e-4,
                    "pixel {r} channel {o}"
                );
            }
        }
        assert!(d0.iter().all(|v| (0.0..=6.0).contains(v)) && d0.iter().any(|&v| v > 0.0));
        let mut tried = vec![];
        for isa in [Isa::Avx2, Isa::Avx512] {
            if isa <= best_isa() {
                let (p, d) = run(isa);
                assert!(largest_difference(&p, &p0) < 1e-4, "{isa:?} pointwise");
                assert!(largest_difference(&d, &d0) < 1e-4, "{isa:?} depthwise");
                tried.push(isa);
            }
        }
        println!("compared with the baseline: {tried:?}");
    }

    #[test]
    fn computes_what_burn_computes() {
        let device = Device::flex();
        let fused = model(5, &device);
        let net = NativeNet::new(&fused);
        let mut scratch = Scratch::default();
        // Even and odd sides exercise both SAME-padding cases; a batch of 2 the batching. On
        // one thread every block runs fused in one strip per image; on two, a single image's
        // large blocks run fused in two strips and its small ones layer by layer.
        for (threads, n, side) in [(1, 2, 64), (2, 2, 64), (2, 1, 45), (1, 1, 45)] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            let x =
                Tensor::<4>::random([n, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
            let want = floats(fused.forward(x.clone()));
            let got = pool.install(|| net.forward(&floats(x), n, side, &mut scratch));
            assert_eq!(got.len(), n * 5);
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let worst = largest_difference(&want, &got);
            assert!(
                worst <= 1e-4 * scale,
                "{threads} threads, side {side}: largest difference {worst} (scale {scale})"
            );
        }
    }
}

/// Helpers of the executor's tests, here and in the server's (which test kernels built on
/// these).
#[doc(hidden)]
pub mod testing {
    /// Deterministic values in [-2, 2) (a small LCG; the kernels' results, not the values,
    /// are under test).
    pub fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
            })
            .collect()
    }

    pub fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }
}
