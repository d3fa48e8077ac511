"""The runtime imports and runs with torch unavailable (what a Jetson image without torch has)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tinyseg import write_tiny_onnx

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import edgeseg.runtime, edgeseg.runtime.stream, edgeseg.runtime.sources, edgeseg.runtime.sinks
from edgeseg.cli.main import app
try:
    app(["stream", sys.argv[1], "--source", sys.argv[2], "--max-frames", "6", "--headless", "--quiet",
         "--report", sys.argv[3], "--save", sys.argv[4]], prog_name="edgeseg")
except SystemExit as e:
    if e.code:
        raise
assert sys.modules["torch"] is None, "torch was imported"
print("TORCH-FREE OK")
"""


def _run(tmp_path: Path, source: str) -> dict:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64))
    report, video = tmp_path / f"r_{len(source)}.json", tmp_path / f"o_{len(source)}.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(model), source, str(report), str(video)],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0 and "TORCH-FREE OK" in out.stdout, out.stdout + out.stderr
    return json.loads(report.read_text())


def test_stream_synthetic_without_torch(tmp_path: Path) -> None:
    report = _run(tmp_path, "synthetic")
    assert report["frames"] == 6 and report["metrics"]["frames"] == 6


def test_stream_image_folder_without_torch(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), np.full((30, 40, 3), 50 * i, np.uint8))
    report = _run(tmp_path, str(tmp_path / "imgs"))
    assert report["frames"] == 3 and report["metrics"] is None
