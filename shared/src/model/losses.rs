//! Detection losses burn 0.22 lacks: the sigmoid focal loss (Lin et al. 2017) and the
//! generalised-IoU loss of distance-encoded boxes (FCOS), and the FCOS objective that
//! combines them with the centre-ness cross-entropy.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, sigmoid};

/// Focal loss weight of positives.
pub const FOCAL_ALPHA: f64 = 0.25;
/// Focal loss focusing exponent.
pub const FOCAL_GAMMA: f64 = 2.0;
const EPS: f64 = 1e-6;

/// Element-wise sigmoid focal loss of `logits` against 0/1 `targets`:
/// `-α_t (1 - p_t)^γ log(p_t)`, with `p_t = p` where the target is 1 and `1 - p` where it is 0,
/// `α_t = α` or `1 - α` likewise.
pub fn sigmoid_focal_loss<const D: usize>(
    logits: Tensor<D>,
    targets: Tensor<D>,
    alpha: f64,
    gamma: f64,
) -> Tensor<D> {
    let p = sigmoid(logits.clone());
    // Binary cross-entropy from logits, computed stably through log-sigmoid.
    let ce = -(targets.clone() * log_sigmoid(logits.clone())
        + (targets.clone().neg() + 1.0) * log_sigmoid(logits.neg()));
    let p_t = p.clone() * targets.clone() + (p.neg() + 1.0) * (targets.clone().neg() + 1.0);
    let alpha_t = targets.clone() * alpha + (targets.neg() + 1.0) * (1.0 - alpha);
    alpha_t * (p_t.neg() + 1.0).clamp_min(0.0).powf_scalar(gamma) * ce
}

/// Element-wise `1 - GIoU` of boxes given as distances `[.., 4, ..]` (left, top, right,
/// bottom, along `dim`) from the same point: predicted and target.
pub fn giou_loss_ltrb<const D: usize>(pred: Tensor<D>, target: Tensor<D>, dim: usize) -> Tensor<D> {
    let side = |t: &Tensor<D>, i: usize| t.clone().narrow(dim, i, 1);
    let (pl, pt, pr, pb) = (
        side(&pred, 0),
        side(&pred, 1),
        side(&pred, 2),
        side(&pred, 3),
    );
    let (tl, tt, tr, tb) = (
        side(&target, 0),
        side(&target, 1),
        side(&target, 2),
        side(&target, 3),
    );
    let area_p = (pl.clone() + pr.clone()) * (pt.clone() + pb.clone());
    let area_t = (tl.clone() + tr.clone()) * (tt.clone() + tb.clone());
    let iw = pl.clone().min_pair(tl.clone()) + pr.clone().min_pair(tr.clone());
    let ih = pt.clone().min_pair(tt.clone()) + pb.clone().min_pair(tb.clone());
    let inter = iw.clamp_min(0.0) * ih.clamp_min(0.0);
    let union = area_p + area_t - inter.clone() + EPS;
    let ew = pl.max_pair(tl) + pr.max_pair(tr);
    let eh = pt.max_pair(tt) + pb.max_pair(tb);
    let hull = ew * eh + EPS;
    let giou = inter / union.clone() - (hull.clone() - union) / hull;
    giou.neg() + 1.0
}

/// What the FCOS objective needs besides the head output, for a batch, as `[batch, .., points]`.
pub struct DetectionTargets {
    /// One-hot classes, `[n, classes, p]` (all zero for background).
    pub classes: Tensor<3>,
    /// Distances to the assigned box's sides in pixels, `[n, 4, p]` (zero for background).
    pub ltrb: Tensor<3>,
    /// Centre-ness of positives, `[n, 1, p]` (zero for background).
    pub centerness: Tensor<3>,
    /// 1 at positives, `[n, 1, p]`.
    pub positive: Tensor<3>,
    /// Positives in the batch.
    pub positives: usize,
    /// Sum of the centre-ness targets (the localisation loss's normaliser), known where the
    /// targets were built, so the loss never reads a tensor back from the device.
    pub centerness_sum: f32,
}

/// [`DetectionTargets`] as plain floats, laid out as its tensors (`[n][rows][points]`),
/// for [`fcos_loss_grad`].
pub struct TargetValues {
    /// Images, classes and points.
    pub dims: [usize; 3],
    pub classes: Vec<f32>,
    pub ltrb: Vec<f32>,
    pub centerness: Vec<f32>,
    pub positive: Vec<f32>,
    pub positives: usize,
    pub centerness_sum: f32,
}

impl TargetValues {
    /// All background: `n` images of `points` points, `classes` classes.
    pub fn background(n: usize, classes: usize, points: usize) -> Self {
        Self {
            dims: [n, classes, points],
            classes: vec![0.0; n * classes * points],
            ltrb: vec![0.0; n * 4 * points],
            centerness: vec![0.0; n * points],
            positive: vec![0.0; n * points],
            positives: 0,
            centerness_sum: 0.0,
        }
    }

    pub fn tensors(&self, device: &Device) -> DetectionTargets {
        let [n, classes, p] = self.dims;
        let t3 = |v: &[f32], c: usize| {
            Tensor::<3>::from_data(TensorData::new(v.to_vec(), [n, c, p]), device)
        };
        DetectionTargets {
            classes: t3(&self.classes, classes),
            ltrb: t3(&self.ltrb, 4),
            centerness: t3(&self.centerness, 1),
            positive: t3(&self.positive, 1),
            positives: self.positives,
            centerness_sum: self.centerness_sum,
        }
    }
}

/// [`fcos_loss`]'s total of a head output (`[n][classes + 5][points]` floats) and its
/// gradient with respect to that output, written out (what burn's autodiff gives through
/// `fcos_loss`, tested below): the focal loss `α(1 − p)²·(2p·ln p − (1 − p))` for a
/// positive class, `(1 − α)·p²·(p − 2(1 − p)·ln(1 − p))` for a negative one; the GIoU
/// loss through its intersection, the predicted box's area and the enclosing box;
/// `σ(z) − c` for the centre-ness.
pub fn fcos_loss_grad(out: &[f32], t: &TargetValues) -> (f64, Vec<f32>) {
    let [n, classes, points] = t.dims;
    let rows = classes + 5;
    assert_eq!(
        out.len(),
        n * rows * points,
        "a head output of the targets' size"
    );
    let norm = t.positives.max(1) as f32;
    let ctr_norm = t.centerness_sum.max(1e-6);
    let (alpha, eps) = (FOCAL_ALPHA as f32, EPS as f32);
    let mut grad = vec![0.0f32; out.len()];
    let (mut cls_loss, mut loc_loss, mut ctr_loss) = (0.0f64, 0.0f64, 0.0f64);
    for img in 0..n {
        let o = &out[img * rows * points..(img + 1) * rows * points];
        let g = &mut grad[img * rows * points..(img + 1) * rows * points];
        for k in 0..classes {
            for j in 0..points {
                let x = o[k * points + j];
                let p = 1.0 / (1.0 + (-x).exp());
                // ln σ(x) and ln σ(−x), stably.
                let ls = -((-x).max(0.0) + (-x.abs()).exp().ln_1p());
                let lsn = ls - x;
                let (loss, d) = if t.classes[(img * classes + k) * points + j] > 0.5 {
                    let q = 1.0 - p;
                    (-alpha * q * q * ls, alpha * q * q * (2.0 * p * ls - q))
                } else {
                    (
                        (alpha - 1.0) * p * p * lsn,
                        (1.0 - alpha) * p * p * (p - 2.0 * (1.0 - p) * lsn),
                    )
                };
                cls_loss += f64::from(loss);
                g[k * points + j] = d / norm;
            }
        }
        for j in 0..points {
            let at = img * points + j;
            if t.positive[at] <= 0.0 {
                continue;
            }
            let c = t.centerness[at];
            // Distances: left, top, right, bottom.
            let d: [f32; 4] = std::array::from_fn(|s| o[(classes + s) * points + j]);
            let tg: [f32; 4] = std::array::from_fn(|s| t.ltrb[(img * 4 + s) * points + j]);
            let area_p = (d[0] + d[2]) * (d[1] + d[3]);
            let area_t = (tg[0] + tg[2]) * (tg[1] + tg[3]);
            let iw = d[0].min(tg[0]) + d[2].min(tg[2]);
            let ih = d[1].min(tg[1]) + d[3].min(tg[3]);
            let inter = iw.max(0.0) * ih.max(0.0);
            let union = area_p + area_t - inter + eps;
            let ew = d[0].max(tg[0]) + d[2].max(tg[2]);
            let eh = d[1].max(tg[1]) + d[3].max(tg[3]);
            let hull = ew * eh + eps;
            let giou = inter / union - (hull - union) / hull;
            let w = c / ctr_norm;
            loc_loss += f64::from((1.0 - giou) * w);
            // ∂GIoU/∂ of the intersection, the predicted area and the hull.
            let g_inter = 1.0 / union + inter / (union * union) - 1.0 / hull;
            let g_area = -inter / (union * union) + 1.0 / hull;
            let g_hull = -union / (hull * hull);
            for s in 0..4 {
                // Sides 0, 2 are horizontal (their sums are widths), 1, 3 vertical.
                let (across, other_i, other_e) = if s % 2 == 0 {
                    (d[1] + d[3], ih.max(0.0), eh)
                } else {
                    (d[0] + d[2], iw.max(0.0), ew)
                };
                let own = if s % 2 == 0 { iw } else { ih };
                let d_inter = if d[s] < tg[s] && own > 0.0 {
                    other_i
                } else {
                    0.0
                };
                let d_hull = if d[s] > tg[s] { other_e } else { 0.0 };
                let dg = g_inter * d_inter + g_area * across + g_hull * d_hull;
                g[(classes + s) * points + j] = -w * dg;
            }
            let z = o[(classes + 4) * points + j];
            let ls = -((-z).max(0.0) + (-z.abs()).exp().ln_1p());
            ctr_loss += f64::from(-(c * ls + (1.0 - c) * (ls - z)));
            let sz = 1.0 / (1.0 + (-z).exp());
            g[(classes + 4) * points + j] = (sz - c) / norm;
        }
    }
    let total = (cls_loss + ctr_loss) / f64::from(norm) + loc_loss;
    (total, grad)
}

/// The FCOS objective's three parts, each a mean per positive point (at least one):
/// focal loss over every class of every point; GIoU loss of positives weighted by their
/// centre-ness target (normalised by its sum); centre-ness cross-entropy of positives.
pub struct DetectionLoss {
    pub classification: Tensor<1>,
    pub localization: Tensor<1>,
    pub centerness: Tensor<1>,
}

impl DetectionLoss {
    pub fn total(&self) -> Tensor<1> {
        self.classification.clone() + self.localization.clone() + self.centerness.clone()
    }
}

pub fn fcos_loss(out: Tensor<3>, t: &DetectionTargets) -> DetectionLoss {
    let classes = out.dims()[1] - 5;
    let cls = out.clone().narrow(1, 0, classes);
    let dist = out.clone().narrow(1, classes, 4);
    let ctr = out.narrow(1, classes + 4, 1);
    let norm = t.positives.max(1) as f64;
    let classification =
        sigmoid_focal_loss(cls, t.classes.clone(), FOCAL_ALPHA, FOCAL_GAMMA).sum() / norm;
    // Background targets are all zero; their loss is masked out, and `EPS` keeps it finite.
    let giou = giou_loss_ltrb(dist, t.ltrb.clone(), 1);
    let localization = (giou * t.centerness.clone() * t.positive.clone()).sum()
        / f64::from(t.centerness_sum.max(1e-6));
    let bce = -(t.centerness.clone() * log_sigmoid(ctr.clone())
        + (t.centerness.clone().neg() + 1.0) * log_sigmoid(ctr.neg()));
    let centerness = (bce * t.positive.clone()).sum() / norm;
    DetectionLoss {
        classification,
        localization,
        centerness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t1(v: &[f32], device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec().unwrap()
    }

    /// `fcos_loss_grad` gives what burn's autodiff gives through `fcos_loss`, on a random
    /// head output with positives of several boxes and background.
    #[test]
    fn written_out_gradient_matches_autodiff() {
        use burn::tensor::Distribution;
        let device = Device::flex();
        device.seed(4);
        let ad = device.clone().autodiff();
        let (n, classes, points) = (2, 3, 40);
        let rows = classes + 5;
        let out = Tensor::<3>::random([n, rows, points], Distribution::Normal(0.0, 2.0), &device);
        let mut out_v: Vec<f32> = out.into_data().try_to_vec().unwrap();
        let mut t = TargetValues::background(n, classes, points);
        for img in 0..n {
            for j in (img..points).step_by(3) {
                t.classes[(img * classes + j % classes) * points + j] = 1.0;
                for s in 0..4 {
                    t.ltrb[(img * 4 + s) * points + j] = 4.0 + ((j * 7 + s * 3) % 11) as f32;
                    // Predicted distances are positive (exp in the head), some above and
                    // some below the targets, never equal (where a min or max has no
                    // derivative).
                    let at = (img * rows + classes + s) * points + j;
                    out_v[at] = 2.5 + ((j * 5 + s) % 13) as f32;
                }
                t.centerness[img * points + j] = 0.2 + (j % 5) as f32 * 0.15;
                t.positive[img * points + j] = 1.0;
                t.positives += 1;
            }
        }
        t.centerness_sum = t.centerness.iter().sum();
        let (total, grad) = fcos_loss_grad(&out_v, &t);
        let x =
            Tensor::<3>::from_data(TensorData::new(out_v, [n, rows, points]), &ad).require_grad();
        let loss = fcos_loss(x.clone(), &t.tensors(&ad)).total();
        let want_grad: Vec<f32> = x
            .grad(&loss.backward())
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        let want_total = f64::from(loss.into_scalar::<f32>());
        assert!(
            (total - want_total).abs() < 1e-4 * (1.0 + want_total.abs()),
            "{total} vs {want_total}"
        );
        for (i, (g, w)) in grad.iter().zip(&want_grad).enumerate() {
            assert!(
                (g - w).abs() < 1e-5 + 1e-3 * w.abs(),
                "output {i}: {g} here, {w} from autodiff"
            );
        }
    }

    #[test]
    fn focal_loss_matches_hand_computed_values() {
        let d = Device::flex();
        // x = 0: p = 0.5. Target 1: 0.25 · 0.5² · ln 2 = 0.0433217; target 0: 0.75 · 0.25 · ln 2.
        // x = 2, target 1: p = 0.880797, 0.25 · 0.119203² · -ln(0.880797) = 0.00045104.
        // x = 2, target 0: 0.75 · 0.880797² · -ln(0.119203) = 1.2374 (a confident mistake).
        let got = vals(sigmoid_focal_loss(
            t1(&[0.0, 0.0, 2.0, 2.0], &d),
            t1(&[1.0, 0.0, 1.0, 0.0], &d),
            0.25,
            2.0,
        ));
        let ln2 = std::f32::consts::LN_2;
        let p: f32 = 1.0 / (1.0 + (-2.0f32).exp());
        let want = [
            0.25 * 0.25 * ln2,
            0.75 * 0.25 * ln2,
            0.25 * (1.0 - p).powi(2) * -p.ln(),
            0.75 * p.powi(2) * -(1.0 - p).ln(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        assert!((want[3] - 1.2374).abs() < 1e-3);
        // γ = 0, α = 0.5 is half the plain cross-entropy.
        let ce = vals(sigmoid_focal_loss(t1(&[0.0], &d), t1(&[1.0], &d), 0.5, 0.0));
        assert!((ce[0] - 0.5 * ln2).abs() < 1e-6);
    }

    #[test]
    fn giou_loss_matches_hand_computed_values() {
        let d = Device::flex();
        let boxes = |v: &[[f32; 4]]| {
            let flat: Vec<f32> = v.iter().flatten().copied().collect();
            Tensor::<2>::from_data(TensorData::new(flat, [v.len(), 4]), &d)
        };
        // Same point; pred: 1 left, 1 up, 1 right, 1 down (2×2); target 1, 1, 3, 3 (4×4).
        // Intersection 4, union 16, hull 16: GIoU 0.25, loss 0.75.
        // Identical boxes: loss 0. Pred 2×2 around the point, target 2, 0, 0, 2 from it
        // (left-bottom 2×2): intersection 1·1 = 1, union 7, hull 3·3 = 9: 1 - (1/7 - 2/9).
        let got = vals(giou_loss_ltrb(
            boxes(&[
                [1.0, 1.0, 1.0, 1.0],
                [2.0, 3.0, 4.0, 5.0],
                [1.0, 1.0, 1.0, 1.0],
            ]),
            boxes(&[
                [1.0, 1.0, 3.0, 3.0],
                [2.0, 3.0, 4.0, 5.0],
                [2.0, 0.0, 0.0, 2.0],
            ]),
            1,
        ));
        let want = [0.75, 0.0, 1.0 - (1.0 / 7.0 - 2.0 / 9.0)];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        // The same as the plain-Rust GIoU of the boxes.
        let a = crate::detect::Rect::new(-1.0, -1.0, 1.0, 1.0);
        let b = crate::detect::Rect::new(-2.0, 0.0, 0.0, 2.0);
        assert!((1.0 - a.giou(&b) - want[2]).abs() < 1e-6);
    }

    #[test]
    fn fcos_loss_is_small_for_a_right_answer_and_large_for_a_wrong_one() {
        let d = Device::flex();
        // One image, 2 classes, 2 points: point 0 a class-1 object 2 px each way, point 1 background.
        let t = DetectionTargets {
            classes: Tensor::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0, 0.0], [1, 2, 2]), &d),
            ltrb: Tensor::from_data(
                TensorData::new(vec![2.0f32, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0, 0.0], [1, 4, 2]),
                &d,
            ),
            centerness: Tensor::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 2]), &d),
            positive: Tensor::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 2]), &d),
            positives: 1,
            centerness_sum: 1.0,
        };
        let out = |cls1: f32, bg: f32, dist: f32, ctr: f32| {
            // rows: class 0, class 1, l, t, r, b, centre-ness; columns: the two points.
            let v = vec![
                -9.0, bg, cls1, bg, dist, 1.0, dist, 1.0, dist, 1.0, dist, 1.0, ctr, -9.0,
            ];
            Tensor::<3>::from_data(TensorData::new(v, [1, 7, 2]), &d)
        };
        let good = fcos_loss(out(9.0, -9.0, 2.0, 9.0), &t);
        let bad = fcos_loss(out(-9.0, 9.0, 0.5, -9.0), &t);
        let s = |x: Tensor<1>| x.into_scalar::<f32>();
        assert!(s(good.total()) < 0.01, "{}", s(good.total()));
        assert!(s(good.localization.clone()) < 1e-4);
        // A 1×1 box inside the 4×4 target: GIoU 1/16, loss 15/16.
        assert!((s(bad.localization.clone()) - 15.0 / 16.0).abs() < 1e-4);
        assert!(s(bad.classification.clone()) > 5.0);
        assert!(s(bad.centerness) > 5.0);
    }
}
