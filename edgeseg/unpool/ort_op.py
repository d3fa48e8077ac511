"""The unpool plugin node in onnxruntime on the CPU (torch-free).

Route: an onnxruntime-extensions Python custom op (``onnx_op``) in the extensions' domain
``ai.onnx.contrib`` (= ``OP_DOMAIN``), computed by :func:`reference.max_unpool2x2_ref` — the same
numpy function that specifies the CUDA kernel. Chosen over a compiled onnxruntime custom-op
library because it needs no build step on any machine (Jetson images included) and cannot drift
from the reference. Cost: onnxruntime-extensions converts a Python op's result to a Python list,
so the op is slow (see scripts/bench_unpool_ort.py); it exists for parity checks and
calibration, not for speed. Native-mode files need none of this.

Every onnxruntime session in edgeseg is created with :func:`session_options`, so plugin-mode
files load everywhere. Registration happens on first use, never at import.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edgeseg.errors import BackendError
from edgeseg.unpool import OP_NAME
from edgeseg.unpool.reference import max_unpool2x2_ref

_LOCK = threading.Lock()
_REGISTERED = False


def _extensions() -> Any:
    try:
        import onnxruntime_extensions
    except ImportError:
        raise BackendError(
            "onnxruntime-extensions is not installed, so plugin-mode ONNX files (custom unpool "
            "node) cannot run in onnxruntime; pip install onnxruntime-extensions, or export with "
            "--unpool native"
        ) from None
    return onnxruntime_extensions


def unpool_compute(x: np.ndarray, y: np.ndarray, **attrs: str) -> np.ndarray:
    """Kernel body: float32 (N,C,H,W) x and (N,C,H//2,W//2) y -> float32 (N,C,H,W).

    ``attrs`` are the node's ``plugin_version`` / ``plugin_namespace`` (accepted, not used).
    """
    out = max_unpool2x2_ref(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32))
    return np.ascontiguousarray(out, dtype=np.float32)


def register() -> str:
    """Register the op with onnxruntime-extensions once; return the custom-op library path."""
    global _REGISTERED
    ext = _extensions()
    with _LOCK:
        if not _REGISTERED:
            f32 = ext.PyCustomOpDef.dt_float
            string = ext.PyCustomOpDef.dt_string
            ext.onnx_op(
                op_type=OP_NAME,
                inputs=[f32, f32],
                outputs=[f32],
                attrs={"plugin_version": string, "plugin_namespace": string},
            )(unpool_compute)
            _REGISTERED = True
    return str(ext.get_library_path())


def session_options(threads: int | None = None) -> Any:
    """``onnxruntime.SessionOptions`` with the unpool op registered.

    ``threads``: intra-op thread count (None = onnxruntime's default, all cores).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise BackendError(f"threads={threads} must be >= 1 (or omitted for all cores)")
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.register_custom_ops_library(register())
    return so
