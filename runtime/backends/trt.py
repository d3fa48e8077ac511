"""TensorRT backend for ``.engine`` files (torch-free; tensorrt and pycuda imported when opened).

Opening an engine: read its card (SHA-256 checked) -> refuse it when it was built for another
TensorRT version or compute capability (the message carries the rebuild command) -> load the
edgeseg plugin library when the engine has plugin layers -> deserialize -> bind I/O. Buffers
(pinned host + device, pycuda) are allocated once per batch size; ``infer`` copies in, runs
``execute_async_v3`` on the backend's own CUDA stream, copies out and synchronizes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.export.trt_common import dims_list

from edgeseg.card import ModelCard, card_path, read_card
from edgeseg.errors import BackendError, EngineError, ModelError


def _pycuda() -> Any:
    try:
        import pycuda.driver as cuda  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise BackendError("pycuda is not installed, so TensorRT engines cannot get GPU buffers; pip install "
                           "pycuda (on Jetson: with CUDA on PATH, e.g. export PATH=/usr/local/cuda/bin:$PATH)"
                           ) from None
    return cuda


class TrtBackend:
    """A TensorRT engine on GPU ``device``. ``infer``: float32 (N,3,H,W) -> float32 logits (N,K,H,W)."""

    name = "tensorrt"

    def __init__(self, path: str | Path, plugin: str | Path | None = None, device: int = 0) -> None:
        from edgeseg.export.trt_common import check_engine_card, device_info, require_tensorrt

        self.path = Path(path)
        self.card: ModelCard = read_card(self.path)
        if self.card.artifact != "engine":
            raise ModelError(f"model card {card_path(self.path)} describes a {self.card.artifact}, not a "
                             "TensorRT engine; build one with edgeseg build-engine")
        trt = require_tensorrt()  # EngineError with install help when missing
        self._trt = trt
        self.device = device_info(device)
        check_engine_card(self.card, self.path, trt.__version__, self.device)
        self.plugin = self._load_plugin(trt.__version__, plugin)
        cuda = _pycuda()
        cuda.init()
        self._cuda = cuda
        self._ctx = cuda.Device(device).retain_primary_context()  # the context TensorRT uses
        self._ctx.push()
        try:
            self._open_engine()
            self._stream = cuda.Stream()
        except BaseException:
            self._ctx.pop()
            self._ctx.detach()
            raise
        self._ctx.pop()
        self._batch = 0
        self._device_mem: dict[str, Any] = {}
        self._host: dict[str, np.ndarray] = {}

    def _load_plugin(self, version: str, plugin: str | Path | None) -> Path | None:
        from edgeseg.export.trt_common import load_plugin_library, resolve_plugin

        wanted = self.card.extra.get("plugin_sha256")
        if wanted is None and self.card.unpool_mode != "plugin":
            return None
        # Only --plugin or edgeseg's own build folder: the card's plugin_path is a note for people,
        # never loaded (a card is data; loading a library runs its code).
        lib = resolve_plugin(plugin, version)
        sha = load_plugin_library(lib, from_user=plugin is not None)
        if wanted is not None and sha != wanted:
            print(f"note: plugin library {lib} differs from the one {self.path.name} was built with "
                  f"(SHA-256 {sha[:12]}… vs {str(wanted)[:12]}…)", file=sys.stderr)
        return lib

    def _open_engine(self) -> None:
        import tensorrt as trt
        from edgeseg.export.trt_engine import collecting_logger

        self._logger = collecting_logger(verbose=False)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            reason = " | ".join(self._logger.errors[-2:]) or "no message"
            raise EngineError(f"TensorRT {trt.__version__} cannot deserialize {self.path.name} ({reason}); "
                              f"rebuild it: {self.card.extra.get('build_command', 'edgeseg build-engine')}")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not self._outputs:
            raise ModelError(f"{self.path.name} has {len(inputs)} inputs and {len(self._outputs)} outputs; "
                             "expected one image input and a logits output (rebuild with edgeseg "
                             "build-engine)")
        self._input = inputs[0]
        self._dtypes = {n: np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in names}
        batch = dims_list(self._engine.get_tensor_shape(self._input))[0]
        if batch >= 0:  # static engine: no optimization profile to ask
            self._batch_range = (batch, batch)
        else:
            lo, _, hi = self._engine.get_tensor_profile_shape(self._input, 0)
            self._batch_range = (int(lo[0]), int(hi[0]))
        self._in_chw = (3, *self.card.input_hw)

    def _bind(self, batch: int) -> None:
        """(Re)allocate pinned host and device buffers for ``batch`` and bind every I/O tensor."""
        for mem in self._device_mem.values():
            mem.free()
        # Forget the freed buffers first: a rejected shape must not leave them bound for reuse.
        self._device_mem, self._host, self._batch = {}, {}, 0
        if not self._context.set_input_shape(self._input, (batch, *self._in_chw)):
            raise BackendError(f"{self.path.name} rejects input shape {(batch, *self._in_chw)}")
        for name in (self._input, *self._outputs):
            shape = tuple(dims_list(self._context.get_tensor_shape(name)))
            host = self._cuda.pagelocked_empty(shape, self._dtypes[name])
            self._host[name] = host
            self._device_mem[name] = self._cuda.mem_alloc(max(host.nbytes, 1))
            self._context.set_tensor_address(name, int(self._device_mem[name]))
        self._batch = batch

    def infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) normalized batch -> float32 logits (N,K,H,W). Synchronous."""
        if batch_nchw.ndim != 4 or batch_nchw.shape[1:] != self._in_chw:
            want = ", ".join(map(str, self._in_chw))
            raise BackendError(f"input batch has shape {batch_nchw.shape}; expected (N, {want}) as "
                               "edgeseg.preprocess produces for this card")
        n = batch_nchw.shape[0]
        lo, hi = self._batch_range
        if not lo <= n <= hi:
            raise BackendError(f"batch {n} is outside the engine's range {lo}..{hi}; rebuild with "
                               "--min-batch/--max-batch covering it")
        cuda, out = self._cuda, self._outputs[0]
        self._ctx.push()
        try:
            if n != self._batch:
                self._bind(n)
            np.copyto(self._host[self._input], batch_nchw, casting="same_kind")
            cuda.memcpy_htod_async(self._device_mem[self._input], self._host[self._input], self._stream)
            if not self._context.execute_async_v3(self._stream.handle):
                # The input copy queued above may still read the buffers, which a later rebind frees.
                self._stream.synchronize()
                raise BackendError(f"TensorRT failed to run {self.path.name}: "
                                   f"{' | '.join(self._logger.errors[-2:]) or 'no message'}")
            cuda.memcpy_dtoh_async(self._host[out], self._device_mem[out], self._stream)
            self._stream.synchronize()
        finally:
            self._ctx.pop()
        return self._host[out].astype(np.float32)  # a copy: the pinned buffer is reused

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "device": self.device.name,
            "compute_capability": self.device.compute_capability,
            "tensorrt": self._trt.__version__,
            "precision": self.card.precision,
            "plugin": str(self.plugin) if self.plugin else None,
            "batch_range": list(self._batch_range),
        }

    def close(self) -> None:
        """Free device buffers, the execution context and the engine; release the CUDA context."""
        if getattr(self, "_ctx", None) is None:
            return
        self._ctx.push()
        try:
            for mem in self._device_mem.values():
                mem.free()
            self._device_mem, self._host = {}, {}  # pinned host buffers belong to this context too
            del self._context, self._engine, self._runtime  # TensorRT objects free their GPU memory
            del self._stream  # destroyed while its context is current, not after detach()
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
