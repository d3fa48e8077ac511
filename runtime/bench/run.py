"""The bench loop: every model x input size x backend x batch, one row each, never dropped.

Each (model, input, backend) is resolved to a file (:mod:`edgeseg.runtime.bench.files`), opened
once (:mod:`edgeseg.runtime.bench.backend`), timed once per batch size
(:func:`edgeseg.runtime.bench.measure.measure`), scored on ``--data`` once
(:func:`edgeseg.runtime.evaluate.score`) and closed. Statuses: :mod:`edgeseg.runtime.bench.row`.

Rows are appended to ``result.rows`` as they finish, and Ctrl-C marks the current row interrupted
and the rest not run, so the result always holds every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.runtime.backends import Backend
from edgeseg.runtime.bench.backend import (
    OnIter,
    RunContext,
    batch_fits,
    error_line,
    fail,
    open_rows,
    score_miou,
    update,
)
from edgeseg.runtime.bench.files import ArtifactResolver, card_file
from edgeseg.runtime.bench.interleave import run_interleaved
from edgeseg.runtime.bench.measure import (
    gpu_memory_mb,
    measure,
    peak_rss_mb,
    random_batch,
    reset_gpu_memory,
    reset_peak_rss,
)
from edgeseg.runtime.bench.row import BenchResult, BenchRow, ModelFacts
from edgeseg.runtime.bench.specs import BackendSpec, BenchConfig
from edgeseg.runtime.tegrastats import TegraSampler, summarize

from edgeseg.card import ModelCard, read_card

Group = dict[BackendSpec, list[BenchRow]]  # the rows of one (model, input): backend -> one per batch
CUT = "interrupted (Ctrl-C) before this row"


def check_models_and_data(cfg: BenchConfig) -> dict[Path, ModelCard]:
    """Every MODEL readable (card checked) and, with ``--data``, of the dataset's classes."""
    cards: dict[Path, ModelCard] = {}
    for model in cfg.models:
        cards[model] = read_card(card_file(model))
        if cfg.data is not None:
            from edgeseg.runtime.evaluate import open_eval_data

            open_eval_data(cfg.data, cfg.split, cards[model], cfg.data_num)
    return cards


def new_rows(model: Path, card: ModelCard, spec: BackendSpec, hw: tuple[int, int], cfg: BenchConfig,
             facts: ModelFacts | None = None) -> list[BenchRow]:
    """The rows (one per batch size, status ``not run``) of one model, input and backend."""
    return [BenchRow(model=str(model), architecture=card.display_name, backend=spec.name,
                     runtime=spec.runtime, precision=spec.precision, device=spec.device,
                     input=f"{hw[0]}x{hw[1]}", batch=b,
                     facts=facts or ModelFacts()) for b in cfg.batches]


def run_bench(cfg: BenchConfig, machine: dict[str, Any], resolver: ArtifactResolver | None = None,
              on_iter: OnIter | None = None, result: BenchResult | None = None) -> BenchResult:
    """Run every row of ``cfg`` into ``result`` (a new one by default; pass one to keep the rows
    measured so far when something unexpected raises). ``resolver``: which files rows run (default:
    only the files found next to each MODEL)."""
    result = result or BenchResult(cfg, dict(machine))
    ctx = RunContext(cfg, resolver or ArtifactResolver(cfg.calib), result.machine, on_iter)
    cards = check_models_and_data(cfg)
    pending = [(m, hw, spec) for m in cfg.models for hw in (cfg.inputs or [cards[m].input_hw])
               for spec in cfg.backends]
    facts: dict[tuple[Path, tuple[int, int]], ModelFacts] = {}
    try:
        while pending:
            model, hw, _ = pending[0]
            n = len(cfg.backends) if cfg.interleave else 1  # one group: every backend of (model, hw)
            if (model, hw) not in facts:
                facts[(model, hw)] = ctx.resolver.model_facts(model, cards[model], hw)
            group = {spec: new_rows(model, cards[model], spec, hw, cfg, facts[(model, hw)])
                     for _, _, spec in pending[:n]}
            try:
                _run_group(ctx, model, cards[model], hw, group)
            finally:
                for rows in group.values():
                    result.rows.extend(rows)
                del pending[:n]
    except KeyboardInterrupt:
        result.interrupted = True
        result.rows[:] = [r.with_(reason=CUT) if r.status == "not run" and not r.reason else r
                          for r in result.rows]
        for model, hw, spec in pending:
            result.rows.extend(r.with_(reason=CUT) for r in new_rows(model, cards[model], spec, hw, cfg))
    return result


def _run_group(ctx: RunContext, model: Path, card: ModelCard, hw: tuple[int, int], group: Group) -> None:
    """Every backend of ``group`` (one, or all of one model and input when interleaving)."""
    bad_size = ctx.resolver.input_problem(card, hw)
    if bad_size is not None:
        for rows in group.values():
            update(rows, status="skipped", reason=bad_size)
        return
    if ctx.cfg.interleave:
        run_interleaved(ctx, model, hw, group)
        return
    for spec, rows in group.items():
        _run_backend(ctx, model, spec, hw, rows)


def _run_backend(ctx: RunContext, model: Path, spec: BackendSpec, hw: tuple[int, int],
                 rows: list[BenchRow]) -> None:
    """Open, time every batch, score, close; row statuses say what happened."""
    opened = open_rows(ctx, model, spec, hw, rows)
    if opened is None:
        return
    try:
        for i in range(len(rows)):
            _time_row(ctx, opened.backend, spec, hw, rows, i, opened.base_mb)
        if ctx.cfg.data is not None and rows[0].status == "ok":
            update(rows, miou=score_miou(opened.backend, ctx.cfg))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a backend library error: report it on the row, go on with the rest
        fail(rows, error_line(e))
    finally:
        opened.backend.close()


def _time_row(ctx: RunContext, backend: Backend, spec: BackendSpec, hw: tuple[int, int], rows: list[BenchRow],
              i: int, base_mb: float | None) -> None:
    """Time row ``i`` (its batch size); Ctrl-C keeps the calls timed so far and propagates."""
    if not batch_fits(backend, rows, i):
        return
    row, cfg = rows[i], ctx.cfg
    reset_peak_rss()
    reset_gpu_memory(backend)
    with TegraSampler() as sampler:
        timing = measure(backend.infer, random_batch(row.batch, hw), warmup=cfg.warmup, iters=cfg.iters,
                         on_start=sampler.mark,
                         on_iter=ctx.progress(f"{row.architecture} {spec.name} {row.input} b{row.batch}"))
        samples = sampler.snapshot()
    peak, gpu = peak_rss_mb(), gpu_memory_mb(backend)
    rows[i] = row.with_(
        status="interrupted" if timing.interrupted else "ok", latency_ms=timing.latency_ms(),
        throughput_ips=timing.throughput(), iters=len(timing.seconds),
        peak_host_mb=None if peak is None else round(peak, 1),
        host_delta_mb=None if peak is None or base_mb is None else round(peak - base_mb, 1),
        gpu_mem_mb=None if gpu is None else round(gpu, 1),
        power=summarize(samples, timing.total_s, row.batch * len(timing.seconds)) if samples else None,
        reason=f"Ctrl-C after {len(timing.seconds)} of {cfg.iters} timed calls" if timing.interrupted else "")
    if timing.interrupted:
        raise KeyboardInterrupt
