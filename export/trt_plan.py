"""What a TensorRT build is asked and decides: the ONNX file's facts, the build options and the
plan (network typing, builder flags, the shape profile). Pure data, torch- and TensorRT-free;
:mod:`edgeseg.export.trt_build` fills them and :mod:`edgeseg.export.trt_engine` records them in the
engine's card (a third module, so the two need not import each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.card import Precision

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
ONNX_FLOAT16 = 10  # onnx.TensorProto.FLOAT16
Shape = tuple[int, ...]


@dataclass(frozen=True)
class OnnxFacts:
    """What the builder needs to know about an ONNX file. ``input_shape`` has -1 for dynamic dims."""

    input_name: str
    input_shape: tuple[int, ...]
    has_qdq: bool
    float16: bool
    plugin_nodes: int

    @property
    def dynamic_batch(self) -> bool:
        return self.input_shape[0] < 0


@dataclass(frozen=True)
class BuildOptions:
    """How to build (``edgeseg build-engine`` takes its defaults from here).

    Batch sizes None = the ONNX file's fixed batch (or 1 when it is dynamic). ``plugin`` None =
    where ``edgeseg build-plugin`` puts the library; ``timing_cache`` is read and updated;
    ``dla_core`` runs the engine on that DLA core with GPU fallback; ``verbose`` shows TensorRT's
    full builder log (it changes nothing in the engine)."""

    precision: Precision = "fp16"
    workspace_mb: int = 1024
    plugin: Path | None = None
    timing_cache: Path | None = None
    dla_core: int | None = None
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    verbose: bool = False


@dataclass(frozen=True)
class BuildPlan:
    """Network typing, builder flags (names of ``trt.BuilderFlag`` members) and the input profile."""

    tensorrt_major: int
    strongly_typed: bool
    flags: tuple[str, ...]
    profile: tuple[Shape, Shape, Shape]  # (min, opt, max) of the input
    notes: tuple[str, ...] = field(default=())
