"""`edgeseg models` and `edgeseg info`: tables, figures, written reports, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from edgeseg.cli.main import app  # noqa: E402
from edgeseg.cli.models import fit_hw, parse_build_args  # noqa: E402
from edgeseg.errors import ConfigError  # noqa: E402

runner = CliRunner()


def _ok(args: list[str]):
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result


def _fails(args: list[str], *fragments: str):
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line, line
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in line, line
    return line


def test_models_table_and_report(tmp_path):
    result = _ok(["models", "--input", "360x480", "--classes", "11", "--out", str(tmp_path / "m")])
    for name in ("segnet", "segnet-basic", "res-segnet", "unet", "lite-unet", "enet"):
        assert name in result.output
    assert "1.416 M" in result.output  # segnet-basic, paper Table 1: 1.425 M
    assert "0.377 M" in result.output  # enet, paper: 0.37 M
    data = json.loads((tmp_path / "m.json").read_text())
    by_name = {m["name"]: m for m in data["models"]}
    assert set(by_name) == {"segnet", "segnet-basic", "res-segnet", "unet", "lite-unet", "enet"}
    assert by_name["segnet-basic"]["input_hw"] == [360, 480]
    assert by_name["unet"]["input_hw"] == [368, 480]  # padded to its multiple of 16
    assert all(m["gflops"] > 0 and m["params"] > 0 for m in data["models"])
    assert "| segnet-basic |" in (tmp_path / "m.md").read_text()


def test_info_blocks_and_figures(tmp_path):
    result = _ok(
        ["info", "lite-unet", "--input", "64x64", "--classes", "2", "--arg", "encoder=resnet34",
         "--arg", "deep_skip=false", "--out", str(tmp_path / "i")]
    )
    for word in ("parameters per block", "encoder.levels.4", "decoder.levels.0", "head",
                 "activation memory", "minimum input multiple"):
        assert word in result.output
    data = json.loads((tmp_path / "i.json").read_text())
    assert sum(b["params"] for b in data["blocks"]) == data["params"]
    assert data["multiple"] == 16 and data["activation_mib"] > 0


def test_info_flops_scale_with_pixels(tmp_path):
    _ok(["info", "segnet-basic", "--input", "64x64", "--classes", "11", "--out", str(tmp_path / "a")])
    _ok(["info", "segnet-basic", "--input", "128x128", "--classes", "11", "--out", str(tmp_path / "b")])
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["params"] == b["params"]
    assert b["gflops"] == pytest.approx(4 * a["gflops"], rel=1e-6)  # convs only: linear in area


def test_unknown_model():
    _fails(["info", "segnett"], "unknown model 'segnett'", "did you mean 'segnet'", "lite-unet")


def test_unknown_builder_argument():
    _fails(["info", "lite-unet", "--input", "64x64", "--arg", "encodr=vgg"],
           "no argument 'encodr'", "did you mean 'encoder'")


def test_input_not_a_multiple():
    _fails(["info", "unet", "--input", "360x480"], "not divisible by 16", "352 or 368", "352x480")


def test_non_positive_classes():
    _fails(["models", "--classes", "0"], "num_classes must be a positive integer")
    _fails(["info", "segnet", "--classes", "-1"], "num_classes must be a positive integer")


def test_malformed_size_and_arg():
    _fails(["info", "segnet", "--input", "360by480"], "HxW")
    _fails(["info", "unet", "--input", "64x64", "--arg", "width"], "key=value")
    _fails(["info", "unet", "--input", "64x64", "--arg", "num_classes=3"], "--classes")
    _fails(["info", "segnet", "--input", "16x480"], "at least 32")


def test_parse_helpers():
    assert parse_build_args(["encoder=resnet34", "deep_skip=False", "width=32"]) == {
        "encoder": "resnet34", "deep_skip": False, "width": 32}
    with pytest.raises(ConfigError):
        parse_build_args(["=3"])
    assert fit_hw((360, 480), 16, 16) == (368, 480)
    assert fit_hw((10, 480), 1, 32) == (32, 480)
