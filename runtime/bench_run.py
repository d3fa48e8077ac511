"""The bench loop: every model x input size x backend x batch, one row each, never dropped.

Each (model, input, backend) is resolved to a file (:mod:`edgeseg.runtime.bench_artifacts`),
opened once, timed once per batch size (:func:`edgeseg.runtime.bench.measure`), scored on
``--data`` once (batch 1, :func:`edgeseg.runtime.evaluate.score`) and closed. A row's ``status`` is

* ``ok`` — measured;
* ``skipped`` — cannot run here or lacks its file (``reason`` says why and how to fix it);
* ``failed`` — opening or running raised (``reason`` is the error's line);
* ``interrupted`` — Ctrl-C during its timed calls (the calls timed so far are kept);
* ``not run`` — Ctrl-C came before it.

Rows are appended to ``result.rows`` as they finish, so a caller that writes the result in a
``finally`` keeps everything measured before a failure or Ctrl-C.
"""

from __future__ import annotations

import gc
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.runtime import bench
from edgeseg.runtime.bench import BackendSpec, Timing
from edgeseg.runtime.bench_artifacts import ArtifactResolver, Resolved, family_of, unavailable
from edgeseg.runtime.tegrastats import TegraSampler, summarize

from edgeseg.card import ModelCard, read_card
from edgeseg.errors import EdgesegError

Log = Callable[[str], None]
EXTERNAL = "external"  # card architecture of ``edgeseg import`` files (edgeseg.export.onnx_import)


@dataclass(frozen=True)
class BenchConfig:
    """What to run. ``inputs`` None = each model's own input size. ``threads`` None = all cores
    (the same number is given to torch and onnxruntime). ``interleave``: time the backends of one
    model and input round-robin (:mod:`edgeseg.runtime.bench_interleave`) instead of one after
    the other. ``inference_precision``: what OpenVINO rows compute in (``auto``: OpenVINO's default
    for the device; the precision actually used is recorded on each row)."""

    models: tuple[Path, ...]
    backends: tuple[BackendSpec, ...]
    work_dir: Path
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


@dataclass
class BenchResult:
    """Rows so far (dicts, see :func:`base_row`), the machine, and whether Ctrl-C stopped it."""

    config: BenchConfig
    machine: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False


def check_models_and_data(cfg: BenchConfig) -> dict[Path, ModelCard]:
    """Every MODEL readable (card checked) and, with ``--data``, of the dataset's classes."""
    cards: dict[Path, ModelCard] = {}
    for model in cfg.models:
        folder, stem = family_of(model)
        given = model if model.is_file() else next(p for p in (folder / f"{stem}.safetensors",
                                                               folder / f"{stem}.onnx") if p.is_file())
        cards[model] = read_card(given)
        if cfg.data is not None:
            from edgeseg.runtime.evaluate import open_eval_data

            open_eval_data(cfg.data, cfg.split, cards[model], cfg.data_num)
    return cards


def base_row(model: Path, card: ModelCard, spec: BackendSpec, hw: tuple[int, int],
             batch: int) -> dict[str, Any]:
    return {"model": str(model), "architecture": arch_label(card), "backend": spec.name,
            "runtime": spec.runtime, "precision": spec.precision, "device": spec.device,
            "input": f"{hw[0]}x{hw[1]}", "batch": batch, "status": "not run", "reason": "",
            "artifact": None, "artifact_note": "", "file_mb": None, "params": None, "params_from": None,
            "gflops": None, "gflops_from": None, "latency_ms": None, "throughput_ips": None,
            "iters": 0, "peak_host_mb": None, "host_delta_mb": None, "gpu_mem_mb": None,
            "miou": None, "inference_precision": None, "power": None, "runs_on": {}}


def arch_label(card: ModelCard) -> str:
    """The model column: the architecture, or ``NAME (external)`` for an imported model (two
    imported models must not share a label: the report keys its facts by it)."""
    return card.display_name


def run_bench(cfg: BenchConfig, result: BenchResult, log: Log | None = None,
              on_iter: Callable[[str, int, int], None] | None = None) -> BenchResult:
    """Fill ``result.rows``; Ctrl-C marks the current row interrupted and the rest not run."""
    log = log or (lambda _m: None)
    cards = check_models_and_data(cfg)
    resolver = ArtifactResolver(cfg.work_dir, cfg.calib, log)
    pending = [(m, hw, spec) for m in cfg.models for hw in (cfg.inputs or [cards[m].input_hw])
               for spec in cfg.backends]
    facts: dict[tuple[Path, tuple[int, int]], dict[str, Any]] = {}
    try:
        while pending:
            model, hw, _ = pending[0]
            n = len(cfg.backends) if cfg.interleave else 1  # one group: every backend of (model, hw)
            group = {spec: [base_row(model, cards[model], spec, hw, b) for b in cfg.batches]
                     for _, _, spec in pending[:n]}
            if (model, hw) not in facts:
                facts[(model, hw)] = model_facts(model, cards[model], hw)
            for rows in group.values():
                for row in rows:
                    row.update(facts[(model, hw)])
            try:
                _run_group(cfg, resolver, model, cards[model], hw, group, result, on_iter)
            finally:
                for rows in group.values():
                    result.rows.extend(rows)
                del pending[:n]
    except KeyboardInterrupt:
        result.interrupted = True
        for row in result.rows:
            if row["status"] == "not run" and not row["reason"]:
                row["reason"] = "interrupted (Ctrl-C) before this row"
        for model, hw, spec in pending:
            for b in cfg.batches:
                row = base_row(model, cards[model], spec, hw, b)
                row["reason"] = "interrupted (Ctrl-C) before this row"
                result.rows.append(row)
    return result


def input_problem(card: ModelCard, hw: tuple[int, int]) -> str | None:
    """Why ``hw`` is not a valid input size for the card's architecture (None when it is, or
    when torch is absent: the registry needs it, and ONNX files/engines are fixed-size anyway)."""
    if importlib.util.find_spec("torch") is None or card.architecture == EXTERNAL:
        return None  # an imported file runs at its card's size only (checked when resolved)
    from edgeseg.models.registry import check_input_hw

    try:
        check_input_hw(card.architecture, hw)
    except EdgesegError as e:
        return str(e)
    return None


def _run_group(cfg: BenchConfig, resolver: ArtifactResolver, model: Path, card: ModelCard,
               hw: tuple[int, int], group: dict[BackendSpec, list[dict[str, Any]]], result: BenchResult,
               on_iter: Callable[[str, int, int], None] | None) -> None:
    """Every backend of ``group`` (one, or all of one model and input when interleaving)."""
    bad_size = input_problem(card, hw)
    if bad_size is not None:
        for rows in group.values():
            for row in rows:
                row.update(status="skipped", reason=bad_size)
        return
    if cfg.interleave:
        from edgeseg.runtime.bench_interleave import run_interleaved

        run_interleaved(cfg, resolver, model, hw, group, result, on_iter)
        return
    for spec, rows in group.items():
        _run_combo(cfg, resolver, model, spec, hw, rows, result, on_iter)


def error_line(e: BaseException) -> str:
    """An error as one row reason: an EdgesegError's line, else type + first line."""
    if isinstance(e, EdgesegError):
        return str(e)
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"{type(e).__name__}: {first[:300]}"


def open_rows(cfg: BenchConfig, resolver: ArtifactResolver, model: Path, spec: BackendSpec,
              hw: tuple[int, int], rows: list[dict[str, Any]], result: BenchResult) -> Any | None:
    """Resolve and open the file ``spec`` runs; None (rows marked skipped/failed) when it cannot."""
    reason = unavailable(spec)
    resolved = Resolved(None, reason) if reason else resolver.resolve(model, spec, hw)
    if resolved.path is None:
        for row in rows:
            row.update(status="skipped", reason=resolved.skip or "")
        return None
    for row in rows:
        row.update(artifact=str(resolved.path), artifact_note=resolved.note,
                   file_mb=round(resolved.path.stat().st_size / 1e6, 3))
    try:
        backend = open_for(spec, resolved.path, hw, cfg.threads, cfg.inference_precision)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a backend library error: report it on the row, go on with the rest
        _fail(rows, error_line(e))
        return None
    runs_on = runs_on_of(backend, spec, result.machine)
    for row in rows:
        row["runs_on"] = runs_on
        row["inference_precision"] = runs_on.get("inference_precision")
    return backend


def _run_combo(cfg: BenchConfig, resolver: ArtifactResolver, model: Path, spec: BackendSpec,
               hw: tuple[int, int], rows: list[dict[str, Any]], result: BenchResult,
               on_iter: Callable[[str, int, int], None] | None) -> None:
    """Resolve, open, time every batch, score, close; row statuses say what happened."""
    gc.collect()  # earlier rows' objects are released before the baseline
    bench.reset_peak_rss()
    base_mb = bench.rss_mb()
    backend = open_rows(cfg, resolver, model, spec, hw, rows, result)
    if backend is None:
        return
    try:
        for row in rows:
            _time_row(cfg, backend, spec, hw, row, base_mb, on_iter)
        if cfg.data is not None and rows[0]["status"] == "ok":
            miou = score_miou(backend, cfg)
            for row in rows:
                row["miou"] = miou
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a backend library error: report it on the row, go on with the rest
        _fail(rows, error_line(e))
    finally:
        backend.close()


def _fail(rows: list[dict[str, Any]], reason: str) -> None:
    for row in rows:
        if row["status"] == "not run":
            row.update(status="failed", reason=reason)


def _time_row(cfg: BenchConfig, backend: Any, spec: BackendSpec, hw: tuple[int, int], row: dict[str, Any],
              base_mb: float | None, on_iter: Callable[[str, int, int], None] | None) -> None:
    batch = int(row["batch"])
    if not batch_fits(backend, row):
        return
    bench.reset_peak_rss()
    bench.reset_gpu_memory(backend)
    label = f"{row['architecture']} {spec.name} {row['input']} b{batch}"
    with TegraSampler() as sampler:
        timing: Timing = bench.measure(
            backend.infer, bench.random_batch(batch, hw), warmup=cfg.warmup, iters=cfg.iters,
            on_start=sampler.mark,
            on_iter=None if on_iter is None else (lambda i: on_iter(label, i, cfg.iters)))
        samples = sampler.snapshot()
    peak = bench.peak_rss_mb()
    gpu = bench.gpu_memory_mb(backend)
    row.update(status="interrupted" if timing.interrupted else "ok", latency_ms=timing.latency_ms(),
               throughput_ips=timing.throughput(), iters=len(timing.seconds),
               peak_host_mb=None if peak is None else round(peak, 1),
               host_delta_mb=None if peak is None or base_mb is None else round(peak - base_mb, 1),
               gpu_mem_mb=None if gpu is None else round(gpu, 1))
    if samples:
        row["power"] = summarize(samples, timing.total_s, batch * len(timing.seconds)).to_dict()
    if timing.interrupted:
        row["reason"] = f"Ctrl-C after {len(timing.seconds)} of {cfg.iters} timed calls"
        raise KeyboardInterrupt


def batch_fits(backend: Any, row: dict[str, Any]) -> bool:
    """False (row skipped with the fix) when the file's batch size is fixed to another value."""
    fixed = fixed_batch(backend)
    if fixed is not None and fixed != int(row["batch"]):
        row.update(status="skipped", reason=f"{Path(row['artifact']).name} has a fixed batch of {fixed}; "
                                            "re-export it with --dynamic-batch")
        return False
    return True


def open_for(spec: BackendSpec, path: Path, hw: tuple[int, int], threads: int | None,
             inference_precision: str = "auto") -> Any:
    """Open ``path`` for ``spec``. A checkpoint runs at any valid size (fully convolutional).
    ``inference_precision`` applies to OpenVINO only."""
    from edgeseg.runtime.backends import open_backend

    if spec.runtime == "torch":
        backend = open_backend(path, device=spec.device, threads=threads)
        if tuple(backend.card.input_hw) != tuple(hw):
            from edgeseg.models.registry import check_input_hw

            check_input_hw(backend.card.architecture, hw)
            backend.card = backend.card.replace(input_hw=hw)
        return backend
    if spec.runtime == "onnxruntime":
        return open_backend(path, threads=threads, providers=["cuda" if spec.device == "cuda" else "cpu"])
    if spec.runtime == "openvino":
        return open_backend(path, runtime="openvino", device=spec.device.upper(),
                            inference_precision=spec.inference_precision or inference_precision,
                            threads=threads)
    return open_backend(path)


def fixed_batch(backend: Any) -> int | None:
    """The batch size an ONNX file's input is fixed to (None: dynamic or not ONNX)."""
    if hasattr(backend, "fixed_batch"):  # OpenVINO reads it from the compiled model
        return backend.fixed_batch  # type: ignore[no-any-return]
    session = getattr(backend, "session", None)
    if session is None:
        return None
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def runs_on_of(backend: Any, spec: BackendSpec, machine: dict[str, Any]) -> dict[str, Any]:
    """Device, CPU model and threads, GPU name, and the runtime's version for one row."""
    d = backend.describe()
    version = d.get("version") or d.get("torch_version") or d.get("tensorrt_version") or \
        machine["versions"].get(spec.runtime)
    gpu = d.get("gpu_name") or (machine.get("gpu") if spec.device == "cuda" else None)
    return {"device": d.get("device", spec.device), "cpu": machine.get("cpu"),
            "threads": d.get("threads"), "gpu": gpu, "runtime": spec.runtime, "version": version,
            "providers": d.get("providers"), "inference_precision": d.get("inference_precision"),
            "device_name": d.get("device_name")}


def score_miou(backend: Any, cfg: BenchConfig) -> float | None:
    from edgeseg.runtime.evaluate import open_eval_data, score

    if cfg.data is None:  # no --data: nothing to score against
        return None
    metrics = score(backend, open_eval_data(cfg.data, cfg.split, backend.card, cfg.data_num))
    return None if metrics.miou != metrics.miou else round(float(metrics.miou), 5)


def model_facts(model: Path, card: ModelCard, hw: tuple[int, int]) -> dict[str, Any]:
    """Parameters and GFLOPs of the model at ``hw``: the checkpoint profile when torch is here,
    else a count over the FP32 ONNX (initializers; Conv/Gemm MACs), else unknown."""
    folder, stem = family_of(model)
    ckpt = folder / f"{stem}.safetensors"
    if ckpt.is_file() and importlib.util.find_spec("torch") is not None:
        try:
            from edgeseg.models.profile import profile_model

            args = {k: v for k, v in card.arch_args.items() if k != "num_classes"}
            p = profile_model(card.architecture, input_hw=hw, num_classes=card.num_classes, **args)
            return {"params": p.params, "params_from": "checkpoint profile (trainable)",
                    "gflops": round(p.gflops, 4), "gflops_from": "checkpoint profile (FlopCounterMode)"}
        except Exception:  # noqa: BLE001 - the facts are optional; the ONNX count below is the fallback
            pass
    onnx32 = folder / f"{stem}.onnx"
    if onnx32.is_file() and tuple(read_card(onnx32).input_hw) == tuple(hw):
        from edgeseg.runtime.report import count_params

        params, params_from = count_params(onnx32, read_card(onnx32).extra)
        gflops = bench.onnx_gflops(onnx32)
        return {"params": params, "params_from": params_from, "gflops": gflops,
                "gflops_from": "unknown (shapes not inferable)" if gflops is None else
                "ONNX count (Conv/Gemm MACs x 2)"}
    return {"params": None, "params_from": "unknown (no checkpoint with torch, no FP32 ONNX at this size)",
            "gflops": None, "gflops_from": "unknown"}


def default_threads() -> int | None:
    return os.cpu_count()
