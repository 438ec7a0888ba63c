#!/usr/bin/env bash
# OCR predict endpoint under load (issue #15), in one run on this machine:
#  1. a server (PROFILE=release by default; dev = optimised dependencies) trains ocr-fast on
#     the European OpenALPR plates (one epoch: the served models' speed does not depend on
#     how long they trained) and deploys it (REPLICAS, default 1);
#  2. wrk POSTs one plate photo (1280x720 JPEG) in the SPEC §7 body at concurrency 1 and 8:
#     requests/s, p50, p99, and the answer;
#  3. the peer: RapidOCR 1.4.4 on onnxruntime, the same PP-OCRv4 ONNX files, on the same
#     photo, in-process (bench/ocr/rapidocr_throughput.py), at the same concurrencies.
# Needs ../shared/datasets/openalpr-plates and PyPI (the pretrained models, RapidOCR).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
DURATION="${DURATION:-20}"
REPLICAS="${REPLICAS:-1}"
PLATES="$(cd ../shared/datasets/openalpr-plates/eu && pwd)"
IMG="${IMG:-$PLATES/eu1.jpg}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null; }
ensure_onnxruntime
python3 -c 'import rapidocr_onnxruntime' 2>/dev/null || python3 -m pip install --quiet rapidocr-onnxruntime==1.4.4

build_server_for_bench
BIN="$BIN_DIR/autolearn"
PORT=$(free_port)
AUTOLEARN_ADDR="127.0.0.1:$PORT" AUTOLEARN_DATA_DIR="$WORK/data" AUTOLEARN_ADMIN_PASSWORD=bench-pw AUTOLEARN_LOG=warn AUTOLEARN_MIN_TASK_MINUTES=0 \
  AUTOLEARN_DATA_ROOTS="$PLATES" AUTOLEARN_WEIGHTS_DIR="$HOME/.cache/autolearn/weights" "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_for "http://127.0.0.1:$PORT/readyz" 30
export AUTOLEARN_URL="http://127.0.0.1:$PORT"
export AUTOLEARN_TOKEN=$(AUTOLEARN_PASSWORD=bench-pw "$BIN" login -u admin)
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
api() { curl -fsS -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: application/json' "$@"; }
INST=$(api -d '{"type":"ocr","name":"plates"}' "$AUTOLEARN_URL/api/instances" | id_of)
DS=$(api -d "{\"name\":\"eu\",\"path\":\"$PLATES\"}" "$AUTOLEARN_URL/api/instances/$INST/datasets" | id_of)
log "training the model to serve (ocr-fast, one epoch)"
"$BIN" task create --instance "$INST" --dataset "$DS" --name bench --labels text \
  --preset ocr-fast --device cpu --max-minutes 20 --max-epochs 1 --seed 1 --follow >/dev/null
MODEL=$("$BIN" model list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
TOKEN=$("$BIN" service deploy --model "$MODEL" --name bench --replicas "$REPLICAS" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
sleep 3

python3 -c 'import base64, json, sys; json.dump({"dataArray": [{"name": "image", "type": "stream", "body": base64.b64encode(open(sys.argv[1], "rb").read()).decode()}]}, open(sys.argv[2], "w"))' "$IMG" "$WORK/body.json"
echo "image: $IMG ($(stat -c %s "$IMG") bytes)"
echo "ours reads: $(curl -fsS -H "Authorization: $TOKEN" -H 'content-type: application/json' --data-binary @"$WORK/body.json" "$AUTOLEARN_URL/api/predict/bench")"
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = io.open("$WORK/body.json"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "$TOKEN"
LUA
log "ours: wrk, ${DURATION}s per level, replicas $REPLICAS"
for c in 1 8; do
  out=$(wrk -t 1 -c "$c" -d "${DURATION}s" --timeout 30s --latency -s "$WORK/post.lua" "$AUTOLEARN_URL/api/predict/bench")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "ours c$c: $rps req/s, p50 $p50, p99 $p99, non-2xx ${non2xx:-0}"
done
echo "server peak memory $(awk '/VmHWM/ {print int($2/1024)}' "/proc/$SERVER/status") MiB"
kill "$SERVER"
log "peer: RapidOCR 1.4.4, onnxruntime $(python3 -c 'import onnxruntime; print(onnxruntime.__version__)') (CPU), in-process"
python3 bench/ocr/rapidocr_throughput.py "$IMG" "$DURATION" 1 8
