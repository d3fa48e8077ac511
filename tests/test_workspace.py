"""A run folder as the workspace: commands take it instead of a file and pick the family member
they need; a missing member is one line naming the step that makes it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import ModelError
from edgeseg.workspace import DEPLOYED, resolve, resolve_all

DEMO = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "demo-lite-unet.onnx"


def _run_folder(tmp_path: Path, *names: str) -> Path:
    best = tmp_path / "runs" / "r" / "best"
    best.mkdir(parents=True)
    for name in names:
        (best / name).write_bytes(DEMO.read_bytes())
        (best / f"{name}.json").write_bytes(Path(f"{DEMO}.json").read_bytes())
    return best.parent


def test_resolve_picks_the_member_and_names_the_missing_step(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, "model.onnx", "model.fp16.onnx")
    assert resolve(run, "onnx") == run / "best" / "model.onnx"
    assert resolve(run / "best", *DEPLOYED) == run / "best" / "model.fp16.onnx"  # FP16 beats FP32
    assert resolve(DEMO, "int8") == DEMO  # files pass through
    assert resolve_all([run], ("onnx", "fp16", "int8")) == [run / "best" / "model.onnx",
                                                            run / "best" / "model.fp16.onnx"]
    with pytest.raises(ModelError, match=r"has no .*model\.int8\.onnx yet; make it with: edgeseg calibrate "):
        resolve(run, "int8")
    with pytest.raises(ModelError, match="folder without a model"):
        resolve(tmp_path, "onnx")


def test_cli_commands_take_the_run_folder(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, "model.onnx")
    r = CliRunner().invoke(app, ["check-ops", str(run)])
    assert r.exit_code == 0 and "all 6 op types parse" in r.output, r.output
    r = CliRunner().invoke(app, ["stream", str(run), "--source", "synthetic", "--max-frames", "3",
                                 "--headless", "--quiet", "--threads", "1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["calibrate", str(run), "--set", str(tmp_path / "set.json")])
    assert r.exit_code != 0 and "set.json" in r.output  # got past the folder to the missing set
    r = CliRunner().invoke(app, ["int8-sensitivity", str(run), str(run), "--data", "synthetic",
                                 "-o", str(tmp_path / "s")])
    assert r.exit_code == 2 and "model.int8.onnx yet; make it with: edgeseg calibrate" in r.output


def test_outputs_default_into_the_run_folder(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, "model.onnx", "model.fp16.onnx")
    best = run / "best"
    r = CliRunner().invoke(app, ["deploy", str(run), "--frames", "2"])
    assert r.exit_code == 0, r.output
    assert (best / "model.fp16.deploy.onnx").is_file() and (best / "model.fp16.deploy.onnx.json").is_file()
    r = CliRunner().invoke(app, ["build-engine", str(run), "--precision", "fp16", "--print-trtexec"])
    assert r.exit_code == 0 and str(best / "model.fp16.engine") in r.output, r.output
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.png"), np.full((40, 50, 3), 40 * i, np.uint8))
    r = CliRunner().invoke(app, ["calib-set", "--data", str(images), "--model", str(run), "--num", "4"])
    assert r.exit_code == 0 and (best / "calib-set.json").is_file(), r.output
    r = CliRunner().invoke(app, ["calib-set", "--data", str(images), "--num", "4", "--input", "32x32"])
    assert r.exit_code == 2 and "pass -o, e.g. -o calib-set.json" in r.output
    r = CliRunner().invoke(app, ["calib-set", "--data", "synthetic", "--num", "4", "--input", "32x32",
                                 "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 2 and "no image files to record in a calibration set" in r.output, r.output
