"""OpenVINO backend: ONNX files through stream / eval / bench, the inference precision recorded and
settable, bad input (absent device, unsupported precision hint, plugin-mode file) as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _calib_models import save_tiny
from edgeseg.runtime.backends import open_backend
from tinyseg import reference_logits, write_tiny_onnx
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import BackendError, ConfigError

ov = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgeseg[openvino]')")

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _capabilities() -> list[str]:
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _default_precision() -> str:
    """What OpenVINO computes an FP32 model in on this CPU when not told (bf16 where the CPU has it)."""
    from edgeseg.runtime.backends.openvino import precision_name

    return precision_name(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))


def test_runs_onnx_and_records_inference_precision(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(24, 32), dynamic_batch=True)
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 32)).astype(np.float32)
    ref = reference_logits(x, 5)
    be = open_backend(model, runtime="openvino", threads=1)
    try:
        d = be.describe()
        assert d["name"] == "openvino" and d["device"] == "cpu" and d["threads"] == 1
        assert d["inference_precision"] == _default_precision()
        assert d["inference_precision_requested"] == "auto"
        out = be.infer(x)
        assert out.shape == (2, 5, 24, 32) and out.dtype == np.float32
        tol = 1e-4 if d["inference_precision"] == "f32" else 5e-2
        assert np.abs(out - ref).max() < tol * np.abs(ref).max()
        assert be.infer(x[:1]).shape == (1, 5, 24, 32)  # dynamic batch
        with pytest.raises(BackendError, match="expected"):
            be.infer(x[:, :, :8])
    finally:
        be.close()
    f32 = open_backend(model, runtime="openvino", inference_precision="f32")
    assert f32.describe()["inference_precision"] == "f32"
    assert np.abs(f32.infer(x) - ref).max() < 1e-4 * np.abs(ref).max()


def test_agrees_with_onnxruntime_on_an_unpool_model(tmp_path: Path) -> None:
    """The native unpool (SpaceToDepth / ArgMax / one-hot / DepthToSpace) computes the same in both."""
    model = save_tiny(tmp_path, "native")
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    got = open_backend(model, runtime="openvino", inference_precision="f32").infer(x)
    ref = open_backend(model).infer(x)
    assert np.mean(got.argmax(1) == ref.argmax(1)) == 1.0
    assert np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()


def test_bad_input_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    native, plugin = save_tiny(tmp_path, "native"), save_tiny(tmp_path, "plugin")
    absent = next(d for d in ("NPU", "GPU", "GPU.9") if d not in ov.Core().available_devices)
    with pytest.raises(BackendError, match=rf"device '{absent}' is not present here .*use --device CPU"):
        open_backend(native, runtime="openvino", device=absent)
    with pytest.raises(BackendError, match="custom node OpenVINO cannot run.*--unpool native"):
        open_backend(plugin, runtime="openvino")
    with pytest.raises(BackendError, match="--inference-precision 'f17' is not valid.*did you mean 'f16'"):
        open_backend(native, runtime="openvino", inference_precision="f17")
    with pytest.raises(BackendError, match="unknown runtime 'openvin'.*did you mean 'openvino'"):
        open_backend(native, runtime="openvin")
    with pytest.raises(BackendError, match="runtime openvino runs .onnx files"):
        open_backend(tmp_path / "m.engine", runtime="openvino")
    unsupported = [p for p, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap not in _capabilities()]
    if unsupported:  # this CPU has neither bf16 nor fp16 instructions for one of them
        with pytest.raises(BackendError, match=rf"cannot compute in {unsupported[0]} .*"
                                               r"--inference-precision f32"):
            open_backend(native, runtime="openvino", inference_precision=unsupported[0])


def test_unsupported_precision_check_without_such_a_cpu() -> None:
    """The capability check itself, for CPUs other than this one."""
    from edgeseg.runtime.backends.openvino import check_precision

    check_precision("bf16", "CPU", ["FP32", "BF16", "INT8"])
    with pytest.raises(BackendError, match="CPU cannot compute in bf16 .*use --inference-precision f32"):
        check_precision("bf16", "CPU", ["FP32", "INT8", "BIN"])
    with pytest.raises(BackendError, match="GPU cannot compute in bf16 .*use --inference-precision f32"):
        check_precision("bf16", "GPU", ["FP32", "FP16", "INT8"])


def test_cli_bad_input(tmp_path: Path) -> None:
    plugin = save_tiny(tmp_path, "plugin")
    r = runner.invoke(app, ["stream", str(plugin), "--runtime", "openvino", "--source", "synthetic",
                            "--max-frames", "1", "--headless"])
    assert r.exit_code == 2 and "--unpool native" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["stream", str(plugin), "--inference-precision", "f32", "--source", "synthetic"])
    assert r.exit_code == 2 and "--inference-precision does not apply to .onnx models" in r.output
    r = runner.invoke(app, ["eval", str(plugin), "--data", "synthetic", "--inference-precision", "f32"])
    assert r.exit_code == 2 and "add --runtime openvino" in r.output
    r = runner.invoke(app, ["bench", str(plugin), "--backends", "ov", "--inference-precision", "f8"])
    assert r.exit_code == 2 and "not one of auto, f32, bf16, f16" in r.output


def test_eval_and_stream_reports_carry_the_precision(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    r = runner.invoke(app, ["eval", str(model), "--data", "synthetic", "--num", "3", "--runtime",
                            "openvino", "--inference-precision", "f32", "--threads", "1",
                            "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["backend"]["name"] == "openvino" and ev["backend"]["inference_precision"] == "f32"
    assert "inference precision f32" in (tmp_path / "ev.md").read_text()
    ort = runner.invoke(app, ["eval", str(model), "--data", "synthetic", "--num", "3",
                              "--out", str(tmp_path / "ev-ort")])
    assert ort.exit_code == 0, ort.output
    ort_miou = json.loads((tmp_path / "ev-ort.json").read_text())["metrics"]["miou"]
    assert ev["metrics"]["miou"] == pytest.approx(ort_miou, abs=1e-6)  # f32 on both: same argmax
    r = runner.invoke(app, ["stream", str(model), "--runtime", "openvino", "--device", "cpu", "--source",
                            "synthetic", "--max-frames", "3", "--headless", "--quiet",
                            "--report", str(tmp_path / "st.json")])
    assert r.exit_code == 0, r.output
    st = json.loads((tmp_path / "st.json").read_text())
    assert st["backend"]["name"] == "openvino" and st["frames"] == 3
    assert st["backend"]["inference_precision"] == _default_precision()
    assert f"| inference precision | {_default_precision()} |" in (tmp_path / "st.md").read_text()


@pytest.mark.slow
def test_bench_rows_ov_next_to_ort(tmp_path: Path) -> None:
    from edgeseg.runtime.demo import demo_model

    model = demo_model()  # lite-unet 96x128 on the synthetic classes (bench checks the architecture)
    out = tmp_path / "b"
    r = runner.invoke(app, ["bench", str(model), "--backends", "ort,ov,ov-f32,ov-gpu", "--iters", "3",
                            "--warmup", "1", "--threads", "1", "--data", "synthetic", "--data-num", "3",
                            "--interleave", "--inference-precision", "f32", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = {row["backend"]: row for row in json.loads(out.with_suffix(".json").read_text())["rows"]}
    assert rows["ov"]["status"] == "ok" and rows["ov"]["inference_precision"] == "f32"
    assert rows["ov"]["runs_on"]["runtime"] == "openvino" and rows["ov"]["runs_on"]["threads"] == 1
    assert rows["ov"]["miou"] == pytest.approx(rows["ort"]["miou"], abs=1e-6)
    assert rows["ort"]["inference_precision"] is None
    assert rows["ov-f32"]["status"] == "ok" and rows["ov-f32"]["inference_precision"] == "f32"
    if "GPU" not in ov.Core().available_devices:
        assert rows["ov-gpu"]["status"] == "skipped" and "no GPU device here" in rows["ov-gpu"]["reason"]
    md = out.with_suffix(".md").read_text()
    assert "| ov [f32] |" in md and "OpenVINO 20" in md
    assert "inference_precision" in out.with_name("b.csv").read_text().splitlines()[0]


def test_runs_without_torch(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(24, 32))
    script = ("import sys\nsys.modules['torch'] = None\nimport numpy as np\n"
              "from edgeseg.runtime.backends import open_backend\n"
              f"b = open_backend({str(model)!r}, runtime='openvino')\n"
              "print(b.infer(np.zeros((1, 3, 24, 32), np.float32)).shape)\n"
              "assert sys.modules['torch'] is None\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and "(1, 5, 24, 32)" in out.stdout, out.stderr


def test_option_table_rejects_ov_options_elsewhere(tmp_path: Path) -> None:
    from edgeseg.runtime.backends import OpenVinoOptions, backend_options

    onnx = tmp_path / "m.onnx"
    assert backend_options(onnx, "openvino", threads=1, provider=None, device="GPU",
                           inference_precision="f32") == OpenVinoOptions("GPU", "f32", 1)
    with pytest.raises(ConfigError, match="--provider does not apply to .onnx --runtime openvino"):
        backend_options(onnx, "openvino", provider="cpu")
    with pytest.raises(ConfigError, match="--device does not apply to .onnx models"):
        backend_options(onnx, device="CPU")
