"""edgeseg bench: rows for every backend (measured, skipped with a reason, failed), outputs, bad input.

Small random-init checkpoints at 32x32 keep this fast; timings are never asserted, only that they
were measured and are consistent with each other.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from edgeseg.runtime import bench
from edgeseg.runtime.bench import backend as bench_backend
from edgeseg.runtime.bench import run as bench_run
from edgeseg.runtime.bench.measure import measure
from edgeseg.runtime.bench.row import BenchRow, Latency
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import ConfigError

torch = pytest.importorskip("torch")
runner = CliRunner()
HW = (32, 32)


def _checkpoint(folder: Path, arch: str = "lite-unet") -> Path:
    from edgeseg.card import ModelCard
    from edgeseg.data.synthetic import SYNTHETIC_INFO as info
    from edgeseg.models.checkpoint import save_checkpoint
    from edgeseg.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(arch, num_classes=len(info.class_names)).eval()
    # arch_args as edgeseg train writes them (num_classes included)
    card = ModelCard(arch, {"num_classes": len(info.class_names)}, info.class_names, info.class_colors, HW,
                     info.ignore_index)
    return save_checkpoint(model, card, folder)[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("lite"))


@pytest.fixture(scope="module")
def run(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, object]:
    out = tmp_path_factory.mktemp("bench") / "res"
    result = runner.invoke(app, ["bench", str(ckpt), "--backends", "torch,ort,ort-int8,trt-fp16",
                                 "--batch", "1,2", "--iters", "3", "--warmup", "1", "--threads", "1",
                                 "--data", "synthetic", "--synthetic-num", "2", "--out", str(out)])
    return out, json.loads(out.with_name("res.json").read_text()), result


def _row(data: dict, backend: str, batch: int = 1) -> dict:
    return next(r for r in data["rows"] if r["backend"] == backend and r["batch"] == batch)


@pytest.mark.slow  # the module fixture `run` is a real bench run (~6 s on 2 cores)
def test_every_backend_gets_a_row(run: tuple[Path, dict, object]) -> None:
    out, data, result = run
    assert result.exit_code == 0, result.output
    assert len(data["rows"]) == 4 * 2  # backends x batches, none dropped
    for backend in ("torch", "ort"):
        for b in (1, 2):
            row = _row(data, backend, b)
            assert row["status"] == "ok", row
            lat = row["latency_ms"]
            assert 0 < lat["p50"] <= lat["p99"] and row["iters"] == 3
            assert row["throughput_ips"] == pytest.approx(1000 * b / lat["mean"], rel=1e-2)
            assert 0.0 <= row["miou"] <= 1.0
            assert row["runs_on"]["cpu"] and row["runs_on"]["threads"] == 1 and row["runs_on"]["version"]
    assert "exported by bench" in _row(data, "ort")["artifact_note"]
    int8 = _row(data, "ort-int8")
    assert int8["status"] == "skipped" and "--calib" in int8["reason"]


@pytest.mark.slow  # the module fixture `run` is a real bench run (~6 s on 2 cores)
def test_unavailable_backend_is_listed_with_reason(run: tuple[Path, dict, object]) -> None:
    _, data, result = run
    trt = _row(data, "trt-fp16")
    if bench.unavailable(bench.BACKENDS["trt-fp16"]) is None:
        pytest.skip("TensorRT is installed here")
    assert trt["status"] == "skipped" and "TensorRT" in trt["reason"]
    assert "TensorRT" in result.output


@pytest.mark.slow  # the module fixture `run` is a real bench run (~6 s on 2 cores)
def test_outputs_csv_markdown_png_and_speedup(run: tuple[Path, dict, object]) -> None:
    out, data, _ = run
    rows = list(csv.DictReader(out.with_name("res.csv").open()))
    assert [r["backend"] for r in rows] == [r["backend"] for r in data["rows"]]
    md = out.with_name("res.md").read_text()
    assert "edgeseg bench" in md and "| lite-unet | ort | 32x32 | 1 |" in md
    assert out.with_name("res.png").read_bytes()[:4] == b"\x89PNG"
    t, o = _row(data, "torch"), _row(data, "ort")
    assert o["speedup_vs_torch"] == pytest.approx(t["latency_ms"]["p50"] / o["latency_ms"]["p50"], rel=1e-2)
    assert data["machine"]["versions"]["onnxruntime"] and data["config"]["iters"] == 3


@pytest.mark.slow  # the module fixture `run` is a real bench run (~6 s on 2 cores)
def test_params_and_gflops_agree_between_profile_and_onnx(run: tuple[Path, dict, object]) -> None:
    _, data, _ = run
    onnx_path = Path(_row(data, "ort")["artifact"])
    profile_gflops = _row(data, "torch")["gflops"]
    assert bench.onnx_gflops(onnx_path) == pytest.approx(profile_gflops, rel=0.02)
    assert _row(data, "torch")["params"] > 100_000


def test_unknown_backend_lists_valid_ones(ckpt: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", str(ckpt), "--backends", "torch,ort-int9", "--out",
                                 str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "unknown backend 'ort-int9'" in result.output and "trt-fp16" in result.output
    with pytest.raises(ConfigError, match="valid backends"):
        bench.parse_backends("tensorrt")


def test_dataset_with_other_classes_is_refused(ckpt: Path, tmp_path: Path) -> None:
    import cv2

    data = tmp_path / "roads"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(data / "images" / f"a{i}.png"), np.zeros((32, 32, 3), np.uint8))
        cv2.imwrite(str(data / "masks" / f"a{i}.png"), np.zeros((32, 32), np.uint8))
    (data / "classes.json").write_text(json.dumps({"class_names": ["road", "car"]}))
    result = runner.invoke(app, ["bench", str(ckpt), "--backends", "ort", "--data", str(data), "--split",
                                 "all", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "classes" in result.output, result.output
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow  # the module fixture `run` is a real bench run (~6 s on 2 cores)
def test_onnx_model_cannot_run_on_torch(run: tuple[Path, dict, object], tmp_path: Path) -> None:
    import shutil

    _, data, _ = run
    onnx_path = Path(_row(data, "ort")["artifact"])
    lone = tmp_path / "model.onnx"
    shutil.copy(onnx_path, lone)
    shutil.copy(onnx_path.with_name(onnx_path.name + ".json"), tmp_path / "model.onnx.json")
    result = runner.invoke(app, ["bench", str(lone), "--backends", "torch,ort", "--iters", "2", "--warmup",
                                 "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert rows[0]["status"] == "skipped" and "runs checkpoints" in rows[0]["reason"]
    assert rows[1]["status"] == "ok" and rows[1]["artifact_note"] == "given"


def test_failing_backend_keeps_other_rows(ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    real = bench_backend.open_for

    def broken(spec, path, hw, threads, *rest):  # noqa: ANN001, ANN002, ANN202
        if spec.name == "torch":
            raise RuntimeError("simulated driver crash\nsecond line")
        return real(spec, path, hw, threads, *rest)

    monkeypatch.setattr(bench_backend, "open_for", broken)
    result = runner.invoke(app, ["bench", str(ckpt), "--backends", "torch,ort", "--iters", "2", "--warmup",
                                 "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert rows[0]["status"] == "failed" and rows[0]["reason"] == "RuntimeError: simulated driver crash"
    assert rows[1]["status"] == "ok"


def test_ctrl_c_writes_what_was_measured(ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    real = measure
    calls = {"n": 0}

    def measure_then_interrupt(infer, batch_nchw, **kw):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(infer, batch_nchw, **kw)

    monkeypatch.setattr(bench_run, "measure", measure_then_interrupt)
    result = runner.invoke(app, ["bench", str(ckpt), "--backends", "torch,ort,ort-fp16", "--iters", "2",
                                 "--warmup", "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["interrupted"] is True
    assert [r["status"] for r in data["rows"]] == ["ok", "not run", "not run"]
    assert (tmp_path / "r.csv").exists() and (tmp_path / "r.md").read_text().count("Interrupted") == 1


def test_measure_statistics_and_interrupt() -> None:
    def infer(x: np.ndarray) -> np.ndarray:
        return x * 2

    t = measure(infer, bench.random_batch(2, (4, 4)), warmup=1, iters=5)
    lat = t.latency_ms()
    assert len(t.seconds) == 5 and lat.p50 is not None and lat.p99 is not None and lat.p50 <= lat.p99
    assert t.throughput() == pytest.approx(10 / t.total_s, rel=1e-2)
    n = {"i": 0}

    def flaky(x: np.ndarray) -> None:
        n["i"] += 1
        if n["i"] == 4:
            raise KeyboardInterrupt

    cut = measure(flaky, bench.random_batch(1, (4, 4)), warmup=1, iters=10)
    assert cut.interrupted and len(cut.seconds) == 2


def test_speedups_use_same_model_input_and_batch() -> None:
    def row(backend: str, runtime: str, precision: str, p50: float, batch: int = 1) -> BenchRow:
        return BenchRow("m", "a", backend, runtime, precision, "cpu", "8x8", batch, status="ok",
                        latency_ms=Latency(p50=p50))

    rows = bench.add_speedups([row("torch", "torch", "fp32", 30.0), row("ort", "onnxruntime", "fp32", 10.0),
                               row("ort-int8", "onnxruntime", "int8", 5.0),
                               row("ort", "onnxruntime", "fp32", 50.0, batch=4)])
    assert rows[1].speedup_vs_torch == 3.0 and rows[2].speedup_vs_fp32 == 2.0
    assert rows[2].speedup_vs_torch == 6.0 and rows[3].speedup_vs_torch is None
    assert rows[0].speedup_vs_torch is None and rows[1].speedup_vs_fp32 is None


def test_parse_inputs_and_batches() -> None:
    assert bench.parse_inputs("360x480, 720x960") == [(360, 480), (720, 960)]
    assert bench.parse_batches("1,4,4") == [1, 4]
    for bad in ("360", "x480", "0x4"):
        with pytest.raises(ConfigError, match="HxW"):
            bench.parse_inputs(bad)
    with pytest.raises(ConfigError):
        bench.parse_batches("1,a")
    assert not math.isnan(bench.random_batch(1, (2, 2)).sum())


def test_invalid_input_size_skips_every_backend_with_the_fix(ckpt: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", str(ckpt), "--backends", "torch,ort", "--input", "40x40",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert all("not divisible by 16" in r["reason"] and "32x32" in r["reason"] for r in rows)
    assert not (tmp_path / "r.png").exists()  # nothing measured, nothing to plot


def test_interleaved_run_times_every_backend(ckpt: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", str(ckpt), "--backends", "torch,ort,ort-fp16,trt-int8", "--batch",
                                 "1,2", "--iters", "3", "--warmup", "1", "--threads", "1", "--interleave",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["config"]["timing"] == "interleaved" and "round-robin" in (tmp_path / "r.md").read_text()
    ok = [r for r in data["rows"] if r["status"] == "ok"]
    assert {(r["backend"], r["batch"]) for r in ok} == {(b, n) for b in ("torch", "ort", "ort-fp16")
                                                         for n in (1, 2)}
    assert all(r["iters"] == 3 and r["host_delta_mb"] is not None for r in ok)
    assert _row(data, "ort-fp16", 2)["speedup_vs_fp32"] is not None
    assert _row(data, "trt-int8")["status"] in ("skipped", "ok")


def test_measure_interleaved_isolates_a_failing_backend() -> None:
    calls = {"bad": 0}

    def good(x: np.ndarray) -> np.ndarray:
        return x + 1

    def bad(x: np.ndarray) -> None:
        calls["bad"] += 1
        if calls["bad"] > 2:
            raise RuntimeError("device lost")

    timings, errors = bench.measure_interleaved([good, bad, good], bench.random_batch(1, (4, 4)),
                                                warmup=1, iters=5)
    assert [len(t.seconds) for t in timings] == [5, 1, 5]
    assert list(errors) == [1] and "device lost" in str(errors[1])


@pytest.mark.slow  # the module fixture `run` is a real bench run (~6 s on 2 cores)
def test_tegrastats_power_is_sampled_during_timed_calls(run: tuple[Path, dict, object], tmp_path: Path,
                                                        monkeypatch) -> None:
    """A Jetson-like PATH: a tegrastats that prints recorded Jetson Nano lines (3000 mW input rail)."""
    import os
    import stat
    import sys

    fake = tmp_path / "bin" / "tegrastats"
    fake.parent.mkdir()
    nano = ("RAM 1456/3956MB (lfb 458x4MB) SWAP 0/1978MB (cached 0MB) CPU [7%@102,3%@102,4%@102,3%@102] "
            "EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@24C CPU@26C PMIC@100C GPU@25.5C AO@31C "
            "thermal@25.75C POM_5V_IN 3000/3000 POM_5V_GPU 0/0 POM_5V_CPU 170/170")
    fake.write_text(f"#!{sys.executable}\nimport time\nwhile True:\n    print({nano!r}, flush=True)\n"
                    "    time.sleep(0.005)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    _, data, _ = run
    onnx_path = Path(_row(data, "ort")["artifact"])
    result = runner.invoke(app, ["bench", str(onnx_path), "--backends", "ort", "--iters", "400", "--warmup",
                                 "20", "--threads", "1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "r.json").read_text())["rows"][0]
    power = row["power"]
    assert power is not None and power["samples"] >= 1, row
    assert power["avg_power_w"] == 3.0 and power["power_basis"] == "POM_5V_IN"
    # W x ms = mJ: 3 W over the mean time of one batch-1 call
    assert power["energy_per_frame_mj"] == pytest.approx(3.0 * row["latency_ms"]["mean"], rel=0.05)
    assert "avg_power_w" in (tmp_path / "r.csv").read_text().splitlines()[0]


def test_busy_warning_names_the_fair_options() -> None:
    from edgeseg.runtime.bench.machine import busy_warning

    quiet = {"loadavg_1m": 0.2, "cpu_count": 2}
    assert busy_warning(quiet, 2) is None
    line = busy_warning({"loadavg_1m": 7.6, "cpu_count": 2}, 2)
    assert line is not None and "--threads 1 --interleave" in line and "7.6 on 2 CPUs" in line
    one = busy_warning({"loadavg_1m": 3.0, "cpu_count": 2}, 1)
    assert one is not None and one.endswith("use --interleave, or a quieter moment")
    assert busy_warning({"loadavg_1m": None, "cpu_count": 2}, 2) is None


def test_plot_nests_coinciding_points() -> None:
    from edgeseg.runtime.bench.plot import _stacked_sizes

    row = lambda ms, miou: BenchRow("m", "a", "ort", "onnxruntime", "fp32", "cpu", "8x8", 1,  # noqa: E731
                                    status="ok", latency_ms=Latency(p50=ms), miou=miou)
    sizes = _stacked_sizes([row(10.0, 0.70), row(10.05, 0.7001), row(30.0, 0.70), row(10.0, 0.60)])
    assert sizes[0] < sizes[1] and sizes[2] == sizes[0] == sizes[3]  # only the near-identical one grows


def test_specs_name_registry_runtimes_and_one_family_rule() -> None:
    """Each bench backend opens a runtime the backend registry knows; its file kind comes from that
    runtime's suffix, and the family rule names the file edgeseg's own commands write."""
    from edgeseg.runtime.backends import RUNTIMES

    assert all(s.runtime in RUNTIMES for s in bench.BACKENDS.values())
    kinds = {name: s.artifact for name, s in bench.BACKENDS.items()}
    assert kinds["torch"] == "checkpoint" and kinds["ov-int8"] == "onnx" and kinds["trt-fp16"] == "engine"
    names = {n: bench.family_file(Path("f"), "model", s.artifact, s.precision).name
             for n, s in bench.BACKENDS.items()}
    assert names["torch-cuda"] == "model.safetensors" and names["ort"] == names["ov-gpu"] == "model.onnx"
    assert names["ort-int8"] == "model.int8.onnx" and names["ov-fp16"] == "model.fp16.onnx"
    assert names["trt-int8"] == "model.int8.engine"


def test_rows_of_earlier_files_read_back_with_the_same_keys() -> None:
    """Bench JSONs in docs/figures (written before BenchRow) read through BenchRow.from_json and
    write back key for key, value for value, in the same order."""
    figures = Path(__file__).resolve().parents[1] / "docs" / "figures"
    files = [figures / "openvino_bench.json", figures / "openvino_bench_trt_qdq.json"]
    rows = [r for f in files for r in json.loads(f.read_text())["rows"]]
    assert len(rows) == 20
    for r in rows:
        back = BenchRow.from_json(r).to_json()
        assert back == r and list(back) == list(r)


def test_bench_package_imports_down_only() -> None:
    """runtime/bench imports nothing above the runtime (lazy imports included), and its modules
    import each other without cycles (the order of the package docstring)."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "runtime" / "bench"
    edges: dict[str, set[str]] = {}
    upper = {f"edgeseg.{p}" for p in ("export", "calib", "models", "train", "pipelines", "cli")}
    for path in folder.glob("*.py"):
        nodes = list(ast.walk(ast.parse(path.read_text())))
        names = {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
        above = [m for m in names if ".".join(m.split(".")[:2]) in upper]
        assert not above, f"{path.name} imports {above}"
        edges[path.stem] = {m.rsplit(".", 1)[1] for m in names if m.startswith("edgeseg.runtime.bench.")}
    done: set[str] = set()

    def visit(mod: str, trail: tuple[str, ...]) -> None:
        assert mod not in trail, f"import cycle {' -> '.join((*trail, mod))}"
        if mod not in done:
            for dep in edges.get(mod, ()):
                visit(dep, (*trail, mod))
            done.add(mod)

    for mod in edges:
        visit(mod, ())
    assert edges["interleave"] and "run" not in edges["interleave"]  # the loops share backend.py
