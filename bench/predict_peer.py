#!/usr/bin/env python3
"""The onnxruntime peer of the predict benchmark: EfficientNet-Lite0 (the architecture of
`efficientnet-lite-pytorch`, ImageNet weights from the same .pth, a 3-way head) exported to
ONNX and run by onnxruntime on the CPU, doing per request what our endpoint does after
parsing: decode the image, resize to 224 px, normalise, one forward pass, softmax.

No HTTP: the peer is measured in-process with C client threads, each one request at a time,
which is an upper bound for any server built on it. Prints, per concurrency, the same
figures as wrk prints for ours: requests/s, p50, p99.

MODEL is the .pth (exported here through PyTorch, as in issue #4) or a ready .onnx of the
same architecture (bench/onnx_lite0.py writes one without PyTorch: random weights, which do
not change the time; input "x", output "y").

A detector's graph (output `[1, classes + 5, points]`, bench/onnx_lite0.py's `detector`
mode) is timed the same way, with what our endpoint does after the forward pass: scores
`sqrt(sigmoid(class) * sigmoid(centre-ness))` over the grid, the boxes at or above THRESHOLD
(env, default 0.3), class-wise suppression at IoU 0.6 (shared/src/detect.rs).

Usage: predict_peer.py MODEL IMAGE SECONDS CONCURRENCY [CONCURRENCY ...]
"""
import io
import os
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def export(pth, path):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(pth, map_location="cpu"), strict=True)
    model._fc = torch.nn.Linear(1280, 3)
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), path, input_names=["x"],
                      output_names=["y"], opset_version=17, dynamo=False)


STRIDES = (8, 16, 32)


def grid(side):
    """The centres of every level's cells, in input pixels (`shared::detect::points`)."""
    pts, s = [], side
    for level in range(5):
        s = -(-s // 2)
        if level >= 2:
            stride = STRIDES[level - 2]
            ys, xs = np.mgrid[0:s, 0:s]
            pts.append(np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], 1))
    return np.concatenate(pts).astype(np.float32)


def boxes(out, points, side, threshold, iou=0.6, keep=100):
    classes = out.shape[0] - 5
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))
    scores = np.sqrt(sig(out[:classes]) * sig(out[classes + 4])[None])
    cls, idx = np.nonzero(scores >= threshold)
    if len(idx) == 0:
        return []
    ltrb = out[classes:classes + 4, idx].T
    p = points[idx]
    rect = np.clip(np.concatenate([p - ltrb[:, :2], p + ltrb[:, 2:]], 1), 0, side)
    s = scores[cls, idx]
    kept = []
    for i in np.argsort(-s, kind="stable")[:1000]:
        if len(kept) >= keep:
            break
        r = rect[i]
        ok = True
        for j in kept:
            if cls[j] != cls[i]:
                continue
            q = rect[j]
            w = max(0.0, min(r[2], q[2]) - max(r[0], q[0]))
            h = max(0.0, min(r[3], q[3]) - max(r[1], q[1]))
            inter = w * h
            union = (r[2] - r[0]) * (r[3] - r[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            if union > 0 and inter / union > iou:
                ok = False
                break
        if ok:
            kept.append(i)
    return [(int(cls[i]), float(s[i]), rect[i]) for i in kept]


def main():
    model, image, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    levels = [int(c) for c in sys.argv[4:]]
    onnx_path = model
    if not model.endswith(".onnx"):
        onnx_path = "/tmp/autolearn-lite0.onnx"
        export(model, onnx_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 0  # all cores, as burn's flex does
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    data = open(image, "rb").read()
    side = sess.get_inputs()[0].shape[2]
    detector = len(sess.get_outputs()[0].shape) == 3
    points = grid(side)
    threshold = float(os.environ.get("THRESHOLD", "0.3"))

    def one():
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((side, side), Image.BILINEAR)
        x = ((np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]
        out = sess.run(None, {"x": np.ascontiguousarray(x)})[0][0]
        if detector:
            return boxes(out, points, side, threshold)
        e = np.exp(out - out.max())
        return e / e.sum()

    for _ in range(5):
        one()
    for c in levels:
        lat = []
        lock = threading.Lock()
        stop = time.perf_counter() + seconds

        def client():
            mine = []
            while time.perf_counter() < stop:
                t = time.perf_counter()
                one()
                mine.append(time.perf_counter() - t)
            with lock:
                lat.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(c)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        print(f"peer c{c}: {len(lat) / wall:.1f} req/s, p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms")


if __name__ == "__main__":
    main()
