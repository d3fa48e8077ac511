"""``edgeseg bench`` as one library call: run every row (preparing missing files), write the outputs.

The runtime's loop (:func:`edgeseg.runtime.bench.run_bench`) runs the files it is given; this
pipeline gives it :class:`~edgeseg.pipelines.bench_artifacts.PreparingResolver`, which exports,
converts and calibrates what a model family lacks, then writes STEM.json/.md/.csv/.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeseg.pipelines.bench_artifacts import PreparingResolver
from edgeseg.runtime.bench import (
    BenchConfig,
    BenchResult,
    busy_warning,
    machine_facts,
    run_bench,
    write_outputs,
)
from edgeseg.runtime.bench.backend import OnIter
from edgeseg.runtime.bench.files import Log


@dataclass(frozen=True)
class BenchRun:
    """The rows and machine (``result``), the files written, and a line when other work already
    held the cores the rows used (``busy``; see :func:`edgeseg.runtime.bench.machine.busy_warning`)."""

    result: BenchResult
    paths: list[Path]
    busy: str | None


def bench(cfg: BenchConfig, stem: Path, command: str, log: Log | None = None,
          on_iter: OnIter | None = None) -> BenchRun:
    """Run ``cfg`` (files the bench prepares go to ``cfg.work_dir``) and write STEM.json, .md, .csv
    and .png; whatever was measured is written even when Ctrl-C or an error stops the run."""
    machine = machine_facts(cfg.threads)  # the load is read before the run starts
    result = BenchResult(cfg, machine)
    paths: list[Path] = []
    try:
        run_bench(cfg, machine, PreparingResolver(cfg.work_dir, cfg.calib, log), on_iter, result)
    finally:
        if result.rows:
            paths = write_outputs(result, stem, command)
    return BenchRun(result, paths, busy_warning(machine, cfg.threads))
