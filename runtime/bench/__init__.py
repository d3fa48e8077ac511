"""``edgeseg bench``: time models on backends (torch, onnxruntime, OpenVINO, TensorRT), one row each.

A package by concept, each module importing only those above it in this list:

* :mod:`.specs` — the bench backend names (``ort-int8`` ...) and the run's options (``BenchConfig``);
* :mod:`.row` — the typed row (``BenchRow``) and the result, JSON written from them;
* :mod:`.measure` — the timed loop (sequential and round-robin) and the memory probes;
* :mod:`.machine` — what the run ran on (CPU, GPU, versions, load);
* :mod:`.facts` — parameters and GFLOPs counted over an ONNX file;
* :mod:`.files` — which file of a model family each backend runs;
* :mod:`.backend` — resolve + open + first call of one backend, once for both loops;
* :mod:`.interleave` and :mod:`.run` — the loops; :mod:`.plot` and :mod:`.report` — the outputs.

torch-free; the files the bench makes when a family lacks them (export, calibration) come from
:mod:`edgeseg.pipelines.bench_artifacts`, above the runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module, imported on first use: ``edgeseg.runtime.bench.specs`` (the CLI's defaults) then
# costs no numpy at ``edgeseg --help`` time. Typed code imports from the modules themselves.
_EXPORTS = {
    "facts": ("onnx_gflops",),
    "files": ("ArtifactResolver", "Resolved", "family_file", "family_of"),
    "machine": ("busy_warning", "cpu_model", "machine_facts"),
    "measure": ("Timing", "measure_interleaved", "random_batch"),
    "report": ("BENCH_FORMAT", "BENCH_SCHEMA", "add_speedups", "rich_table", "write_outputs"),
    "row": ("BenchResult", "BenchRow", "Latency", "ModelFacts", "RunsOn"),
    "run": ("run_bench",),
    "specs": ("BACKENDS", "DEFAULT_BACKENDS", "BackendSpec", "BenchConfig", "parse_backends", "parse_batches",
              "parse_inputs", "unavailable"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)  # the names __getattr__ provides


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
