"""The OCR benchmark's peer: RapidOCR 1.4.4 (onnxruntime, the same PP-OCRv4 det/rec ONNX files
we import; no angle classifier and the same detector input size, like ours) over the validation photos the Rust benchmark
lists, scored the same way (one-to-one IoU >= 0.5 matching, normalised texts).
rapidocr_peer.py LIST   (lines: photo<TAB>x<TAB>y<TAB>w<TAB>h<TAB>TEXT)"""
import re
import sys
import time

from rapidocr_onnxruntime import RapidOCR


def norm(s):
    return "".join(c for c in s if c.isalnum()).upper()


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0


def lev(a, b):
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        p, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            p, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, p + (ca != cb))
    return d[len(b)]


rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
# The same detector input as ours: the longer side scaled to at most 960 (RapidOCR's default
# instead scales the shorter side up to 736: 1312x736 for these 1280x720 photos).
engine = RapidOCR(use_cls=False, det_limit_side_len=960, det_limit_type="max")
engine(rows[0][0])  # warm-up, as the Rust side loads its models before timing
exact = edits = chars = found = predicted = 0
t0 = time.perf_counter()
for photo, x, y, w, h, text in rows:
    x, y, w, h = map(float, (x, y, w, h))
    truth = [x, y, x + w, y + h]
    result, _ = engine(photo, use_cls=False)
    lines = []
    for pts, t, _conf in result or []:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        lines.append(([min(xs), min(ys), max(xs), max(ys)], t))
    predicted += len(lines)
    best = max(lines, key=lambda l: iou(l[0], truth), default=None)
    got = ""
    if best is not None and iou(best[0], truth) >= 0.5:
        found += 1
        got = norm(best[1])
    exact += got == norm(text)
    edits += lev(got, norm(text))
    chars += len(norm(text))
secs = time.perf_counter() - t0
n = len(rows)
p, r = found / max(predicted, 1), found / n
print(
    f"RapidOCR 1.4.4 (onnxruntime): exact match {exact / n:.3f}, CER {edits / chars:.3f}, "
    f"detection P {p:.3f} R {r:.3f} H {2 * p * r / max(p + r, 1e-9):.3f}; {n / secs:.2f} pages/s ({n} pages)"
)
