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
