//! Runs a serving plan — a generated model's forward pass written one operation per line
//! (`shared/src/model/ocr/*.plan`, by `bench/ocr/plan.py`) — channels-last (NHWC) on the
//! CPU, with the weights of the burn module it was written from (fine-tuned or not).
//!
//! Why: burn-onnx's generated code runs every operation of the ONNX graph as its own pass
//! over a fresh tensor. PP-LCNetV3 follows each convolution with a learnable affine block, a
//! hard-swish spelt as four operations and another affine block, seven passes over the
//! activation for one convolution. Here, when loading, every chain of element-wise
//! operations that only one consumer reads is folded into the step producing its input
//! (consecutive affine operations into one, the hard-swish pattern into one function), and
//! applied while that step's output is still in the cache. Convolutions use the serving
//! executor's matrix product ([`Pointwise`], also for dense `k×k` over im2col rows and for
//! 2×2 stride-2 transposed convolutions) and a depthwise kernel with explicit padding.

use std::collections::HashMap;

use anyhow::{Context, bail, ensure};
use rayon::prelude::*;

use shared::exec::{Pointwise, vectorised};

/// A tensor's shape: images, rows, columns, channels (channels innermost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn elements(self) -> usize {
        self.n * self.h * self.w * self.c
    }
    fn pixels(self) -> usize {
        self.n * self.h * self.w
    }
}

/// An element-wise function a step applies to its output before anyone reads it.
#[derive(Debug, Clone)]
enum Epi {
    /// `x · scale + bias`, each one value or one per channel.
    Affine {
        scale: Vec<f32>,
        bias: Vec<f32>,
    },
    Clip(f32, f32),
    Relu,
    Sigmoid,
    /// `clamp(alpha · x + beta, 0, 1)`.
    HardSigmoid(f32, f32),
    /// `x · clamp(x + add, 0, 6) / div` (PP-LCNet's hard-swish, as the ONNX graph spells it).
    HardSwish {
        add: f32,
        div: f32,
    },
}

/// Channel `i` of a per-channel (or single) constant.
#[inline(always)]
fn at(v: &[f32], i: usize) -> f32 {
    if v.len() == 1 { v[0] } else { v[i] }
}

impl Epi {
    /// `x · scale + bias`, both one value or both one per channel (a single value is
    /// repeated), so applying it allocates nothing.
    fn affine(scale: Vec<f32>, bias: Vec<f32>) -> Self {
        let c = scale.len().max(bias.len());
        let per_channel = |v: Vec<f32>| if v.len() == c { v } else { vec![v[0]; c] };
        Epi::Affine {
            scale: per_channel(scale),
            bias: per_channel(bias),
        }
    }

    /// `self` then `next` as one affine function, when both are affine.
    fn then(&mut self, next: &Epi) -> bool {
        let (
            Epi::Affine { scale, bias },
            Epi::Affine {
                scale: s2,
                bias: b2,
            },
        ) = (&mut *self, next)
        else {
            return false;
        };
        let lens = [scale.len(), bias.len(), s2.len(), b2.len()];
        let c = *lens.iter().max().unwrap();
        if lens.iter().any(|&l| l != 1 && l != c) {
            return false;
        }
        let s: Vec<f32> = (0..c).map(|i| at(scale, i) * at(s2, i)).collect();
        let b: Vec<f32> = (0..c)
            .map(|i| at(bias, i) * at(s2, i) + at(b2, i))
            .collect();
        *self = Epi::affine(s, b);
        true
    }

    /// Applies the function to whole pixels of `c` channels.
    #[inline(always)]
    fn apply(&self, data: &mut [f32], c: usize) {
        match self {
            Epi::Affine { scale, bias } if scale.len() == 1 && bias.len() == 1 => {
                let (s, b) = (scale[0], bias[0]);
                data.iter_mut().for_each(|v| *v = *v * s + b);
            }
            Epi::Affine { scale, bias } => {
                // Per channel: both as long as the channels (`Epi::affine`).
                for px in data.chunks_exact_mut(c) {
                    for ((v, s), b) in px.iter_mut().zip(scale).zip(bias) {
                        *v = *v * s + b;
                    }
                }
            }
            Epi::Clip(lo, hi) => data.iter_mut().for_each(|v| *v = v.clamp(*lo, *hi)),
            Epi::Relu => data.iter_mut().for_each(|v| *v = v.max(0.0)),
            Epi::Sigmoid => data.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            Epi::HardSigmoid(a, b) => data
                .iter_mut()
                .for_each(|v| *v = (*v * a + b).clamp(0.0, 1.0)),
            Epi::HardSwish { add, div } => {
                let inv = 1.0 / div;
                data.iter_mut()
                    .for_each(|v| *v = *v * (*v + add).clamp(0.0, 6.0) * inv);
            }
        }
    }
}

fn apply_all(epi: &[Epi], data: &mut [f32], c: usize) {
    vectorised(
        #[inline(always)]
        |_| {
            for e in epi {
                e.apply(data, c);
            }
        },
    );
}

/// What a step computes from its inputs.
enum Kernel {
    /// A 1×1 stride-1 convolution: a product over pixels.
    Pointwise(Pointwise),
    /// A dense `k×k` convolution: a product over im2col rows.
    Dense {
        pw: Pointwise,
        window: Window,
    },
    Depthwise(Depthwise),
    /// A transposed convolution whose stride equals its kernel `k` (no overlap): a product
    /// to `k·k·cout` columns ordered (ky, kx, channel), then scattered.
    Transposed {
        pw: Pointwise,
        k: usize,
        cout: usize,
    },
    /// Global average pooling.
    Pool,
    /// Nearest upsampling by a whole factor.
    Upsample(usize),
    Add,
    Mul,
    /// Channels concatenated.
    Concat,
    /// Only the step's element-wise functions.
    Copy,
}

/// A convolution's window: kernel, stride and padding (before and after), each (rows,
/// columns).
#[derive(Debug, Clone, Copy)]
struct Window {
    k: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
}

impl Window {
    /// The output's rows and columns for an input of `s`.
    fn out(self, s: Shape) -> (usize, usize) {
        (
            (s.h + 2 * self.pad.0 - self.k.0) / self.stride.0 + 1,
            (s.w + 2 * self.pad.1 - self.k.1) / self.stride.1 + 1,
        )
    }

    /// The input row (or column, with `d` = 1) under tap `t` of output row `o`, if inside.
    #[inline(always)]
    fn source(self, d: usize, o: usize, t: usize, n: usize) -> Option<usize> {
        let (stride, pad) = if d == 0 {
            (self.stride.0, self.pad.0)
        } else {
            (self.stride.1, self.pad.1)
        };
        (o * stride + t).checked_sub(pad).filter(|&v| v < n)
    }
}

struct Depthwise {
    c: usize,
    window: Window,
    /// `[kh·kw][c]`: one tap is a contiguous row.
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Step {
    kernel: Kernel,
    inputs: Vec<usize>,
    output: usize,
    epi: Vec<Epi>,
}

/// A plan ready to run; shareable between threads (it is only read).
pub struct Plan {
    steps: Vec<Step>,
    values: usize,
    output: usize,
    /// For each value, the last step reading it (its buffer is reused after).
    last_read: Vec<usize>,
}

/// One float tensor of the module: its shape and values.
pub type Weights = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// One line of a plan file.
struct Line<'a> {
    op: &'a str,
    out: &'a str,
    args: Vec<&'a str>,
}

impl Plan {
    /// Reads a plan, taking every weight it names from `weights` (paths as
    /// `ModuleSnapshot::collect` names them).
    pub fn new(text: &str, weights: &Weights) -> anyhow::Result<Self> {
        let lines: Vec<Line> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let mut f = l.split_whitespace();
                let op = f.next().unwrap_or_default();
                let out = f.next().with_context(|| format!("plan line {l:?}"))?;
                Ok(Line {
                    op,
                    out,
                    args: f.collect(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        ensure!(!lines.is_empty(), "an empty plan");
        let reads_value = |l: &Line, i: usize| -> bool {
            match l.op {
                "add" | "mul" | "cat" => true,
                _ => i == 0,
            }
        };
        let mut reads: HashMap<&str, usize> = HashMap::new();
        for l in &lines {
            for (i, a) in l.args.iter().enumerate() {
                if reads_value(l, i) {
                    *reads.entry(a).or_default() += 1;
                }
            }
        }
        let get = |path: String| -> anyhow::Result<&(Vec<usize>, Vec<f32>)> {
            weights
                .get(&path)
                .with_context(|| format!("the model has no weights {path}"))
        };
        let constant =
            |path: &str| -> anyhow::Result<Vec<f32>> { Ok(get(path.to_owned())?.1.clone()) };
        let num = |s: &str| -> anyhow::Result<f32> {
            s.parse::<f32>()
                .with_context(|| format!("a number, not {s:?}"))
        };
        let pair = |s: &str| -> anyhow::Result<(usize, usize)> {
            let (a, b) = s
                .split_once('x')
                .with_context(|| format!("AxB, not {s:?}"))?;
            Ok((a.parse()?, b.parse()?))
        };

        let mut ids: HashMap<&str, usize> = HashMap::from([("x", 0)]);
        let mut steps: Vec<Step> = Vec::new();
        // The step whose output a value is, while that step is the last one to write it.
        let mut made_by: HashMap<usize, usize> = HashMap::new();
        let mut i = 0;
        while i < lines.len() {
            let l = &lines[i];
            let id = |name: &str| -> anyhow::Result<usize> {
                ids.get(name)
                    .copied()
                    .with_context(|| format!("{} reads {name} before it is computed", l.out))
            };
            let input = id(l.args.first().copied().unwrap_or_default())?;
            let only_reader = reads.get(l.args.first().copied().unwrap_or_default()) == Some(&1);
            // The element-wise function this line is, if it is one.
            let mut skip = 0;
            let epi = match l.op {
                "mulc" => Some(Epi::affine(constant(l.args[1])?, vec![0.0])),
                "addc" => {
                    if let Some((f, n)) = hard_swish(&lines[i..], &reads, |p| constant(p))? {
                        skip = n - 1;
                        Some(f)
                    } else {
                        Some(Epi::affine(vec![1.0], constant(l.args[1])?))
                    }
                }
                "divc" => Some(Epi::affine(
                    constant(l.args[1])?.iter().map(|v| 1.0 / v).collect(),
                    vec![0.0],
                )),
                "bn" => {
                    let p = l.args[1];
                    let eps = num(l.args[2])?;
                    let gamma = constant(&format!("{p}.gamma"))?;
                    let beta = constant(&format!("{p}.beta"))?;
                    let mean = constant(&format!("{p}.running_mean"))?;
                    let var = constant(&format!("{p}.running_var"))?;
                    let scale: Vec<f32> = gamma
                        .iter()
                        .zip(&var)
                        .map(|(g, v)| g / (v + eps).sqrt())
                        .collect();
                    let bias = beta
                        .iter()
                        .zip(&mean)
                        .zip(&scale)
                        .map(|((b, m), s)| b - m * s)
                        .collect();
                    Some(Epi::affine(scale, bias))
                }
                "clip" => Some(Epi::Clip(num(l.args[1])?, num(l.args[2])?)),
                "relu" => Some(Epi::Relu),
                "sigmoid" => Some(Epi::Sigmoid),
                "hardsigmoid" => Some(Epi::HardSigmoid(num(l.args[1])?, num(l.args[2])?)),
                _ => None,
            };
            let out = ids.len();
            let out_name = lines[i + skip].out;
            if let Some(epi) = epi {
                match made_by.get(&input) {
                    Some(&s) if only_reader || skip > 0 => {
                        // Folded into the step that computes the input.
                        let step = &mut steps[s];
                        if !step.epi.last_mut().is_some_and(|last| last.then(&epi)) {
                            step.epi.push(epi);
                        }
                        step.output = out;
                        made_by.remove(&input);
                        made_by.insert(out, s);
                    }
                    _ => {
                        made_by.insert(out, steps.len());
                        steps.push(Step {
                            kernel: Kernel::Copy,
                            inputs: vec![input],
                            output: out,
                            epi: vec![epi],
                        });
                    }
                }
                ids.insert(out_name, out);
                i += skip + 1;
                continue;
            }
            let kernel = match l.op {
                "conv" => {
                    let p = l.args[1];
                    let window = Window {
                        k: pair(l.args[2])?,
                        stride: pair(l.args[3])?,
                        pad: pair(l.args[4])?,
                    };
                    let (kh, kw) = window.k;
                    let groups: usize = l.args[5].parse()?;
                    let (dims, w) = get(format!("{p}.weight"))?;
                    let [cout, cin_g, _, _] = dims[..] else {
                        bail!("{p}: weights of shape {dims:?}")
                    };
                    let b = match weights.get(&format!("{p}.bias")) {
                        Some((_, b)) => b.clone(),
                        None => vec![0.0; cout],
                    };
                    if groups == 1
                        && window.k == (1, 1)
                        && window.stride == (1, 1)
                        && window.pad == (0, 0)
                    {
                        Kernel::Pointwise(Pointwise::from_oihw(w, cout, cin_g, 1, b))
                    } else if groups == 1 {
                        Kernel::Dense {
                            pw: Pointwise::from_oihw(w, cout, cin_g, kh * kw, b),
                            window,
                        }
                    } else if groups == cout && cin_g == 1 {
                        let taps = kh * kw;
                        let mut t = vec![0.0; taps * cout];
                        for ch in 0..cout {
                            for tap in 0..taps {
                                t[tap * cout + ch] = w[ch * taps + tap];
                            }
                        }
                        Kernel::Depthwise(Depthwise {
                            c: cout,
                            window,
                            w: t,
                            b,
                        })
                    } else {
                        bail!("{p}: only dense and depthwise convolutions are planned")
                    }
                }
                "convt" => {
                    let p = l.args[1];
                    let (k, k2) = pair(l.args[2])?;
                    let (s, s2) = pair(l.args[3])?;
                    ensure!(k == k2 && s == s2 && s == k, "{p}: only stride = kernel");
                    let (dims, w) = get(format!("{p}.weight"))?;
                    let [cin, cout, _, _] = dims[..] else {
                        bail!("{p}: weights of shape {dims:?}")
                    };
                    ensure!(!weights.contains_key(&format!("{p}.bias")), "{p}: a bias");
                    // [cin][cout][ky][kx] -> rows (ky, kx, cout) of cin.
                    let taps = k * k;
                    let mut t = vec![0.0; taps * cout * cin];
                    for ci in 0..cin {
                        for co in 0..cout {
                            for tap in 0..taps {
                                t[(tap * cout + co) * cin + ci] = w[(ci * cout + co) * taps + tap];
                            }
                        }
                    }
                    let pw = Pointwise::from_oihw(&t, taps * cout, cin, 1, vec![0.0; taps * cout]);
                    Kernel::Transposed { pw, k, cout }
                }
                "gap" => Kernel::Pool,
                "resize" => Kernel::Upsample(l.args[1].parse()?),
                "add" => Kernel::Add,
                "mul" => Kernel::Mul,
                "cat" => Kernel::Concat,
                op => bail!("the plan has an operation {op:?} this executor lacks"),
            };
            let inputs = match kernel {
                Kernel::Add | Kernel::Mul | Kernel::Concat => l
                    .args
                    .iter()
                    .map(|a| id(a))
                    .collect::<anyhow::Result<_>>()?,
                _ => vec![input],
            };
            made_by.insert(out, steps.len());
            steps.push(Step {
                kernel,
                inputs,
                output: out,
                epi: Vec::new(),
            });
            ids.insert(l.out, out);
            i += 1;
        }
        let values = ids.len();
        let output = steps.last().unwrap().output;
        let mut last_read = vec![usize::MAX; values];
        for (s, step) in steps.iter().enumerate() {
            for &v in &step.inputs {
                last_read[v] = s;
            }
        }
        Ok(Self {
            steps,
            values,
            output,
            last_read,
        })
    }

    /// How many steps remain after folding (for the tests and the logs).
    pub fn steps(&self) -> usize {
        self.steps.len()
    }

    /// Runs the plan on `x` (NHWC), reusing the buffers in `pool`.
    pub fn run(&self, x: Vec<f32>, shape: Shape, pool: &mut Vec<Vec<f32>>) -> (Vec<f32>, Shape) {
        assert_eq!(x.len(), shape.elements(), "an input of {shape:?}");
        let mut values: Vec<Option<(Vec<f32>, Shape)>> = (0..self.values).map(|_| None).collect();
        values[0] = Some((x, shape));
        for (s, step) in self.steps.iter().enumerate() {
            let (data, shape) = {
                let ins: Vec<(&[f32], Shape)> = step
                    .inputs
                    .iter()
                    .map(|&v| {
                        let (d, s) = values[v].as_ref().expect("computed before it is read");
                        (d.as_slice(), *s)
                    })
                    .collect();
                step.run(&ins, pool)
            };
            for &v in &step.inputs {
                if self.last_read[v] == s
                    && let Some((d, _)) = values[v].take()
                {
                    pool.push(d);
                }
            }
            values[step.output] = Some((data, shape));
        }
        let out = values[self.output].take().expect("the plan's output");
        for (d, _) in values.into_iter().flatten() {
            pool.push(d);
        }
        out
    }
}

/// The hard-swish as the ONNX graph spells it, starting at `lines[0]`:
/// `a = x + c1; b = clip(a, 0, 6); m = x · b; y = m / c2`, where only these read `a`, `b`,
/// `m` and `x` is read by nothing else. The function and how many lines it takes.
fn hard_swish(
    lines: &[Line],
    reads: &HashMap<&str, usize>,
    constant: impl Fn(&str) -> anyhow::Result<Vec<f32>>,
) -> anyhow::Result<Option<(Epi, usize)>> {
    let [add, clip, mul, div, ..] = lines else {
        return Ok(None);
    };
    let x = add.args[0];
    let once = |v: &str| reads.get(v) == Some(&1);
    let fits = clip.op == "clip"
        && clip.args == [add.out, "0", "6"]
        && mul.op == "mul"
        && (mul.args == [x, clip.out] || mul.args == [clip.out, x])
        && div.op == "divc"
        && div.args[0] == mul.out
        && reads.get(x) == Some(&2)
        && once(add.out)
        && once(clip.out)
        && once(mul.out);
    if !fits {
        return Ok(None);
    }
    let (c1, c2) = (constant(add.args[1])?, constant(div.args[1])?);
    if c1.len() != 1 || c2.len() != 1 {
        return Ok(None);
    }
    Ok(Some((
        Epi::HardSwish {
            add: c1[0],
            div: c2[0],
        },
        4,
    )))
}

/// A buffer of `len` floats from the pool (the smallest that holds them), its contents
/// unspecified: every element is written before it is read.
fn take(pool: &mut Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let best = pool
        .iter()
        .enumerate()
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i);
    let mut v = match best {
        Some(i) => pool.swap_remove(i),
        None => Vec::with_capacity(len),
    };
    if v.len() > len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    v
}

/// Rows of work per parallel piece: about four per thread.
fn per_piece(rows: usize) -> usize {
    rows.div_ceil(4 * rayon::current_num_threads()).max(1)
}

impl Step {
    fn run(&self, ins: &[(&[f32], Shape)], pool: &mut Vec<Vec<f32>>) -> (Vec<f32>, Shape) {
        let (x, s) = ins[0];
        let (mut out, shape) = match &self.kernel {
            Kernel::Pointwise(pw) => {
                let mut out = take(pool, s.pixels() * pw.cout());
                pw.run(x, s.pixels(), false, None, &mut out);
                (out, Shape { c: pw.cout(), ..s })
            }
            Kernel::Dense { pw, window } => {
                let (oh, ow) = window.out(s);
                let o = Shape {
                    h: oh,
                    w: ow,
                    c: pw.cout(),
                    ..s
                };
                let mut cols = take(pool, o.pixels() * pw.cin());
                im2col(x, s, *window, (oh, ow), &mut cols);
                let mut out = take(pool, o.elements());
                pw.run(&cols, o.pixels(), false, None, &mut out);
                pool.push(cols);
                (out, o)
            }
            Kernel::Depthwise(dw) => {
                let (h, w) = dw.window.out(s);
                let o = Shape { h, w, ..s };
                let mut out = take(pool, o.elements());
                dw.run(x, s, o, &self.epi, &mut out);
                // The functions were applied row by row.
                return (out, o);
            }
            Kernel::Transposed { pw, k, cout } => {
                let mut cols = take(pool, s.pixels() * pw.cout());
                pw.run(x, s.pixels(), false, None, &mut cols);
                let o = Shape {
                    h: s.h * k,
                    w: s.w * k,
                    c: *cout,
                    ..s
                };
                let mut out = take(pool, o.elements());
                let (k, cout) = (*k, *cout);
                out.par_chunks_mut(o.w * cout)
                    .enumerate()
                    .for_each(|(r, row)| {
                        let (img, oy) = (r / o.h, r % o.h);
                        let (y, ky) = (oy / k, oy % k);
                        for (ox, px) in row.chunks_exact_mut(cout).enumerate() {
                            let (xx, kx) = (ox / k, ox % k);
                            let src = ((img * s.h + y) * s.w + xx) * k * k * cout;
                            px.copy_from_slice(&cols[src + (ky * k + kx) * cout..][..cout]);
                        }
                    });
                pool.push(cols);
                (out, o)
            }
            Kernel::Pool => {
                let o = Shape { h: 1, w: 1, ..s };
                let mut out = take(pool, o.elements());
                let hw = s.h * s.w;
                for (img, sums) in out.chunks_exact_mut(s.c).enumerate() {
                    sums.fill(0.0);
                    for px in x[img * hw * s.c..(img + 1) * hw * s.c].chunks_exact(s.c) {
                        sums.iter_mut().zip(px).for_each(|(a, v)| *a += v);
                    }
                    sums.iter_mut().for_each(|a| *a /= hw as f32);
                }
                (out, o)
            }
            Kernel::Upsample(f) => {
                let o = Shape {
                    h: s.h * f,
                    w: s.w * f,
                    ..s
                };
                let mut out = take(pool, o.elements());
                out.par_chunks_mut(o.w * s.c)
                    .enumerate()
                    .for_each(|(r, row)| {
                        let (img, y) = (r / o.h, (r % o.h) / f);
                        let src = &x[(img * s.h + y) * s.w * s.c..][..s.w * s.c];
                        for (ox, px) in row.chunks_exact_mut(s.c).enumerate() {
                            px.copy_from_slice(&src[(ox / f) * s.c..][..s.c]);
                        }
                    });
                (out, o)
            }
            Kernel::Add | Kernel::Mul => {
                let add = matches!(self.kernel, Kernel::Add);
                let (mut a, mut b) = (ins[0], ins[1]);
                if a.1.h * a.1.w < b.1.h * b.1.w {
                    std::mem::swap(&mut a, &mut b);
                }
                let s = a.1;
                let broadcast = b.1.h * b.1.w == 1 && s.h * s.w != 1;
                assert!(
                    b.1.c == s.c && b.1.n == s.n && (broadcast || b.1 == s),
                    "element-wise {:?} and {:?}",
                    a.1,
                    b.1
                );
                let mut out = take(pool, s.elements());
                out.par_chunks_mut(s.w * s.c)
                    .zip(a.0.par_chunks(s.w * s.c))
                    .enumerate()
                    .for_each(|(r, (o, xa))| {
                        let xb = if broadcast {
                            let img = r / s.h;
                            &b.0[img * s.c..(img + 1) * s.c]
                        } else {
                            &b.0[r * s.w * s.c..(r + 1) * s.w * s.c]
                        };
                        vectorised(
                            #[inline(always)]
                            |_| {
                                for (o, xa) in
                                    o.chunks_exact_mut(xb.len()).zip(xa.chunks_exact(xb.len()))
                                {
                                    for ((o, p), q) in o.iter_mut().zip(xa).zip(xb) {
                                        *o = if add { p + q } else { p * q };
                                    }
                                }
                            },
                        );
                    });
                (out, s)
            }
            Kernel::Concat => {
                let c: usize = ins.iter().map(|(_, t)| t.c).sum();
                for (_, t) in ins {
                    assert_eq!((t.n, t.h, t.w), (s.n, s.h, s.w), "concatenated shapes");
                }
                let o = Shape { c, ..s };
                let mut out = take(pool, o.elements());
                for (p, px) in out.chunks_exact_mut(c).enumerate() {
                    let mut at = 0;
                    for (d, t) in ins {
                        px[at..at + t.c].copy_from_slice(&d[p * t.c..(p + 1) * t.c]);
                        at += t.c;
                    }
                }
                (out, o)
            }
            Kernel::Copy => {
                let mut out = take(pool, s.elements());
                out.copy_from_slice(x);
                (out, s)
            }
        };
        if !self.epi.is_empty() {
            let c = shape.c;
            let per = per_piece(shape.pixels()) * c;
            out.par_chunks_mut(per)
                .for_each(|piece| apply_all(&self.epi, piece, c));
        }
        (out, shape)
    }
}

/// The im2col rows of a convolution's `window` (zeros where it leaves the image): one row
/// per output pixel, ordered (kh, kw, channel) ([`Pointwise::from_oihw`]'s layout).
fn im2col(x: &[f32], s: Shape, window: Window, (oh, ow): (usize, usize), out: &mut [f32]) {
    let (kh_n, kw_n) = window.k;
    let row = kh_n * kw_n * s.c;
    out.par_chunks_mut(ow * row)
        .enumerate()
        .for_each(|(r, cols)| {
            let (img, oy) = (r / oh, r % oh);
            let src = &x[img * s.h * s.w * s.c..(img + 1) * s.h * s.w * s.c];
            for (ox, px) in cols.chunks_exact_mut(row).enumerate() {
                for kh in 0..kh_n {
                    let iy = window.source(0, oy, kh, s.h);
                    for kw in 0..kw_n {
                        let ix = window.source(1, ox, kw, s.w);
                        let dst = &mut px[(kh * kw_n + kw) * s.c..][..s.c];
                        match (iy, ix) {
                            (Some(iy), Some(ix)) => {
                                dst.copy_from_slice(&src[(iy * s.w + ix) * s.c..][..s.c]);
                            }
                            _ => dst.fill(0.0),
                        }
                    }
                }
            }
        });
}

impl Depthwise {
    /// The convolution of `x` into `out` (shape `o`), each output row finished with `epi`
    /// while it is in the cache.
    fn run(&self, x: &[f32], s: Shape, o: Shape, epi: &[Epi], out: &mut [f32]) {
        let c = self.c;
        assert_eq!(s.c, c, "a depthwise convolution over {c} channels");
        out.par_chunks_mut(o.w * c)
            .enumerate()
            .for_each(|(r, row)| {
                let (img, oy) = (r / o.h, r % o.h);
                let src = &x[img * s.h * s.w * c..(img + 1) * s.h * s.w * c];
                vectorised(
                    #[inline(always)]
                    |_| {
                        let win = self.window;
                        for (ox, px) in row.chunks_exact_mut(c).enumerate() {
                            px.copy_from_slice(&self.b);
                            for kh in 0..win.k.0 {
                                let Some(iy) = win.source(0, oy, kh, s.h) else {
                                    continue;
                                };
                                for kw in 0..win.k.1 {
                                    let Some(ix) = win.source(1, ox, kw, s.w) else {
                                        continue;
                                    };
                                    let xs = &src[(iy * s.w + ix) * c..][..c];
                                    let ws = &self.w[(kh * win.k.1 + kw) * c..][..c];
                                    for ((a, xv), wv) in px.iter_mut().zip(xs).zip(ws) {
                                        *a += xv * wv;
                                    }
                                }
                            }
                        }
                        for e in epi {
                            e.apply(row, c);
                        }
                    },
                );
            });
    }
}

/// Every float tensor of a burn module by its path.
pub fn weights_of<M: burn::store::ModuleSnapshot>(module: &M) -> anyhow::Result<Weights> {
    let mut out = HashMap::new();
    for t in module.collect(None, None, false) {
        let name = t.name.clone();
        let data = burn::store::bridge::into_data(t)
            .map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
        let dims = data.shape().to_vec();
        let values = data
            .try_into_vec_as::<f32>()
            .map_err(|e| anyhow::anyhow!("reading {name}: {e:?}"))?;
        out.insert(name, (dims, values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::exec::testing::{largest_difference, values};

    /// A plain NCHW convolution, term by term (weights `[cout][cin/groups][kh][kw]`).
    #[allow(clippy::too_many_arguments)]
    fn conv_ref(
        x: &[f32],
        (c, h, w): (usize, usize, usize),
        wt: &[f32],
        b: &[f32],
        cout: usize,
        groups: usize,
        win: Window,
    ) -> (Vec<f32>, (usize, usize, usize)) {
        let (oh, ow) = win.out(Shape { n: 1, h, w, c });
        let cin_g = c / groups;
        let mut out = vec![0.0; cout * oh * ow];
        for o in 0..cout {
            let g = o / (cout / groups);
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[o];
                    for ci in 0..cin_g {
                        for ky in 0..win.k.0 {
                            for kx in 0..win.k.1 {
                                let iy = (oy * win.stride.0 + ky) as isize - win.pad.0 as isize;
                                let ix = (ox * win.stride.1 + kx) as isize - win.pad.1 as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[((g * cin_g + ci) * h + iy as usize) * w + ix as usize];
                                acc += xv * wt[((o * cin_g + ci) * win.k.0 + ky) * win.k.1 + kx];
                            }
                        }
                    }
                    out[(o * oh + oy) * ow + ox] = acc;
                }
            }
        }
        (out, (cout, oh, ow))
    }

    /// A plan as the generated code spells it, against each operation done literally:
    /// element-wise chains are folded (affine operations merged, the hard-swish recognised)
    /// and the dense strided, depthwise, transposed, pooling and broadcast steps compute
    /// what they should.
    #[test]
    fn a_plan_computes_each_operation_and_folds_the_chains() {
        let plan = "\
conv a x m.c 3x3 2x1 1x1 1
mulc b a m.s
addc c b m.t
addc d c m.three
clip e d 0 6
mul f c e
divc g f m.six
conv h g m.dw 5x3 1x2 2x1 4
gap i h
conv j i m.se 1x1 1x1 0x0 1
hardsigmoid k j 0.2 0.5
mul l h k
convt m l m.up 2x2 2x2
bn n m m.bn 0.00001
relu o n
";
        let (c0, h0, w0) = (3, 9, 7);
        let mut wts = Weights::new();
        let mut put = |name: &str, dims: Vec<usize>, seed: u32| {
            let len = dims.iter().product();
            let v = values(len, seed);
            wts.insert(name.to_owned(), (dims, v.clone()));
            v
        };
        let wc = put("m.c.weight", vec![4, 3, 3, 3], 1);
        let bc = put("m.c.bias", vec![4], 2);
        let s = put("m.s", vec![1], 3)[0] + 1.5;
        let t = put("m.t", vec![4], 4);
        let wdw = put("m.dw.weight", vec![4, 1, 5, 3], 5);
        let bdw = put("m.dw.bias", vec![4], 6);
        let wse = put("m.se.weight", vec![4, 4, 1, 1], 7);
        let bse = put("m.se.bias", vec![4], 8);
        let wup = put("m.up.weight", vec![4, 2, 2, 2], 9);
        let gamma = put("m.bn.gamma", vec![2], 10);
        let beta = put("m.bn.beta", vec![2], 11);
        let mean = put("m.bn.running_mean", vec![2], 12);
        let var: Vec<f32> = put("m.bn.running_var", vec![2], 13)
            .iter()
            .map(|v| v + 1.0)
            .collect();
        wts.insert("m.s".into(), (vec![1], vec![s]));
        wts.insert("m.bn.running_var".into(), (vec![2], var.clone()));
        wts.insert("m.three".into(), (vec![1], vec![3.0]));
        wts.insert("m.six".into(), (vec![1], vec![6.0]));

        // Literally, in NCHW.
        let x = values(c0 * h0 * w0, 14);
        let win = |k, stride, pad| Window { k, stride, pad };
        let (a, (c1, h1, w1)) = conv_ref(
            &x,
            (c0, h0, w0),
            &wc,
            &bc,
            4,
            1,
            win((3, 3), (2, 1), (1, 1)),
        );
        let plane1 = h1 * w1;
        let g: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = v * s + t[i / plane1];
                c * (c + 3.0).clamp(0.0, 6.0) / 6.0
            })
            .collect();
        let (h, (c2, h2, w2)) = conv_ref(
            &g,
            (c1, h1, w1),
            &wdw,
            &bdw,
            4,
            4,
            win((5, 3), (1, 2), (2, 1)),
        );
        let plane2 = h2 * w2;
        let pooled: Vec<f32> = h
            .chunks(plane2)
            .map(|p| p.iter().sum::<f32>() / plane2 as f32)
            .collect();
        let (j, _) = conv_ref(
            &pooled,
            (c2, 1, 1),
            &wse,
            &bse,
            4,
            1,
            win((1, 1), (1, 1), (0, 0)),
        );
        let l: Vec<f32> = h
            .iter()
            .enumerate()
            .map(|(i, v)| v * (j[i / plane2] * 0.2 + 0.5).clamp(0.0, 1.0))
            .collect();
        let (h3, w3) = (2 * h2, 2 * w2);
        let mut want = vec![0.0; 2 * h3 * w3];
        for co in 0..2 {
            for y in 0..h3 {
                for xx in 0..w3 {
                    let mut acc = 0.0;
                    for ci in 0..4 {
                        acc += l[(ci * h2 + y / 2) * w2 + xx / 2]
                            * wup[((ci * 2 + co) * 2 + y % 2) * 2 + xx % 2];
                    }
                    let scale = gamma[co] / (var[co] + 1e-5).sqrt();
                    want[(y * w3 + xx) * 2 + co] = ((acc - mean[co]) * scale + beta[co]).max(0.0);
                }
            }
        }

        let plan = Plan::new(plan, &wts).unwrap();
        // conv (+ affine + hard-swish), depthwise, pool, SE conv (+ hard sigmoid), mul,
        // transposed (+ batch norm + relu).
        assert_eq!(plan.steps(), 6);
        let mut x_nhwc = vec![0.0; x.len()];
        for ch in 0..c0 {
            for p in 0..h0 * w0 {
                x_nhwc[p * c0 + ch] = x[ch * h0 * w0 + p];
            }
        }
        let mut pool = Vec::new();
        for _ in 0..2 {
            let (got, shape) = plan.run(
                x_nhwc.clone(),
                Shape {
                    n: 1,
                    h: h0,
                    w: w0,
                    c: c0,
                },
                &mut pool,
            );
            assert_eq!(
                shape,
                Shape {
                    n: 1,
                    h: h3,
                    w: w3,
                    c: 2
                }
            );
            let diff = largest_difference(&got, &want);
            assert!(diff < 1e-5, "differs by {diff}");
            assert!(want.iter().any(|&v| v > 0.01), "a non-trivial output");
        }
    }

    #[test]
    fn a_plan_naming_missing_weights_or_operations_is_refused() {
        let e = Plan::new("conv a x m.c 1x1 1x1 0x0 1\n", &Weights::new())
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("no weights m.c.weight"), "{e:#}");
        let e = Plan::new("softmax a x\n", &Weights::new()).err().unwrap();
        assert!(format!("{e:#}").contains("\"softmax\""), "{e:#}");
        let e = Plan::new("relu a y\n", &Weights::new()).err().unwrap();
        assert!(format!("{e:#}").contains("reads y before"), "{e:#}");
    }
}
