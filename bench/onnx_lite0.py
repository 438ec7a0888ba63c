#!/usr/bin/env python3
"""Writes EfficientNet-Lite0 as an ONNX graph for the browser benchmark's peer
(onnxruntime-web): the architecture of `shared::model::FusedEfficientNetLite`, the form we
serve and run in the browser (BatchNorm folded into each convolution's bias, ReLU6, no
squeeze-and-excite), with CLASSES outputs at SIDE px. The weights are random: the time of a
forward pass does not depend on their values, and building the graph directly needs only
the small `onnx` package instead of PyTorch.

With `detector CHANNELS TOWER` it writes `shared::model::Detector` instead (what
`detection-fast` is with 64 2 and `detection-accurate` with 96 3): the same backbone up to its
last block, a feature pyramid over the taps after blocks 5, 11 and 16 (1x1 laterals, nearest
upsampling, 3x3 smoothing), and the FCOS head shared by the levels (towers of depthwise 3x3,
pointwise 1x1, GroupNorm of 8-channel groups, ReLU; class, distance `exp(scale*x)*stride`
and centre-ness convolutions), output "y" `[1, CLASSES + 5, points]`.

Usage: onnx_lite0.py OUT.onnx [CLASSES=3] [SIDE=224] [detector CHANNELS TOWER]
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (repeats, kernel, stride, expand, in, out), as in shared/src/model/efficientnet.rs.
# Blocks after which the detector's pyramid taps the features (shared/src/model/detector.rs).
TAPS = (5, 11, 16)
STRIDES = (8, 16, 32)
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
    detector = len(sys.argv) > 4 and sys.argv[4] == "detector"
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

    def conv(x, cin, cout, k, stride, groups=1, relu6=True, weights=None):
        w, b = weights or (const((cout, cin // groups, k, k), (2.0 / (cin // groups * k * k)) ** 0.5),
                           const((cout,), 0.01))
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
    taps, done = [], 0
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
            done += 1
            if done in TAPS:
                taps.append((h, cout))
    if detector:
        channels, tower = int(sys.argv[5]), int(sys.argv[6])
        _, outputs = detector_head(taps, classes, side, channels, tower, conv, const, name, nodes, inits)
        return finish(out, nodes, inits, side, [1, classes + 5, outputs], "detector", classes)
    h = conv(h, 320, 1280, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [h], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    fc_w = const((classes, 1280), 0.01)
    fc_b = const((classes,), 0.01)
    nodes.append(helper.make_node("Gemm", ["features", fc_w, fc_b], ["y"], transB=1))
    finish(out, nodes, inits, side, [1, classes], "efficientnet_lite0", classes)


def level_sides(side):
    """Each pyramid level's side: SAME convolutions halve with rounding up."""
    sides, s = [], side
    for _ in range(5):
        s = -(-s // 2)
        sides.append(s)
    return sides[2:]


def detector_head(taps, classes, side, channels, tower, conv, const, name, nodes, inits):
    sides = level_sides(side)
    lat = [conv(t, c, channels, 1, 1, relu6=False) for t, c in taps]
    for i in range(len(lat) - 2, -1, -1):
        size = name("size")
        inits.append(numpy_helper.from_array(np.array([1, channels, sides[i], sides[i]], dtype=np.int64), size))
        up, added = name("up"), name("sum")
        nodes.append(helper.make_node("Resize", [lat[i + 1], "", "", size], [up], mode="nearest",
                                      nearest_mode="floor", coordinate_transformation_mode="asymmetric"))
        nodes.append(helper.make_node("Add", [lat[i], up], [added]))
        lat[i] = added
    levels = [conv(x, channels, channels, 3, 1, relu6=False) for x in lat]

    def fixed(values):
        n = name("c")
        inits.append(numpy_helper.from_array(values.astype(np.float32), n))
        return n

    # The head's weights, shared by every level.
    def tower_weights():
        layers = []
        for _ in range(tower):
            groups = channels // 8
            layers.append(dict(
                dw=(const((channels, 1, 3, 3), 0.3), const((channels,), 0.0)),
                pw=(const((channels, channels, 1, 1), (2.0 / channels) ** 0.5), const((channels,), 0.01)),
                ones=fixed(np.ones(groups)), zeros=fixed(np.zeros(groups)),
                gamma=const((channels, 1, 1), 0.1), beta=const((channels, 1, 1), 0.1), groups=groups,
            ))
        return layers

    cls_tower, box_tower = tower_weights(), tower_weights()
    outs = {k: (const((c, channels, 3, 3), 0.01), const((c,), 0.01)) for k, c in
            (("box", 4), ("ctr", 1))}
    # The class bias at the prior, as ours starts: few boxes pass the threshold, as with a
    # trained model, so the peer's suppression is not timed on thousands of random boxes.
    outs["cls"] = (const((classes, channels, 3, 3), 0.01), fixed(np.full(classes, -np.log(99.0))))
    scale = const((1,), 0.1)
    inits.append(numpy_helper.from_array(np.array(-10.0, dtype=np.float32), "lo"))
    inits.append(numpy_helper.from_array(np.array(10.0, dtype=np.float32), "hi"))

    def run_tower(x, layers, s):
        for l in layers:
            x = conv(x, channels, channels, 3, 1, groups=channels, relu6=False, weights=l["dw"])
            x = conv(x, channels, channels, 1, 1, relu6=False, weights=l["pw"])
            # GroupNorm as InstanceNormalization over [1, groups, rest], then the affine.
            shape_g, shape_c = name("shape"), name("shape")
            inits.append(numpy_helper.from_array(np.array([1, l["groups"], -1], dtype=np.int64), shape_g))
            inits.append(numpy_helper.from_array(np.array([1, channels, s, s], dtype=np.int64), shape_c))
            g, n, back, m, a, r = (name(p) for p in ("g", "in", "back", "mul", "aff", "relu"))
            nodes.append(helper.make_node("Reshape", [x, shape_g], [g]))
            nodes.append(helper.make_node("InstanceNormalization", [g, l["ones"], l["zeros"]], [n], epsilon=1e-5))
            nodes.append(helper.make_node("Reshape", [n, shape_c], [back]))
            nodes.append(helper.make_node("Mul", [back, l["gamma"]], [m]))
            nodes.append(helper.make_node("Add", [m, l["beta"]], [a]))
            nodes.append(helper.make_node("Relu", [a], [r]))
            x = r
        return x

    per_level, points = [], 0
    for level, (x, s) in enumerate(zip(levels, sides)):
        c = run_tower(x, cls_tower, s)
        b = run_tower(x, box_tower, s)
        cls = conv(c, channels, classes, 3, 1, relu6=False, weights=outs["cls"])
        box = conv(b, channels, 4, 3, 1, relu6=False, weights=outs["box"])
        ctr = conv(b, channels, 1, 3, 1, relu6=False, weights=outs["ctr"])
        stride = name("stride")
        inits.append(numpy_helper.from_array(np.array(float(STRIDES[level]), dtype=np.float32), stride))
        scaled, clipped, e, dist, cat, flat, shape = (name(p) for p in ("sc", "clip", "exp", "dist", "cat", "flat", "shape"))
        nodes.append(helper.make_node("Mul", [box, scale], [scaled]))
        nodes.append(helper.make_node("Clip", [scaled, "lo", "hi"], [clipped]))
        nodes.append(helper.make_node("Exp", [clipped], [e]))
        nodes.append(helper.make_node("Mul", [e, stride], [dist]))
        nodes.append(helper.make_node("Concat", [cls, dist, ctr], [cat], axis=1))
        inits.append(numpy_helper.from_array(np.array([1, classes + 5, s * s], dtype=np.int64), shape))
        nodes.append(helper.make_node("Reshape", [cat, shape], [flat]))
        per_level.append(flat)
        points += s * s
    nodes.append(helper.make_node("Concat", per_level, ["y"], axis=2))
    return nodes, points


def finish(out, nodes, inits, side, y_shape, graph_name, classes):
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
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
