"""What the bench ran on: CPU, GPU, board, library versions, load (all torch-free, nothing imported)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any


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
