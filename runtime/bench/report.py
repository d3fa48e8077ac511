"""Bench outputs: STEM.json + STEM.md (via :func:`edgeseg.report.write_report`), STEM.csv,
STEM.png (latency vs mIoU), and the rich table for the terminal.

Speed-ups are ratios of **median** (p50) latencies of rows measured in the same run, same
model, input size and batch: ``speedup_vs_torch`` = torch p50 / this row's p50 (``ort`` against
PyTorch eager on the same device), ``speedup_vs_fp32`` = the FP32 row of the same runtime and
device / this row (``ort-int8`` vs ``ort``, ``trt-int8`` vs ``trt-fp32``). The median is used
because a shared machine adds stalls that move the mean more than the median.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from edgeseg.runtime.bench.plot import plot_latency_miou
from edgeseg.runtime.bench.row import BenchResult, BenchRow, Latency

from edgeseg.io import write_text_atomic
from edgeseg.report import write_report

# Written into every STEM.json so readers (``edgeseg compare``) can refuse files they do not know;
# raise BENCH_SCHEMA whenever a key of the JSON or of a row changes meaning or disappears.
BENCH_FORMAT = "edgeseg-bench"
BENCH_SCHEMA = 1

CSV_COLUMNS = ("model", "architecture", "backend", "precision", "input", "batch", "status", "mean_ms",
               "p50_ms", "p90_ms", "p99_ms", "throughput_ips", "speedup_vs_torch", "speedup_vs_fp32",
               "inference_precision",
               "params", "gflops", "file_mb", "peak_host_mb", "host_delta_mb", "gpu_mem_mb", "miou",
               "avg_power_w", "energy_per_frame_mj", "device", "cpu", "threads", "gpu", "runtime",
               "runtime_version", "iters", "artifact", "reason")


def add_speedups(rows: list[BenchRow]) -> list[BenchRow]:
    """``rows`` with ``speedup_vs_torch`` and ``speedup_vs_fp32`` set (None when no reference)."""
    def key(r: BenchRow) -> tuple[str, str, int]:
        return r.model, r.input, r.batch

    by_backend = {(*key(r), r.backend): r for r in rows}

    def ratio(r: BenchRow, ref_name: str | None) -> float | None:
        ref = by_backend.get((*key(r), ref_name)) if ref_name else None
        ref_p50 = None if ref is None or ref is r else ref.p50
        return round(ref_p50 / r.p50, 3) if r.p50 and ref_p50 else None

    out = []
    for r in rows:
        fp32 = {"onnxruntime": "ort-cuda" if r.device == "cuda" else "ort",
                "openvino": "ov" if r.device == "cpu" else None,
                "tensorrt": "trt-fp32"}.get(r.runtime) if r.precision != "fp32" else None
        out.append(r.with_(speedup_vs_torch=ratio(r, "torch-cuda" if r.device == "cuda" else "torch"),
                           speedup_vs_fp32=ratio(r, fp32)))
    return out


def flat_row(row: BenchRow) -> dict[str, Any]:
    """One CSV line of a row (nested latency / power / runs_on flattened)."""
    d = row.to_json()
    lat, power, on = d["latency_ms"] or {}, d["power"] or {}, d["runs_on"] or {}
    flat = {k: d.get(k) for k in CSV_COLUMNS if k in d}
    flat.update({f"{k}_ms": lat.get(k) for k in ("mean", "p50", "p90", "p99")})
    flat.update(avg_power_w=power.get("avg_power_w"), energy_per_frame_mj=power.get("energy_per_frame_mj"),
                cpu=on.get("cpu"), threads=on.get("threads"), gpu=on.get("gpu"),
                runtime_version=on.get("version"), device=on.get("device", row.device))
    return {k: flat.get(k) for k in CSV_COLUMNS}


def to_csv(rows: list[BenchRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in flat_row(r).items()})
    return buf.getvalue()


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def table_cells(r: BenchRow) -> list[str]:
    lat = r.latency_ms or Latency()
    status = r.status if r.status == "ok" else f"{r.status}: {r.reason}"
    backend = r.backend + (f" [{r.inference_precision}]" if r.inference_precision else "")
    params = r.facts.params
    return [r.architecture, backend, r.input, str(r.batch), _f(lat.mean), _f(lat.p50), _f(lat.p99),
            _f(r.throughput_ips, "{:.1f}"), _f(r.speedup_vs_torch, "{:.2f}x"),
            _f(r.speedup_vs_fp32, "{:.2f}x"),
            _f(params and params / 1e6, "{:.3f}"), _f(r.facts.gflops, "{:.2f}"), _f(r.file_mb, "{:.2f}"),
            _f(r.peak_host_mb, "{:.0f}"), _f(r.host_delta_mb, "{:.0f}"),
            _f(r.miou if r.miou is None else 100 * r.miou, "{:.2f}"), status]


HEADER = ("model", "backend", "input", "batch", "mean ms", "p50 ms", "p99 ms", "img/s", "vs torch",
          "vs fp32", "params M", "GFLOPs", "file MB", "peak MB", "+MB", "mIoU %", "status")


def machine_line(result: BenchResult) -> str:
    m = result.machine
    v = m["versions"]
    return (f"{m['cpu']} ({m['cpu_count']} logical CPUs, {m['threads']} threads used), GPU "
            f"{m['gpu'] or 'none'}; onnxruntime {v.get('onnxruntime') or '-'}, "
            f"OpenVINO {v.get('openvino') or '-'}, "
            f"torch {v.get('torch') or '-'}, "
            f"TensorRT {v.get('tensorrt') or '-'}; 1-min load {m.get('loadavg_1m')}")


def to_markdown(result: BenchResult, command: str) -> str:
    cfg = result.config
    order = ("interleaved: the backends of each model and input were called round-robin"
             if cfg.interleave else "sequential: one backend after the other")
    lines = ["# edgeseg bench", "", f"`{command}`", "", f"Machine: {machine_line(result)}.", "",
             f"{cfg.warmup} warm-up + {cfg.iters} timed calls per row ({order}); latency per batch; "
             "speed-ups are ratios of p50 latencies in this run. peak MB: peak resident memory of the "
             "bench process during the row; +MB: that peak minus the resident memory just before the "
             "backend was opened (negative when memory of earlier rows was returned meanwhile). "
             "[f32]/[bf16]/[f16] after an OpenVINO backend: the precision it computed in.", ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * 3 + "---:|" * (len(HEADER) - 4) + "---|"]
    for r in result.rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in table_cells(r)) + " |")
    if result.interrupted:
        lines += ["", "**Interrupted (Ctrl-C)**: rows after the interruption were not run."]
    return "\n".join(lines) + "\n"


TERMINAL_HEADER = ("model", "backend", "status", "input", "b", "p50 ms", "p99 ms", "img/s", "×torch",
                   "×fp32", "mIoU%")
SHORT_STATUS = {"ok": "ok", "skipped": "skip", "failed": "FAIL", "interrupted": "cut", "not run": "not run"}


def rich_table(result: BenchResult) -> Any:
    """A terminal-width table; reasons of skipped/failed rows and model facts go below it."""
    from rich import box
    from rich.console import Group
    from rich.markup import escape  # "ov [f32]" is not a markup tag
    from rich.table import Table

    table = Table(title="edgeseg bench", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    for i, h in enumerate(TERMINAL_HEADER):
        table.add_column(h, justify="left" if i < 4 else "right", no_wrap=True)
    notes: dict[str, int] = {}
    for r in result.rows:
        c = table_cells(r)
        status = SHORT_STATUS.get(r.status, r.status)
        if r.status != "ok" and r.reason:
            status += f" [{notes.setdefault(r.reason, len(notes) + 1)}]"
        table.add_row(c[0], escape(c[1]), status, c[2], c[3], c[5], c[6], c[7], c[8], c[9], c[15],
                      style=None if r.status == "ok" else "dim")
    lines = [machine_line(result)] + [f"[{n}] {reason}" for reason, n in notes.items()]
    facts = {(r.architecture, r.input): r.facts for r in result.rows}
    lines += [f"{a} {i}: {_f(f.params and f.params / 1e6, '{:.3f}')} M params "
              f"({f.params_from}), {_f(f.gflops, '{:.2f}')} GFLOPs ({f.gflops_from})"
              for (a, i), f in facts.items()]
    return Group(table, *lines)


def write_outputs(result: BenchResult, stem: Path, command: str) -> list[Path]:
    """Write STEM.json, STEM.md, STEM.csv and STEM.png (plot only when a row was measured)."""
    result.rows[:] = add_speedups(result.rows)
    stem.parent.mkdir(parents=True, exist_ok=True)
    from edgeseg.version import __version__

    data = {"format": BENCH_FORMAT, "schema": BENCH_SCHEMA, "edgeseg_version": __version__,
            "command": command, "machine": result.machine, "interrupted": result.interrupted,
            "config": {"warmup": result.config.warmup, "iters": result.config.iters,
                       "inference_precision": result.config.inference_precision,
                       "batches": list(result.config.batches), "threads": result.config.threads,
                       "data": result.config.data, "split": result.config.split,
                       "calib": result.config.calib, "ratios": "p50 latency",
                       "timing": "interleaved" if result.config.interleave else "sequential"},
            "rows": [r.to_json() for r in result.rows]}
    json_path, md_path = write_report(stem, data, to_markdown(result, command))
    csv_path = write_text_atomic(stem.with_name(stem.name + ".csv"), to_csv(result.rows))
    paths = [json_path, md_path, csv_path]
    png = plot_latency_miou(result.rows, stem.with_name(stem.name + ".png"))
    if png is not None:
        paths.append(png)
    return paths
