#!/usr/bin/env bash
# Runs every test: formatting and clippy (native and wasm32), unit tests, the integration
# suite on SQLite and PostgreSQL with local and S3 storage (a real s3s-fs server started
# here), and the Chromium end-to-end suite against a real server. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_tools
ensure_s3_server
ensure_chromium
ensure_postgres
ensure_onnxruntime

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "dropping databases left by earlier test runs"
psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'autolearn_t_%'" |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done

log "starting s3s-fs (S3-compatible server)"
S3_PORT=$(free_port)
mkdir -p "$WORK/s3"
s3s-fs --host 127.0.0.1 --port "$S3_PORT" --access-key autolearn --secret-key autolearn-secret "$WORK/s3" >"$WORK/s3.log" 2>&1 &
PIDS+=($!)
export AUTOLEARN_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export AUTOLEARN_TEST_S3_ACCESS_KEY=autolearn AUTOLEARN_TEST_S3_SECRET_KEY=autolearn-secret
for _ in $(seq 30); do (echo > "/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break; sleep 0.2; done

log "cargo fmt --check"
cargo fmt --all -- --check
log "clippy (native)"
cargo clippy --all-targets -- -D warnings
log "clippy (wasm32: the browser app and its model runtime)"
cargo clippy -p app -p infer --target wasm32-unknown-unknown -- -D warnings

log "unit and integration tests (SQLite + PostgreSQL, local + S3)"
cargo test
log "unit tests of the browser app (geometry, parsing), natively"
cargo test -p app --lib

log "end-to-end tests in Chromium"
scripts/build-web.sh
cargo build   # all default members: the same feature set as `cargo test`, so nothing rebuilds
APP_PORT=$(free_port)
AUTOLEARN_ADDR="127.0.0.1:$APP_PORT" AUTOLEARN_DATA_DIR="$WORK/app-data" AUTOLEARN_ADMIN_PASSWORD=e2e-admin-pw \
  AUTOLEARN_WORKERS=1 AUTOLEARN_MIN_TASK_MINUTES=0 AUTOLEARN_WEIGHTS_DIR="$HOME/.cache/autolearn/weights" \
  AUTOLEARN_WEB_DIR="$PWD/dist" "$CARGO_TARGET_DIR/debug/autolearn" serve >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$APP_PORT/readyz" 60 || { cat "$WORK/server.log"; exit 1; }
(cd end2end && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund; } &&
  BASE_URL="http://127.0.0.1:$APP_PORT" ADMIN_PASSWORD=e2e-admin-pw DATA_DIR="$WORK/app-data" npm test) ||
  { echo "--- server log"; tail -50 "$WORK/server.log"; exit 1; }
log "all tests passed"
