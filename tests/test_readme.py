"""The README's whole-path block and Python API example, run as written (at a tiny size).

The block is taken from README.md between the ``<!-- whole-path`` marker and the end of its code
fence, and run with bash in a scratch folder. Only these substitutions are applied, each asserted
to match so that a changed README fails here instead of silently running at full size:
the dataset path (absolute), a 32x32 input and 3 training steps, a 16-image calibration set, 5 streamed
frames, and 2 timed bench calls. The lines after ``# on the Jetson / GPU`` need TensorRT and a GPU:
they run in the ``trt``-marked test only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GPU_MARK = "# on the Jetson / GPU"

pytest.importorskip("torch")


def whole_path_block() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- whole-path")
    fence = text.index("```bash\n", start) + len("```bash\n")
    return text[fence:text.index("```", fence)]


def python_block() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Python API")
    fence = text.index("```python\n", start) + len("```python\n")
    return text[fence:text.index("```", fence)]


def tiny(block: str, dsb: Path) -> str:
    subs = [
        (r"^D=\S+", f"D={dsb}"),
        (r"--input 256x256 --epochs 10", "--input 32x32 --epochs 1 --max-steps 3"),
        (r"--num 300 ", "--num 16 "),
        (r"--max-frames 100 ", "--max-frames 5 "),
        (r"(edgeseg bench \$R [^\n]*?)--out ", r"\1--iters 2 --warmup 1 --out "),
    ]
    for pattern, repl in subs:
        block, n = re.subn(pattern, repl, block, flags=re.M)
        assert n >= 1, f"README whole-path block no longer contains {pattern!r}; update tests/test_readme.py"
    return block


def run_bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    assert shutil.which("edgeseg", path=env["PATH"]), "edgeseg is not installed in this environment"
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1200)


def test_readme_states_the_fresh_machine_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "bash scripts/setup.sh && .venv/bin/edgeseg demo" in text
    assert "bash scripts/setup.sh && .venv/bin/python -m pytest -q" in text
    assert len(text.splitlines()) <= 220, "the README is a front page; move details to docs/"


@pytest.mark.slow
def test_readme_whole_path_runs_on_cpu(dsb_dir: Path, tmp_path: Path) -> None:
    cpu_part = whole_path_block().split(GPU_MARK)[0]
    out = run_bash(tiny(cpu_part, dsb_dir), tmp_path)
    assert out.returncode == 0, f"README block failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    run, best = tmp_path / "runs" / "dsb", tmp_path / "runs" / "dsb" / "best"
    for name in ("model.safetensors", "model.json", "model.onnx", "model.int8.onnx", "model.fp16.onnx"):
        assert (best / name).is_file(), name
    for name in ("eval.json", "calib-set.json", "precision.json", "stream.json", "stream.mp4", "bench.json"):
        assert (run / name).is_file(), name
    rows = json.loads((run / "bench.json").read_text())["rows"]
    assert [(r["backend"], r["status"]) for r in rows] == [
        ("torch", "ok"), ("ort", "ok"), ("ort-int8", "ok"), ("ort-fp16", "ok")]
    found = {r["backend"]: Path(r["artifact"]).name for r in rows}
    assert found == {"torch": "model.safetensors", "ort": "model.onnx", "ort-int8": "model.int8.onnx",
                     "ort-fp16": "model.fp16.onnx"}, "bench must run the files the earlier steps wrote"
    assert all(r["miou"] is not None for r in rows)
    # one parameter count for the model across checkpoint, FP32, FP16 and INT8 (trainable parameters)
    counts = {r["backend"]: r["params"] for r in rows}
    assert len(set(counts.values())) == 1 and rows[0]["params"] > 0, counts
    # The Python API example, on a frame of the dataset, against the files just written.
    shutil.copy(next((dsb_dir / "images").iterdir()), tmp_path / "frame.png")
    api = subprocess.run([sys.executable, "-c", python_block()], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert api.returncode == 0, api.stdout + api.stderr
    assert "background" in api.stdout


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.gpu
def test_readme_whole_path_with_tensorrt(dsb_dir: Path, tmp_path: Path) -> None:
    """The whole block, TensorRT lines included (the camera line streams from --camera 0, so it
    needs a camera too: it is replaced by the dataset's images)."""
    block = tiny(whole_path_block(), dsb_dir)
    block = block.replace("--camera 0", "--source $D/images --max-frames 5 --headless")
    out = run_bash(block, tmp_path)
    assert out.returncode == 0, f"README block failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    rows = json.loads((tmp_path / "runs" / "dsb" / "bench-gpu.json").read_text())["rows"]
    assert all(r["status"] == "ok" for r in rows), rows
