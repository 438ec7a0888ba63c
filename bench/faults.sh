#!/usr/bin/env bash
# The fault campaign (issue "Nothing acknowledged is ever lost", item 5): faults injected
# into a running server, each case printing what was observed. docs/reliability.md records
# a run. Cases:
#   save-kill-sqlite / save-kill-postgres: kill -9 the server twice during a burst of
#     annotation saves from 4 clients, restart it on the same data; every save answered 2xx
#     must be there (lost = 0).
#   postgres-restart: PostgreSQL restarted under the same burst; /readyz while it is down,
#     recovery without restarting our server, lost = 0.
#   worker-kill: kill -9 an `autolearn worker` mid-training; the task must be re-queued
#     (lease expiry, reaped by the next worker) and finish with exactly one model version.
#   s3-restart: the S3 server stopped and started again; /readyz and an image read while
#     it is down, recovery without restarting our server.
#   disk-full: the server's data dir (SQLite database included) on a small tmpfs (needs
#     root) filled to the last byte; saves must fail clearly and change nothing, and work
#     again once space is freed.
# CASES="..." picks some (default: all). BIN_DIR=<dir> uses a built autolearn binary
# instead of building one (see build_server_for_bench: PROFILE=release|dev).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
CASES="${CASES:-save-kill-sqlite save-kill-postgres postgres-restart worker-kill s3-restart disk-full}"
WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for d in "${DBS[@]}"; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
ensure_postgres
ensure_s3_server
[ -n "${BIN_DIR:-}" ] || build_server_for_bench
BIN="$BIN_DIR/autolearn"
CLIENT="python3 bench/faults/save_burst.py"
RESULTS=()
result() { RESULTS+=("$1: $2"); log "$1: $2"; }

new_pg_db() { # sets PG_URL to a fresh database's DATABASE_URL (dropped at exit)
  local name="autolearn_fault_$RANDOM$RANDOM"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $name" >/dev/null
  DBS+=("$name")
  PG_URL="postgres://postgres@127.0.0.1:5432/$name"
}

# start_server NAME PORT [VAR=value ...]: a server on data dir $WORK/NAME; sets SERVER.
start_server() {
  local name=$1 port=$2
  shift 2
  env AUTOLEARN_ADDR="127.0.0.1:$port" AUTOLEARN_DATA_DIR="$WORK/$name" AUTOLEARN_ADMIN_PASSWORD=fault-pw \
    AUTOLEARN_LOG=warn AUTOLEARN_MIN_TASK_MINUTES=0 "$@" "$BIN" serve >>"$WORK/$name.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  wait_for "http://127.0.0.1:$port/readyz" 60
}

login() { AUTOLEARN_URL="$1" AUTOLEARN_PASSWORD=fault-pw "$BIN" login -u admin; }

# A shapes demo instance (120 labelled images); prints "instance dataset".
demo() {
  local url=$1 token=$2 template=${3:-shapes} inst
  inst=$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"template\":\"$template\"}" "$url/api/instances" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  echo "$inst $(curl -fsS -H "Authorization: Bearer $token" "$url/api/instances/$inst/datasets" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
}

save_kill() { # NAME [VAR=value ...]
  local name=$1 port url token ds acked
  shift
  port=$(free_port); url="http://127.0.0.1:$port"
  start_server "$name" "$port" "$@"
  token=$(login "$url"); read -r _ ds < <(demo "$url" "$token")
  acked="$WORK/$name.acked"
  $CLIENT burst "$url" "$token" "$ds" 4 40 "$acked" "$WORK/$name.stop" >"$WORK/$name.burst" &
  local client=$!
  for round in 1 2; do
    sleep 6
    kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
    log "$name: server killed (round $round) after $(wc -l <"$acked") acknowledged saves"
    sleep 1
    start_server "$name" "$port" "$@"
  done
  wait "$client"
  local check
  check=$($CLIENT check "$url" "$token" "$ds" "$acked") || true
  result "$name" "$check; client $(cat "$WORK/$name.burst")"
  kill "$SERVER" 2>/dev/null || true
}

postgres_restart() {
  local name=pgrestart port url token ds acked db ready=()
  port=$(free_port); url="http://127.0.0.1:$port"
  new_pg_db; db=$PG_URL
  start_server "$name" "$port" DATABASE_URL="$db"
  token=$(login "$url"); read -r _ ds < <(demo "$url" "$token")
  acked="$WORK/$name.acked"
  $CLIENT burst "$url" "$token" "$ds" 4 30 "$acked" "$WORK/$name.stop" >"$WORK/$name.burst" &
  local client=$!
  sleep 6
  local cluster; cluster=$(ls /etc/postgresql)
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main stop -m fast
  for _ in 1 2 3; do
    ready+=("$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")"); sleep 1
  done
  local during; during=$(curl -s -H "Authorization: Bearer $token" -X PUT -H 'content-type: application/json' \
    -d '{"labels":["down"]}' -w ' %{http_code}' "$url/api/images/1/annotation")
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -q && break; sleep 1; done
  local after=""
  for _ in $(seq 30); do
    after=$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz"); [ "$after" = 200 ] && break; sleep 1
  done
  wait "$client"
  local check
  check=$($CLIENT check "$url" "$token" "$ds" "$acked") || true
  result postgres-restart "/readyz while down: ${ready[*]}; a save while down: $during; /readyz after restart: $after (same server process); $check; client $(cat "$WORK/$name.burst")"
  kill "$SERVER" 2>/dev/null || true
}

worker_kill() {
  local name=workerkill port url token inst ds db task
  port=$(free_port); url="http://127.0.0.1:$port"
  new_pg_db; db=$PG_URL
  start_server "$name" "$port" DATABASE_URL="$db" AUTOLEARN_WORKERS=0
  token=$(login "$url"); read -r inst ds < <(demo "$url" "$token")
  task=$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"name\":\"fault\",\"dataset_id\":$ds,\"labels\":[\"circle\",\"square\",\"triangle\"],\"preset\":\"classification-fast\",\"device\":\"cpu\",\"max_minutes\":3,\"image_size\":64,\"max_epochs\":2,\"seed\":1}" \
    "$url/api/instances/$inst/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  worker() {
    env DATABASE_URL="$db" AUTOLEARN_DATA_DIR="$WORK/$name" AUTOLEARN_TASK_LEASE_SECS=6 AUTOLEARN_LOG=warn \
      "$BIN" worker >>"$WORK/$name-worker.log" 2>&1 &
    WORKER=$!; PIDS+=("$WORKER")
  }
  status() { curl -fsS -H "Authorization: Bearer $token" "$url/api/tasks/$task" | python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["status"], t.get("progress", 0))'; }
  worker
  for _ in $(seq 120); do [[ "$(status)" == running\ 0.[1-9]* ]] && break; sleep 1; done
  local before; before=$(status)
  kill -9 "$WORKER"
  sleep 8   # past the 6 s lease
  worker    # reaps the expired lease, then claims the task again
  local seen=""
  for _ in $(seq 300); do
    local s; s=$(status); seen="$seen ${s%% *}"
    case "$s" in succeeded*|failed*|stopped*) break ;; esac
    sleep 1
  done
  local versions; versions=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/instances/$inst/models" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  local events; events=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/tasks/$task/logs" | grep -c "re-queued" || true)
  result worker-kill "killed while '$before'; re-queued events: $events; final: $(status); model versions: $versions; statuses seen: $(echo "$seen" | tr ' ' '\n' | uniq | tr '\n' ' ')"
  kill "$WORKER" "$SERVER" 2>/dev/null || true
}

s3_restart() {
  local name=s3restart port url token s3port s3pid inst ds image
  s3port=$(free_port)
  mkdir -p "$WORK/s3/faults/circle"
  python3 - "$WORK/s3/faults" <<'PY'
import os, struct, sys, zlib
def png(w, h, seed):
    row = bytes((x * 5 + seed) % 256 for x in range(w * 3))
    raw = b"".join(b"\0" + row for _ in range(h))
    c = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + c(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + c(b"IDAT", zlib.compress(raw)) + c(b"IEND", b"")
for label in ("circle", "square"):
    os.makedirs(os.path.join(sys.argv[1], label), exist_ok=True)
    for i in range(5):
        open(os.path.join(sys.argv[1], label, f"{i}.png"), "wb").write(png(40, 30, i))
PY
  s3() { "$AUTOLEARN_TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$s3port" --access-key fault --secret-key fault-secret "$WORK/s3" >>"$WORK/s3.log" 2>&1 & s3pid=$!; PIDS+=("$s3pid"); sleep 1; }
  s3
  port=$(free_port); url="http://127.0.0.1:$port"
  start_server "$name" "$port" AUTOLEARN_S3_ENDPOINT="http://127.0.0.1:$s3port" AUTOLEARN_S3_BUCKETS=faults \
    AWS_ACCESS_KEY_ID=fault AWS_SECRET_ACCESS_KEY=fault-secret
  token=$(login "$url")
  inst=$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"type":"image_classification","name":"faults"}' "$url/api/instances" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  ds=$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"name":"faults","path":"s3://faults/"}' "$url/api/instances/$inst/datasets" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  image=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/datasets/$ds/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
  kill "$s3pid"; wait "$s3pid" 2>/dev/null || true
  local ready_down read_down
  ready_down=$(curl -s -w ' %{http_code}' "$url/readyz")
  read_down=$(curl -s -H "Authorization: Bearer $token" -w ' %{http_code}' "$url/api/images/$image/content" | tail -c 300)
  s3
  local ready_up="" read_up=""
  for _ in $(seq 20); do ready_up=$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz"); [ "$ready_up" = 200 ] && break; sleep 1; done
  read_up=$(curl -s -o /dev/null -H "Authorization: Bearer $token" -w '%{http_code}' "$url/api/images/$image/content")
  result s3-restart "S3 down: /readyz $ready_down; image read: $read_down; S3 back: /readyz $ready_up, image read $read_up (same server process)"
  kill "$SERVER" "$s3pid" 2>/dev/null || true
}

disk_full() {
  local name=diskfull port url token ds image before during after fill="$WORK/diskfull/filler"
  mkdir -p "$WORK/diskfull"
  mount -t tmpfs -o size=24m tmpfs "$WORK/diskfull"
  port=$(free_port); url="http://127.0.0.1:$port"
  start_server diskfull "$port"
  token=$(login "$url"); read -r _ ds < <(demo "$url" "$token")
  image=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/datasets/$ds/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
  before=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/images/$image" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["annotation"]))')
  dd if=/dev/zero of="$fill" bs=64k >/dev/null 2>&1 || true   # until the disk is full
  # Saves with labels long enough to need new pages, until one fails.
  local code="" body=""
  for n in $(seq 200); do
    body=$(curl -s -H "Authorization: Bearer $token" -X PUT -H 'content-type: application/json'       -d "{\"labels\":[\"full$n$(printf 'x%.0s' $(seq 40))\"]}" -w ' %{http_code}' "$url/api/images/$image/annotation")
    code=${body##* }
    [ "$code" != 200 ] && break
  done
  during=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/images/$image" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["annotation"]))' 2>&1 || echo unreadable)
  rm -f "$fill"
  after=$(curl -s -o /dev/null -H "Authorization: Bearer $token" -X PUT -H 'content-type: application/json'     -d '{"labels":["circle"]}' -w '%{http_code}' "$url/api/images/$image/annotation")
  result disk-full "after $((n - 1)) saves that fit, a save on the full disk: ${body:0:220}; the image then reads $during (its last acknowledged state; was $before at the start); space freed: a save answers $after (same server process)"
  kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true
  umount "$WORK/diskfull" || true
}

for c in $CASES; do
  case "$c" in
    save-kill-sqlite) save_kill savekill-sqlite ;;
    save-kill-postgres) new_pg_db; save_kill savekill-postgres DATABASE_URL="$PG_URL" ;;
    postgres-restart) postgres_restart ;;
    worker-kill) worker_kill ;;
    s3-restart) s3_restart ;;
    disk-full) disk_full ;;
    *) echo "unknown case $c" >&2; exit 1 ;;
  esac
done
echo
echo "fault campaign results:"
printf '  %s\n' "${RESULTS[@]}"
