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
echo "edgeseg set up in .venv ($(.venv/bin/edgeseg version))"
