"""The OCR predict benchmark's peer: RapidOCR 1.4.4 (onnxruntime on all cores, the same
PP-OCRv4 det/rec ONNX files our models are imported from; no angle classifier and the
detector input's longer side at most 960, like ours) reading one photo per call, as our
endpoint does per request after parsing: decode, detect, cut and read each line.

No HTTP: measured in-process with C client threads, each one call at a time, which is an
upper bound for any server built on it. Prints, per concurrency, what wrk prints for ours.

rapidocr_throughput.py IMAGE SECONDS CONCURRENCY [CONCURRENCY ...]"""
import sys
import threading
import time

import numpy as np
from rapidocr_onnxruntime import RapidOCR

image, seconds = sys.argv[1], float(sys.argv[2])
levels = [int(c) for c in sys.argv[3:]]
data = open(image, "rb").read()
engine = RapidOCR(use_cls=False, det_limit_side_len=960, det_limit_type="max")
result, _ = engine(data, use_cls=False)
print("peer reads:", [(t, round(float(c), 3)) for _, t, c in result or []])
for c in levels:
    lat = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client():
        mine = []
        while time.perf_counter() < stop:
            t = time.perf_counter()
            engine(data, use_cls=False)
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
    lat_ms = np.array(lat) * 1000
    print(f"peer c{c}: {len(lat) / wall:.2f} req/s, p50 {np.percentile(lat_ms, 50):.0f} ms, "
          f"p99 {np.percentile(lat_ms, 99):.0f} ms")
