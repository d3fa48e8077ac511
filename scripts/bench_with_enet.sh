#!/usr/bin/env bash
# CPU bench of ENet next to the five seed models (docs/own-model.md): random-init checkpoints
# (seed 0, BatchNorm warmed on noise; speed does not depend on training), exported and
# calibrated by `edgeseg bench` itself (native unpool; INT8 from 16 synthetic frames, minmax,
# full Q/DQ placement so onnxruntime's CPU integer kernels run).
#   INPUT=64x96 ITERS=20 THREADS=1 OUT=runs/bench-enet bash scripts/bench_with_enet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
INPUT=${INPUT:-64x96}
ITERS=${ITERS:-20}
THREADS=${THREADS:-1}
OUT=${OUT:-runs/bench-enet}
mkdir -p "$OUT/ckpt"
.venv/bin/python - "$OUT/ckpt" "$INPUT" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
from export_parity import make_checkpoint  # the same random-init, BatchNorm-warmed checkpoints

from edgeseg.models.registry import parse_hw

folder, hw = Path(sys.argv[1]), parse_hw(sys.argv[2])
for name in ("enet", "segnet", "segnet-basic", "res-segnet", "unet", "lite-unet"):
    if not (folder / name / "model.safetensors").is_file():
        make_checkpoint(folder, name, hw)
PY
.venv/bin/edgeseg bench "$OUT"/ckpt/{enet,segnet,segnet-basic,res-segnet,unet,lite-unet} \
  --backends torch,ort,ort-int8 --input "$INPUT" --calib synthetic --iters "$ITERS" --warmup 3 \
  --threads "$THREADS" --interleave --out "$OUT/bench"
