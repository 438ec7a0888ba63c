#!/usr/bin/env bash
# Builds the web app and runs the server on the embedded defaults (SQLite file and local
# data directory in ./autolearn-data), at http://127.0.0.1:8080 unless AUTOLEARN_ADDR says
# otherwise. All configuration variables of the README apply.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_wasm_tools
scripts/build-web.sh
log "building the server (release)"
cargo build --release -p server
exec "$CARGO_TARGET_DIR/release/autolearn" serve "$@"
