#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtual environment in .venv with edgeseg and everything
# its tests need. Safe to re-run. torch is pinned to the CPU build first (an unpinned torch pulls a
# multi-GB CUDA build); on a CUDA machine install the matching torch build before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[train,dev]"
# TensorRT static checks (tests/test_trt_static.py, scripts/check_trt_api.py): TensorRT cannot be
# installed here. The class-scoped API check reads ../shared/tensorrt's binding sources; the
# bindings wheels of TensorRT 10.3 / 11.4 (downloaded, not installed) give the names the package's
# __init__.py adds (nptype, __version__); also the type stubs (into a folder, not the venv: an installed stub package would make
# `import tensorrt` succeed). Git-ignored .cache/; skipped when present; a failure only skips tests.
TRT_WHEELS=.cache/trt-wheels
mkdir -p "$TRT_WHEELS"
for spec in tensorrt-cu12-bindings==10.3.0 tensorrt-cu13-bindings==11.4.0.106; do
  name=$(echo "${spec%%==*}" | tr - _)-${spec##*==}
  ls "$TRT_WHEELS/$name"-*.whl >/dev/null 2>&1 || .venv/bin/python -m pip download -q --no-deps \
    --python-version 3.11 --only-binary=:all: -d "$TRT_WHEELS" "$spec" \
    || echo "warning: could not download $spec (TensorRT API-name tests will skip)"
done
if [ ! -f .cache/trt-stubs/tensorrt_libs/__init__.pyi ]; then
  .venv/bin/python -m pip install -q --no-deps --target .cache/trt-stubs "tensorrt-stubs==10.13.0.35.1" \
    && .venv/bin/python scripts/check_trt_api.py --patch-stubs .cache/trt-stubs \
    || echo "warning: could not install tensorrt-stubs (the TensorRT mypy test will skip)"
fi
# sm_72 (Jetson Xavier) and the JetPack 6 compiler: CUDA 13's nvcc dropped sm_72, so
# tests/test_kernel.py also compiles the kernel's device code with CUDA 12.6's NVRTC (the JetPack 6.1/6.2
# CUDA) from NVIDIA's pip wheels, unpacked into .cache/cuda12 (not the venv: a torch CUDA build may pin
# another nvrtc). A failure only skips those tests.
if [ ! -f .cache/cuda12/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 ]; then
  .venv/bin/python -m pip install -q --no-deps --target .cache/cuda12 \
    "nvidia-cuda-nvrtc-cu12==12.6.85" "nvidia-cuda-runtime-cu12==12.6.77" \
    || echo "warning: could not install CUDA 12.6 NVRTC (the sm_72 kernel compile test will skip)"
fi
echo "edgeseg set up in .venv ($(.venv/bin/edgeseg version))"
