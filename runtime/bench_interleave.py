"""``edgeseg bench --interleave``: every backend of one model and input size timed round-robin.

Sequential timing (the default) measures backend A for a minute, then backend B: on a shared
machine the load of other processes changes in between, and the ratio B/A measures the load as
much as the backends. Interleaved timing opens every backend of the (model, input) first, warms
each up, then makes call 1 of A, call 1 of B, ..., call 2 of A, ...: every backend sees the same
minutes of load, so ratios stay fair while absolute latencies drift.

What changes in the rows: ``host_delta_mb`` is the resident-memory growth from opening the
backend and running its first call (the backends share one process and overlap in time, so a
per-row peak during timing cannot be attributed); ``peak_host_mb`` is the process peak over the
whole group; tegrastats power is not attributed per backend (not sampled).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeseg.runtime import bench
from edgeseg.runtime.bench import BackendSpec
from edgeseg.runtime.bench_artifacts import ArtifactResolver
from edgeseg.runtime.bench_run import (
    BenchConfig,
    BenchResult,
    _fail,
    batch_fits,
    error_line,
    open_rows,
    score_miou,
)

Rows = list[dict[str, Any]]


def _open_all(cfg: BenchConfig, resolver: ArtifactResolver, model: Path, hw: tuple[int, int],
              group: dict[BackendSpec, Rows], result: BenchResult) -> list[tuple[BackendSpec, Rows, Any]]:
    """Open every backend that can run; record the memory each one took to open + first call."""
    opened = []
    first = bench.random_batch(min(cfg.batches), hw)
    for spec, rows in group.items():
        gc.collect()
        bench.reset_peak_rss()
        base = bench.rss_mb()
        backend = open_rows(cfg, resolver, model, spec, hw, rows, result)
        if backend is None:
            continue
        try:
            if batch_fits(backend, dict(rows[0])):
                backend.infer(first)
        except (KeyboardInterrupt, SystemExit):
            backend.close()
            raise
        except Exception as e:  # noqa: BLE001 - reported on the rows
            _fail(rows, error_line(e))
            backend.close()
            continue
        peak = bench.peak_rss_mb()
        for row in rows:
            row["host_delta_mb"] = None if peak is None or base is None else round(peak - base, 1)
        opened.append((spec, rows, backend))
    return opened


def _progress(on_iter: Callable[[str, int, int], None] | None, label: str,
              total: int) -> Callable[[int], None] | None:
    return None if on_iter is None else (lambda i: on_iter(label, i, total))


def run_interleaved(cfg: BenchConfig, resolver: ArtifactResolver, model: Path, hw: tuple[int, int],
                    group: dict[BackendSpec, Rows], result: BenchResult,
                    on_iter: Callable[[str, int, int], None] | None) -> None:
    """Fill the rows of ``group`` (backend -> one row per batch size); close every backend."""
    opened = _open_all(cfg, resolver, model, hw, group, result)
    try:
        for bi, batch in enumerate(cfg.batches):
            active = [(spec, rows[bi], be) for spec, rows, be in opened
                      if rows[bi]["status"] == "not run" and batch_fits(be, rows[bi])]
            if not active:
                continue
            label = f"{active[0][1]['architecture']} {hw[0]}x{hw[1]} b{batch}: {len(active)} backends"
            timings, errors = bench.measure_interleaved(
                [be.infer for _, _, be in active], bench.random_batch(batch, hw), warmup=cfg.warmup,
                iters=cfg.iters, on_iter=_progress(on_iter, label, cfg.iters))
            peak = bench.peak_rss_mb()
            for k, (_, row, _) in enumerate(active):
                if k in errors:
                    row.update(status="failed", reason=error_line(errors[k]))
                    continue
                t = timings[k]
                row.update(status="interrupted" if t.interrupted else "ok", latency_ms=t.latency_ms(),
                           throughput_ips=t.throughput(), iters=len(t.seconds),
                           peak_host_mb=None if peak is None else round(peak, 1))
                if t.interrupted:
                    row["reason"] = f"Ctrl-C after {len(t.seconds)} of {cfg.iters} interleaved calls"
            if any(t.interrupted for t in timings):
                raise KeyboardInterrupt
        if cfg.data is not None:
            for _, rows, be in opened:
                if rows[0]["status"] == "ok":
                    miou = score_miou(be, cfg)
                    for row in rows:
                        row["miou"] = miou
    finally:
        for _, _, be in opened:
            be.close()
