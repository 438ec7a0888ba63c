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

Usage: predict_peer.py MODEL IMAGE SECONDS CONCURRENCY [CONCURRENCY ...]
"""
import io
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

    def one():
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BILINEAR)
        x = ((np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]
        logits = sess.run(None, {"x": np.ascontiguousarray(x)})[0][0]
        e = np.exp(logits - logits.max())
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
