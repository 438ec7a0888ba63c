#!/usr/bin/env bash
# Server memory while large recall uploads stream in (security issue, bounded resources):
# a behaviour log of LOG_MB (default 200) MB and a user_item table of TABLE_MB (default 100)
# MB, generated here, each sent with curl to a fresh server. Prints per upload the body
# size, the answer, and the server's RSS before and its peak (VmHWM) after. An upload read
# whole would raise the peak by at least its own size (twice, with the UTF-8 copy); parsed
# as it streams, the peak grows with what is kept (interned ids, the table's rows).
# SERVER_BIN=path measures another build of the server (e.g. an older commit's) instead.
# docs/security.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
LOG_MB="${LOG_MB:-200}"
TABLE_MB="${TABLE_MB:-100}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

if [ -n "${SERVER_BIN:-}" ]; then
  BIN="$SERVER_BIN"
else
  build_server_for_bench
  BIN="$BIN_DIR/autolearn"
fi
log "generating a ${LOG_MB} MB behaviour log and a ${TABLE_MB} MB user_item table"
python3 - "$WORK" "$LOG_MB" "$TABLE_MB" <<'PY'
import random, sys
out, log_mb, table_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
with open(f"{out}/log.csv", "w") as f:
    f.write("user_id,item_id,active_type,active_date\n")
    size = 0
    while size < log_mb << 20:
        line = f"user{rng.randrange(200000)},item{int(rng.paretovariate(1.2)) % 50000},{rng.randrange(3)},2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}\n"
        f.write(line)
        size += len(line)
with open(f"{out}/table.csv", "w") as f:
    f.write("user_id,item_ids\n")
    size, u = 0, 0
    while size < table_mb << 20:
        items = ",".join(f"i{rng.randrange(10**6)}:{rng.random():.3f}" for _ in range(40))
        line = f'u{u},"{items}"\n'
        f.write(line)
        size += len(line)
        u += 1
PY

upload() { # name, method, path, file
  local before peak answer
  bench_server "$1" recommendation_recall
  before=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$SERVER/status")
  answer=$(curl -sS -X "$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: text/csv' \
    --data-binary "@$4" "$URL/api/instances/$INST/$3")
  if [ "$1" = log ] && [[ "$answer" == *'"id"'* ]]; then # wait for the CF build the log started
    local job; job=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$answer")
    until curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/api/instances/$INST/behavior-logs/jobs/$job" |
      python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["state"] == "running")'; do sleep 1; done
    answer=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$URL/api/instances/$INST/behavior-logs/jobs/$job")
  fi
  peak=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$SERVER/status")
  printf '%s: body %d MiB, RSS before %d MiB, peak %d MiB\n  answer: %.300s\n' \
    "$1" "$(( $(stat -c %s "$4") >> 20 ))" "$before" "$peak" "$answer"
  kill "$SERVER"
}
upload log POST behavior-logs "$WORK/log.csv"
# The same log with a bad last line: parsed to the end, then refused (400) before any CF
# work, so its peak is the parsing alone.
cp "$WORK/log.csv" "$WORK/bad-log.csv" && echo "u1,i1,9,2024-01-01" >>"$WORK/bad-log.csv"
upload bad-log POST behavior-logs "$WORK/bad-log.csv"
upload table PUT tables/user_item "$WORK/table.csv"
