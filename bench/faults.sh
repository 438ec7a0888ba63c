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
#   upload-kill: artifacts on S3; the worker reaches S3 through a throttling proxy
#     (bench/faults/slow_proxy.py) and is killed -9 as soon as its artifact PUT is in
#     flight, the connection then cut; no version may exist, the task must be re-queued and
#     finished by a second worker with exactly one version, which downloads and serves.
#   s3-restart: the S3 server stopped and started again; /readyz and an image read while
#     it is down, recovery without restarting our server.
#   two-servers: two API servers (own data dirs; one PostgreSQL, one S3 models prefix, one
#     secret) and two `autolearn worker`s, 90 s of mixed load through both: save bursts,
#     4 tasks created through A and B in turn, predict and recall through both (bench/
#     faults/mixed_load.py), a behaviour-log CF build started through A and polled through
#     B. Lost saves 0, every task ended with one version and one claim, answers by server.
#   cf-kill: kill -9 the server while a behaviour-log CF build runs, restart it on the same
#     data; once the dead server's lease runs out the restarted server's builder resumes the
#     build (the parsed log waits in the models store): it must succeed, with its tables.
#   disk-full: the server's data dir (SQLite database included) on a small tmpfs (needs
#     root) filled to the last byte; saves must fail clearly and change nothing, and work
#     again once space is freed.
# CASES="..." picks some (default: all). BIN_DIR=<dir> uses a built autolearn binary
# instead of building one (see build_server_for_bench: PROFILE=release|dev). KEEP_WORK=1
# keeps the work dir (every process's log) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
CASES="${CASES:-save-kill-sqlite save-kill-postgres postgres-restart worker-kill upload-kill s3-restart two-servers cf-kill disk-full}"
WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for d in "${DBS[@]}"; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "logs and data kept in $WORK" >&2; else rm -rf "$WORK"; fi
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

# launch_server NAME PORT [VAR=value ...]: a server on data dir $WORK/NAME, logging to
# $WORK/NAME.log, not waited for; sets SERVER.
launch_server() {
  local name=$1 port=$2
  shift 2
  env AUTOLEARN_ADDR="127.0.0.1:$port" AUTOLEARN_DATA_DIR="$WORK/$name" AUTOLEARN_ADMIN_PASSWORD=fault-pw \
    AUTOLEARN_LOG=warn AUTOLEARN_MIN_TASK_MINUTES=0 "$@" "$BIN" serve >>"$WORK/$name.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
}

# start_server NAME PORT [VAR=value ...]: launch_server, then wait until it is ready.
start_server() {
  launch_server "$@"
  wait_for "http://127.0.0.1:$2/readyz" 60
}

# start_worker LOG [VAR=value ...]: an `autolearn worker` logging to $WORK/LOG.log; sets WORKER.
start_worker() {
  local name=$1
  shift
  env AUTOLEARN_LOG=warn "$@" "$BIN" worker >>"$WORK/$name.log" 2>&1 &
  WORKER=$!
  PIDS+=("$WORKER")
}

# A small classification task on the shapes dataset; prints its id.
small_task() { # URL TOKEN INSTANCE DATASET NAME EPOCHS
  curl -fsS -H "Authorization: Bearer $2" -H 'content-type: application/json' \
    -d "{\"name\":\"$5\",\"dataset_id\":$4,\"labels\":[\"circle\",\"square\",\"triangle\"],\"preset\":\"classification-fast\",\"device\":\"cpu\",\"max_minutes\":3,\"image_size\":64,\"max_epochs\":$6,\"seed\":1}" \
    "$1/api/instances/$3/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

task_status() { # URL TOKEN TASK: "status progress"
  curl -fsS -H "Authorization: Bearer $2" "$1/api/tasks/$3" |
    python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["status"], round(t.get("progress", 0), 2))'
}

version_count() { # URL TOKEN INSTANCE
  curl -fsS -H "Authorization: Bearer $2" "$1/api/instances/$3/models" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

# await_task_end URL TOKEN TASK: waits (up to 300 s) until the task has ended; prints the
# statuses it went through.
await_task_end() {
  local seen="" st
  for _ in $(seq 300); do
    st=$(task_status "$@"); seen="$seen ${st%% *}"
    case "$st" in succeeded*|failed*|stopped*) break ;; esac
    sleep 1
  done
  echo "$seen" | tr ' ' '\n' | uniq | tr '\n' ' '
}

# The task's log lines that say it was re-queued.
requeued_events() { # URL TOKEN TASK
  curl -fsS -H "Authorization: Bearer $2" "$1/api/tasks/$3/logs" | grep -c "re-queued" || true
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
  task=$(small_task "$url" "$token" "$inst" "$ds" fault 2)
  worker() { start_worker "$name-worker" DATABASE_URL="$db" AUTOLEARN_DATA_DIR="$WORK/$name" AUTOLEARN_TASK_LEASE_SECS=6; }
  worker
  for _ in $(seq 120); do [[ "$(task_status "$url" "$token" "$task")" == running\ 0.[1-9]* ]] && break; sleep 1; done
  local before; before=$(task_status "$url" "$token" "$task")
  kill -9 "$WORKER"
  sleep 8   # past the 6 s lease
  worker    # reaps the expired lease, then claims the task again
  local seen; seen=$(await_task_end "$url" "$token" "$task")
  result worker-kill "killed while '$before'; re-queued events: $(requeued_events "$url" "$token" "$task"); final: $(task_status "$url" "$token" "$task"); model versions: $(version_count "$url" "$token" "$inst"); statuses seen: $seen"
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

# start_s3 DIR: an s3s-fs server on a free port serving DIR (each folder a bucket); sets
# S3PORT and S3PID.
start_s3() {
  S3PORT=$(free_port)
  "$AUTOLEARN_TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$S3PORT" --access-key fault --secret-key fault-secret "$1" \
    >>"$1.log" 2>&1 &
  S3PID=$!; PIDS+=("$S3PID")
  for _ in $(seq 20); do (exec 3<>"/dev/tcp/127.0.0.1/$S3PORT") 2>/dev/null && break; sleep 0.5; done
}
S3_KEYS=(AWS_ACCESS_KEY_ID=fault AWS_SECRET_ACCESS_KEY=fault-secret)

upload_kill() {
  local name=uploadkill port url token inst ds db task image pport proxy marker models
  new_pg_db; db=$PG_URL
  mkdir -p "$WORK/$name-s3/faults"   # the bucket
  start_s3 "$WORK/$name-s3"
  models="s3://faults/models/"
  port=$(free_port); url="http://127.0.0.1:$port"
  start_server "$name" "$port" DATABASE_URL="$db" AUTOLEARN_WORKERS=0 AUTOLEARN_MODELS="$models" \
    AUTOLEARN_S3_ENDPOINT="http://127.0.0.1:$S3PORT" "${S3_KEYS[@]}"
  token=$(login "$url"); read -r inst ds < <(demo "$url" "$token")
  task=$(small_task "$url" "$token" "$inst" "$ds" fault 2)
  image=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/datasets/$ds/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
  # The first worker reaches S3 through the throttling proxy, which writes $marker when it
  # sees the artifact's PUT (and $marker.bytes: its body bytes forwarded so far).
  pport=$(free_port); marker="$WORK/$name.upload"
  python3 bench/faults/slow_proxy.py "$pport" "$S3PORT" 65536 "$marker" >"$WORK/$name-proxy.log" 2>&1 &
  proxy=$!; PIDS+=("$proxy")
  uk_worker() { # S3 endpoint
    start_worker "$name-worker" DATABASE_URL="$db" AUTOLEARN_DATA_DIR="$WORK/$name" AUTOLEARN_TASK_LEASE_SECS=6 \
      AUTOLEARN_LOG=info AUTOLEARN_MODELS="$models" AUTOLEARN_S3_ENDPOINT="$1" "${S3_KEYS[@]}"
  }
  uk_status() { task_status "$url" "$token" "$task"; }
  uk_worker "http://127.0.0.1:$pport"
  for _ in $(seq 600); do [ -s "$marker" ] && break; kill -0 "$WORKER" 2>/dev/null || break; sleep 0.5; done
  if [ ! -s "$marker" ]; then
    result upload-kill "no artifact upload seen (task $(uk_status)); see $WORK/$name-worker.log"
    kill "$WORKER" "$SERVER" "$proxy" "$S3PID" 2>/dev/null || true
    return
  fi
  sleep 2   # some of the body through the throttle, most of it still to come
  local seen sent_at_kill before versions_at_kill sent_after
  seen=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["line"].split()[1].split("?")[0], "Content-Length", m["length"])' "$marker")
  sent_at_kill=$(cat "$marker.bytes" 2>/dev/null || echo 0)
  kill -9 "$WORKER"; wait "$WORKER" 2>/dev/null || true
  before=$(uk_status); versions_at_kill=$(version_count "$url" "$token" "$inst")
  # The connection cut too, as when the worker's machine vanishes (left alone, the kernel
  # would go on sending what the dead process had buffered).
  sleep 1; kill -9 "$proxy"; wait "$proxy" 2>/dev/null || true
  sent_after=$(cat "$marker.bytes" 2>/dev/null || echo 0)
  log "upload-kill: worker killed during $seen after $sent_at_kill body bytes; task '$before'; versions $versions_at_kill"
  sleep 8   # past the 6 s lease
  uk_worker "http://127.0.0.1:$S3PORT"   # straight to S3: reaps the lease, trains again, uploads
  local states; states=$(await_task_end "$url" "$token" "$task")
  local versions events claims objects serve model
  versions=$(version_count "$url" "$token" "$inst")
  events=$(requeued_events "$url" "$token" "$task")
  claims=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/tasks/$task/logs" | grep -c ") trains " || true)
  objects=$(cd "$WORK/$name-s3/faults" && find models -type f -printf '%p (%s B) ' 2>/dev/null || true)
  local cut; cut=$(grep -c "error reading a body" "$WORK/$name-s3.log" || true)
  model=$(curl -fsS -H "Authorization: Bearer $token" "$url/api/instances/$inst/models" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m[0]["id"] if m else 0)')
  serve=$(python3 bench/faults/serve_check.py "$url" "$token" "$model" "$image" uploadkill_shapes 2>&1) || true
  result upload-kill "upload seen: $seen; killed after $sent_at_kill body bytes forwarded ($sent_after when the connection was cut); at the kill: task '$before', model versions $versions_at_kill; S3 server errors reading a cut upload body: $cut; re-queued events: $events; claims (attempt lines): $claims; final: $(uk_status); model versions: $versions; objects under models/: ${objects:-none}; the version: $serve; statuses seen: $states"
  kill "$WORKER" "$SERVER" "$S3PID" 2>/dev/null || true
}

two_servers() {
  local name=twoservers db porta portb urla urlb token inst ds inst2 ds2 image secs=90 common=() tasks=() t
  new_pg_db; db=$PG_URL
  mkdir -p "$WORK/$name-s3/fleet"   # the bucket
  start_s3 "$WORK/$name-s3"
  # What every process shares: the database, the models prefix, the S3 server, the secret.
  common=(DATABASE_URL="$db" AUTOLEARN_MODELS="s3://fleet/models/" AUTOLEARN_S3_ENDPOINT="http://127.0.0.1:$S3PORT"
    "${S3_KEYS[@]}" AUTOLEARN_SECRET=fault-fleet-secret AUTOLEARN_TASK_LEASE_SECS=10)
  porta=$(free_port); portb=$(free_port); urla="http://127.0.0.1:$porta"; urlb="http://127.0.0.1:$portb"
  # Both servers started at once, on one fresh database (both run the migrations).
  local server_a server_b start_b="together with A"
  launch_server "$name-a" "$porta" AUTOLEARN_WORKERS=0 "${common[@]}"; server_a=$SERVER
  launch_server "$name-b" "$portb" AUTOLEARN_WORKERS=0 "${common[@]}"; server_b=$SERVER
  wait_for "$urla/readyz" 60
  if ! wait_for "$urlb/readyz" 30; then
    start_b="failed when started together with A (see $name-b.log), started again after A"
    log "two-servers: B $start_b"
    start_server "$name-b" "$portb" AUTOLEARN_WORKERS=0 "${common[@]}"; server_b=$SERVER
  fi
  token=$(login "$urla")   # one session, used on both servers (sessions are database rows)
  read -r inst ds < <(demo "$urla" "$token")     # training data, made through A
  read -r inst2 ds2 < <(demo "$urlb" "$token")   # the save bursts' images, made through B
  image=$(curl -fsS -H "Authorization: Bearer $token" "$urlb/api/datasets/$ds/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
  local workers=()
  for w in 1 2; do
    start_worker "$name-w$w" AUTOLEARN_DATA_DIR="$WORK/$name-w$w" AUTOLEARN_LOG=info "${common[@]}"
    workers+=("$WORKER")
  done
  for n in 1 2 3 4; do   # through A and B in turn
    if [ $((n % 2)) = 1 ]; then t=$urla; else t=$urlb; fi
    tasks+=("$(small_task "$t" "$token" "$inst" "$ds" "fleet$n" 1)")
  done
  log "two-servers: A $urla, B $urlb (B $start_b), workers ${workers[*]}, tasks ${tasks[*]}; ${secs}s of load"
  $CLIENT burst "$urla" "$token" "$ds2" 2 "$secs" "$WORK/$name.acked-a" "$WORK/$name.stop" 0 2 >"$WORK/$name.burst-a" &
  local burst_a=$!
  $CLIENT burst "$urlb" "$token" "$ds2" 2 "$secs" "$WORK/$name.acked-b" "$WORK/$name.stop" 1 2 >"$WORK/$name.burst-b" &
  local burst_b=$!
  python3 bench/faults/mixed_load.py "$urla" "$urlb" "$token" "$inst" "$image" "$secs" >"$WORK/$name.load" 2>"$WORK/$name.load.err" &
  local load=$!
  wait "$burst_a" "$burst_b"; wait "$load" || true
  # The tasks: all ended (not stuck), each with one version and one claim.
  local summary=""
  for _ in $(seq 360); do
    summary=$(python3 - "$urla" "$token" "$inst" "${tasks[@]}" <<'PY'
import collections, json, sys, urllib.request
url, token, inst, tasks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
get = lambda p: urllib.request.urlopen(urllib.request.Request(url + p, headers={"Authorization": "Bearer " + token}), timeout=30)
versions = collections.Counter(m["task_id"] for m in json.load(get(f"/api/instances/{inst}/models")))
rows, ended = [], 0
for t in tasks:
    task = json.load(get(f"/api/tasks/{t}"))
    log = get(f"/api/tasks/{t}/logs").read().decode()
    claims = [l.split(" worker ", 1)[1].split(" (attempt")[0] for l in log.splitlines() if ") trains " in l]
    ended += task["status"] in ("succeeded", "failed", "stopped")
    rows.append(f"task {t} {task['status']} attempts {task['attempts']} versions {versions[int(t)]} "
                f"claimed by {'+'.join(w.split(':')[1] for w in claims) or 'none'}"
                + (f" ({task['error']})" if task.get("error") else ""))
print(f"{ended}/{len(tasks)} ended, {sum(versions.values())} versions: " + "; ".join(rows))
PY
)
    [[ "$summary" == "${#tasks[@]}/${#tasks[@]} ended"* ]] && break
    sleep 1
  done
  # The saves: all acknowledged saves there, read through each server.
  cat "$WORK/$name.acked-a" "$WORK/$name.acked-b" >"$WORK/$name.acked"
  local check_a check_b
  check_a=$($CLIENT check "$urla" "$token" "$ds2" "$WORK/$name.acked") || true
  check_b=$($CLIENT check "$urlb" "$token" "$ds2" "$WORK/$name.acked") || true
  local load_summary
  load_summary=$(python3 - "$WORK/$name.load" "$WORK/$name.load.err" <<'PY'
import json, sys
try:
    o = json.load(open(sys.argv[1]))
except ValueError:
    print("load client failed: " + open(sys.argv[2]).read()[-300:].replace("\n", " "))
    sys.exit()
cf = o["cf"]
print(f"predict answers {json.dumps(o['predict'])}; recall answers {json.dumps(o['recall'])}, first u1 {json.dumps(o['recall_first'])}; "
      f"CF job started via A: {cf.get('start_via_A')}, polled {json.dumps(cf.get('polled_via'))}, final {json.dumps(cf.get('final'))}, "
      f"u9 after the build {json.dumps(cf.get('u9_after'))}; load ran {o['seconds']} s; notes: {' | '.join(o['notes'])}")
PY
)
  result two-servers "B started $start_b; saves via A $(cat "$WORK/$name.burst-a"), via B $(cat "$WORK/$name.burst-b"); check via A $check_a, via B $check_b; tasks: $summary; $load_summary; workers: $(for w in 1 2; do echo -n "w$w pid ${workers[$((w-1))]} "; done)"
  kill "$server_a" "$server_b" "${workers[@]}" "$S3PID" 2>/dev/null || true
}

cf_kill() {
  local name=cfkill port url token inst job before after="" seen="" log="$WORK/cf.log"
  port=$(free_port); url="http://127.0.0.1:$port"
  python3 bench/faults/cf_log.py "${CF_USERS:-10000}" "${CF_PER_USER:-300}" 20000 >"$log"
  start_server "$name" "$port" AUTOLEARN_TASK_LEASE_SECS=5
  token=$(login "$url")
  inst=$(curl -fsS -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"type":"recommendation_recall","name":"cfkill"}' "$url/api/instances" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  job=$(curl -fsS -H "Authorization: Bearer $token" --data-binary @"$log" \
    "$url/api/instances/$inst/behavior-logs?top_n=20" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  state() { curl -s -H "Authorization: Bearer $token" "$url/api/instances/$inst/behavior-logs/jobs/$job" |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], round(j["progress"], 2), j["stage"].replace(" ", "_"), j.get("error", ""))' 2>/dev/null || echo "down"; }
  # Killed once the similarities are under way (the progress row says so).
  for _ in $(seq 600); do
    before=$(state)
    case "$before" in running\ 0.[1-9]*computing*|succeeded*|failed*) break ;; esac
    sleep 0.2
  done
  kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
  log "$name: server killed while the job read: $before"
  start_server "$name" "$port" AUTOLEARN_TASK_LEASE_SECS=5
  local t0=$SECONDS
  for _ in $(seq 600); do
    after=$(state); seen="$seen ${after%% *}/$(echo "$after" | cut -d' ' -f3)"
    case "$after" in succeeded*|failed*) break ;; esac
    sleep 1
  done
  local recs
  recs=$(curl -s -H "Authorization: Bearer $token" "$url/api/instances/$inst/tables" |
    python3 -c 'import json,sys; print(", ".join("%s %d rows" % (t["table"], t["rows"]) for t in json.load(sys.stdin)))')
  local logs; logs=$(find "$WORK/$name/models/recall-logs" -type f 2>/dev/null | wc -l)
  result cf-kill "$(wc -l <"$log") log lines; killed while '$before'; restarted, then: $(echo "$seen" | tr ' ' '\n' | uniq | tr '\n' ' ')(ended $((SECONDS - t0)) s after the restart); final '$after'; tables: $recs; stored logs left: $logs"
  kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true
}

for c in $CASES; do
  case "$c" in
    save-kill-sqlite) save_kill savekill-sqlite ;;
    save-kill-postgres) new_pg_db; save_kill savekill-postgres DATABASE_URL="$PG_URL" ;;
    postgres-restart) postgres_restart ;;
    worker-kill) worker_kill ;;
    s3-restart) s3_restart ;;
    disk-full) disk_full ;;
    upload-kill) upload_kill ;;
    two-servers) two_servers ;;
    cf-kill) cf_kill ;;
    *) echo "unknown case $c" >&2; exit 1 ;;
  esac
done
echo
echo "fault campaign results:"
printf '  %s\n' "${RESULTS[@]}"
