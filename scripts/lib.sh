# Shared set-up for scripts/*.sh: tool locations, the cargo target directory, installers.
# Sourced, not run.

# One cargo target directory outside the clone, so every clone and CI run builds incrementally.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if [ -d /work ] && [ -w /work ]; then CARGO_TARGET_DIR=/work/target; else CARGO_TARGET_DIR="$HOME/.cache/autolearn/target"; fi
fi
export CARGO_TARGET_DIR
# Tools the scripts install (wasm-bindgen, s3s-fs) live here, outside the clone.
AUTOLEARN_TOOLS="${AUTOLEARN_TOOLS:-$HOME/.cache/autolearn/tools}"
export PATH="$AUTOLEARN_TOOLS/bin:$PATH"

WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen version in Cargo.lock
S3S_FS_VERSION=0.14.1          # the newest s3s-fs that builds on rustc 1.95

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_wasm_tools() {
  if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
    log "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! "$AUTOLEARN_TOOLS/bin/wasm-bindgen" --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 5 minutes, once)"
    # Not --locked: its lock file names a crate version missing from the registry.
    cargo install --root "$AUTOLEARN_TOOLS" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

ensure_s3_server() {
  if ! "$AUTOLEARN_TOOLS/bin/s3s-fs" --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
    log "installing s3s-fs $S3S_FS_VERSION, the S3-compatible test server (about 3 minutes, once)"
    cargo install --locked --root "$AUTOLEARN_TOOLS" s3s-fs --version "$S3S_FS_VERSION" --features binary
  fi
}

ensure_chromium() {
  # A CJK font, so OCR transcriptions such as 京A·12345 render in screenshots.
  if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi wqy; then
    log "installing Chromium and a CJK font from Debian"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y chromium chromium-driver fonts-wqy-zenhei >/dev/null
  fi
}

ensure_onnxruntime() {
  # The reference the imported OCR models are checked against (and the OCR benchmark's
  # peer, RapidOCR, runs on it).
  if ! python3 -c "import onnxruntime, numpy" 2>/dev/null; then
    log "installing onnxruntime from PyPI"
    python3 -m pip install --quiet onnxruntime numpy
  fi
}

ensure_postgres() {
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until URL answers 200, or fails after $2 seconds.
wait_for() {
  for _ in $(seq "${2:-60}"); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

# Builds the server for a benchmark and sets BIN_DIR to where its binary is. PROFILE=release
# (the default, what scripts/run.sh serves) or PROFILE=dev: the test build, whose dependencies
# and server crate are optimised too (opt-level 2, Cargo.toml), for a machine that cannot
# spare the time of a second full build; a benchmark says which it ran. FEATURES as cargo's.
# Starts "$BIN serve" on a free port with its data in $WORK/data-NAME (more settings as
# VAR=value arguments), logs in as admin and creates an instance of TYPE: sets SERVER (its
# pid, also added to the caller's PIDS), URL, TOKEN and INST. For bench scripts.
bench_server() { # name, type, [VAR=value ...]
  local name=$1 type=$2 port
  shift 2
  port=$(free_port)
  env AUTOLEARN_ADDR="127.0.0.1:$port" AUTOLEARN_DATA_DIR="$WORK/data-$name" AUTOLEARN_ADMIN_PASSWORD=bench-pw \
    AUTOLEARN_LOG=error "$@" "$BIN" serve >"$WORK/server-$name.log" 2>&1 &
  SERVER=$!
  PIDS+=($SERVER)
  URL="http://127.0.0.1:$port"
  wait_for "$URL/readyz" 30
  TOKEN=$(AUTOLEARN_URL="$URL" AUTOLEARN_PASSWORD=bench-pw "$BIN" login -u admin)
  INST=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "{\"type\":\"$type\",\"name\":\"bench\"}" "$URL/api/instances" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
}

build_server_for_bench() {
  case "${PROFILE:-release}" in
    release) log "building the release server"
      cargo build --release -p server ${FEATURES:+--features "$FEATURES"}
      BIN_DIR="$CARGO_TARGET_DIR/release" ;;
    dev) log "building the server (dev profile, optimised dependencies)"
      cargo build -p server ${FEATURES:+--features "$FEATURES"}
      BIN_DIR="$CARGO_TARGET_DIR/debug" ;;
    *) echo "PROFILE must be release or dev" >&2; return 1 ;;
  esac
  echo "server binary: $BIN_DIR/autolearn (profile ${PROFILE:-release})"
}
