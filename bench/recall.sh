#!/usr/bin/env bash
# Recall benchmarks (issue #7), all in one run on this machine:
#  1. CF build time on MovieLens latest-small and on a generated 1,000,000-interaction log,
#     ours vs the same similarity in Python/scipy (the peer), and how alike their top-N are;
#  2. offline evaluation on MovieLens: recall@50 / hit-rate@50, CF vs popularity;
#  3. recall endpoint latency and throughput with wrk at concurrency 1, 16, 64 for size 10
#     and 100, on a release server over loopback.
# Prints the figures; docs/benchmarks.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ML="${ML:-../shared/datasets/movielens-latest-small/ratings.csv}"
[ -f "$ML" ] || { echo "skipped: $ML not found (MovieLens latest-small; see ../shared/datasets)"; exit 0; }
DURATION="${DURATION:-8s}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null; }
VENV="$HOME/.cache/autolearn/bench-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import scipy' 2>/dev/null; then
  log "installing numpy + scipy for the peer"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q numpy scipy
fi
log "building release binaries"
cargo build --release -p server -p bench
BIN="$CARGO_TARGET_DIR/release"

log "generating a 1,000,000-interaction log"
"$BIN/gen_log" 20000 50 20000 42 > "$WORK/gen.csv"
echo "generated lines: $(($(wc -l < "$WORK/gen.csv") - 1))"

for name in movielens generated; do
  logf="$ML"; [ "$name" = generated ] && logf="$WORK/gen.csv"
  log "CF build: $name"
  echo "ours:  $("$BIN/cf_build" "$logf" 50 "$WORK/$name-ours.tsv")"
  echo "peer:  $("$VENV/bin/python" bench/cf_peer.py "$logf" 50 "$WORK/$name-peer.tsv")"
  echo "top-N: $(python3 bench/compare_topn.py "$WORK/$name-ours.tsv" "$WORK/$name-peer.tsv")"
done

log "offline evaluation on MovieLens (latest 20% of each user's ratings held out)"
"$BIN/autolearn" recall evaluate --log "$ML" --k 50 --holdout 0.2

log "recall endpoint under load"
PORT=$(free_port)
AUTOLEARN_ADDR="127.0.0.1:$PORT" AUTOLEARN_DATA_DIR="$WORK/data" AUTOLEARN_ADMIN_PASSWORD=bench-pw AUTOLEARN_LOG=warn \
  "$BIN/autolearn" serve >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$PORT/readyz" 30
export AUTOLEARN_URL="http://127.0.0.1:$PORT"
export AUTOLEARN_TOKEN=$(AUTOLEARN_PASSWORD=bench-pw "$BIN/autolearn" login -u admin)
INST=$("$BIN/autolearn" instance create --type recommendation_recall --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$BIN/autolearn" recall build --instance "$INST" "$ML"
curl -fsS -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: application/json' \
  -d '{"name":"cf","type":"collaborative_filtering","count":200}' "$AUTOLEARN_URL/api/instances/$INST/strategies" >/dev/null
SVC_TOKEN=$(curl -fsS -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench"}' "$AUTOLEARN_URL/api/instances/$INST/services" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
# The first request loads the model into the service's cache: keep it out of the figures.
curl -fsS -o /dev/null -H "Authorization: $SVC_TOKEN" "$AUTOLEARN_URL/api/recall/bench?user_id=1&size=10"
for size in 10 100; do
  cat > "$WORK/req-$size.lua" <<LUA
wrk.headers["Authorization"] = "$SVC_TOKEN"
request = function() return wrk.format("GET", "/api/recall/bench?user_id=" .. math.random(1, 610) .. "&size=$size") end
LUA
  for c in 1 16 64; do
    t=$(( c < 2 ? 1 : 2 ))
    echo "--- size $size, concurrency $c"
    wrk -t"$t" -c"$c" -d"$DURATION" --latency -s "$WORK/req-$size.lua" "$AUTOLEARN_URL" | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors'
  done
done
