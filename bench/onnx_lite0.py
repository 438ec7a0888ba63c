#!/usr/bin/env python3
"""Writes EfficientNet-Lite0 as an ONNX graph for the browser benchmark's peer
(onnxruntime-web): the architecture of `shared::model::FusedEfficientNetLite`, the form we
serve and run in the browser (BatchNorm folded into each convolution's bias, ReLU6, no
squeeze-and-excite), with CLASSES outputs at SIDE px. The weights are random: the time of a
forward pass does not depend on their values, and building the graph directly needs only
the small `onnx` package instead of PyTorch.

Usage: onnx_lite0.py OUT.onnx [CLASSES=3] [SIDE=224]
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (repeats, kernel, stride, expand, in, out), as in shared/src/model/efficientnet.rs.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def main():
    out = sys.argv[1]
    classes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    side = int(sys.argv[3]) if len(sys.argv) > 3 else 224
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def const(shape, scale):
        n = name("w")
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), n))
        return n

    def conv(x, cin, cout, k, stride, groups=1, relu6=True):
        w = const((cout, cin // groups, k, k), (2.0 / (cin // groups * k * k)) ** 0.5)
        b = const((cout,), 0.01)
        y = name("conv")
        p = k // 2
        nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[p, p, p, p], group=groups))
        if not relu6:
            return y
        z = name("relu6")
        nodes.append(helper.make_node("Clip", [y, "zero", "six"], [z]))
        return z

    inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"))
    inits.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), "six"))
    h = conv("x", 3, 32, 3, 2)
    for repeats, k, stride, expand, cin, cout in STAGES:
        for r in range(repeats):
            cin_r = cin if r == 0 else cout
            s = stride if r == 0 else 1
            x = h
            mid = cin_r * expand
            if expand != 1:
                h = conv(h, cin_r, mid, 1, 1)
            h = conv(h, mid, mid, k, s, groups=mid)
            h = conv(h, mid, cout, 1, 1, relu6=False)
            if s == 1 and cin_r == cout:
                y = name("add")
                nodes.append(helper.make_node("Add", [h, x], [y]))
                h = y
    h = conv(h, 320, 1280, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    fc_w = const((classes, 1280), 0.01)
    fc_b = const((classes,), 0.01)
    nodes.append(helper.make_node("Gemm", ["features", fc_w, fc_b], ["y"], transB=1))
    graph = helper.make_graph(
        nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)
    params = sum(int(np.prod(t.dims)) for t in inits)
    print(f"wrote {out}: {len(nodes)} nodes, {params} parameters, {classes} classes, {side} px")


if __name__ == "__main__":
    main()
