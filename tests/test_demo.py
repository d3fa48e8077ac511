"""edgeseg demo: the README's main-job command, on the shipped model, without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgeseg.runtime.demo import demo_model, demo_summary
from typer.testing import CliRunner

from edgeseg.card import read_card
from edgeseg.cli.main import app
from edgeseg.data.synthetic import SYNTHETIC_INFO

runner = CliRunner()


def test_shipped_model_is_small_and_carded() -> None:
    path = demo_model()
    assert path.is_file() and path.stat().st_size < 5_000_000
    card = read_card(path)  # checks the card's SHA-256 against the file
    assert card.artifact == "onnx" and card.architecture == "lite-unet"
    assert card.class_names == SYNTHETIC_INFO.class_names


def test_demo_runs_without_torch(tmp_path: Path) -> None:
    """The runtime path of a fresh `pip install edgeseg` (no torch) runs the demo end to end."""
    code = ("import sys; sys.modules['torch'] = None; from edgeseg.cli.main import main; "
            f"sys.argv = ['edgeseg', 'demo', '--max-frames', '12', '--out', {str(tmp_path / 'd')!r}]; main()")
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    assert report["frames"] == 12 and report["fps"] > 0
    assert (tmp_path / "d" / "demo.mp4").stat().st_size > 1000
    assert "FPS end to end" in proc.stdout and "parameters" in proc.stdout


def test_demo_segments_the_synthetic_scenes(tmp_path: Path) -> None:
    """The shipped model was trained on the generator: it must actually segment it."""
    result = runner.invoke(app, ["demo", "--max-frames", "10", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    metrics = report["metrics"]
    assert metrics["frames"] == 10
    iou = {name: row["iou"] for name, row in metrics["per_class"].items()}
    # far above chance on the big shapes (a random-init model scores < 0.1 here)
    assert iou["background"] > 0.9 and iou["disk"] > 0.5 and iou["rectangle"] > 0.5
    assert metrics["miou"] > 0.4
    assert report["model"]["params"] > 100_000
    assert (tmp_path / "d" / "report.md").read_text().startswith("# Stream report")
    assert len((tmp_path / "d" / "frames.jsonl").read_text().splitlines()) == 10


def test_demo_missing_camera_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--camera", "57", "--frames", "2", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "camera 57" in result.output and "Traceback" not in result.output


def test_demo_rejects_zero_frames(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--max-frames", "0", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "--max-frames 0" in result.output
    # --frames is the old (hidden) spelling: it still parses, and both at once are refused.
    result = runner.invoke(app, ["demo", "--frames", "0", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "--max-frames 0" in result.output
    result = runner.invoke(app, ["demo", "--frames", "2", "--max-frames", "2", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "old name of --max-frames" in result.output
    assert not (tmp_path / "d").exists()


def test_summary_line_without_ground_truth() -> None:
    report = {"frames": 3, "fps": 10.0, "latency_ms": {"p50": 5.0, "p99": 9.0},
              "stages_ms": {"inference": {"p50": 2.0}}, "model": {"params": 1234}, "metrics": None}
    line = demo_summary(report)
    assert "10.0 FPS" in line and "1,234 parameters" in line and "no ground truth" in line
