"""Runs an ONNX model on one float32 tensor with onnxruntime (the reference the burn import
is checked against): ort_run.py MODEL INPUT.f32 SHAPE(comma-separated) OUTPUT.f32"""
import sys

import numpy as np
import onnxruntime as ort

model, inp, shape, out = sys.argv[1:5]
x = np.fromfile(inp, dtype="<f4").reshape([int(v) for v in shape.split(",")])
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
y = session.run(None, {session.get_inputs()[0].name: x})[0]
y.astype("<f4").tofile(out)
print(",".join(str(d) for d in y.shape))
