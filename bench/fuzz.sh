#!/usr/bin/env bash
# Fuzzing every parser that takes outside input, with libFuzzer through cargo-fuzz, each
# target for a bounded time (SECONDS_TO_FUZZ, default 120) from a seed corpus:
#   predict_input  `shared::predict::input` (JSON → base64 → image header → decoder → resize)
#   voc_xml        `server/src/voc.rs` (the VOC files indexed beside images)
#   recall_table   `server/src/recall/import.rs` and `cf.rs` (uploaded recall tables, every
#                  table kind, and behaviour logs, through the csv crate)
#   query          `server/src/routes/query.rs` (every route's query string, as axum parses it)
# No route takes multipart/form bodies: uploads are raw CSV/TSV, JSON or base64 in JSON.
# TARGETS="voc_xml recall_table" picks some. Prints per target the runs made and the crashes
# found (files in fuzz/artifacts/<target>); docs/security.md records a run.
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
for t in predict_input voc_xml recall_table query; do mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"; done
CORPUS=fuzz/corpus/predict_input
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
python3 - fuzz/corpus <<'PY'
import os, sys
out = sys.argv[1]
voc = lambda objs: ("<annotation><size><width>100</width><height>80</height><depth>3</depth></size>" + "".join(
    f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
    for n, a, b, c, d in objs) + "</annotation>")
seeds = {
    "voc_xml/one.xml": voc([("rbc", 10, 10, 50, 40)]),
    "voc_xml/two.xml": '<?xml version="1.0"?>\n' + voc([("京A·12345", 1.5, 2, 30, 20), ("wbc", 5, 5, 5, 20)]),
    "voc_xml/empty.xml": "<annotation/>",
    "recall_table/user_item.csv": "user_id,item_ids\nu1,i1:0.5,i2\nu2\ti3 i4:2\n",
    "recall_table/quoted.csv": '"user_id","item_ids"\r\n"u1","i1:1,i2:0.5"\r\n',
    "recall_table/keys.tsv": "item_id\ti1\ni2\n",
    "recall_table/bom.csv": "\ufeffuser_id,item_ids\nu1,\"a:1,b:\"\"2\"\"\"\n",
    "recall_table/log.csv": "user_id,item_id,active_type,active_date\nu1,i1,0,2024-01-02\nu2,i1,1,1700000000\n",
    "recall_table/movielens.csv": "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n",
    "query/images": "label=cat&status=unlabelled&page=2&per_page=100",
    "query/recall": "user_id=u1&size=10&include_history=true&fallback=none",
    "query/log": "top_n=50&w_click=1&w_buy=3.5&w_favorite=2",
    "query/misc": "size=256&mode=append&format=web&preview=abc&after=7",
}
for k, v in seeds.items():
    open(os.path.join(out, k), "w", encoding="utf-8").write(v)
PY
for t in ${TARGETS:-predict_input voc_xml recall_table query}; do
  log "fuzzing $t for ${SECS}s"
  (cd fuzz && cargo fuzz run "$t" -- -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 2>&1 | grep -E "^(#[0-9]+|Done)|ERROR|panicked" | tail -4)
  echo "$t crashes: $(find "fuzz/artifacts/$t" -type f | wc -l)"
done
