"""edgeseg eval: any artifact (checkpoint via torch, ONNX via onnxruntime without torch) on a
labelled split -> per-class table, JSON + Markdown; classes must match the model card."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from edgeseg.runtime.evaluate import evaluate
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import DataError
from edgeseg.train import TrainConfig
from edgeseg.train.loop import train

REPO = Path(__file__).resolve().parents[1]
VAL_NUM = 8  # the synthetic validation split of a run with synthetic_num=16


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rich.console import Console

    folder = tmp_path_factory.mktemp("eval") / "run"
    threads = torch.get_num_threads()
    cfg = TrainConfig(model="lite-unet", data="synthetic", input_hw=(32, 32), batch=2, epochs=2,
                      synthetic_num=16, threads=1, optimizer="adamw")
    train(cfg, folder, console=Console(quiet=True))
    torch.set_num_threads(threads)
    return folder


def test_checkpoint_eval_reproduces_training_validation(run: Path) -> None:
    weights = run / "best" / "model.safetensors"
    res = CliRunner().invoke(app, ["eval", str(weights), "--data", "synthetic", "--synthetic-num",
                                   str(VAL_NUM), "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "IoU" in res.output
    report = json.loads((run / "best" / "model.safetensors.eval-val.json").read_text())
    md = (run / "best" / "model.safetensors.eval-val.md").read_text()
    rows = list(csv.DictReader((run / "log.csv").open()))
    best_val = max(float(r["val_miou"]) for r in rows)
    assert report["metrics"]["miou"] == pytest.approx(best_val, abs=2e-3)
    assert report["images"] == VAL_NUM and report["backend"]["name"] == "torch"
    assert set(report["metrics"]["per_class"]) == set(json.loads((run / "best" / "model.json").read_text())
                                                      ["class_names"])
    assert "nearest" in md and "| class |" in md


def test_onnx_eval_runs_without_torch_and_agrees(run: Path, tmp_path: Path) -> None:
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    onnx_path, _ = export_onnx(run / "best" / "model.safetensors", tmp_path / "model.onnx",
                               ExportOptions(simplify=False, verify_frames=1, random_inputs=1, threads=1))
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from edgeseg.cli.main import main\n"
        # --num: the old (hidden) spelling of --synthetic-num still parses
        f"sys.argv = ['edgeseg', 'eval', {str(onnx_path)!r}, '--data', 'synthetic', '--num', "
        f"'{VAL_NUM}', '--out', {str(tmp_path / 'onnx-eval')!r}, '--threads', '1']\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    onnx_report = json.loads((tmp_path / "onnx-eval.json").read_text())
    assert onnx_report["backend"]["name"] == "onnxruntime"
    torch_result = evaluate(run / "best" / "model.safetensors", "synthetic", num=VAL_NUM,
                            backend_options={"device": "cpu", "threads": 1})
    assert onnx_report["metrics"]["miou"] == pytest.approx(torch_result.metrics.miou, abs=1e-3)
    assert (tmp_path / "onnx-eval.md").is_file()


def _binary_folder(root: Path) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / "images" / f"a{i}.png"), np.full((32, 32, 3), 50, np.uint8))
        mask = np.zeros((32, 32), np.uint8)
        mask[4:9, 4:9] = 255
        cv2.imwrite(str(root / "masks" / f"a{i}.png"), mask)
    return root


def test_dataset_with_other_classes_is_refused(run: Path, tmp_path: Path) -> None:
    data = _binary_folder(tmp_path / "binary")
    with pytest.raises(DataError, match="trained on"):
        evaluate(run / "best" / "model.safetensors", data, "all", backend_options={"device": "cpu"})
    res = CliRunner().invoke(app, ["eval", str(run / "best" / "model.safetensors"), "--data", str(data),
                                   "--split", "all"])
    assert res.exit_code == 2 and res.output.count("error:") == 1, res.output
    assert not list((run / "best").glob("model.safetensors.eval-all.*"))


def test_unknown_artifact_type_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"x")
    res = CliRunner().invoke(app, ["eval", str(bogus), "--data", "synthetic"])
    assert res.exit_code == 2 and "unknown model file type" in res.output


def test_progress_without_a_terminal_prints_plain_lines(capsys) -> None:
    from edgeseg.cli.progress import counted

    with counted("evaluating") as update:  # pytest's captured stderr is not a terminal
        for i in range(1, 21):
            update(i, 20)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"evaluating: {i}/20" for i in range(2, 21, 2)]
