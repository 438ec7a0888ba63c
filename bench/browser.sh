#!/usr/bin/env bash
# On-device benchmark (issue #6), in one run on this machine: a server trains the shapes demo
# at 224 px (fast preset, one epoch); then, in one headless Chromium page, the model runs in
# our browser runtime (burn: WebGPU and CPU) and, as the peer, the same architecture under
# onnxruntime-web (WebGPU and wasm), each timed per image (bench/browser/bench.mjs).
# The ONNX graph comes from bench/onnx_lite0.py (needs only the `onnx` Python package).
# Prints JSON; docs/benchmarks.md has the figures.
#
# Env: RUNS (images per backend, default 20), IMAGE (default: an alpaca photo from
# ../shared/datasets when there, else a demo shape). KIND=detection: detection-fast on the
# scenes demo at 320 px against the detector's graph, timed to the boxes (a BCCD photo when
# ../shared/datasets has it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_wasm_tools
ensure_chromium
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

VENV="$HOME/.cache/autolearn/onnx-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import onnx, numpy' 2>/dev/null || "$VENV/bin/pip" install -q onnx numpy
KIND="${KIND:-classification}"
if [ "$KIND" = detection ]; then
  SIDE=320 TEMPLATE=scenes PRESET=detection-fast GRAPH="detector 64 2" MINUTES=3
  PHOTO=$(ls ../shared/datasets/bccd-voc/JPEGImages/*.jpg 2>/dev/null | head -1 || true)
else
  SIDE=224 TEMPLATE=shapes PRESET=classification-fast GRAPH="" MINUTES=10
  PHOTO=$(ls ../shared/datasets/alpaca-vs-not-alpaca/alpaca/*.jpg 2>/dev/null | head -1 || true)
fi
"$VENV/bin/python" bench/onnx_lite0.py "$WORK/lite0.onnx" 3 "$SIDE" $GRAPH
(cd bench/browser && { [ -d node_modules/onnxruntime-web ] || npm install --no-audit --no-fund; })

log "building the web app and the server"
scripts/build-web.sh >/dev/null
cargo build -p server
PORT=$(free_port)
AUTOLEARN_ADDR="127.0.0.1:$PORT" AUTOLEARN_DATA_DIR="$WORK/data" AUTOLEARN_ADMIN_PASSWORD=bench-pw AUTOLEARN_LOG=warn \
  AUTOLEARN_MIN_TASK_MINUTES=0 AUTOLEARN_WEB_DIR="$PWD/dist" AUTOLEARN_WEIGHTS_DIR="$HOME/.cache/autolearn/weights" \
  "$CARGO_TARGET_DIR/debug/autolearn" serve >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$PORT/readyz" 60
BIN="$CARGO_TARGET_DIR/debug/autolearn"
export AUTOLEARN_URL="http://127.0.0.1:$PORT"
export AUTOLEARN_TOKEN=$(AUTOLEARN_PASSWORD=bench-pw "$BIN" login -u admin)
INST=$(curl -fsS -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: application/json' \
  -d "{\"template\":\"$TEMPLATE\"}" "$AUTOLEARN_URL/api/instances" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
DS=$("$BIN" dataset list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
log "training the model ($PRESET, $SIDE px, one epoch)"
"$BIN" task create --instance "$INST" --dataset "$DS" --name bench --labels circle,square,triangle \
  --preset "$PRESET" --image-size "$SIDE" --device cpu --max-minutes "$MINUTES" --max-epochs 1 --seed 1 --follow >/dev/null
MODEL=$("$BIN" model list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
IMG=${IMAGE:-$PHOTO}
IMG=${IMG:-$(ls "$WORK/data/templates/instance-$INST"/*.png "$WORK/data/templates/instance-$INST"/*/*.png 2>/dev/null | head -1)}
echo "image: $IMG ($(stat -c %s "$IMG") bytes)"
log "measuring in Chromium (ours and onnxruntime-web)"
BASE_URL="$AUTOLEARN_URL" ADMIN_PASSWORD=bench-pw MODEL="$MODEL" ONNX="$WORK/lite0.onnx" IMAGE="$IMG" \
  RUNS="${RUNS:-20}" SIDE="$SIDE" node bench/browser/bench.mjs
