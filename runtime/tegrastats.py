"""Power, GPU load and RAM on Jetson boards, from NVIDIA's ``tegrastats`` (torch-free).

``tegrastats --interval MS`` prints one line per interval. The fields edgeseg reads, in the
formats the boards print them:

* ``RAM 2359/7620MB (lfb ...)`` — used / total MiB (every board).
* ``GR3D_FREQ 12%@[305]`` (Orin, JetPack 5/6; AGX Orin ``12%@[305,305]``), ``GR3D_FREQ 12%@1377``
  (Xavier with frequency), ``GR3D_FREQ 12%`` (JetPack 4 Xavier) — iGPU load in %.
* Power rails, current/average in milliwatts:
  Orin ``VDD_IN 5000mW/5000mW``; Xavier NX / TX2 ``VDD_IN 4341/4341``; AGX Xavier
  ``GPU 0/0 CPU 311/311 SOC 1399/1399 CV 0/0 VDDRQ 155/155 SYS5V 1267/1267``; Nano
  ``POM_5V_IN 3000/3000 POM_5V_GPU 0/0 POM_5V_CPU 170/170``; AGX Orin ``VDD_GPU_SOC 3187mW/3187mW
  VDD_CPU_CV 797mW/797mW VIN_SYS_5V0 3223mW/3223mW VDDQ_VDD2_1V8AO 503mW/503mW``.

**Board power** is the board's total input rail when it reports one (``VDD_IN``, ``POM_5V_IN``);
otherwise (AGX Xavier, AGX Orin) the sum of all rails, and :attr:`TegraSample.power_basis` says so.
Only the *current* reading of each sample is averaged (tegrastats' own running average starts
before the run).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
# NAME cur/avg with or without the mW unit; NAME is upper-case letters/digits/underscores.
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_NOT_RAILS = {"RAM", "SWAP", "IRAM"}


@dataclass(frozen=True)
class TegraSample:
    """One parsed tegrastats line. ``rails_mw``: rail -> current mW. ``power_mw``: board power."""

    t_s: float
    ram_used_mb: int | None
    ram_total_mb: int | None
    gr3d_pct: int | None
    rails_mw: dict[str, int] = field(default_factory=dict)
    power_mw: int | None = None
    power_basis: str = "none"


def parse_line(line: str, t_s: float = 0.0) -> TegraSample | None:
    """Parse one tegrastats line; None when it carries none of RAM, GR3D or a power rail."""
    ram, gr3d = _RAM.search(line), _GR3D.search(line)
    rails = {m.group(1): int(m.group(2)) for m in _RAIL.finditer(line) if m.group(1) not in _NOT_RAILS}
    if ram is None and gr3d is None and not rails:
        return None
    total = next((r for r in TOTAL_RAILS if r in rails), None)
    if total is not None:
        power, basis = rails[total], total
    elif rails:
        power, basis = sum(rails.values()), "sum of " + "+".join(rails)
    else:
        power, basis = None, "none"
    return TegraSample(
        t_s=t_s, ram_used_mb=int(ram.group(1)) if ram else None,
        ram_total_mb=int(ram.group(2)) if ram else None,
        gr3d_pct=int(gr3d.group(1)) if gr3d else None, rails_mw=rails, power_mw=power,
        power_basis=basis)


@dataclass(frozen=True)
class PowerSummary:
    """Averages over the samples taken during a timed run.

    ``energy_per_frame_mj`` = average board power x (timed seconds / frames), in millijoules.
    """

    samples: int
    avg_power_w: float | None
    energy_per_frame_mj: float | None
    power_basis: str
    avg_gr3d_pct: float | None
    peak_ram_mb: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "avg_power_w": self.avg_power_w,
                "energy_per_frame_mj": self.energy_per_frame_mj, "power_basis": self.power_basis,
                "avg_gr3d_pct": self.avg_gr3d_pct, "peak_ram_mb": self.peak_ram_mb}


def summarize(samples: list[TegraSample], seconds: float, frames: int) -> PowerSummary:
    """Average power / GPU load and peak RAM of ``samples``; energy per frame of ``frames``."""
    powers = [s.power_mw for s in samples if s.power_mw is not None]
    gr3d = [s.gr3d_pct for s in samples if s.gr3d_pct is not None]
    ram = [s.ram_used_mb for s in samples if s.ram_used_mb is not None]
    avg_w = sum(powers) / len(powers) / 1000.0 if powers else None
    energy = None
    if avg_w is not None and frames > 0 and seconds > 0:
        energy = round(avg_w * seconds / frames * 1000.0, 3)
    bases = sorted({s.power_basis for s in samples if s.power_mw is not None})
    return PowerSummary(
        samples=len(samples), avg_power_w=None if avg_w is None else round(avg_w, 3),
        energy_per_frame_mj=energy, power_basis=", ".join(bases) or "none",
        avg_gr3d_pct=round(sum(gr3d) / len(gr3d), 1) if gr3d else None,
        peak_ram_mb=max(ram) if ram else None)


def available() -> bool:
    """True when the ``tegrastats`` binary is on PATH (a Jetson board)."""
    return shutil.which("tegrastats") is not None


class TegraSampler:
    """Runs ``tegrastats --interval MS`` on a reader thread while in use; collects samples.

    ``with TegraSampler() as s: ...; s.samples`` — a no-op (no samples) where tegrastats does not
    exist. ``mark()`` drops the samples so far (call it when the timed part starts).
    """

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats") -> None:
        self.interval_ms = interval_ms
        self.command = shutil.which(command)
        self.samples: list[TegraSample] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()

    def __enter__(self) -> TegraSampler:
        if self.command is not None:
            self._proc = subprocess.Popen([self.command, "--interval", str(self.interval_ms)],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None  # set in __enter__
        for line in self._proc.stdout:
            sample = parse_line(line, time.perf_counter() - self._t0)
            if sample is not None:
                with self._lock:
                    self.samples.append(sample)

    def mark(self) -> None:
        with self._lock:
            self.samples = []

    def snapshot(self) -> list[TegraSample]:
        with self._lock:
            return list(self.samples)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)
