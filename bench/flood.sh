#!/usr/bin/env bash
# Hostile-load benchmark (security issue), on loopback: for DURATION seconds (default 20)
# wrk floods, each at 80 connections (10x the predict benchmark's concurrency 8):
#   login with wrong passwords, predict and recall with wrong tokens, image content without
#   a session;
# meanwhile a legitimate client on another loopback address (127.0.0.2) keeps logging in as
# another user, predicting, recalling and reading images with the right credentials.
# Prints the flood's answers by status, the legitimate requests' success rate and latency,
# and the server's memory (RSS before, peak, after). docs/security.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
DURATION="${DURATION:-20}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null; }

build_server_for_bench
BIN="$BIN_DIR/autolearn"
PORT=$(free_port)
AUTOLEARN_ADDR="127.0.0.1:$PORT" AUTOLEARN_DATA_DIR="$WORK/data" AUTOLEARN_ADMIN_PASSWORD=bench-pw AUTOLEARN_LOG=error \
  AUTOLEARN_MIN_TASK_MINUTES=0 AUTOLEARN_WEIGHTS_DIR="$HOME/.cache/autolearn/weights" "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_for "http://127.0.0.1:$PORT/readyz" 30
URL="http://127.0.0.1:$PORT"
export AUTOLEARN_URL="$URL"
export AUTOLEARN_TOKEN=$(AUTOLEARN_PASSWORD=bench-pw "$BIN" login -u admin)
api() { curl -fsS -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: application/json' "$@"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

log "setting up: a trained shapes model served, a recall service, a second user"
INST=$(api -d '{"template":"shapes"}' "$URL/api/instances" | field '["id"]')
DS=$("$BIN" dataset list --instance "$INST" --json | field '[0]["id"]')
"$BIN" task create --instance "$INST" --dataset "$DS" --name flood --labels circle,square,triangle \
  --preset classification-fast --image-size 96 --device cpu --max-minutes 5 --max-epochs 1 --seed 1 --follow >/dev/null
MODEL=$("$BIN" model list --instance "$INST" --json | field '[0]["id"]')
PREDICT_TOKEN=$("$BIN" service deploy --model "$MODEL" --name flood --json | field '["token"]')
IMAGE=$(api "$URL/api/datasets/$DS/images?per_page=1" | field '["items"][0]["id"]')
REC=$(api -d '{"type":"recommendation_recall","name":"rec"}' "$URL/api/instances" | field '["id"]')
curl -fsS -X PUT -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: text/csv' \
  --data-binary $'user_id,item_ids\nu1,i1:1,i2:0.5\nu2,i2:1\n' "$URL/api/instances/$REC/tables/user_item" >/dev/null
curl -fsS -X PUT -H "Authorization: Bearer $AUTOLEARN_TOKEN" -H 'content-type: text/csv' \
  --data-binary $'item_id,item_ids\ni1,i3:0.9,i4:0.5\ni2,i4:0.7\n' "$URL/api/instances/$REC/tables/item_item" >/dev/null
api -d '{"name":"cf","type":"collaborative_filtering","count":10}' "$URL/api/instances/$REC/strategies" >/dev/null
RECALL_TOKEN=$(api -d '{"name":"rec"}' "$URL/api/instances/$REC/services" | field '["token"]')
api -d '{"username":"alice","password":"alice-password","permissions":[{"permission":"ListInstance"}]}' "$URL/api/users" >/dev/null
python3 -c 'import base64, json, sys; json.dump({"dataArray": [{"name": "image", "type": "stream", "body": base64.b64encode(open(sys.argv[1], "rb").read()).decode()}]}, open(sys.argv[2], "w"))' \
  "$(ls "$WORK"/data/templates/instance-"$INST"/circle/*.png | head -1)" "$WORK/body.json"

cat > "$WORK/login.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local user = (n % 2 == 0) and "admin" or ("guess" .. n)
  return wrk.format(nil, nil, nil, '{"username":"' .. user .. '","password":"wrong-' .. n .. '"}')
end
EOF
cat > "$WORK/predict.lua" <<EOF
wrk.method = "POST"
wrk.body = io.open("$WORK/body.json"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "not-the-token"
EOF
printf 'wrk.headers["Authorization"] = "not-the-token"\n' > "$WORK/recall.lua"
printf -- '-- no credentials\n' > "$WORK/image.lua"
rss() { awk "/$1/ {print int(\$2/1024)}" "/proc/$SERVER/status"; }
sleep 2
BEFORE=$(rss VmRSS)
FLOODS=()
log "flooding for ${DURATION}s: 4 x 80 connections of bad credentials; a legitimate client beside it"
wrk -t 1 -c 80 -d "${DURATION}s" -s "$WORK/login.lua" "$URL/api/auth/login" >"$WORK/wrk-login.txt" 2>&1 &
FLOODS+=($!)
wrk -t 1 -c 80 -d "${DURATION}s" -s "$WORK/predict.lua" "$URL/api/predict/flood" >"$WORK/wrk-predict.txt" 2>&1 &
FLOODS+=($!)
wrk -t 1 -c 80 -d "${DURATION}s" -s "$WORK/recall.lua" "$URL/api/recall/rec?user_id=u1&size=5" >"$WORK/wrk-recall.txt" 2>&1 &
FLOODS+=($!)
wrk -t 1 -c 80 -d "${DURATION}s" -s "$WORK/image.lua" "$URL/api/images/$IMAGE/content" >"$WORK/wrk-image.txt" 2>&1 &
FLOODS+=($!)
python3 - "$URL" "$DURATION" "$PREDICT_TOKEN" "$RECALL_TOKEN" "$IMAGE" "$WORK/body.json" <<'PY'
import http.client, json, sys, time, urllib.parse
url, duration, predict_token, recall_token, image, body_file = sys.argv[1:]
host = urllib.parse.urlparse(url)
body = open(body_file, "rb").read()
def call(method, path, headers=None, data=None):
    # From another loopback address: the flood's address is the one being throttled.
    c = http.client.HTTPConnection(host.hostname, host.port, timeout=30, source_address=("127.0.0.2", 0))
    t = time.perf_counter()
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    payload = r.read()
    c.close()
    return r.status, (time.perf_counter() - t) * 1000, payload
results = {}
end = time.time() + float(duration)
while time.time() < end:
    s, ms, payload = call("POST", "/api/auth/login", {"content-type": "application/json"},
                          json.dumps({"username": "alice", "password": "alice-password"}))
    session = json.loads(payload)["token"] if s == 200 else ""
    results.setdefault("login", []).append((s, ms))
    for name, method, path, headers, data in [
        ("predict", "POST", "/api/predict/flood", {"authorization": predict_token, "content-type": "application/json"}, body),
        ("recall", "GET", "/api/recall/rec?user_id=u1&size=5", {"authorization": recall_token}, None),
        ("image content", "GET", f"/api/images/{image}/content", {"authorization": f"Bearer {session}"}, None),
    ]:
        s, ms, _ = call(method, path, headers, data)
        results.setdefault(name, []).append((s, ms))
print("legitimate client (127.0.0.2), during the flood:")
for name, rs in results.items():
    ok = sum(1 for s, _ in rs if s == 200)
    ms = sorted(m for _, m in rs)
    print(f"  {name:14s} {ok}/{len(rs)} answered 200, latency p50 {ms[len(ms) // 2]:.0f} ms, max {ms[-1]:.0f} ms")
PY
for p in "${FLOODS[@]}"; do wait "$p" 2>/dev/null || true; done
sleep 1
for t in login predict recall image; do
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-$t.txt")
  errs=$(grep -E "Socket errors" "$WORK/wrk-$t.txt" || true)
  echo "flood $t: $rps req/s ${errs}"
done
echo "answers by route and status (the server's /metrics, flood and legitimate client together):"
curl -fsS "$URL/metrics" | grep '^autolearn_http_requests_total' |
  grep -E 'route="/api/(auth/login|predict/\{service\}|recall/\{service\}|images/\{id\}/content)"' | sed 's/^/  /'
echo "server memory: RSS ${BEFORE} MiB before, peak $(rss VmHWM) MiB, RSS $(rss VmRSS) MiB after"
kill -0 "$SERVER" && echo "server alive after the flood: $(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz") from /readyz"
