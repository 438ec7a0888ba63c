#!/usr/bin/env bash
# Detection training benchmark (issue "Object detection end to end"), on this machine:
# a release server indexes ../shared/datasets/bccd-voc in its VOC layout (JPEGImages/ +
# Annotations/), trains detection-fast (or PRESET=detection-accurate) through the API on
# the CPU within MINUTES (default 30), and prints: the validation mAP@0.5 per epoch with the
# time it was reached, the final metrics and AP per class, the wall time, and the server's
# peak memory (VmHWM). docs/benchmarks.md records a run. PROFILE=dev runs the test build.
# Then (PEER=0 skips it) the server is stopped and the PyTorch peer (bench/detect_peer.py:
# the same detector, ImageNet weights, data handling, split sizes and two-phase recipe)
# trains with the same budget and the preset's sizes on the freed CPU; the script prints
# both times to validation mAP@0.5 0.80 and 0.85, the ratio ours/peer, and both final mAPs.
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

if [ "${PEER:-1}" != 0 ]; then
  case "$PRESET" in
    detection-accurate) PEER_FLAGS=(--side 416 --channels 96 --tower 3 --tuned-stages 2 --head-share 0.6) ;;
    *) PEER_FLAGS=(--side 320 --channels 64 --tower 2 --tuned-stages 4 --head-share 0.4) ;;
  esac
  VENV="$HOME/.cache/autolearn/torch-venv"
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, efficientnet_lite_pytorch, PIL, numpy' 2>/dev/null; then
    log "installing PyTorch (CPU use; the PyPI wheel is large) and efficientnet-lite-pytorch for the peer"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q torch efficientnet-lite-pytorch pillow numpy
  fi
  # The peer gets the whole CPU: our server (its figures are read above) goes first.
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  log "peer: PyTorch, the same recipe (${PEER_FLAGS[*]}), budget $MINUTES min, CPU"
  "$VENV/bin/python" bench/detect_peer.py "$DATA" "$HOME/.cache/autolearn/weights/efficientnet-lite0.pth" \
    "$MINUTES" "${PEER_FLAGS[@]}" | tee "$WORK/peer.txt"
  python3 - "$WORK/ours.log" "$WORK/peer.txt" "$((HWM / 1024))" <<'EOF'
import re, sys
targets = (0.80, 0.85)
t0, ours, ours_final = None, {}, None
for l in open(sys.argv[1]).read().splitlines():
    try:
        h, m, s = map(int, l[11:19].split(':'))
    except ValueError:
        continue
    t = h * 3600 + m * 60 + s
    t0 = t if t0 is None else t0
    t = t - t0 if t >= t0 else t + 86400 - t0
    e = re.search(r"(?:head|finetune) epoch \d+: .*mAP@0\.5 ([\d.]+)", l)
    for target in targets:
        if e and float(e.group(1)) >= target and target not in ours:
            ours[target] = t
    f = re.search(r"validation \(\d+ images\): mAP@0\.5 ([\d.]+)", l)
    if f:
        ours_final = float(f.group(1))
text = open(sys.argv[2]).read()
peer = {float(a): float(b) for a, b in re.findall(r"peer: first mAP@0\.5 >= ([\d.]+) at ([\d.]+) s", text)}
pf = re.search(r"peer: wall ([\d.]+) s, final mAP@0\.5 (\S+?),.*peak RSS (\d+) MiB", text)
show = lambda d, k: f"{d[k]:.0f} s" if k in d else "not reached"
print("comparison (one run, this machine; times from the first task log line / the peer's start):")
for target in targets:
    ratio = f", ours/peer {ours[target] / peer[target]:.2f}" if target in ours and target in peer and peer[target] > 0 else ""
    print(f"  time to validation mAP@0.5 >= {target:.2f}: ours {show(ours, target)}, peer {show(peer, target)}{ratio}")
if 0.85 in ours and 0.85 in peer and peer[0.85] > 0:
    print(f"  ours/peer time to mAP 0.85: {ours[0.85] / peer[0.85]:.2f}")
else:
    print("  ours/peer time to mAP 0.85: n/a (not reached by both)")
print(f"  final validation mAP@0.5: ours {ours_final if ours_final is not None else 'n/a'}, "
      f"peer {pf.group(2) if pf else 'n/a'}")
print(f"  wall: peer {pf.group(1) if pf else 'n/a'} s; peak memory: ours (server VmHWM) {sys.argv[3]} MiB, "
      f"peer (max RSS) {pf.group(3) if pf else 'n/a'} MiB")
EOF
fi
