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

from pathlib import Path

from edgeseg.runtime.backends import Backend
from edgeseg.runtime.bench.backend import RunContext, batch_fits, error_line, open_rows, score_miou, update
from edgeseg.runtime.bench.measure import measure_interleaved, peak_rss_mb, random_batch
from edgeseg.runtime.bench.row import BenchRow
from edgeseg.runtime.bench.specs import BackendSpec

Opened = list[tuple[list[BenchRow], Backend]]


def run_interleaved(ctx: RunContext, model: Path, hw: tuple[int, int],
                    group: dict[BackendSpec, list[BenchRow]]) -> None:
    """Fill the rows of ``group`` (backend -> one row per batch size); close every backend."""
    opened: Opened = []
    try:
        for spec, rows in group.items():
            o = open_rows(ctx, model, spec, hw, rows, first_call=True)
            if o is not None:
                opened.append((rows, o.backend))
        for bi in range(len(ctx.cfg.batches)):
            _time_batch(ctx, hw, opened, bi)
        if ctx.cfg.data is not None:
            for rows, be in opened:
                if rows[0].status == "ok":
                    update(rows, miou=score_miou(be, ctx.cfg))
    finally:
        for _, be in opened:
            be.close()


def _time_batch(ctx: RunContext, hw: tuple[int, int], opened: Opened, bi: int) -> None:
    """Time batch size ``bi`` of every open backend round-robin; Ctrl-C propagates after the
    calls timed so far are on the rows."""
    active = [(rows, be) for rows, be in opened if rows[bi].status == "not run" and batch_fits(be, rows, bi)]
    if not active:
        return
    cfg, batch = ctx.cfg, ctx.cfg.batches[bi]
    label = f"{active[0][0][bi].architecture} {hw[0]}x{hw[1]} b{batch}: {len(active)} backends"
    timings, errors = measure_interleaved([be.infer for _, be in active], random_batch(batch, hw),
                                          warmup=cfg.warmup, iters=cfg.iters, on_iter=ctx.progress(label))
    peak = peak_rss_mb()
    for k, (rows, _) in enumerate(active):
        t = timings[k]
        if k in errors:
            rows[bi] = rows[bi].with_(status="failed", reason=error_line(errors[k]))
            continue
        rows[bi] = rows[bi].with_(
            status="interrupted" if t.interrupted else "ok", latency_ms=t.latency_ms(),
            throughput_ips=t.throughput(), iters=len(t.seconds),
            peak_host_mb=None if peak is None else round(peak, 1),
            reason=f"Ctrl-C after {len(t.seconds)} of {cfg.iters} interleaved calls" if t.interrupted else "")
    if any(t.interrupted for t in timings):
        raise KeyboardInterrupt
