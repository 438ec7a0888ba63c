"""Writes the shape constants that onnx2burn's generated forward reads back from the device
(`castN.to_data()` while building a Reshape's shape) in as numbers, from the weight map's
`=N` entries, and drops the then unused loads. A read back blocks, which WebGPU in a
browser cannot do; the values never change. inline_shapes.py MODEL.rs MODEL.map"""
import re
import sys

rs_path, map_path = sys.argv[1:3]
src = open(rs_path).read()
values = {}
for line in open(map_path):
    m = re.match(r"(\S+)\.(constant\d+) =(-?\d+)", line)
    if m:
        values[m.group(2)] = m.group(3)
casts = dict(re.findall(r"let (cast\d+_out1) = (constant\d+)_out1\.cast\(burn::tensor::DType::I64\);", src))
read_back = re.compile(
    r"let (tensor_data_\d+) = (cast\d+_out1)\.cast\(burn::tensor::DType::I64\)\.to_data\(\);\s*\n"
    r"\s*shape_parts\.extend\(\1\.iter::<i64>\(\)\);"
)


def written_in(m):
    const = casts[m.group(2)]
    return f"shape_parts.push({values[const]}i64); // {const}: a shape constant, written in so nothing is read back from the device"


src = read_back.sub(written_in, src)
for cast, const in casts.items():
    if src.count(cast) == 1:
        src = re.sub(r"\n\s*let " + cast + r" = " + const + r"_out1\.cast\(burn::tensor::DType::I64\);", "", src)
        if src.count(const + "_out1") == 1:
            src = re.sub(r"\n\s*let " + const + r"_out1 = self\." + const + r"\.val\(\);", "", src)
assert ".to_data()" not in src, "a read back is left"
open(rs_path, "w").write(src)
