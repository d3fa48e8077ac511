"""TensorRT backend for ``.engine`` files (torch-free; tensorrt and pycuda imported when opened).

Opening an engine: read its card (SHA-256 checked) -> refuse it when it was built for another
TensorRT version or compute capability (the message carries the rebuild command) -> load the
edgeseg plugin library when the engine has plugin layers -> deserialize -> bind I/O.

Buffers: two slots of pinned host + device buffers (pycuda), allocated once per batch size, and
one CUDA stream. ``submit(x)`` copies ``x`` into a slot's pinned input, then queues on the stream
the host-to-device copy, ``execute_async_v3`` with that slot's addresses, the device-to-host copy
and an event, and returns at once; ``collect(ticket)`` waits for that event and returns the
output. With two slots the streaming loop queues frame n+1 before it collects frame n, so the
GPU never waits for Python between frames and the copies overlap host work. ``infer`` =
``collect(submit(x))``. Engines made with ``edgeseg deploy`` return uint8 labels (1 byte per
pixel instead of 4K) and may take uint8 frames (card ``input_kind``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.runtime.backends.base import ClosingBackend, TrtOptions
from edgeseg.runtime.trt_common import dims_list

from edgeseg.card import ModelCard, card_path, read_card
from edgeseg.errors import BackendError, EngineError, ModelError

SLOTS = 2  # buffer sets in flight: one running on the GPU while the next is queued


class TrtBackend(ClosingBackend):
    """A TensorRT engine on GPU ``options.device``. ``infer``: float32 (N,3,H,W) -> float32 logits
    (N,K,H,W). pycuda missing is an ImportError that ``open_backend`` turns into the install line."""

    name = "tensorrt"

    def __init__(self, path: str | Path, options: TrtOptions = TrtOptions()) -> None:
        from edgeseg.runtime.trt_common import check_engine_card, device_info, require_tensorrt

        self.path = Path(path)
        self.card: ModelCard = read_card(self.path)
        if self.card.artifact != "engine":
            raise ModelError(f"model card {card_path(self.path)} describes a {self.card.artifact}, not a "
                             "TensorRT engine; build one with edgeseg build-engine")
        trt = require_tensorrt()  # EngineError with install help when missing
        self._trt = trt
        self.device = device_info(options.device)
        check_engine_card(self.card, self.path, trt.__version__, self.device)
        self.plugin = self._load_plugin(trt.__version__, options.plugin)
        # after the card and TensorRT checks, whose messages say more than a missing pycuda
        import pycuda.driver as cuda  # type: ignore[import-not-found,import-untyped,unused-ignore]

        cuda.init()
        self._cuda = cuda
        self._ctx = cuda.Device(options.device).retain_primary_context()  # the context TensorRT uses
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
        self._slots: list[_Slot] = []
        self._next = 0

    def _load_plugin(self, version: str, plugin: str | Path | None) -> Path | None:
        from edgeseg.runtime.trt_common import load_plugin_library, resolve_plugin

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
        from edgeseg.runtime.trt_common import collecting_logger

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
        self._in_chw = (3, *self.card.input_hw) if self.card.frame_hw is None else (*self.card.frame_hw, 3)

    def _free(self) -> None:
        for slot in self._slots:
            for mem in slot.device.values():
                mem.free()
        self._slots, self._batch = [], 0

    def _bind(self, batch: int) -> None:
        """(Re)allocate ``SLOTS`` sets of pinned host + device buffers for ``batch``."""
        self._free()  # forget the freed buffers first: a rejected shape must not leave them bound
        if not self._context.set_input_shape(self._input, (batch, *self._in_chw)):
            raise BackendError(f"{self.path.name} rejects input shape {(batch, *self._in_chw)}")
        names = (self._input, *self._outputs)
        shapes = {n: tuple(dims_list(self._context.get_tensor_shape(n))) for n in names}
        for _ in range(SLOTS):
            host = {n: self._cuda.pagelocked_empty(s, self._dtypes[n]) for n, s in shapes.items()}
            device = {n: self._cuda.mem_alloc(max(h.nbytes, 1)) for n, h in host.items()}
            self._slots.append(_Slot(host, device, self._cuda.Event()))
        self._batch = batch

    def submit(self, batch_nchw: np.ndarray) -> int:
        """Queue one inference on the stream and return a ticket for :meth:`collect` (no wait).

        At most ``SLOTS`` tickets may be outstanding: the next submit reuses the oldest slot."""
        from edgeseg.runtime.backends import check_input

        check_input(batch_nchw, self.card, self._in_chw)
        n = batch_nchw.shape[0]
        lo, hi = self._batch_range
        if not lo <= n <= hi:
            raise BackendError(f"batch {n} is outside the engine's range {lo}..{hi}; rebuild with "
                               "--min-batch/--max-batch covering it")
        cuda = self._cuda
        self._ctx.push()
        try:
            if n != self._batch:
                self._bind(n)
            ticket, slot = self._next, self._slots[self._next]
            self._next = (self._next + 1) % SLOTS
            slot.event.synchronize()  # this slot's previous run is finished (normally long ago)
            np.copyto(slot.host[self._input], batch_nchw, casting="same_kind")
            cuda.memcpy_htod_async(slot.device[self._input], slot.host[self._input], self._stream)
            for name, mem in slot.device.items():
                self._context.set_tensor_address(name, int(mem))
            if not self._context.execute_async_v3(self._stream.handle):
                # The input copy queued above may still read the buffers, which a later rebind frees.
                self._stream.synchronize()
                raise BackendError(f"TensorRT failed to run {self.path.name}: "
                                   f"{' | '.join(self._logger.errors[-2:]) or 'no message'}")
            out = self._outputs[0]
            cuda.memcpy_dtoh_async(slot.host[out], slot.device[out], self._stream)
            slot.event.record(self._stream)
        finally:
            self._ctx.pop()
        return ticket

    def collect(self, ticket: int) -> np.ndarray:
        """Wait for ``ticket``'s run; float32 logits (N,K,H,W) or labels (N,H,W) — a copy, since the
        pinned buffer is reused two submits later."""
        slot = self._slots[ticket]
        self._ctx.push()
        try:
            slot.event.synchronize()
        finally:
            self._ctx.pop()
        out = slot.host[self._outputs[0]]
        return out.copy() if self.card.output_kind == "labels" else out.astype(np.float32)

    def done(self, ticket: int) -> bool:
        """Whether ``ticket``'s run (and its copy back) has finished; never blocks."""
        self._ctx.push()
        try:
            return bool(self._slots[ticket].event.query())
        finally:
            self._ctx.pop()

    def infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) normalized batch -> float32 logits (N,K,H,W) (labels (N,H,W) for
        engines with argmax inside). Synchronous."""
        return self.collect(self.submit(batch_nchw))

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
        """Free device buffers, the execution context and the engine; release the CUDA context
        (idempotent)."""
        if getattr(self, "_ctx", None) is None:
            return
        self._ctx.push()
        try:
            self._stream.synchronize()  # nothing may still run on buffers about to be freed
            self._free()  # pinned host buffers belong to this context too
            del self._context, self._engine, self._runtime  # TensorRT objects free their GPU memory
            del self._stream  # destroyed while its context is current, not after detach()
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None


class _Slot:
    """One set of I/O buffers: pinned host arrays and device allocations by tensor name, and the
    event recorded after the run that last used them."""

    def __init__(self, host: dict[str, np.ndarray], device: dict[str, Any], event: Any) -> None:
        self.host, self.device, self.event = host, device, event
