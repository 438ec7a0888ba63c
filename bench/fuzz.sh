#!/usr/bin/env bash
# Fuzzing the predict endpoint's input path (issue #5): libFuzzer through cargo-fuzz over
# `shared::predict::input` (JSON → base64 → image header → decoder → resize), for a bounded
# time (SECONDS, default 120), starting from a seed corpus of real PNG/JPEG/BMP images and
# request bodies. Prints the runs made and the crashes found (files in fuzz/artifacts).
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
SECS="${SECONDS_TO_FUZZ:-120}"
TOOLS="$HOME/.cache/autolearn/tools"
if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
  log "installing cargo-fuzz into $TOOLS (once)"
  cargo install --locked cargo-fuzz --root "$TOOLS"
fi
export PATH="$TOOLS/bin:$PATH" RUSTC_BOOTSTRAP=1
CORPUS=fuzz/corpus/predict_input
mkdir -p "$CORPUS" fuzz/artifacts/predict_input
python3 - "$CORPUS" <<'PY'
import base64, json, os, struct, sys, zlib
out = sys.argv[1]
def png(w, h):
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3) % 256 for x in range(w * 3)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
def bmp(w, h):
    row = (w * 3 + 3) & ~3
    pix = b"".join(bytes((x + y) % 256 for x in range(w * 3)).ljust(row, b"\0") for y in range(h))
    return b"BM" + struct.pack("<IHHI", 54 + len(pix), 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pix), 2835, 2835, 0, 0) + pix
seeds = {"a.png": png(16, 12), "b.bmp": bmp(9, 7)}
for name in sorted(os.listdir("../shared/datasets/alpaca-vs-not-alpaca/alpaca"))[:1] if os.path.isdir("../shared/datasets/alpaca-vs-not-alpaca/alpaca") else []:
    seeds["c.jpg"] = open(os.path.join("../shared/datasets/alpaca-vs-not-alpaca/alpaca", name), "rb").read()[:60000]
for k, v in list(seeds.items()):
    seeds[k + ".json"] = json.dumps({"dataArray": [{"name": "image", "type": "stream", "body": base64.b64encode(v).decode()}]}).encode()
for k, v in seeds.items():
    open(os.path.join(out, k), "wb").write(v)
PY
log "fuzzing predict_input for ${SECS}s"
(cd fuzz && cargo fuzz run predict_input -- -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 2>&1 | grep -E "^(#[0-9]+|Done)|ERROR|panicked" | tail -4)
echo "crashes: $(find fuzz/artifacts/predict_input -type f | wc -l)"
