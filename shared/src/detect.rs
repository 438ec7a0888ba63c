//! Object-detection math that the trainer, the server and the browser share, in plain Rust
//! (no tensors), so every side turns the same head output into the same boxes:
//!
//! - [`Rect`] geometry: IoU and generalised IoU;
//! - the anchor-free head's grid ([`points`]) over strides 8/16/32, FCOS target assignment
//!   ([`assign`]: centre sampling, one scale range per level, the smallest box wins);
//! - decoding a head output into scored boxes and class-wise non-maximum suppression
//!   ([`decode`], [`nms`]);
//! - evaluation ([`evaluate`]): average precision per class with **all-point
//!   interpolation** (the area under the precision envelope, as Pascal VOC since 2010 and
//!   COCO's per-threshold AP, without COCO's 101-point sampling), mAP@0.5, mAP@0.5:0.95
//!   (IoU 0.50, 0.55, ..., 0.95), precision and recall at the served confidence threshold,
//!   and the precision-recall curve per class. The served threshold is the confidence with
//!   the best F1 over all classes on the validation images (as Ultralytics reports P and R),
//!   so a model serves the boxes its own evaluation found most useful.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::train::{DetectionClassMetrics, DetectionMetrics};

/// Strides of the feature-pyramid levels the head predicts on.
pub const STRIDES: [usize; 3] = [8, 16, 32];
/// The served confidence threshold when a model's evaluation chose none (no detections).
pub const CONF_THRESHOLD: f32 = 0.3;
/// Boxes scoring below this are not even considered (evaluation keeps the rest, for AP).
pub const MIN_SCORE: f32 = 0.05;
/// Two boxes of one class overlapping more than this are one object.
pub const NMS_IOU: f32 = 0.6;
/// Boxes kept per image after suppression.
pub const MAX_DETECTIONS: usize = 100;
/// Candidates per image entering suppression (the highest scoring).
const MAX_CANDIDATES: usize = 1000;

/// An axis-aligned box, corners `(x0, y0)` top-left and `(x1, y1)` bottom-right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Rect {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self { x0, y0, x1, y1 }
    }

    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    fn intersection(&self, o: &Rect) -> f32 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        w * h
    }

    /// Intersection over union; 0 for two empty boxes.
    pub fn iou(&self, o: &Rect) -> f32 {
        let inter = self.intersection(o);
        let union = self.area() + o.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// Generalised IoU (Rezatofighi et al. 2019): IoU minus the share of the smallest
    /// enclosing box that neither box covers; in [-1, 1].
    pub fn giou(&self, o: &Rect) -> f32 {
        let inter = self.intersection(o);
        let union = self.area() + o.area() - inter;
        let hull = Rect::new(
            self.x0.min(o.x0),
            self.y0.min(o.y0),
            self.x1.max(o.x1),
            self.y1.max(o.y1),
        )
        .area();
        if union <= 0.0 || hull <= 0.0 {
            return 0.0;
        }
        inter / union - (hull - union) / hull
    }

    /// The box with x scaled by `sx` and y by `sy`.
    pub fn scaled(&self, sx: f32, sy: f32) -> Rect {
        Rect::new(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy)
    }

    /// The box clipped to `[0, w] × [0, h]`.
    pub fn clipped(&self, w: f32, h: f32) -> Rect {
        Rect::new(
            self.x0.clamp(0.0, w),
            self.y0.clamp(0.0, h),
            self.x1.clamp(0.0, w),
            self.y1.clamp(0.0, h),
        )
    }

    /// Corners top-left, top-right, bottom-right, bottom-left (SPEC §7's `pos` order).
    pub fn corners(&self) -> [[f64; 2]; 4] {
        let (x0, y0, x1, y1) = (
            f64::from(self.x0),
            f64::from(self.y0),
            f64::from(self.x1),
            f64::from(self.y1),
        );
        [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    }
}

/// A box the model found: class index, score in [0, 1], box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub class: usize,
    pub score: f32,
    pub rect: Rect,
}

/// One location of the head's grid: its centre in input pixels and its level's stride.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
    pub stride: f32,
    pub level: usize,
}

/// Side of a level's feature map for an input side (every stride-2 layer pads "same",
/// so each halves rounding up).
pub fn level_side(side: usize, stride: usize) -> usize {
    side.div_ceil(stride)
}

/// Every grid location of every level, level after level, row after row: the order of the
/// head output's last axis.
pub fn points(side: usize) -> Vec<Point> {
    let mut out = Vec::new();
    for (level, &stride) in STRIDES.iter().enumerate() {
        let n = level_side(side, stride);
        for y in 0..n {
            for x in 0..n {
                out.push(Point {
                    x: (x as f32 + 0.5) * stride as f32,
                    y: (y as f32 + 0.5) * stride as f32,
                    stride: stride as f32,
                    level,
                });
            }
        }
    }
    out
}

/// The largest box side (in input pixels) each level is responsible for, FCOS-style,
/// relative to the input side (at 320 px: up to 64, 64-128, above 128).
fn scale_range(level: usize, side: usize) -> (f32, f32) {
    let s = side as f32;
    match level {
        0 => (0.0, 0.2 * s),
        1 => (0.2 * s, 0.4 * s),
        _ => (0.4 * s, f32::INFINITY),
    }
}

/// A point counts as near a box's centre within this many of its level's strides.
const CENTRE_RADIUS: f32 = 1.5;

/// What the head should predict at each point.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// The class of the box the point is assigned to, `None` for background.
    pub class: Vec<Option<usize>>,
    /// Distances (left, top, right, bottom) in input pixels from the point to the sides of
    /// its box; zeros for background.
    pub ltrb: Vec<[f32; 4]>,
    /// FCOS centre-ness of the point in its box, in (0, 1]; 0 for background.
    pub centerness: Vec<f32>,
}

impl Targets {
    pub fn positives(&self) -> usize {
        self.class.iter().filter(|c| c.is_some()).count()
    }
}

/// FCOS target assignment with centre sampling: a point is a positive of a box when it
/// lies inside the box, within [`CENTRE_RADIUS`] strides of its centre, and the box's
/// largest distance from it falls in the point's level range; among several boxes the
/// smallest wins. A box that no point takes this way (tiny, or off the level ranges) takes
/// the points inside it nearest its centre on the level that fits its size best, so no
/// labelled object goes unlearned.
pub fn assign(points: &[Point], side: usize, boxes: &[(Rect, usize)]) -> Targets {
    let n = points.len();
    let mut t = Targets {
        class: vec![None; n],
        ltrb: vec![[0.0; 4]; n],
        centerness: vec![0.0; n],
    };
    let mut best_area = vec![f32::INFINITY; n];
    let mut taken = vec![false; boxes.len()];
    let put = |t: &mut Targets, best_area: &mut [f32], i: usize, b: &Rect, class: usize| {
        let p = points[i];
        let ltrb = [p.x - b.x0, p.y - b.y0, b.x1 - p.x, b.y1 - p.y];
        if b.area() < best_area[i] {
            best_area[i] = b.area();
            t.class[i] = Some(class);
            t.ltrb[i] = ltrb;
            t.centerness[i] = centerness(ltrb);
        }
    };
    for (i, p) in points.iter().enumerate() {
        let (lo, hi) = scale_range(p.level, side);
        for (bi, (b, class)) in boxes.iter().enumerate() {
            let ltrb = [p.x - b.x0, p.y - b.y0, b.x1 - p.x, b.y1 - p.y];
            if ltrb.iter().any(|&d| d <= 0.0) {
                continue;
            }
            let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
            let r = CENTRE_RADIUS * p.stride;
            if (p.x - cx).abs() > r || (p.y - cy).abs() > r {
                continue;
            }
            let reach = ltrb.iter().copied().fold(0.0f32, f32::max);
            if reach < lo || reach > hi {
                continue;
            }
            taken[bi] = true;
            put(&mut t, &mut best_area, i, b, *class);
        }
    }
    for (bi, (b, class)) in boxes.iter().enumerate() {
        if taken[bi] || b.area() <= 0.0 {
            continue;
        }
        let size = b.width().max(b.height());
        let level = (0..STRIDES.len())
            .find(|&l| size <= scale_range(l, side).1)
            .unwrap_or(STRIDES.len() - 1);
        let (cx, cy) = ((b.x0 + b.x1) / 2.0, (b.y0 + b.y1) / 2.0);
        // Points of the level inside the box, nearest the centre first; else the nearest.
        let mut near: Vec<(f32, usize)> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.level == level)
            .map(|(i, p)| ((p.x - cx).powi(2) + (p.y - cy).powi(2), i))
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        let inside: Vec<usize> = near
            .iter()
            .map(|&(_, i)| i)
            .filter(|&i| {
                let p = points[i];
                p.x > b.x0 && p.x < b.x1 && p.y > b.y0 && p.y < b.y1
            })
            .take(4)
            .collect();
        for i in inside {
            put(&mut t, &mut best_area, i, b, *class);
        }
    }
    t
}

/// FCOS centre-ness: `sqrt(min(l,r)/max(l,r) · min(t,b)/max(t,b))`.
pub fn centerness(ltrb: [f32; 4]) -> f32 {
    let [l, t, r, b] = ltrb;
    if l <= 0.0 || t <= 0.0 || r <= 0.0 || b <= 0.0 {
        return 0.0;
    }
    ((l.min(r) / l.max(r)) * (t.min(b) / t.max(b))).sqrt()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Boxes of one image from the head output `out`, laid out `[classes + 5, points]`: class
/// logits, then left/top/right/bottom distances in input pixels, then the centre-ness
/// logit. A box's score is `sqrt(sigmoid(class) · sigmoid(centre-ness))`; boxes under
/// `min_score` are dropped, the rest go through [`nms`]. Boxes are in input pixels,
/// clipped to the input.
pub fn decode(
    out: &[f32],
    classes: usize,
    points: &[Point],
    side: usize,
    min_score: f32,
) -> Vec<Detection> {
    let n = points.len();
    assert_eq!(
        out.len(),
        (classes + 5) * n,
        "head output of the wrong size"
    );
    let row = |r: usize| &out[r * n..(r + 1) * n];
    let ctr = row(classes + 4);
    let mut cands = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let q = sigmoid(ctr[i]);
        for c in 0..classes {
            let score = (sigmoid(row(c)[i]) * q).sqrt();
            if score >= min_score {
                let s = side as f32;
                let rect = Rect::new(
                    p.x - row(classes)[i],
                    p.y - row(classes + 1)[i],
                    p.x + row(classes + 2)[i],
                    p.y + row(classes + 3)[i],
                )
                .clipped(s, s);
                cands.push(Detection {
                    class: c,
                    score,
                    rect,
                });
            }
        }
    }
    nms(cands, NMS_IOU, MAX_DETECTIONS)
}

/// Class-wise non-maximum suppression: highest score first, a box is dropped when it
/// overlaps a kept box of its class by more than `iou`; at most `keep` boxes, sorted by
/// score, highest first. Ties keep the earlier box (stable).
pub fn nms(mut dets: Vec<Detection>, iou: f32, keep: usize) -> Vec<Detection> {
    dets.retain(|d| d.rect.area() > 0.0 && d.score.is_finite());
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    dets.truncate(MAX_CANDIDATES);
    let mut kept: Vec<Detection> = Vec::new();
    for d in dets {
        if kept.len() >= keep {
            break;
        }
        if kept
            .iter()
            .all(|k| k.class != d.class || k.rect.iou(&d.rect) <= iou)
        {
            kept.push(d);
        }
    }
    kept
}

/// One validation image: its true boxes and what the model found (same frame).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub truth: Vec<(Rect, usize)>,
    pub found: Vec<Detection>,
}

/// IoU thresholds of mAP@0.5:0.95.
pub fn coco_thresholds() -> impl Iterator<Item = f32> {
    (0..10).map(|i| 0.5 + 0.05 * i as f32)
}

/// A class's ranked `(score, precision, recall)` points and its number of true boxes.
type ClassCurve = (Vec<(f32, f64, f64)>, usize);

/// Per class at one IoU threshold: the precision-recall points, detection by detection in
/// falling score order, and the number of true boxes.
fn pr_points(images: &[Evaluated], class: usize, iou_t: f32) -> ClassCurve {
    let support: usize = images
        .iter()
        .map(|im| im.truth.iter().filter(|(_, c)| *c == class).count())
        .sum();
    let mut dets: Vec<(f32, usize, Rect)> = images
        .iter()
        .enumerate()
        .flat_map(|(i, im)| {
            im.found
                .iter()
                .filter(|d| d.class == class)
                .map(move |d| (d.score, i, d.rect))
        })
        .collect();
    // Stable: equal scores keep image order, so the figures are reproducible.
    dets.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut used: Vec<Vec<bool>> = images
        .iter()
        .map(|im| vec![false; im.truth.len()])
        .collect();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = Vec::with_capacity(dets.len());
    for (score, i, rect) in dets {
        let mut best = (iou_t, None);
        for (j, (t, c)) in images[i].truth.iter().enumerate() {
            if *c != class || used[i][j] {
                continue;
            }
            let iou = rect.iou(t);
            if iou >= best.0 {
                best = (iou, Some(j));
            }
        }
        match best.1 {
            Some(j) => {
                used[i][j] = true;
                tp += 1;
            }
            None => fp += 1,
        }
        let precision = tp as f64 / (tp + fp) as f64;
        let recall = if support > 0 {
            tp as f64 / support as f64
        } else {
            0.0
        };
        curve.push((score, precision, recall));
    }
    (curve, support)
}

/// All-point interpolated AP: the area under the precision envelope (precision at recall r
/// is the best precision at any recall ≥ r).
fn average_precision(curve: &[(f32, f64, f64)]) -> f64 {
    // Recall never falls along the ranking, so each step adds a non-negative width.
    let mut ap = 0.0;
    let mut envelope = 0.0f64;
    for k in (0..curve.len()).rev() {
        envelope = envelope.max(curve[k].1);
        let prev_recall = if k == 0 { 0.0 } else { curve[k - 1].2 };
        ap += (curve[k].2 - prev_recall) * envelope;
    }
    ap
}

/// Points kept of a class's precision-recall curve for the model page.
const CURVE_POINTS: usize = 50;

/// The confidence threshold with the best F1 at IoU 0.5 over all classes' ranked
/// detections (curves from [`pr_points`]); `None` without detections or true boxes.
fn best_f1_threshold(curves: &[ClassCurve]) -> Option<f32> {
    let truths: usize = curves.iter().map(|c| c.1).sum();
    let mut ranked: Vec<(f32, bool)> = Vec::new();
    for (curve, support) in curves {
        let mut prev = 0.0;
        for &(score, _, recall) in curve {
            // A detection is a hit exactly when it raises its class's recall.
            ranked.push((score, *support > 0 && recall > prev));
            prev = recall;
        }
    }
    if truths == 0 || ranked.is_empty() {
        return None;
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut best) = (0usize, (0.0f64, None));
    for (k, &(score, hit)) in ranked.iter().enumerate() {
        tp += usize::from(hit);
        // Only cut between different scores: a threshold keeps all boxes of equal score.
        if ranked.get(k + 1).is_some_and(|n| n.0 == score) {
            continue;
        }
        let f1 = 2.0 * tp as f64 / (k + 1 + truths) as f64;
        if f1 > best.0 {
            // Just under the cut's score (0.01 at most, halfway to the next lower score at
            // least): every threshold in between keeps the same boxes here, and a service
            // that computes the score in another batch, a few ulps lower, keeps it too.
            let next = ranked.get(k + 1).map_or(MIN_SCORE, |n| n.0);
            best = (
                f1,
                Some(score - ((score - next) / 2.0).min(THRESHOLD_MARGIN)),
            );
        }
    }
    best.1
}

/// The most the best-F1 threshold sits under the score it cuts at.
const THRESHOLD_MARGIN: f32 = 0.01;

/// Detection metrics of a model on its validation images (see the module docs for the
/// definitions), at `conf_threshold` or, when `None`, at the best-F1 threshold. Classes
/// without true boxes in the split are left out of the means.
pub fn evaluate(
    labels: &[String],
    images: &[Evaluated],
    conf_threshold: Option<f32>,
) -> DetectionMetrics {
    let curves: Vec<ClassCurve> = (0..labels.len())
        .map(|c| pr_points(images, c, 0.5))
        .collect();
    let conf_threshold = conf_threshold
        .or_else(|| best_f1_threshold(&curves))
        .unwrap_or(CONF_THRESHOLD)
        .max(MIN_SCORE);
    let mut per_class = BTreeMap::new();
    let (mut sum50, mut sum_coco, mut present) = (0.0, 0.0, 0usize);
    let (mut tp_all, mut found_all, mut truth_all) = (0usize, 0usize, 0usize);
    for (c, label) in labels.iter().enumerate() {
        let (curve, support) = curves[c].clone();
        let ap50 = average_precision(&curve);
        let ap_coco = coco_thresholds()
            .map(|t| average_precision(&pr_points(images, c, t).0))
            .sum::<f64>()
            / 10.0;
        let at = curve.iter().take_while(|p| p.0 >= conf_threshold).last();
        let found = curve.iter().filter(|p| p.0 >= conf_threshold).count();
        let (precision, recall) = at.map_or((0.0, 0.0), |p| (p.1, p.2));
        let tp = (recall * support as f64).round() as usize;
        tp_all += tp;
        found_all += found;
        truth_all += support;
        let step = curve.len().div_ceil(CURVE_POINTS).max(1);
        let mut pr_curve: Vec<[f64; 3]> = curve
            .iter()
            .step_by(step)
            .map(|p| [f64::from(p.0), p.1, p.2])
            .collect();
        if let Some(last) = curve.last()
            && (curve.len() - 1) % step != 0
        {
            pr_curve.push([f64::from(last.0), last.1, last.2]);
        }
        if support > 0 {
            present += 1;
            sum50 += ap50;
            sum_coco += ap_coco;
        }
        per_class.insert(
            label.clone(),
            DetectionClassMetrics {
                ap: ap50,
                ap_50_95: ap_coco,
                precision,
                recall,
                support: support as u64,
                pr_curve,
            },
        );
    }
    let mean = |s: f64| if present > 0 { s / present as f64 } else { 0.0 };
    DetectionMetrics {
        map: mean(sum50),
        map_50_95: mean(sum_coco),
        precision: if found_all > 0 {
            tp_all as f64 / found_all as f64
        } else {
            0.0
        },
        recall: if truth_all > 0 {
            tp_all as f64 / truth_all as f64
        } else {
            0.0
        },
        conf_threshold: f64::from(conf_threshold),
        per_class,
        ..DetectionMetrics::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn iou_and_giou_match_hand_computed_values() {
        let a = Rect::new(0.0, 0.0, 2.0, 2.0);
        let b = Rect::new(1.0, 1.0, 3.0, 3.0);
        // Intersection 1, union 7, hull 9.
        assert!(close(f64::from(a.iou(&b)), 1.0 / 7.0));
        assert!(close(f64::from(a.giou(&b)), 1.0 / 7.0 - 2.0 / 9.0));
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.giou(&a), 1.0);
        // Disjoint: IoU 0; GIoU -(hull - union)/hull = -(6 - 2)/6 with a gap of width 1.
        let c = Rect::new(3.0, 0.0, 4.0, 2.0);
        assert_eq!(a.iou(&c), 0.0);
        assert!(close(f64::from(a.giou(&c)), -(8.0 - 6.0) / 8.0));
        assert_eq!(Rect::new(1.0, 1.0, 1.0, 5.0).iou(&a), 0.0);
    }

    #[test]
    fn corners_go_clockwise_from_top_left() {
        let r = Rect::new(0.1, 0.2, 0.5, 0.7);
        let c = r.corners();
        assert_eq!(c[0], [f64::from(0.1f32), f64::from(0.2f32)]);
        assert_eq!(c[1], [f64::from(0.5f32), f64::from(0.2f32)]);
        assert_eq!(c[2], [f64::from(0.5f32), f64::from(0.7f32)]);
        assert_eq!(c[3], [f64::from(0.1f32), f64::from(0.7f32)]);
    }

    #[test]
    fn grid_covers_each_level() {
        let p = points(320);
        assert_eq!(p.len(), 40 * 40 + 20 * 20 + 10 * 10);
        assert_eq!((p[0].x, p[0].y, p[0].stride), (4.0, 4.0, 8.0));
        assert_eq!(p[1600].level, 1);
        assert_eq!((p[1600].x, p[1600].y), (8.0, 8.0));
        assert_eq!(points(100).len(), 13 * 13 + 7 * 7 + 4 * 4);
    }

    #[test]
    fn assignment_picks_centre_points_on_the_right_level() {
        let side = 320;
        let pts = points(side);
        // A 40-px box (level 0) and a 200-px box (level 2).
        let small = Rect::new(100.0, 100.0, 140.0, 140.0);
        let large = Rect::new(0.0, 0.0, 200.0, 200.0);
        let t = assign(&pts, side, &[(small, 1), (large, 0)]);
        let pos: Vec<usize> = (0..pts.len()).filter(|&i| t.class[i].is_some()).collect();
        assert!(!pos.is_empty());
        for &i in &pos {
            let p = pts[i];
            match t.class[i] {
                Some(1) => {
                    assert_eq!(p.level, 0);
                    assert!((p.x - 120.0).abs() <= 12.0 && (p.y - 120.0).abs() <= 12.0);
                    let [l, tp, r, b] = t.ltrb[i];
                    assert_eq!(
                        (p.x - l, p.y - tp, p.x + r, p.y + b),
                        (100.0, 100.0, 140.0, 140.0)
                    );
                }
                // Its centre points reach 100-120 px: the middle or top level.
                Some(0) => assert!(p.level >= 1),
                _ => unreachable!(),
            }
        }
        // Stride-8 points within 12 px of 120 on each axis: 108, 116, 124, 132.
        assert_eq!(
            pos.iter().filter(|&&i| t.class[i] == Some(1)).count(),
            4 * 4
        );
        // The point at the exact centre would have centre-ness 1; 116 and 124 are near it.
        let best = pos.iter().map(|&i| t.centerness[i]).fold(0.0f32, f32::max);
        assert!(best > 0.8);
        // A tiny box still gets points.
        let tiny = Rect::new(50.0, 50.0, 53.0, 53.0);
        let t = assign(&pts, side, &[(tiny, 0)]);
        assert!(t.positives() >= 1);
        // No boxes: all background.
        assert_eq!(assign(&pts, side, &[]).positives(), 0);
    }

    #[test]
    fn centerness_is_one_at_the_centre() {
        assert_eq!(centerness([5.0, 5.0, 5.0, 5.0]), 1.0);
        assert!(close(
            f64::from(centerness([1.0, 2.0, 3.0, 2.0])),
            (1.0f64 / 3.0).sqrt()
        ));
        assert_eq!(centerness([0.0, 1.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_per_class() {
        let d = |class, score, x0| Detection {
            class,
            score,
            rect: Rect::new(x0, 0.0, x0 + 10.0, 10.0),
        };
        let kept = nms(
            vec![
                d(0, 0.5, 1.0),
                d(0, 0.9, 0.0),
                d(1, 0.8, 0.0),
                d(0, 0.7, 50.0),
            ],
            0.5,
            10,
        );
        // (0, 0.5, x=1) overlaps (0, 0.9, x=0) by 9/11: dropped; class 1 is kept.
        assert_eq!(kept, vec![d(0, 0.9, 0.0), d(1, 0.8, 0.0), d(0, 0.7, 50.0)]);
        assert_eq!(nms(vec![d(0, 0.9, 0.0), d(0, 0.8, 50.0)], 0.5, 1).len(), 1);
    }

    #[test]
    fn decode_reads_the_head_layout() {
        let side = 64;
        let pts = points(side);
        let n = pts.len();
        let classes = 2;
        // Everything background (logit -20) but point 10, class 1, a 10-px box around it.
        let mut out = vec![-20.0f32; (classes + 5) * n];
        out[n + 10] = 20.0;
        for r in 0..4 {
            out[(classes + r) * n + 10] = 5.0;
        }
        out[(classes + 4) * n + 10] = 20.0;
        let dets = decode(&out, classes, &pts, side, MIN_SCORE);
        assert_eq!(dets.len(), 1);
        let p = pts[10];
        assert_eq!(dets[0].class, 1);
        assert!(dets[0].score > 0.999);
        assert_eq!(
            dets[0].rect,
            Rect::new(p.x - 5.0, p.y - 5.0, p.x + 5.0, p.y + 5.0)
        );
    }

    fn det(class: usize, score: f32, r: Rect) -> Detection {
        Detection {
            class,
            score,
            rect: r,
        }
    }

    #[test]
    fn average_precision_of_a_known_ranking() {
        let a = Rect::new(0.0, 0.0, 10.0, 10.0);
        let b = Rect::new(20.0, 20.0, 30.0, 30.0);
        let c = Rect::new(40.0, 40.0, 50.0, 50.0);
        let miss = Rect::new(60.0, 60.0, 70.0, 70.0);
        // Image 1: truths a, b; image 2: truth c. Ranked: a (TP), miss (FP), c (TP), and b
        // never found. Precision/recall: 1/1 at 1/3, 1/2 at 1/3, 2/3 at 2/3.
        let images = vec![
            Evaluated {
                truth: vec![(a, 0), (b, 0)],
                found: vec![det(0, 0.9, a), det(0, 0.8, miss)],
            },
            Evaluated {
                truth: vec![(c, 0)],
                found: vec![det(0, 0.7, c)],
            },
        ];
        let labels = vec!["cell".to_owned()];
        let m = evaluate(&labels, &images, Some(0.75));
        // All-point: 1/3 · 1 + (2/3 − 1/3) · 2/3 = 5/9.
        assert!(close(m.map, 5.0 / 9.0), "{}", m.map);
        let cell = &m.per_class["cell"];
        assert_eq!(cell.support, 3);
        // At threshold 0.75: a (TP) and miss (FP) are served.
        assert!(close(cell.precision, 0.5) && close(cell.recall, 1.0 / 3.0));
        assert!(close(m.precision, 0.5) && close(m.recall, 1.0 / 3.0));
        // Perfect boxes: the same AP at every IoU threshold.
        assert!(close(m.map_50_95, 5.0 / 9.0));
        assert_eq!(cell.pr_curve.len(), 3);
        // Chosen by F1: after a (TP) F1 = 2/4, after the miss 2/5, after c 4/6: c's 0.7,
        // less the margin.
        let chosen = evaluate(&labels, &images, None);
        assert!(close(chosen.conf_threshold, f64::from(0.7f32 - 0.01)));
        assert!(close(chosen.precision, 2.0 / 3.0) && close(chosen.recall, 2.0 / 3.0));
    }

    #[test]
    fn loose_boxes_lose_ap_at_strict_thresholds_and_duplicates_are_false() {
        let t = Rect::new(0.0, 0.0, 10.0, 10.0);
        // IoU 0.64 with the truth: a hit at 0.5, 0.55, 0.6; a miss from 0.65 up.
        let loose = Rect::new(0.0, 0.0, 10.0, 6.4);
        let images = vec![Evaluated {
            truth: vec![(t, 0)],
            found: vec![det(0, 0.9, loose), det(0, 0.8, t)],
        }];
        let m = evaluate(&["x".to_owned()], &images, Some(0.5));
        // At 0.5: loose is the TP, t a duplicate (FP): AP 1. From 0.65: loose FP, t TP: AP 1/2.
        assert!(close(m.map, 1.0));
        assert!(
            close(m.map_50_95, (3.0 * 1.0 + 7.0 * 0.5) / 10.0),
            "{}",
            m.map_50_95
        );
        // A class with no true boxes does not count in the mean; none found gives AP 0.
        let m = evaluate(
            &["x".to_owned(), "y".to_owned()],
            &[Evaluated {
                truth: vec![(t, 0)],
                found: vec![det(1, 0.9, t)],
            }],
            Some(0.5),
        );
        assert!(close(m.map, 0.0));
        assert_eq!(m.per_class["y"].support, 0);
    }
}
