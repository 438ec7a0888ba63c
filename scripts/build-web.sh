#!/usr/bin/env bash
# Builds the browser app into dist/ (what `autolearn serve` serves; AUTOLEARN_WEB_DIR):
#   dist/index.html, dist/style/main.css, dist/pkg/app.js, dist/pkg/app_bg.wasm, and the
#   on-device model runtime the try and preview pages import: dist/infer/infer{.js,_bg.wasm}
# Plain cargo + wasm-bindgen-cli: no trunk, no cargo-leptos, no wasm-opt.
#
# Usage: scripts/build-web.sh [--dev]     (--dev: debug build, faster, larger)
# Env:   CARGO_TARGET_DIR (default target), DIST (default dist),
#        AUTOLEARN_TOOLS (default ~/.cache/autolearn/tools; wasm-bindgen is looked for in
#        $AUTOLEARN_TOOLS/bin, then on PATH).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

profile=wasm-release
if [[ "${1:-}" == "--dev" ]]; then
  profile=dev
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--dev]" >&2
  exit 2
fi

target_dir="${CARGO_TARGET_DIR:-target}"
dist="${DIST:-dist}"
tools="${AUTOLEARN_TOOLS:-$HOME/.cache/autolearn/tools}"

if [[ -x "$tools/bin/wasm-bindgen" ]]; then
  wasm_bindgen="$tools/bin/wasm-bindgen"
elif command -v wasm-bindgen >/dev/null 2>&1; then
  wasm_bindgen="$(command -v wasm-bindgen)"
else
  echo "error: wasm-bindgen not found in $tools/bin or on PATH." >&2
  echo "Install the version in Cargo.lock (without --locked):" >&2
  echo "  cargo install wasm-bindgen-cli --version <version> --root \"$tools\"" >&2
  exit 1
fi

# The CLI must match the wasm-bindgen crate version exactly, or the bindings break.
want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock 2>/dev/null || true)"
have="$("$wasm_bindgen" --version | awk '{ print $2 }')"
if [[ -n "$want" && "$want" != "$have" ]]; then
  echo "error: $wasm_bindgen is $have but Cargo.lock has wasm-bindgen $want." >&2
  exit 1
fi

cargo build -p app --target wasm32-unknown-unknown --profile "$profile"

out_dir="$profile"
[[ "$profile" == dev ]] && out_dir=debug
wasm="$target_dir/wasm32-unknown-unknown/$out_dir/app.wasm"

# The model runtime is always optimised for speed: a debug (or size-optimised) build of burn
# is several times slower.
cargo build -p infer --target wasm32-unknown-unknown --profile wasm-infer
infer_wasm="$target_dir/wasm32-unknown-unknown/wasm-infer/infer.wasm"

rm -rf "$dist"
mkdir -p "$dist/pkg" "$dist/style" "$dist/infer"
"$wasm_bindgen" --target web --no-typescript --out-dir "$dist/pkg" "$wasm"
"$wasm_bindgen" --target web --no-typescript --out-dir "$dist/infer" "$infer_wasm"
cp -R public/. "$dist/"
cp -R style/. "$dist/style/"
# Pre-compressed copies: the server sends them to browsers that accept gzip (the wasm
# shrinks about 4x), without compressing on every request.
find "$dist" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.html' \) -exec gzip -9 -k -f {} \;

echo "built $dist/ ($profile):"
ls -l "$dist/pkg" "$dist/infer"
