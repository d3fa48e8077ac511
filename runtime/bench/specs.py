"""The bench's backend names (``ort-int8`` ...): which runtime, precision and device each row runs.

What the runtime registry knows is not restated here: a spec names a runtime of
:data:`edgeseg.runtime.backends.RUNTIMES`, and the kind of file it runs (checkpoint / ONNX / engine)
derives from the file suffix that runtime takes. Which file of a model family that is:
:mod:`edgeseg.runtime.bench.files`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgeseg.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # edgeseg.card is not needed at CLI import time
    from edgeseg.card import Artifact, Precision

Device = Literal["cpu", "cuda", "gpu", "npu"]  # gpu / npu: Intel devices of OpenVINO
ARTIFACT_OF_SUFFIX: dict[str, Artifact] = {".safetensors": "checkpoint", ".onnx": "onnx", ".engine": "engine"}


def runtime_suffix(runtime: str) -> str:
    """The file suffix ``runtime`` runs, read from the runtime registry (``RUNTIMES``)."""
    from edgeseg.runtime.backends import RUNTIMES  # numpy and the backends: not at CLI import time

    entry: Any = RUNTIMES[runtime]
    # a registry entry names its suffix (``.suffix``); the older table held it first in a tuple
    return str(getattr(entry, "suffix", None) or entry[0])


@dataclass(frozen=True)
class BackendSpec:
    """A bench backend name: the runtime it opens (a ``RUNTIMES`` key; tests/test_bench.py checks),
    the precision of the file it runs, and the device. ``inference_precision``: OpenVINO rows fixed
    to one (None: the ``--inference-precision`` option)."""

    name: str
    runtime: str
    precision: Precision
    device: Device
    what: str
    inference_precision: str | None = None

    @property
    def artifact(self) -> Artifact:
        """checkpoint | onnx | engine: the kind of file this row runs (from its runtime's suffix)."""
        return ARTIFACT_OF_SUFFIX[runtime_suffix(self.runtime)]


# in the order reports sort rows (edgeseg compare): precision falls within a runtime
BACKENDS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("torch", "torch", "fp32", "cpu", "PyTorch eager, CPU"),
    BackendSpec("torch-cuda", "torch", "fp32", "cuda", "PyTorch eager, CUDA GPU"),
    BackendSpec("ort", "onnxruntime", "fp32", "cpu", "onnxruntime CPU, FP32 ONNX"),
    BackendSpec("ort-fp16", "onnxruntime", "fp16", "cpu", "onnxruntime CPU, FP16 ONNX"),
    BackendSpec("ort-int8", "onnxruntime", "int8", "cpu", "onnxruntime CPU, Q/DQ INT8 ONNX"),
    BackendSpec("ort-cuda", "onnxruntime", "fp32", "cuda", "onnxruntime CUDA provider, FP32"),
    BackendSpec("ov", "openvino", "fp32", "cpu", "OpenVINO CPU, FP32 ONNX"),
    BackendSpec("ov-fp16", "openvino", "fp16", "cpu", "OpenVINO CPU, FP16 ONNX"),
    BackendSpec("ov-int8", "openvino", "int8", "cpu", "OpenVINO CPU, Q/DQ INT8 ONNX"),
    BackendSpec("ov-f32", "openvino", "fp32", "cpu", "OpenVINO CPU, FP32 ONNX computed in f32 "
                "(next to ov: bf16 by default on CPUs with bf16)", inference_precision="f32"),
    BackendSpec("ov-gpu", "openvino", "fp32", "gpu", "OpenVINO Intel GPU, FP32 ONNX"),
    BackendSpec("ov-npu", "openvino", "fp32", "npu", "OpenVINO Intel NPU, FP32 ONNX"),
    BackendSpec("trt-fp32", "tensorrt", "fp32", "cuda", "TensorRT engine, FP32"),
    BackendSpec("trt-fp16", "tensorrt", "fp16", "cuda", "TensorRT engine, FP16"),
    BackendSpec("trt-int8", "tensorrt", "int8", "cuda", "TensorRT engine, INT8 (Q/DQ)"),
)}
DEFAULT_BACKENDS = ("torch", "ort", "ort-int8")


def parse_backends(text: str) -> list[BackendSpec]:
    """``"torch,ort"`` -> specs; ConfigError naming the valid ones for an unknown name."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--backends is empty; pass some of {', '.join(BACKENDS)}")
    for n in names:
        if n not in BACKENDS:
            raise ConfigError(f"unknown backend {n!r}{did_you_mean(n, list(BACKENDS))}; valid backends: "
                              f"{', '.join(BACKENDS)}")
    return [BACKENDS[n] for n in dict.fromkeys(names)]


def parse_batches(text: str) -> list[int]:
    """``"1,4"`` -> [1, 4]; ConfigError for anything but positive integers."""
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        batches = []
    if not batches or any(b < 1 for b in batches):
        raise ConfigError(f"--batch {text!r} is not a list of positive integers; pass e.g. 1,4")
    return list(dict.fromkeys(batches))


def parse_inputs(text: str | None) -> list[tuple[int, int]] | None:
    """``"360x480,720x960"`` -> [(360, 480), (720, 960)]; None -> each model's own size."""
    if text is None:
        return None
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        h, _, w = part.lower().partition("x")
        if not (h.isdigit() and w.isdigit()) or int(h) < 1 or int(w) < 1:
            raise ConfigError(f"--input {part!r} is not HxW; pass e.g. 360x480 (several: 360x480,720x960)")
        out.append((int(h), int(w)))
    if not out:
        raise ConfigError("--input is empty; pass e.g. 360x480")
    return list(dict.fromkeys(out))


def unavailable(spec: BackendSpec) -> str | None:
    """Why ``spec`` cannot run on this machine at all (None when it can)."""
    if spec.runtime == "torch":
        return _torch_unavailable(spec)
    if spec.runtime == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        import onnxruntime as ort

        if spec.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider here (providers: "
                    f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu on a CUDA host")
    if spec.runtime == "openvino":
        return _openvino_unavailable(spec)
    if spec.runtime == "tensorrt":
        return _tensorrt_unavailable()
    return None


def _torch_unavailable(spec: BackendSpec) -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install 'edgeseg[train]')"
    if spec.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA GPU here"
    return None


def _tensorrt_unavailable() -> str | None:
    # the same test as the TensorRT backend's (a folder of type stubs imports as an empty package)
    try:
        import tensorrt as trt
    except ImportError as e:
        return f"TensorRT is not installed ({e})"
    if not hasattr(trt, "Builder") or not hasattr(trt, "__version__"):
        return "the 'tensorrt' module found here is not TensorRT (type stubs only?)"
    return None


def _openvino_unavailable(spec: BackendSpec) -> str | None:
    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed (pip install 'edgeseg[openvino]')"
    import openvino

    devices = list(openvino.Core().available_devices)
    if spec.device.upper() not in {d.split(".")[0] for d in devices}:
        return (f"OpenVINO {openvino.get_version()} has no {spec.device.upper()} device here (devices: "
                f"{', '.join(devices) or 'none'}); it needs an Intel {spec.device.upper()} and its driver")
    return None


@dataclass(frozen=True)
class BenchConfig:
    """What to run (each default here is the CLI's). ``inputs`` None = each model's own input size.
    ``threads`` None = all cores (the same number is given to torch and onnxruntime).
    ``interleave``: time the backends of one model and input round-robin
    (:mod:`edgeseg.runtime.bench.interleave`) instead of one after the other.
    ``inference_precision``: what OpenVINO rows compute in (``auto``: OpenVINO's default for the
    device; the precision actually used is recorded on each row). ``work_dir``: where files the
    bench prepares go; ``calib``: images to calibrate a missing INT8 ONNX on."""

    models: tuple[Path, ...] = ()
    backends: tuple[BackendSpec, ...] = tuple(BACKENDS[n] for n in DEFAULT_BACKENDS)
    work_dir: Path = Path("bench.artifacts")
    inputs: tuple[tuple[int, int], ...] | None = None
    batches: tuple[int, ...] = (1,)
    warmup: int = 10
    iters: int = 50
    threads: int | None = None
    data: str | None = None
    split: str = "val"
    data_num: int | None = None
    calib: str | None = None
    interleave: bool = False
    inference_precision: str = "auto"

    def __post_init__(self) -> None:
        if self.iters < 1 or self.warmup < 0:
            raise ConfigError(f"--iters {self.iters} / --warmup {self.warmup}: need iters >= 1 and "
                              "warmup >= 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads {self.threads} must be at least 1")
