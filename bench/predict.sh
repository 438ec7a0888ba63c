#!/usr/bin/env bash
# Predict endpoint under load (issue #5), in one run on this machine:
#  1. a release server trains the shapes demo at 224 px (fast preset, one epoch) and deploys
#     it (REPLICAS, default 1);
#  2. wrk POSTs a base64 JPEG in the SPEC §7 body at concurrency 1, 8 and 32: requests/s,
#     p50, p99;
#  3. 10x overload (concurrency 320): answers keep coming (2002 for the excess) and the
#     server's memory stays flat (VmRSS before/after, VmHWM);
#  4. the peer: the same architecture under onnxruntime on the CPU, in-process
#     (bench/predict_peer.py), at the same concurrencies.
# KIND=detection does the same for detection-fast (PRESET=detection-accurate for the other):
# the scenes demo at 320 px (416), a BCCD photo when ../shared/datasets has it, and the peer
# runs the detector's graph with the same box decoding and suppression.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
DURATION="${DURATION:-10}"
REPLICAS="${REPLICAS:-1}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null; }

build_server_for_bench
BIN="$BIN_DIR/autolearn"
PORT=$(free_port)
AUTOLEARN_ADDR="127.0.0.1:$PORT" AUTOLEARN_DATA_DIR="$WORK/data" AUTOLEARN_ADMIN_PASSWORD=bench-pw AUTOLEARN_LOG=warn AUTOLEARN_MIN_TASK_MINUTES=0 \
  AUTOLEARN_WEIGHTS_DIR="$HOME/.cache/autolearn/weights" "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_for "http://127.0.0.1:$PORT/readyz" 30
export AUTOLEARN_URL="http://127.0.0.1:$PORT"
export AUTOLEARN_TOKEN=$(AUTOLEARN_PASSWORD=bench-pw "$BIN" login -u admin)
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
KIND="${KIND:-classification}"
if [ "$KIND" = detection ]; then
  PRESET="${PRESET:-detection-fast}"
  TEMPLATE=scenes
  if [ "$PRESET" = detection-accurate ]; then SIDE=416; GRAPH="detector 96 3"; else SIDE=320; GRAPH="detector 64 2"; fi
  MINUTES=3
else
  PRESET="${PRESET:-classification-fast}"
  TEMPLATE=shapes
  SIDE=224
  GRAPH=""
  MINUTES=10
fi
INST=$(curl -fsS -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: application/json' \
  -d "{\"template\":\"$TEMPLATE\"}" "$AUTOLEARN_URL/api/instances" | id_of)
DS=$("$BIN" dataset list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
log "training the model to serve ($PRESET, $SIDE px)"
"$BIN" task create --instance "$INST" --dataset "$DS" --name bench --labels circle,square,triangle \
  --preset "$PRESET" --image-size "$SIDE" --device cpu --max-minutes "$MINUTES" --max-epochs 1 --seed 1 --follow >/dev/null
MODEL=$("$BIN" model list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
TOKEN=$("$BIN" service deploy --model "$MODEL" --name bench --replicas "$REPLICAS" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
sleep 2

# A real photo (an alpaca, 1024 px; a blood smear, 640x480, for a detector) when the
# dataset is here, else one of the demo's images.
if [ "$KIND" = detection ]; then
  IMG=$(ls ../shared/datasets/bccd-voc/JPEGImages/*.jpg 2>/dev/null | head -1 || true)
  IMG=${IMG:-$WORK/data/templates/instance-$INST/scene-000.png}
else
  IMG=$(ls ../shared/datasets/alpaca-vs-not-alpaca/alpaca/*.jpg 2>/dev/null | head -1 || true)
  IMG=${IMG:-$WORK/data/templates/instance-$INST/circle/circle-000.png}
fi
cp "$IMG" "$WORK/image.jpg"
python3 -c 'import base64, json, sys; json.dump({"dataArray": [{"name": "image", "type": "stream", "body": base64.b64encode(open(sys.argv[1], "rb").read()).decode()}]}, open(sys.argv[2], "w"))' "$IMG" "$WORK/body.json"
echo "image: $IMG ($(stat -c %s "$IMG") bytes)"
cat > "$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = io.open("$WORK/body.json"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "$TOKEN"
EOF
curl -fsS -o /dev/null -H "Authorization: $TOKEN" -H 'content-type: application/json' --data-binary @"$WORK/body.json" "$AUTOLEARN_URL/api/predict/bench"
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$SERVER/status"; }
log "ours: wrk, ${DURATION}s per level, replicas $REPLICAS"
for c in 1 8 32; do
  out=$(wrk -t "$(( c < 2 ? 1 : 2 ))" -c "$c" -d "${DURATION}s" --latency -s "$WORK/post.lua" "$AUTOLEARN_URL/api/predict/bench")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "ours c$c: $rps req/s, p50 $p50, p99 $p99, non-2xx ${non2xx:-0}"
done
log "10x overload: concurrency 320 for ${DURATION}s"
before=$(rss)
out=$(wrk -t 2 -c 320 -d "${DURATION}s" --latency -s "$WORK/post.lua" "$AUTOLEARN_URL/api/predict/bench")
after=$(rss)
echo "$out" | grep -E "Requests/sec|Non-2xx|50%|99%|Socket errors" | sed 's/^/  /'
echo "overload: server RSS ${before} MiB before, ${after} MiB after, peak $(awk '/VmHWM/ {print int($2/1024)}' "/proc/$SERVER/status") MiB"
sleep 2  # let the queue drain
code=$(curl -s -H "Authorization: $TOKEN" -H 'content-type: application/json' --data-binary @"$WORK/body.json" -o /dev/null -w '%{http_code}' "$AUTOLEARN_URL/api/predict/bench")
echo "2 s after the overload a request answers $code"
kill "$SERVER"

# The peer's model: exported through PyTorch from the pretrained .pth when the torch venv of
# bench/train.sh is here, else the same architecture written by bench/onnx_lite0.py (onnx
# alone; random weights, which do not change the time).
if [ "${PEER:-1}" = 1 ]; then
  VENV="$HOME/.cache/autolearn/torch-venv"
  MODEL="$HOME/.cache/autolearn/weights/efficientnet-lite0.pth"
  if [ -n "$GRAPH" ] || ! [ -x "$VENV/bin/python" ]; then
    VENV="$HOME/.cache/autolearn/onnx-venv"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -c 'import onnx' 2>/dev/null || "$VENV/bin/pip" install -q onnx
    MODEL="$WORK/lite0.onnx"
    "$VENV/bin/python" bench/onnx_lite0.py "$MODEL" 3 "$SIDE" $GRAPH
  fi
  "$VENV/bin/python" -c 'import onnxruntime, onnx, PIL' 2>/dev/null || "$VENV/bin/pip" install -q onnx onnxruntime pillow
  log "peer: onnxruntime $("$VENV/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)') (CPU), in-process, model $(basename "$MODEL")"
  "$VENV/bin/python" bench/predict_peer.py "$MODEL" "$WORK/image.jpg" "$DURATION" 1 8 32
fi
