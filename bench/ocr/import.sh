#!/usr/bin/env bash
# Regenerates shared/src/model/ocr/ppocr_{det,rec}.rs, their weight maps and serving plans from RapidOCR
# 1.4.4's PP-OCRv4 ONNX files with burn-onnx 0.22.0's `onnx2burn`. Only needed when the
# models change; the server applies the weights from the same ONNX files at run time.
# Needs: python3 with pip (onnx, cbor2, numpy are installed into a throw-away venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "fetching rapidocr-onnxruntime 1.4.4 and the import tools"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet onnx cbor2 numpy
"$WORK/venv/bin/pip" download --quiet --no-deps rapidocr-onnxruntime==1.4.4 -d "$WORK"
(cd "$WORK" && unzip -q rapidocr_onnxruntime-1.4.4-py3-none-any.whl 'rapidocr_onnxruntime/models/*')
command -v onnx2burn >/dev/null || cargo install burn-onnx --version 0.22.0 --root "$AUTOLEARN_TOOLS"

for m in det rec; do
  log "importing the $m model"
  onnx2burn --no-development "$WORK/rapidocr_onnxruntime/models/ch_PP-OCRv4_${m}_infer.onnx" "$WORK/$m" >/dev/null
  "$WORK/venv/bin/python" bench/ocr/tidy_generated.py "$m" "$WORK/$m"/*.rs shared/src/model/ocr/ppocr_$m.rs
  "$WORK/venv/bin/python" bench/ocr/weight_map.py "$WORK/rapidocr_onnxruntime/models/ch_PP-OCRv4_${m}_infer.onnx" \
    "$WORK/$m"/*.bpk shared/src/model/ocr/ppocr_$m.map "$m"
  "$WORK/venv/bin/python" bench/ocr/inline_shapes.py shared/src/model/ocr/ppocr_$m.rs shared/src/model/ocr/ppocr_$m.map
  # The serving plans: the whole detector, the recogniser's backbone (its SVTR neck stays
  # with burn).
  last=""; [ "$m" = rec ] && last=submodule6
  python3 bench/ocr/plan.py shared/src/model/ocr/ppocr_$m.rs shared/src/model/ocr/ppocr_$m.plan $last
done
cargo fmt --all
log "done: run the known-answer test (cargo test -p server imported_models_match_onnxruntime)"
