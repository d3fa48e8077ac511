#!/usr/bin/env bash
# Reproduce the model shipped in edgeseg/assets/ (the one `edgeseg demo` runs):
#   1. train lite-unet on the built-in synthetic scenes (edgeseg train),
#   2. export the best checkpoint to ONNX for onnxruntime (native unpool ops, verified on
#      synthetic frames against PyTorch),
#   3. copy the ONNX file and its model card into edgeseg/assets/.
# Needs the training extra (torch): run `bash scripts/setup.sh` first. Re-running reuses a
# finished training run in $RUN (delete it to retrain). CPU-only; see docs/demo.md.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGESEG=${EDGESEG:-.venv/bin/edgeseg}
RUN=${RUN:-runs/synthetic-lite-unet}
INPUT=${INPUT:-96x128}
ASSET=edgeseg/assets/demo-lite-unet.onnx

if [ ! -f "$RUN/best/model.safetensors" ]; then
  "$EDGESEG" train --out "$RUN" --model lite-unet --data synthetic --input "$INPUT" --loss weighted-ce \
    --optimizer adamw --lr 0.004 --schedule poly --batch 8 --epochs 8 --synthetic-num 256 --seed 0 \
    --threads 1 --checkpoint-every 16
fi
mkdir -p "$RUN/export" edgeseg/assets
"$EDGESEG" export "$RUN/best/model.safetensors" -o "$RUN/export/model.onnx" --target onnxruntime \
  --data synthetic --frames 20
cp "$RUN/export/model.onnx" "$ASSET"
cp "$RUN/export/model.onnx.json" "$ASSET.json"
chmod 644 "$ASSET" "$ASSET.json"
ls -l "$ASSET" "$ASSET.json"
