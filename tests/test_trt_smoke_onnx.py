"""trt-smoke --onnx: start from an ONNX exported elsewhere (no torch on the board)."""

from __future__ import annotations

from pathlib import Path

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
