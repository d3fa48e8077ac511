"""Opening the backend of one (model, input, bench backend): resolve its file, open it, optionally
make the first call, and record on its rows what it runs and what opening cost in memory.

Used by the sequential loop (:mod:`edgeseg.runtime.bench.run`) and the interleaved one
(:mod:`edgeseg.runtime.bench.interleave`) alike; a backend that cannot open leaves its rows
``skipped`` (no file, no library, no device) or ``failed`` (the library raised) and the run goes on.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.runtime.backends import Backend, open_backend
from edgeseg.runtime.bench.files import ArtifactResolver, Resolved
from edgeseg.runtime.bench.measure import peak_rss_mb, random_batch, reset_peak_rss, rss_mb
from edgeseg.runtime.bench.row import BenchRow, RunsOn
from edgeseg.runtime.bench.specs import BackendSpec, BenchConfig, unavailable

from edgeseg.errors import EdgesegError

OnIter = Callable[[str, int, int], None]  # (label, calls done, calls in all) -> None


@dataclass(frozen=True)
class RunContext:
    """What every row of one bench run shares."""

    cfg: BenchConfig
    resolver: ArtifactResolver
    machine: dict[str, Any]
    on_iter: OnIter | None = None

    def progress(self, label: str) -> Callable[[int], None] | None:
        on_iter, total = self.on_iter, self.cfg.iters
        return None if on_iter is None else (lambda i: on_iter(label, i, total))


@dataclass(frozen=True)
class Opened:
    """An open backend and the resident memory (MB) just before it was opened (None: unknown)."""

    backend: Backend
    base_mb: float | None


def error_line(e: BaseException) -> str:
    """An error as one row reason: an EdgesegError's line, else type + first line."""
    if isinstance(e, EdgesegError):
        return str(e)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"{type(e).__name__}: {first[:300]}"


def update(rows: list[BenchRow], **changes: Any) -> None:
    """Replace every row of ``rows`` (in place in the list) by a copy with ``changes``."""
    rows[:] = [r.with_(**changes) for r in rows]


def fail(rows: list[BenchRow], reason: str) -> None:
    """Mark the rows not run yet as failed with ``reason``."""
    rows[:] = [r.with_(status="failed", reason=reason) if r.status == "not run" else r for r in rows]


def open_rows(ctx: RunContext, model: Path, spec: BackendSpec, hw: tuple[int, int], rows: list[BenchRow],
              first_call: bool = False) -> Opened | None:
    """Resolve and open the file ``spec`` runs for ``rows`` (one per batch size); None (rows marked
    skipped / failed) when it cannot. ``first_call``: also run one call of the smallest batch and
    record the memory opening + that call took as ``host_delta_mb`` (the interleaved mode, where
    backends share the process while timed, so per-row peaks cannot be attributed)."""
    gc.collect()  # earlier rows' objects are released before the baseline
    reset_peak_rss()
    base_mb = rss_mb()
    reason = unavailable(spec)
    resolved = Resolved(None, reason) if reason else ctx.resolver.resolve(model, spec, hw)
    if resolved.path is None:
        update(rows, status="skipped", reason=resolved.skip or "")
        return None
    update(rows, artifact=str(resolved.path), artifact_note=resolved.note,
           file_mb=round(resolved.path.stat().st_size / 1e6, 3))
    try:
        backend = open_for(spec, resolved.path, hw, ctx.cfg.threads, ctx.cfg.inference_precision)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a backend library error: report it on the row, go on with the rest
        fail(rows, error_line(e))
        return None
    runs_on = runs_on_of(backend, spec, ctx.machine)
    update(rows, runs_on=runs_on, inference_precision=runs_on.inference_precision)
    if first_call and not _first_call(backend, hw, rows, base_mb):
        return None
    return Opened(backend, base_mb)


def _first_call(backend: Backend, hw: tuple[int, int], rows: list[BenchRow], base_mb: float | None) -> bool:
    """One call of the smallest batch (when the file takes it); False (backend closed, rows
    failed) when it raises."""
    batch = min(r.batch for r in rows)
    try:
        if fixed_batch(backend) in (None, batch):
            backend.infer(random_batch(batch, hw))
    except (KeyboardInterrupt, SystemExit):
        backend.close()
        raise
    except Exception as e:  # noqa: BLE001 - reported on the rows
        fail(rows, error_line(e))
        backend.close()
        return False
    peak = peak_rss_mb()
    update(rows, host_delta_mb=None if peak is None or base_mb is None else round(peak - base_mb, 1))
    return True


def open_for(spec: BackendSpec, path: Path, hw: tuple[int, int], threads: int | None,
             inference_precision: str) -> Backend:
    """Open ``path`` with ``spec``'s runtime and device. A checkpoint runs at any valid size (fully
    convolutional; the size was checked before). ``inference_precision`` applies to OpenVINO only."""
    if spec.runtime == "torch":
        backend = open_backend(path, spec.runtime, device=spec.device, threads=threads)
        if tuple(backend.card.input_hw) != tuple(hw):
            backend.card = backend.card.replace(input_hw=hw)
        return backend
    if spec.runtime == "onnxruntime":
        return open_backend(path, spec.runtime, threads=threads,
                            provider="cuda" if spec.device == "cuda" else "cpu")
    if spec.runtime == "openvino":
        return open_backend(path, spec.runtime, device=spec.device.upper(),
                            inference_precision=spec.inference_precision or inference_precision,
                            threads=threads)
    return open_backend(path, spec.runtime)


def batch_fits(backend: Backend, rows: list[BenchRow], i: int) -> bool:
    """False (row ``i`` skipped with the fix) when the file's batch size is fixed to another value."""
    fixed = fixed_batch(backend)
    row = rows[i]
    if fixed is not None and fixed != row.batch:
        rows[i] = row.with_(status="skipped", reason=f"{Path(row.artifact or '').name} has a fixed batch of "
                                                     f"{fixed}; re-export it with --dynamic-batch")
        return False
    return True


def fixed_batch(backend: Any) -> int | None:
    """The batch size an ONNX file's input is fixed to (None: dynamic or not ONNX)."""
    if hasattr(backend, "fixed_batch"):  # OpenVINO reads it from the compiled model
        return backend.fixed_batch  # type: ignore[no-any-return]
    session = getattr(backend, "session", None)
    if session is None:
        return None
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def runs_on_of(backend: Backend, spec: BackendSpec, machine: dict[str, Any]) -> RunsOn:
    """Device, CPU model and threads, GPU name, and the runtime's version for one row."""
    d = backend.describe()
    version = d.get("version") or d.get("torch_version") or d.get("tensorrt_version") or \
        machine["versions"].get(spec.runtime)
    gpu = d.get("gpu_name") or (machine.get("gpu") if spec.device == "cuda" else None)
    return RunsOn(device=d.get("device", spec.device), cpu=machine.get("cpu"), threads=d.get("threads"),
                  gpu=gpu, runtime=spec.runtime, version=version, providers=d.get("providers"),
                  inference_precision=d.get("inference_precision"), device_name=d.get("device_name"))


def score_miou(backend: Backend, cfg: BenchConfig) -> float | None:
    """mIoU of ``backend`` on ``cfg.data`` (None without ``--data`` or when no class was present)."""
    from edgeseg.runtime.evaluate import open_eval_data, score

    if cfg.data is None:  # no --data: nothing to score against
        return None
    metrics = score(backend, open_eval_data(cfg.data, cfg.split, backend.card, cfg.data_num))
    return None if metrics.miou != metrics.miou else round(float(metrics.miou), 5)

