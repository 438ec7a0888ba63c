#!/usr/bin/env bash
# Indexing at scale (issue "Nothing acknowledged is ever lost", item 7): N generated images
# (default 10,000; N=100000 for the large run) in 10 label folders, indexed in place through
# the API from a local directory and from the S3 server (s3s-fs on loopback, serving the same
# files), each on a fresh server. Prints per source: images/second (create + index, the
# request's wall time), the server's peak memory (VmHWM), and p50/p99 of listing a random
# 100-image page (300 requests). Targets: >= 2,000 images/s from a directory, >= 500 from S3,
# peak < 200 MB, page p99 < 20 ms. docs/benchmarks.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
N="${N:-10000}"
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
ensure_s3_server
build_server_for_bench
BIN="$BIN_DIR/autolearn"

log "generating $N PNG images (320x240) in 10 folders"
python3 - "$WORK/gen" "$N" <<'PY'
import os, struct, sys, zlib
out, n = sys.argv[1], int(sys.argv[2])
def png(w, h, seed):
    row = bytes((x * 3 + seed) % 256 for x in range(w * 3))
    raw = b"".join(b"\0" + row for _ in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
bodies = [png(320, 240, s) for s in range(16)]
for i in range(n):
    d = os.path.join(out, f"label{i % 10}")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, f"img{i:06d}.png"), "wb").write(bodies[i % 16])
PY

S3_PORT=$(free_port)
mkdir -p "$WORK/s3"
cp -r "$WORK/gen" "$WORK/s3/bench"
"$AUTOLEARN_TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$S3_PORT" --access-key bench --secret-key bench-secret "$WORK/s3" >"$WORK/s3.log" 2>&1 &
S3_PID=$!
PIDS+=($S3_PID)

run() { # label, dataset path (local: moved under the data root)
  local start end ds id peak
  mkdir -p "$WORK/data-$1/datasets"
  [ "$1" = directory ] && cp -r "$WORK/gen" "$WORK/data-$1/datasets/gen"
  bench_server "$1" image_classification AUTOLEARN_S3_ENDPOINT="http://127.0.0.1:$S3_PORT" \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AUTOLEARN_S3_BUCKETS=bench
  start=$(date +%s.%N)
  ds=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"name\":\"gen\",\"path\":\"$2\"}" "$URL/api/instances/$INST/datasets")
  end=$(date +%s.%N)
  id=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["total"] == int(sys.argv[2]), d["total"]; print(d["id"])' "$ds" "$N")
  peak=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$SERVER/status")
  # CPU seconds so far of the server and of the S3 server (user + system).
  cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"; }
  echo "  CPU: server $(cpu "$SERVER") s, s3s-fs $(cpu "$S3_PID") s (cumulative)"
  python3 - "$1" "$start" "$end" "$peak" "$URL/api/datasets/$id/images" "$TOKEN" "$N" <<'PY'
import random, sys, time, urllib.request
label, start, end, peak, url, token, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7])
pages = n // 100
times = []
rng = random.Random(1)
for _ in range(300):
    req = urllib.request.Request(f"{url}?per_page=100&page={rng.randrange(1, pages + 1)}", headers={"Authorization": f"Bearer {token}"})
    t = time.perf_counter()
    body = urllib.request.urlopen(req).read()
    times.append((time.perf_counter() - t) * 1e3)
    assert b'"items"' in body
times.sort()
secs = end - start
print(f"{label}: {n} images indexed in {secs:.2f} s = {n / secs:,.0f} images/s; peak RSS {peak} MiB; "
      f"100-image page p50 {times[len(times) // 2]:.1f} ms, p99 {times[int(len(times) * 0.99)]:.1f} ms")
PY
  kill "$SERVER"
}
log "indexing from a directory"
run directory "$WORK/data-directory/datasets/gen"
log "indexing from the S3 server"
run s3 "s3://bench/"
