"""tegrastats parsing on recorded lines of real Jetson boards (one format per board family)."""

from __future__ import annotations

import os
import stat
import sys
import time

import pytest
from edgeseg.runtime.tegrastats import TegraSampler, parse_line, summarize

# Orin Nano / Orin NX, JetPack 6 (L4T 36): rails with mW units, GR3D with [freq].
ORIN_NANO = (
    "11-22-2026 17:41:02 RAM 2359/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) "
    "CPU [2%@729,0%@729,0%@729,1%@729,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 37%@[305] "
    "VIC_FREQ 729 APE 174 CV0@-256C CPU@47.218C SOC2@45.187C SOC0@45.531C CV1@-256C GPU@-256C "
    "tj@47.218C SOC1@45.062C CV2@-256C VDD_IN 5000mW/4622mW VDD_CPU_GPU_CV 520mW/520mW "
    "VDD_SOC 1428mW/1428mW")
# AGX Orin dev kit, JetPack 5/6: no VDD_IN, two GPCs in GR3D.
AGX_ORIN = (
    "RAM 3431/30536MB (lfb 6339x4MB) SWAP 0/15268MB (cached 0MB) "
    "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,off,off,off,off] "
    "EMC_FREQ 0%@3199 GR3D_FREQ 60%@[611,611] VIC_FREQ 115 APE 174 CV0@-256C CPU@48.562C "
    "Tboard@38C SOC2@44.906C Tdiode@39.25C SOC0@44.968C CV1@-256C GPU@-256C tj@48.562C "
    "SOC1@45.468C CV2@-256C VDD_GPU_SOC 3187mW/3187mW VDD_CPU_CV 797mW/797mW "
    "VIN_SYS_5V0 3223mW/3223mW VDDQ_VDD2_1V8AO 503mW/503mW")
# Xavier NX, JetPack 4.6: rails without units, GR3D without frequency.
XAVIER_NX = (
    "RAM 2306/7764MB (lfb 84x4MB) SWAP 0/3882MB (cached 0MB) "
    "CPU [3%@1190,1%@1190,2%@1190,0%@1190,off,off] EMC_FREQ 0% GR3D_FREQ 12% AO@35C GPU@34.5C "
    "PMIC@100C AUX@34.5C CPU@36C thermal@35.1C VDD_IN 4341/4341 VDD_CPU_GPU_CV 566/566 "
    "VDD_SOC 1383/1383")
# AGX Xavier, JetPack 4.x: short rail names, no total input rail.
AGX_XAVIER = (
    "RAM 1503/15692MB (lfb 3206x4MB) SWAP 0/7846MB (cached 0MB) "
    "CPU [1%@1190,0%@1190,0%@1190,0%@1190,off,off,off,off] EMC_FREQ 0% GR3D_FREQ 0% AO@38.5C "
    "GPU@38.5C Tdiode@40.75C PMIC@100C AUX@38C CPU@39.5C thermal@38.85C Tboard@39C "
    "GPU 0/0 CPU 311/311 SOC 1399/1399 CV 0/0 VDDRQ 155/155 SYS5V 1267/1267")
# Jetson Nano, JetPack 4.x: POM_5V_IN total rail, IRAM field.
NANO = (
    "RAM 1456/3956MB (lfb 458x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [7%@102,3%@102,4%@102,3%@102] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@24C CPU@26C "
    "PMIC@100C GPU@25.5C AO@31C thermal@25.75C POM_5V_IN 3000/3000 POM_5V_GPU 0/0 POM_5V_CPU 170/170")


def test_orin_nano_uses_vdd_in_current_value() -> None:
    s = parse_line(ORIN_NANO)
    assert s is not None
    assert (s.ram_used_mb, s.ram_total_mb, s.gr3d_pct) == (2359, 7620, 37)
    assert s.power_mw == 5000 and s.power_basis == "VDD_IN"  # current, not tegrastats' average
    assert s.rails_mw == {"VDD_IN": 5000, "VDD_CPU_GPU_CV": 520, "VDD_SOC": 1428}


def test_agx_orin_sums_rails_without_input_rail() -> None:
    s = parse_line(AGX_ORIN)
    assert s is not None and s.gr3d_pct == 60 and s.ram_used_mb == 3431
    assert s.power_mw == 3187 + 797 + 3223 + 503
    assert s.power_basis.startswith("sum of VDD_GPU_SOC")


def test_xavier_nx_unitless_rails() -> None:
    s = parse_line(XAVIER_NX)
    assert s is not None and s.power_mw == 4341 and s.power_basis == "VDD_IN" and s.gr3d_pct == 12


def test_agx_xavier_short_rail_names() -> None:
    s = parse_line(AGX_XAVIER)
    assert s is not None
    assert s.rails_mw == {"GPU": 0, "CPU": 311, "SOC": 1399, "CV": 0, "VDDRQ": 155, "SYS5V": 1267}
    assert s.power_mw == 311 + 1399 + 155 + 1267
    assert "SWAP" not in s.rails_mw


def test_nano_pom_rail_and_no_iram_rail() -> None:
    s = parse_line(NANO)
    assert s is not None and s.power_mw == 3000 and s.power_basis == "POM_5V_IN"
    assert "IRAM" not in s.rails_mw and s.ram_total_mb == 3956


def test_unrelated_line_is_none() -> None:
    assert parse_line("tegrastats: permission denied") is None
    assert parse_line("") is None


def test_summary_energy_per_frame() -> None:
    samples = [parse_line(ORIN_NANO), parse_line(ORIN_NANO.replace("VDD_IN 5000mW", "VDD_IN 7000mW"))]
    summary = summarize([s for s in samples if s is not None], seconds=2.0, frames=100)
    assert summary.avg_power_w == 6.0
    assert summary.energy_per_frame_mj == pytest.approx(120.0)  # 6 W x 20 ms
    assert summary.peak_ram_mb == 2359 and summary.avg_gr3d_pct == 37.0


def test_summary_without_samples() -> None:
    summary = summarize([], seconds=1.0, frames=10)
    assert summary.avg_power_w is None and summary.energy_per_frame_mj is None and summary.samples == 0


def test_sampler_reads_a_tegrastats_binary(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "tegrastats"
    fake.write_text(f"#!{sys.executable}\nimport time\n"
                    f"for _ in range(200):\n    print({NANO!r}, flush=True)\n    time.sleep(0.01)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with TegraSampler(interval_ms=10) as sampler:
        deadline = time.time() + 10
        while not sampler.snapshot() and time.time() < deadline:
            time.sleep(0.05)
    got = sampler.snapshot()
    assert got and all(s.power_mw == 3000 for s in got)


def test_sampler_without_binary_is_empty(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with TegraSampler() as sampler:
        pass
    assert sampler.command is None and sampler.snapshot() == []
