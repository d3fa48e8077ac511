"""``edgeseg bench`` core: time one backend on one input shape and describe what it ran on.

torch-free (torch is imported only by the torch backend itself, and by the CUDA memory probe when
the torch backend already imported it). One measurement (:func:`measure`):

1. ``warmup`` untimed calls of ``backend.infer`` on a fixed normalized random batch
   (first-call allocations, onnxruntime graph optimisation, cuDNN autotuning happen here);
2. ``iters`` timed calls, each ``time.perf_counter`` around the synchronous ``infer``
   (the backends return host arrays, so GPU work is finished inside the timed call);
3. latency per batch: mean / p50 / p90 / p99; throughput = images / sum of the timed calls.

Host memory is the process's peak resident set (``VmHWM`` in ``/proc/self/status``), reset before
the backend is opened (``/proc/self/clear_refs``), so each row's peak is its own; ``host_delta``
subtracts the resident set just before the backend was opened. No psutil needed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import ConfigError, did_you_mean
from edgeseg.io import load_onnx


@dataclass(frozen=True)
class BackendSpec:
    """A bench backend name: which artifact it runs, with which runtime, on which device."""

    name: str
    runtime: str  # torch | onnxruntime | openvino | tensorrt
    artifact: str  # checkpoint | onnx | engine
    precision: str  # fp32 | fp16 | int8 (of the file; OpenVINO rows also record what it computed in)
    device: str  # cpu | cuda | gpu / npu (Intel, OpenVINO)
    what: str
    inference_precision: str | None = None  # OpenVINO: fixed for this row (None: --inference-precision)


BACKENDS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("torch", "torch", "checkpoint", "fp32", "cpu", "PyTorch eager, CPU"),
    BackendSpec("torch-cuda", "torch", "checkpoint", "fp32", "cuda", "PyTorch eager, CUDA GPU"),
    BackendSpec("ort", "onnxruntime", "onnx", "fp32", "cpu", "onnxruntime CPU, FP32 ONNX"),
    BackendSpec("ort-int8", "onnxruntime", "onnx", "int8", "cpu", "onnxruntime CPU, Q/DQ INT8 ONNX"),
    BackendSpec("ort-fp16", "onnxruntime", "onnx", "fp16", "cpu", "onnxruntime CPU, FP16 ONNX"),
    BackendSpec("ort-cuda", "onnxruntime", "onnx", "fp32", "cuda", "onnxruntime CUDA provider, FP32"),
    BackendSpec("ov", "openvino", "onnx", "fp32", "cpu", "OpenVINO CPU, FP32 ONNX"),
    BackendSpec("ov-int8", "openvino", "onnx", "int8", "cpu", "OpenVINO CPU, Q/DQ INT8 ONNX"),
    BackendSpec("ov-fp16", "openvino", "onnx", "fp16", "cpu", "OpenVINO CPU, FP16 ONNX"),
    BackendSpec("ov-f32", "openvino", "onnx", "fp32", "cpu", "OpenVINO CPU, FP32 ONNX computed in f32 "
                "(next to ov: bf16 by default on CPUs with bf16)", inference_precision="f32"),
    BackendSpec("ov-gpu", "openvino", "onnx", "fp32", "gpu", "OpenVINO Intel GPU, FP32 ONNX"),
    BackendSpec("ov-npu", "openvino", "onnx", "fp32", "npu", "OpenVINO Intel NPU, FP32 ONNX"),
    BackendSpec("trt-fp32", "tensorrt", "engine", "fp32", "cuda", "TensorRT engine, FP32"),
    BackendSpec("trt-fp16", "tensorrt", "engine", "fp16", "cuda", "TensorRT engine, FP16"),
    BackendSpec("trt-int8", "tensorrt", "engine", "int8", "cuda", "TensorRT engine, INT8 (Q/DQ)"),
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


# ----------------------------------------------------------------------------- what it ran on

def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def board_model() -> str | None:
    """Jetson board name from the device tree (None elsewhere)."""
    try:
        return Path("/proc/device-tree/model").read_text().strip("\x00\n ") or None
    except OSError:
        return None


def gpu_name() -> str | None:
    """Name of GPU 0 from nvidia-smi (None without a driver); Jetson boards give their model."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return board_model()
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].strip() if out else None


def library_versions() -> dict[str, str | None]:
    """Installed versions of the inference libraries (from package metadata: nothing imported)."""
    versions: dict[str, str | None] = {}
    for key, dists in (("onnxruntime", ("onnxruntime", "onnxruntime-gpu")), ("torch", ("torch",)),
                       ("openvino", ("openvino",)),
                       ("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"))):
        versions[key] = None
        for dist in dists:
            try:
                versions[key] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def machine_facts(threads: int | None) -> dict[str, Any]:
    """What every row ran on: CPU model and threads, GPU name, library versions, load."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": threads,
            "gpu": gpu_name(), "board": board_model(), "machine": platform.machine(),
            "python": platform.python_version(), "versions": library_versions(),
            "loadavg_1m": round(load[0], 2) if load else None}


def busy_warning(machine: dict[str, Any], threads: int | None) -> str | None:
    """A line when other work already holds the cores the rows would use, else None.

    Busy cores distort rows unequally: on a 2-core host at load ~11, torch with 2 threads ran 12.6x
    slower than with 1 while onnxruntime lost far less (docs/benchmarks.md), so ratios between
    backends stop meaning anything. The 1-minute load average is read before the run.
    """
    load, cpus = machine.get("loadavg_1m"), machine.get("cpu_count")
    if load is None or not cpus or threads is None or load + threads <= cpus + 0.5:
        return None
    fix = "--threads 1 --interleave" if threads > 1 else "--interleave, or a quieter moment"
    return (f"load average {load:.1f} on {cpus} CPUs before the run, with --threads {threads}: other work "
            f"competes for these cores and distorts backends unequally (torch most); for fair ratios use "
            f"{fix}")


# ----------------------------------------------------------------------------- memory

def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_mb() -> float | None:
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024.0


def gpu_memory_mb(backend: Any) -> float | None:
    """Peak GPU memory of a torch CUDA backend (torch's allocator); None for other backends."""
    if getattr(getattr(backend, "device", None), "type", None) == "cuda":
        torch = backend._torch  # the backend imported torch already
        return torch.cuda.max_memory_allocated(backend.device) / 2**20
    return None


def reset_gpu_memory(backend: Any) -> None:
    if getattr(getattr(backend, "device", None), "type", None) == "cuda":
        backend._torch.cuda.reset_peak_memory_stats(backend.device)


# ----------------------------------------------------------------------------- timing

@dataclass(frozen=True)
class Timing:
    """Timed calls of one backend on one batch shape. ``seconds``: one entry per timed call."""

    batch: int
    seconds: tuple[float, ...]
    interrupted: bool = False  # Ctrl-C cut the timed calls short

    @property
    def total_s(self) -> float:
        return float(sum(self.seconds))

    def latency_ms(self) -> dict[str, float | None]:
        if not self.seconds:
            return {k: None for k in ("mean", "p50", "p90", "p99")}
        a = np.asarray(self.seconds) * 1000.0
        p50, p90, p99 = np.percentile(a, (50, 90, 99))
        return {"mean": round(float(a.mean()), 3), "p50": round(float(p50), 3),
                "p90": round(float(p90), 3), "p99": round(float(p99), 3)}

    def throughput(self) -> float | None:
        """Images per second over the timed calls."""
        return None if not self.seconds else round(self.batch * len(self.seconds) / self.total_s, 3)


def random_batch(batch: int, hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A normalized-looking float32 (N, 3, H, W) batch (standard normal), fixed per seed."""
    return np.random.default_rng(seed).standard_normal((batch, 3, *hw), dtype=np.float32)


def measure(infer: Callable[[np.ndarray], Any], batch_nchw: np.ndarray, *, warmup: int, iters: int,
            on_iter: Callable[[int], None] | None = None, on_start: Callable[[], None] | None = None,
            min_seconds: float = 0.0) -> Timing:
    """Warm up, then time ``iters`` calls (more while ``min_seconds`` is not reached).

    ``on_start`` is called when the timed calls begin (e.g. to drop power samples of the warm-up).

    A KeyboardInterrupt during the timed calls returns what was timed so far (the caller marks
    the row as interrupted); one during warm-up propagates.
    """
    if iters < 1 or warmup < 0:
        raise ConfigError(f"--iters {iters} / --warmup {warmup}: need iters >= 1 and warmup >= 0")
    for _ in range(warmup):
        infer(batch_nchw)
    seconds: list[float] = []
    if on_start is not None:
        on_start()
    t_start = time.perf_counter()
    try:
        while len(seconds) < iters or time.perf_counter() - t_start < min_seconds:
            t0 = time.perf_counter()
            infer(batch_nchw)
            seconds.append(time.perf_counter() - t0)
            if on_iter is not None:
                on_iter(len(seconds))
    except KeyboardInterrupt:
        if not seconds:
            raise
        return Timing(int(batch_nchw.shape[0]), tuple(seconds), interrupted=True)
    return Timing(int(batch_nchw.shape[0]), tuple(seconds))


def measure_interleaved(infers: list[Callable[[np.ndarray], Any]], batch_nchw: np.ndarray, *, warmup: int,
                        iters: int, on_iter: Callable[[int], None] | None = None
                        ) -> tuple[list[Timing], dict[int, BaseException]]:
    """Time several backends round-robin: call i of backend 0, call i of backend 1, ... .

    On a shared, noisy machine every backend then sees the same load over the same minutes, so
    their ratios are fair even when absolute latencies drift. Returns one Timing per backend and
    the exceptions of backends that raised (index -> exception; such a backend stops being called).
    Ctrl-C returns the calls timed so far, every Timing marked interrupted.
    """
    if iters < 1 or warmup < 0:
        raise ConfigError(f"--iters {iters} / --warmup {warmup}: need iters >= 1 and warmup >= 0")
    seconds: list[list[float]] = [[] for _ in infers]
    errors: dict[int, BaseException] = {}
    interrupted = False

    def call(j: int) -> float | None:
        try:
            t0 = time.perf_counter()
            infers[j](batch_nchw)
            return time.perf_counter() - t0
        except Exception as e:  # one backend failing must not stop the others
            errors[j] = e
            return None

    for j in range(len(infers)):
        for _ in range(warmup):
            if j not in errors:
                call(j)
    try:
        for i in range(iters):
            for j in range(len(infers)):
                if j not in errors and (dt := call(j)) is not None:
                    seconds[j].append(dt)
            if on_iter is not None:
                on_iter(i + 1)
    except KeyboardInterrupt:
        interrupted = True
    n = int(batch_nchw.shape[0])
    return [Timing(n, tuple(s), interrupted=interrupted) for s in seconds], errors


# ----------------------------------------------------------------------------- model facts

def onnx_gflops(path: str | os.PathLike[str]) -> float | None:
    """GFLOPs of one image through an ONNX graph: 2 x multiply-accumulates of Conv,
    ConvTranspose, Gemm and MatMul (the convention of :mod:`edgeseg.models.profile`).

    Shapes come from ONNX shape inference; None when a counted node's shapes are unknown.
    """
    import onnx

    # data_prop: sizes computed from Shape ops (F.interpolate(size=x.shape[-2:]) exports) propagate
    model = onnx.shape_inference.infer_shapes(load_onnx(path), data_prop=True)
    g = model.graph
    shapes: dict[str, list[int | None]] = {t.name: list(t.dims) for t in g.initializer}
    for vi in (*g.input, *g.value_info, *g.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    total = 0
    for node in g.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            return None
        total += macs
    return round(2 * total / 1e9, 4)


def _node_macs(node: Any, shapes: dict[str, list[int | None]]) -> int | None:
    """Multiply-accumulates of one node per image (0 for ops that are not counted)."""
    if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return 0
    w_dims, out_dims = shapes.get(node.input[1]), shapes.get(node.output[0])
    x_dims = shapes.get(node.input[0])
    if not w_dims or not out_dims or not x_dims:
        return None
    # the batch dimension (index 0 of out and x) may be dynamic; every other one must be static
    w, out_chw, x_chw = _static(w_dims), _static(out_dims[1:]), _static(x_dims[1:])
    if w is None or out_chw is None or x_chw is None:
        return None
    if node.op_type == "Conv":  # out (N, Cout, H, W), w (Cout, Cin/g, kh, kw)
        return int(np.prod(out_chw)) * int(np.prod(w[1:]))
    if node.op_type == "ConvTranspose":  # x (N, Cin, H, W), w (Cin, Cout/g, kh, kw)
        return int(np.prod(x_chw)) * int(np.prod(w[1:]))
    return int(np.prod(out_chw)) * int(w[-2])  # Gemm / MatMul: every output sums over K


def _static(dims: list[int | None]) -> list[int] | None:
    """``dims`` when every dimension is known, else None."""
    known = [d for d in dims if d is not None]
    return known if len(known) == len(dims) else None
