"""What every backend shares without importing a runtime library: its options and ``with`` support.

Each backend's options are one frozen dataclass holding that backend's defaults (declared once,
here; ``open_backend``, ``edgeseg.load``, ``stream``, ``eval`` and ``bench`` take them from it).
``None`` given for an option means "not given": the default applies. Option names are the CLI's
flag names with ``-`` as ``_`` (``--inference-precision`` is ``inference_precision``).

Devices are named the way each runtime names them, so their types differ on purpose:

* torch: a ``str`` ``"auto"`` (CUDA when torch sees a GPU, else CPU), ``"cpu"``, ``"cuda"`` or
  ``"cuda:N"`` (torch's device strings);
* TensorRT: an ``int``, the CUDA device index (``--device 1`` on the command line);
* OpenVINO: a ``str``, OpenVINO's device name (``CPU``, ``GPU``, ``GPU.1``, ``NPU``; any case).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar, get_args

# OpenVINO's computing precision: auto = OpenVINO's default for the device (bf16 on CPUs with bf16)
InferencePrecision = Literal["auto", "f32", "bf16", "f16"]
INFERENCE_PRECISIONS: tuple[str, ...] = get_args(InferencePrecision)


@dataclass(frozen=True)
class OrtOptions:
    """onnxruntime: ``threads`` intra-op threads (None: all cores); ``provider`` short or full
    onnxruntime provider names, a comma-separated str or a sequence (``cpu``, ``cuda``,
    ``tensorrt``; CPU is always added last for unsupported nodes); ``spinning`` lets idle threads
    busy-wait (off: the streaming loop needs those cores between inferences)."""

    threads: int | None = None
    provider: str | Sequence[str] = "cpu"
    spinning: bool = False


@dataclass(frozen=True)
class OpenVinoOptions:
    """OpenVINO: ``device`` its device name; ``inference_precision`` the precision it computes in;
    ``threads`` CPU inference threads (None: OpenVINO's choice; ignored on other devices)."""

    device: str = "CPU"
    inference_precision: InferencePrecision = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class TrtOptions:
    """TensorRT: ``plugin`` the edgeseg plugin library (None: ``edgeseg build-plugin``'s, never the
    card's); ``device`` the CUDA device index."""

    plugin: Path | None = None
    device: int = 0


@dataclass(frozen=True)
class TorchOptions:
    """torch: ``device`` ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``threads`` torch's CPU threads
    (None: torch's default)."""

    device: str = "auto"
    threads: int | None = None


BackendOptions = OrtOptions | OpenVinoOptions | TrtOptions | TorchOptions


_B = TypeVar("_B", bound="ClosingBackend")  # typing.Self needs Python 3.11; Jetsons run 3.10


class ClosingBackend:
    """Mixin for backends: ``with open_backend(path) as backend:`` closes it on leaving the block.

    Subclasses implement ``close()``, which must be idempotent (a second call does nothing).
    ``concurrent_infer``: ``infer`` may be called from several threads at once (``stream
    --infer-workers``); False unless a backend says so."""

    concurrent_infer = False

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
