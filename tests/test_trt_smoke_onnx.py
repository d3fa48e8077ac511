"""trt-smoke --onnx: start from an ONNX exported elsewhere (no torch on the board)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli.main import app

DEMO = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "demo-lite-unet.onnx"


def test_trt_smoke_refuses_an_onnx_without_the_plugin_unpool(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["trt-smoke", "--onnx", str(DEMO), "--workdir", str(tmp_path / "w")],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "with unpool mode 'none'; trt-smoke checks the plugin, so it needs plugin unpool" in flat
    assert "checkpoint" not in result.output  # no torch export was attempted


def test_trt_smoke_uses_int8_and_fp16_files_next_to_the_given_onnx(tmp_path: Path) -> None:
    from edgeseg.pipelines.trt_smoke import sibling

    onnx = tmp_path / "model.onnx"
    for name in ("model.onnx", "model.int8.onnx", "model.int8.onnx.json", "model.fp16.onnx"):
        (tmp_path / name).write_bytes(b"x")
    int8 = tmp_path / "model.int8.onnx"
    assert sibling(onnx, ".int8.onnx", True) == (int8, f"{int8} (given)")
    assert sibling(onnx, ".fp16.onnx", True) is None  # no card: calibrated/converted here instead
    assert sibling(onnx, ".int8.onnx", False) is None  # without --onnx the smoke makes its own


def test_trt_smoke_pipeline_records_every_step_in_order(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TensorRT: the given ONNX and its siblings pass, every engine step is recorded as not
    run (never skipped silently), and the result is not ok."""
    from test_engine_cli import make_onnx

    from edgeseg.pipelines.trt_smoke import NOT_RUN, SmokeOptions, trt_smoke

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    onnx = make_onnx(tmp_path / "model.onnx", plugin=True)
    for name in ("model.int8.onnx", "model.int8.onnx.json", "model.fp16.onnx", "model.fp16.onnx.json"):
        (tmp_path / name).write_bytes(b"x")
    result = trt_smoke(SmokeOptions(onnx=onnx, workdir=tmp_path / "w"))
    assert [(s.step, s.ok) for s in result.steps] == [
        ("TensorRT", False), ("export (plugin unpool)", True), ("INT8 Q/DQ (calibrate)", True),
        ("FP16 ONNX (convert)", True), ("build fp16 engine", False), ("fp16 engine vs onnxruntime", False),
        ("build int8 engine", False), ("int8 engine vs onnxruntime", False)]
    assert "TensorRT is not installed" in result.steps[0].detail
    assert all(s.detail == NOT_RUN for s in result.steps[4:]) and not result.ok
