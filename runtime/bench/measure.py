"""The timed loop of ``edgeseg bench`` and its memory probes.

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

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.runtime.bench.row import Latency

from edgeseg.errors import ConfigError


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

    def latency_ms(self) -> Latency:
        """Mean and percentiles of the timed calls, in ms (every field None without calls)."""
        if not self.seconds:
            return Latency()
        a = np.asarray(self.seconds) * 1000.0
        p50, p90, p99 = np.percentile(a, (50, 90, 99))
        return Latency(round(float(a.mean()), 3), round(float(p50), 3), round(float(p90), 3),
                       round(float(p99), 3))

    def throughput(self) -> float | None:
        """Images per second over the timed calls."""
        return None if not self.seconds else round(self.batch * len(self.seconds) / self.total_s, 3)


def random_batch(batch: int, hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A normalized-looking float32 (N, 3, H, W) batch (standard normal), fixed per seed."""
    return np.random.default_rng(seed).standard_normal((batch, 3, *hw), dtype=np.float32)


def measure(infer: Callable[[np.ndarray], Any], batch_nchw: np.ndarray, *, warmup: int, iters: int,
            on_iter: Callable[[int], None] | None = None,
            on_start: Callable[[], None] | None = None) -> Timing:
    """Warm up, then time ``iters`` calls.

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
    try:
        while len(seconds) < iters:
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
