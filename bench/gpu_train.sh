#!/usr/bin/env bash
# Training on a GPU (issue #4): the same alpaca-vs-not-alpaca run as bench/train.sh, with
# `--device gpu` (burn's wgpu backend through Vulkan), printing the same figures.
#
# Prepared to run on a machine that has a GPU but maybe no network and no Rust: it takes a
# binary built elsewhere with `cargo build --release -p server --features gpu`.
#   BIN      the autolearn binary (or BIN_XZ, an xz-compressed one)    default: target release
#   DATA     alpaca-vs-not-alpaca folder                               default: ../shared/datasets/...
#   WEIGHTS  folder with efficientnet-lite0-imagenet.bpk (or where pip may fetch it)
#   GL_DEBS  folder of Debian packages of the Vulkan loader and glvnd, unpacked into / first
#            (libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2), when the
#            machine lacks them
#   MINUTES  budget (default 10); DEVICE (default gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=
if [ -n "${GL_DEBS:-}" ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in "$GL_DEBS"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -n "${BIN_XZ:-}" ]; then
  xz -dc "$BIN_XZ" > "$WORK/autolearn" && chmod +x "$WORK/autolearn"
  BIN="$WORK/autolearn"
fi
BIN="${BIN:-${CARGO_TARGET_DIR:-/work/target}/release/autolearn}"
DATA="$(cd "${DATA:-../shared/datasets/alpaca-vs-not-alpaca}" && pwd)"
WEIGHTS="$(mkdir -p "${WEIGHTS:-$HOME/.cache/autolearn/weights}" && cd "${WEIGHTS:-$HOME/.cache/autolearn/weights}" && pwd)"
MINUTES="${MINUTES:-10}"
DEVICE="${DEVICE:-gpu}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

PORT=18187
AUTOLEARN_ADDR="127.0.0.1:$PORT" AUTOLEARN_DATA_DIR="$WORK/data" AUTOLEARN_DATA_ROOTS="$WORK/data:$DATA" \
  AUTOLEARN_ADMIN_PASSWORD=bench-pw AUTOLEARN_LOG=warn AUTOLEARN_WEIGHTS_DIR="$WEIGHTS" \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/readyz')" 2>/dev/null && break
  sleep 0.2
done
export AUTOLEARN_URL="http://127.0.0.1:$PORT"
export AUTOLEARN_TOKEN=$(AUTOLEARN_PASSWORD=bench-pw "$BIN" login -u admin)
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
INST=$("$BIN" instance create --type image_classification --name alpaca --json | id_of)
DS=$("$BIN" dataset create --instance "$INST" --name alpaca --path "$DATA" --json | id_of)
START=$(date +%s.%N)
"$BIN" task create --instance "$INST" --dataset "$DS" --name "on-$DEVICE" --labels alpaca,not_alpaca \
  --preset classification-fast --device "$DEVICE" --max-minutes "$MINUTES" --seed 42 --follow 2>&1 | tr '\r' '\n' | grep -v '^\[' || true
END=$(date +%s.%N)
TASK=$("$BIN" task list --instance "$INST" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$BIN" task logs "$TASK"
"$BIN" task show "$TASK"
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
echo "$DEVICE: wall $(python3 -c "print(f'{$END-$START:.1f}')") s (queue to model), server peak memory $((HWM / 1024)) MiB"
tail -5 "$WORK/server.log"
