#!/usr/bin/env bash
# Training benchmark (issue #4), in one run on this machine:
#  1. ours: a release server trains classification-fast on alpaca-vs-not-alpaca through the
#     API (the CLI's `task create --follow`), on the CPU; wall time, validation accuracy, and
#     the server's peak memory (VmHWM);
#  2. the peer: PyTorch (CPU) with the same architecture, ImageNet weights, split sizes, input
#     size and recipe (bench/train_peer.py), in the same run;
#  3. the shapes template trained with its defaults (the ">95% within a minute" claim).
# Prints the figures; docs/benchmarks.md records a run. PEER=0 skips PyTorch; FEATURES=gpu
# builds the GPU-capable binary (the CPU runs still use --device cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
DATA="$(cd .. && pwd)/shared/datasets/alpaca-vs-not-alpaca"
[ -d "$DATA/alpaca" ] || { echo "skipped: $DATA not found (see ../shared/datasets)"; exit 0; }
MINUTES="${MINUTES:-10}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

log "building the release server"
cargo build --release -p server ${FEATURES:+--features "$FEATURES"}
BIN="$CARGO_TARGET_DIR/release"
PORT=$(free_port)
AUTOLEARN_ADDR="127.0.0.1:$PORT" AUTOLEARN_DATA_DIR="$WORK/data" AUTOLEARN_DATA_ROOTS="$WORK/data:$DATA" \
  AUTOLEARN_ADMIN_PASSWORD=bench-pw AUTOLEARN_LOG=warn AUTOLEARN_WEIGHTS_DIR="$HOME/.cache/autolearn/weights" \
  "$BIN/autolearn" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_for "http://127.0.0.1:$PORT/readyz" 30
export AUTOLEARN_URL="http://127.0.0.1:$PORT"
export AUTOLEARN_TOKEN=$(AUTOLEARN_PASSWORD=bench-pw "$BIN/autolearn" login -u admin)
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
INST=$("$BIN/autolearn" instance create --type image_classification --name alpaca --json | id_of)
DS=$("$BIN/autolearn" dataset create --instance "$INST" --name alpaca --path "$DATA" --json | id_of)

log "ours: classification-fast on alpaca-vs-not-alpaca, budget $MINUTES min, CPU"
START=$(date +%s.%N)
"$BIN/autolearn" task create --instance "$INST" --dataset "$DS" --name fast --labels alpaca,not_alpaca \
  --preset classification-fast --device cpu --max-minutes "$MINUTES" --seed 42 --follow
END=$(date +%s.%N)
TASK=$("$BIN/autolearn" task list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$BIN/autolearn" task logs "$TASK" > "$WORK/ours.log"
grep -E "features|head trained|epoch|early stop|validation" "$WORK/ours.log" | sed 's/^/  /'
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
echo "ours: wall $(python3 -c "print(f'{$END-$START:.1f}')") s (queue to model), server peak memory $((HWM / 1024)) MiB"
# Time at which each validation accuracy was first reached, for the comparison.
python3 - "$WORK/ours.log" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
t0 = None
def secs(line):
    h, m, s = map(int, line[11:19].split(':'))
    return h * 3600 + m * 60 + s
for l in lines:
    t0 = t0 if t0 is not None else secs(l)
    m = re.search(r"(head trained: validation loss [\d.]+, accuracy|validation loss [\d.]+ acc) ([\d.]+)%", l)
    if m:
        print(f"  ours: val acc {float(m.group(2)):.1f}% at {secs(l) - t0} s")
EOF

log "shapes template with its defaults (fast preset, 224 px)"
SHAPES=$(curl -fsS -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: application/json' \
  -d '{"template":"shapes"}' "$AUTOLEARN_URL/api/instances" | id_of)
SDS=$("$BIN/autolearn" dataset list --instance "$SHAPES" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
START=$(date +%s.%N)
"$BIN/autolearn" task create --instance "$SHAPES" --dataset "$SDS" --name shapes --labels circle,square,triangle \
  --device cpu --max-minutes 10 --seed 42 --follow > "$WORK/shapes.out" 2>&1; grep -E "^validation images" "$WORK/shapes.out"
END=$(date +%s.%N)
echo "shapes: wall $(python3 -c "print(f'{$END-$START:.1f}')") s"

if [ "${PEER:-1}" = 1 ]; then
  VENV="$HOME/.cache/autolearn/torch-venv"
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, efficientnet_lite_pytorch' 2>/dev/null; then
    log "installing PyTorch (CPU use; the PyPI wheel is large) and efficientnet-lite-pytorch for the peer"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q torch efficientnet-lite-pytorch pillow numpy
  fi
  kill "$SERVER" 2>/dev/null || true
  log "peer: PyTorch, same recipe"
  "$VENV/bin/python" bench/train_peer.py "$DATA" "$HOME/.cache/autolearn/weights/efficientnet-lite0.pth" "$MINUTES"
fi
