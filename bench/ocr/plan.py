"""Writes the serving plan of a generated PP-OCR model: its forward pass as one operation per
line, in order, with every weight named by its path in the burn module (the names
`ModuleSnapshot::collect` gives). The server's channels-last executor
(`server/src/serve/plan.rs`) runs this list with the burn module's own weights, so a
fine-tuned model is served as it was trained. plan.py MODEL.rs MODEL.plan [LAST]: with LAST
(e.g. submodule6) the plan stops after that submodule and burn runs the rest.

Lines: `OP OUT IN... [ARGS]`, values named as in the generated code, `x` the input.
  conv OUT IN PATH K S P G   a Conv2d: kernel KHxKW, stride SHxSW, padding PHxPW (before and
                             after), G groups (weights PATH.weight, PATH.bias when it has one)
  convt OUT IN PATH K S      a ConvTranspose2d without padding
  bn OUT IN PATH EPS         a BatchNorm in inference mode
  gap OUT IN                 global average pool
  resize OUT IN S            nearest upsampling by S
  mulc/addc/divc OUT IN PATH a constant (one value, or one per channel) times/plus/over IN
  mul/add OUT A B            element-wise, B broadcast over the pixels when it has one
  clip OUT IN LO HI, relu OUT IN, sigmoid OUT IN, hardsigmoid OUT IN ALPHA BETA
  cat OUT A B...             channels concatenated
The last line's OUT is the output."""
import re
import sys

rs_path, plan_path = sys.argv[1:3]
last = sys.argv[3] if len(sys.argv) > 3 else None
src = open(rs_path).read()

# One entry per submodule forward, in the order the model's forward calls them.
bodies = {}
for m in re.finditer(r"impl (Submodule\d+) \{.*?pub fn forward\((.*?)\)\s*->[^{]*\{(.*?)\n    \}\n\}", src, re.S):
    bodies[m.group(1).lower()] = m.group(3)
model = re.search(r"impl Model \{.*?pub fn forward\(.*?\{(.*?)\n    \}\n\}", src, re.S).group(1)
order = re.findall(r"self\s*\.\s*(submodule\d+)\s*\.forward", model)
if not order:
    sys.exit("no submodule calls in Model::forward")
if last:
    order = order[: order.index(last) + 1]

CONST = r"\(?(constant\d+)_out1\)?(?:\.unsqueeze_dims\(&\[[0-9isize, ]*\]\))?"
VAL = r"([a-z0-9_]+)(?:\.clone\(\))?"
PATTERNS = [
    (rf"self\.(conv2d\d+)\.forward\({VAL}\)", lambda g, p: f"conv {{}} {g[1]} {p}.{g[0]} {layer[g[0]]}"),
    (rf"self\.(convtranspose2d\d+)\.forward\({VAL}\)",
     lambda g, p: f"convt {{}} {g[1]} {p}.{g[0]} {layer[g[0]]}"),
    (rf"self\.(batchnormalization\d+)\.forward\({VAL}\)",
     lambda g, p: f"bn {{}} {g[1]} {p}.{g[0]} {layer[g[0]]}"),
    (rf"self\.(globalaveragepool\d+)\.forward\({VAL}\)", lambda g, p: f"gap {{}} {g[1]}"),
    (rf"self\.(resize\d+)\.forward\({VAL}\)", lambda g, p: f"resize {{}} {g[1]} {resize[g[0]]}"),
    (rf"{CONST}\.mul\({VAL}\)", lambda g, p: f"mulc {{}} {g[1]} {p}.{g[0]}"),
    (rf"{VAL}\.mul\({CONST}\)", lambda g, p: f"mulc {{}} {g[0]} {p}.{g[1]}"),
    (rf"{VAL}\.add\({CONST}\)", lambda g, p: f"addc {{}} {g[0]} {p}.{g[1]}"),
    (rf"{VAL}\.div\({CONST}\)", lambda g, p: f"divc {{}} {g[0]} {p}.{g[1]}"),
    (rf"{VAL}\.clamp\(([-0-9.e]+)f64,([-0-9.e]+)f64\)", lambda g, p: f"clip {{}} {g[0]} {g[1]} {g[2]}"),
    (rf"{VAL}\.mul\({VAL}\)", lambda g, p: f"mul {{}} {g[0]} {g[1]}"),
    (rf"{VAL}\.add\({VAL}\)", lambda g, p: f"add {{}} {g[0]} {g[1]}"),
    (rf"burn::tensor::activation::relu\({VAL}\)", lambda g, p: f"relu {{}} {g[0]}"),
    (rf"burn::tensor::activation::sigmoid\({VAL}\)", lambda g, p: f"sigmoid {{}} {g[0]}"),
    (rf"burn::tensor::activation::hard_sigmoid\({VAL},([0-9.e-]+),([0-9.e-]+)\)",
     lambda g, p: f"hardsigmoid {{}} {g[0]} {g[1]} {g[2]}"),
    (r"burn::tensor::Tensor::cat\(\[([a-z0-9_, ]+)\]\.into\(\),1,?\)",
     lambda g, p: "cat {} " + " ".join(v.strip() for v in g[0].split(",") if v.strip())),
]

# Nearest-upsampling factors, from each Interpolate2d's config.
resize = {}
for m in re.finditer(r"let (resize\d+) = burn::nn::interpolate::Interpolate2dConfig::new\(\)(.*?);", src, re.S):
    cfg = m.group(2)
    s = re.search(r"with_scale_factor\(Some\(\[([0-9.]+), ([0-9.]+)\]\)\)", cfg)
    if not s or s.group(1) != s.group(2) or "InterpolateMode::Nearest" not in cfg:
        sys.exit(f"{m.group(1)}: only square nearest upsampling is planned")
    resize[m.group(1)] = str(int(float(s.group(1))))

# Each layer's attributes, from its config (layer names are unique in the generated file).
layer = {}
for m in re.finditer(r"let (conv2d\d+) = Conv2dConfig::new\(\[\d+, \d+\], \[(\d+), (\d+)\]\)(.*?);", src, re.S):
    name, kh, kw, cfg = m.groups()
    stride = re.search(r"with_stride\(\[(\d+), (\d+)\]\)", cfg).groups()
    groups = re.search(r"with_groups\((\d+)\)", cfg).group(1)
    if "PaddingConfig2d::Valid" in cfg:
        pad = "0x0"
    else:
        # burn's Explicit(top, left, bottom, right)
        t, l, b, r = re.search(r"PaddingConfig2d::Explicit\(([0-9, ]+)\)", cfg).group(1).split(", ")
        if (t, l) != (b, r):
            sys.exit(f"{name}: only padding equal before and after is planned")
        pad = f"{t}x{l}"
    if "with_dilation([1, 1])" not in cfg:
        sys.exit(f"{name}: only undilated convolutions are planned")
    layer[name] = f"{kh}x{kw} {stride[0]}x{stride[1]} {pad} {groups}"
for m in re.finditer(r"let (convtranspose2d\d+) = ConvTranspose2dConfig::new\(\[\d+, \d+\], \[(\d+), (\d+)\]\)(.*?);", src, re.S):
    name, kh, kw, cfg = m.groups()
    stride = re.search(r"with_stride\(\[(\d+), (\d+)\]\)", cfg).groups()
    if not all(x in cfg for x in ("with_padding([0, 0])", "with_padding_out([0, 0])", "with_groups(1)")):
        sys.exit(f"{name}: only unpadded ungrouped transposed convolutions are planned")
    layer[name] = f"{kh}x{kw} {stride[0]}x{stride[1]}"
for m in re.finditer(r"let (batchnormalization\d+) = BatchNormConfig::new\(\d+\)\s*\.with_epsilon\(([0-9.e-]+)f64\)", src):
    layer[m.group(1)] = m.group(2)

lines = []
for sub in order:
    for stmt in bodies[sub].split(";"):
        stmt = re.sub(r"\s+", "", stmt)
        if not stmt.startswith("let") or re.match(r"let(constant\d+)_out1=self\.\1\.val\(\)$", stmt):
            continue
        m = re.match(r"let([a-z0-9_]+)=(.*)$", stmt)
        if not m:
            sys.exit(f"{sub}: cannot plan {stmt}")
        out, expr = m.groups()
        for pat, fmt in PATTERNS:
            g = re.fullmatch(pat, expr)
            if g:
                lines.append(fmt(g.groups(), sub).format(out))
                break
        else:
            sys.exit(f"{sub}: cannot plan {expr}")

with open(plan_path, "w") as f:
    f.write(f"# Generated by bench/ocr/plan.py from {rs_path.split('/')[-1]}: the serving plan (see plan.py).\n")
    if last:
        f.write(f"# Through {last}: burn runs the rest.\n")
    f.write("\n".join(lines) + "\n")
print(f"{len(lines)} operations")
