#!/usr/bin/env bash
# Detection training benchmark (issue "Object detection end to end"), on this machine:
# a release server indexes ../shared/datasets/bccd-voc in its VOC layout (JPEGImages/ +
# Annotations/), trains detection-fast (or PRESET=detection-accurate) through the API on
# the CPU within MINUTES (default 30), and prints: the validation mAP@0.5 per epoch with the
# time it was reached, the final metrics and AP per class, the wall time, and the server's
# peak memory (VmHWM). docs/benchmarks.md records a run. PROFILE=dev runs the test build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
DATA="$(cd .. && pwd)/shared/datasets/bccd-voc"
[ -d "$DATA/JPEGImages" ] || { echo "bench/detect.sh: $DATA not found (see ../shared/datasets)" >&2; exit 1; }
MINUTES="${MINUTES:-30}"
PRESET="${PRESET:-detection-fast}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

build_server_for_bench
BIN="$BIN_DIR"
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
INST=$("$BIN/autolearn" instance create --type object_detection --name bccd --json | id_of)
DS=$("$BIN/autolearn" dataset create --instance "$INST" --name bccd --path "$DATA" --json | id_of)
"$BIN/autolearn" dataset show "$DS" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("indexed: %s images, %s labelled, per label %s, %d skipped"
      % (d["total"], d["labelled"], d.get("per_label"), len(d.get("skipped", []))))
for s in d.get("skipped", [])[:10]:
    print("  skipped %s: %s" % (s.get("path"), s.get("reason")))'

log "ours: $PRESET on bccd-voc, budget $MINUTES min, CPU"
START=$(date +%s.%N)
"$BIN/autolearn" task create --instance "$INST" --dataset "$DS" --name bccd --labels RBC,WBC,Platelets \
  --preset "$PRESET" --device cpu --max-minutes "$MINUTES" --seed 42 --follow | tee "$WORK/result.txt"
END=$(date +%s.%N)
TASK=$("$BIN/autolearn" task list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$BIN/autolearn" task logs "$TASK" > "$WORK/ours.log"
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
echo "ours: wall $(python3 -c "print(f'{$END-$START:.1f}')") s (queue to model), server peak memory $((HWM / 1024)) MiB"
# Validation mAP after each epoch and when it was reached (seconds from the first log line).
python3 - "$WORK/ours.log" <<'EOF'
import sys
t0 = None
for l in open(sys.argv[1]).read().splitlines():
    h, m, s = map(int, l[11:19].split(':'))
    t = h * 3600 + m * 60 + s
    t0 = t if t0 is None else t0
    if "mAP@0.5" in l or "backbone features of" in l or "early stop" in l:
        print(f"  {t - t0:5d} s  {l[20:].strip()}")
EOF
