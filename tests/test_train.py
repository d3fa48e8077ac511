"""edgeseg train: run folder contents, exact resume after SIGKILL / Ctrl-C, NaN stop, bad input.

Tiny runs (lite-unet at 32x32 on the synthetic generator, 1 torch thread) so that bit-exact
comparisons hold and the file stays well under a minute on 2 shared cores.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.main import get_command
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import ConfigError, ModelError
from edgeseg.train import TrainConfig, TrainSummary
from edgeseg.train.config import DEVICES, OPTIMIZERS, SCHEDULES
from edgeseg.train.loop import TrainingError, train

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "lite-unet", "--data", "synthetic", "--input", "32x32", "--batch", "2",
        "--threads", "1", "--optimizer", "adamw"]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cfg(**kw) -> TrainConfig:
    base = dict(model="lite-unet", data="synthetic", input_hw=(32, 32), batch=2, threads=1,
                optimizer="adamw", synthetic_num=16, epochs=2)
    return TrainConfig(**{**base, **kw})


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


def _tensors_equal(a: Path, b: Path, name: str) -> None:
    ta, tb = load_file(str(a / "last" / name)), load_file(str(b / "last" / name))
    assert set(ta) == set(tb)
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"{name}: {len(differ)} tensors differ, e.g. {differ[:3]}"


def test_cli_run_folder_logs_curves_and_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", *TINY, "--epochs", "2", "--synthetic-num", "12",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("config.json", "log.csv", "log.json", "curves.png", "best/model.safetensors",
                 "best/model.json", "last/model.safetensors", "last/state.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("train_loss", "val_loss", "train_dice", "val_dice", "train_miou", "val_miou"):
        assert all(0.0 <= float(r[key]) < 10 for r in rows), key
    log = json.loads((out / "log.json").read_text())
    assert log["summary"]["global_step"] == 12 and log["summary"]["epochs_done"] == 2
    best = json.loads((out / "best" / "model.json").read_text())
    assert best["extra"]["val_miou"] == pytest.approx(max(float(r["val_miou"]) for r in rows))
    assert cv2.imread(str(out / "curves.png")).shape[1] > 800
    assert not list(out.glob(".last*"))


def _wait_for_step(state: Path, proc: subprocess.Popen, step: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stdout.read()}")
        try:
            saved = json.loads(state.read_text())["progress"]["global_step"]
            if saved >= step:
                return saved
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    pytest.fail("no checkpoint appeared in time")


def _start(out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgeseg.cli.main", "train", *TINY, "--epochs", "1",
           "--synthetic-num", "600", "--checkpoint-every", "2", "--out", str(out)]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "80"})


@pytest.mark.slow  # two training subprocesses (~14 s on 2 cores)
def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path: Path) -> None:
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    proc = _start(killed)
    try:
        _wait_for_step(killed / "last" / "state.json", proc, 4)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved = json.loads((killed / "last" / "state.json").read_text())["progress"]
    assert 0 < saved["step_in_epoch"] < 300  # killed mid-epoch
    target = saved["global_step"] + 3
    res = CliRunner().invoke(app, ["train", "--out", str(killed), "--resume", "--max-steps", str(target)])
    assert res.exit_code == 0, res.output
    train(_cfg(epochs=1, synthetic_num=600, checkpoint_every=2, max_steps=target), reference,
          console=_quiet())
    _tensors_equal(killed, reference, "model.safetensors")
    _tensors_equal(killed, reference, "state.safetensors")  # optimizer moments, RNG, confusion
    assert not list(killed.glob(".last*"))


@pytest.mark.slow  # two training subprocesses (~15 s on 2 cores)
def test_ctrl_c_saves_state_and_resume_matches(tmp_path: Path) -> None:
    run, reference = tmp_path / "run", tmp_path / "reference"
    proc = _start(run)
    try:
        _wait_for_step(run / "last" / "state.json", proc, 2)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert "--resume" in output.splitlines()[-1]
    saved = json.loads((run / "last" / "state.json").read_text())["progress"]["global_step"]
    train(_cfg(epochs=1, synthetic_num=600, max_steps=saved + 2), reference, console=_quiet())
    train(_cfg(epochs=1, synthetic_num=600, max_steps=saved + 2, checkpoint_every=2), run,
          resume=True, console=_quiet())
    _tensors_equal(run, reference, "model.safetensors")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import edgeseg.train.setup as setup

    real = setup.build_loss_for
    calls = {"n": 0}

    def poisoned(cfg, data):
        loss = real(cfg, data)

        def wrapped(logits, target):
            calls["n"] += 1
            value = loss(logits, target)
            return value * float("nan") if calls["n"] == 5 else value

        return wrapped

    monkeypatch.setattr(setup, "build_loss_for", lambda cfg, data: _Module(poisoned(cfg, data)))
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="loss became nan.*global step 5.*step 4"):
        train(_cfg(checkpoint_every=2), run, console=_quiet())
    state = json.loads((run / "last" / "state.json").read_text())
    assert state["progress"]["global_step"] == 4
    weights = load_file(str(run / "last" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


class _Module(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, logits, target):
        return self.fn(logits, target)


def test_resume_refuses_other_model_and_missing_state(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_cfg(max_steps=2, synthetic_num=8), run, console=_quiet())
    with pytest.raises(ConfigError, match="model"):
        train(_cfg(model="res-segnet", max_steps=4, synthetic_num=8), run, resume=True, console=_quiet())
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_cfg(max_steps=2, synthetic_num=8), run, console=_quiet())
    # a last/ checkpoint of another architecture (e.g. copied in by hand)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "model": "unet"}))
    with pytest.raises(ModelError, match="'lite-unet' checkpoint but the run's config.json says 'unet'"):
        train(_cfg(model="unet", max_steps=4, synthetic_num=8), run, resume=True, console=_quiet())
    res = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "none"), "--resume"])
    assert res.exit_code == 2 and "config.json not found" in res.output


def _write_pair(root: Path, name: str, mask_value: int) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / f"{name}.png"), np.full((32, 32, 3), 90, np.uint8))
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = mask_value
    cv2.imwrite(str(root / "masks" / f"{name}.png"), mask)


@pytest.mark.parametrize("problem", ["bad-mask", "unreadable", "empty", "unpaired"])
def test_bad_data_is_one_line_error(tmp_path: Path, problem: str) -> None:
    root = tmp_path / "data"
    for i in range(4):
        _write_pair(root, f"im{i}", 255)
    (root / "train.txt").write_text("".join(f"images/im{i}.png masks/im{i}.png\n" for i in range(4)))
    (root / "val.txt").write_text("images/im0.png masks/im0.png\n")
    (root / "classes.json").write_text(json.dumps({"class_names": ["background", "cell"],
                                                   "class_colors": [[0, 0, 0], [255, 255, 255]],
                                                   "mask_values": [0, 255]}))
    if problem == "bad-mask":
        _write_pair(root, "im2", 7)
    elif problem == "unreadable":
        (root / "images" / "im1.png").write_bytes(b"not a png")
    elif problem == "empty":
        (root / "train.txt").write_text("# nothing\n")
    else:
        (root / "masks" / "im3.png").unlink()
    res = CliRunner().invoke(app, ["train", "--model", "lite-unet", "--data", str(root), "--input",
                                   "32x32", "--batch", "1", "--threads", "1", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert not (tmp_path / "r" / "last").exists()


def test_init_starts_from_checkpoint_weights_and_refuses_other_models(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(_cfg(max_steps=2, synthetic_num=8), first, console=_quiet())
    init = first / "last" / "model.safetensors"
    tuned = tmp_path / "tuned"
    train(_cfg(max_steps=1, synthetic_num=8, lr=1e-12, init=str(init)), tuned, console=_quiet())
    a, b = load_file(str(init)), load_file(str(tuned / "last" / "model.safetensors"))
    convs = [k for k in a if k.endswith("weight") and a[k].ndim == 4]
    assert convs and all(torch.allclose(a[k], b[k], atol=1e-6) for k in convs)
    card = json.loads((tuned / "last" / "model.json").read_text())
    parent = json.loads((first / "last" / "model.json").read_text())
    assert card["extra"]["init_sha256"] == parent["file_sha256"]
    with pytest.raises(ModelError, match="--init"):
        train(_cfg(max_steps=1, synthetic_num=8, model_args={"deep_skip": False}, init=str(init)),
              tmp_path / "other", console=_quiet())


def test_max_steps_inside_an_epoch_logs_a_partial_row(tmp_path: Path) -> None:
    """--max-steps stopping mid-epoch: log.json/log.csv/curves.png get a row at the fractional
    epoch (validated), marked partial; resuming to the epoch's end replaces it by the full row."""
    run = tmp_path / "run"
    result = train(_cfg(epochs=2, synthetic_num=8, max_steps=6), run, console=_quiet())  # 4 steps/epoch
    log = json.loads((run / "log.json").read_text())
    assert isinstance(result, TrainSummary) and TrainSummary.from_json(log["summary"]) == result
    assert (result.global_step, result.epochs_done, result.input_hw) == (6, 1, (32, 32))
    assert [r["epoch"] for r in log["epochs"]] == [1, 1.5]
    assert log["epochs"][-1]["partial"] is True and log["epochs"][-1]["val_miou"] is not None
    with (run / "log.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "1.5"]
    assert (run / "curves.png").stat().st_size > 0
    train(_cfg(epochs=2, synthetic_num=8, max_steps=8), run, resume=True, console=_quiet())
    log = json.loads((run / "log.json").read_text())
    assert [r["epoch"] for r in log["epochs"]] == [1, 2] and "partial" not in log["epochs"][-1]


def test_cli_defaults_and_choices_are_train_configs() -> None:
    """Each train option's default is TrainConfig's field default, and each choice option takes
    exactly the values of its Literal in train/config.py (declared once, derived by the CLI)."""
    cmd = get_command(app).commands["train"]  # type: ignore[attr-defined]
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    options = {p.name: p for p in cmd.params if p.name in fields}
    # parsed from --input/--model-arg/--loss-arg, or not an option (deterministic)
    assert set(fields) - set(options) == {"input_hw", "model_args", "loss_args", "deterministic"}
    for name, param in options.items():
        if fields[name].default is not dataclasses.MISSING:
            assert param.default == fields[name].default, name
    for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("device", DEVICES)):
        res = CliRunner().invoke(app, ["train", "--out", "x", f"--{name}", "nope"], env={"COLUMNS": "200"})
        listed = ", ".join(repr(c) for c in choices)
        assert res.exit_code == 2 and f"'nope' is not one of {listed}." in res.output, res.output


def test_resume_applies_exactly_the_options_typed(tmp_path: Path) -> None:
    """An option typed with --resume counts even when it equals its default: the saved run has
    batch 2, so --batch 8 (the default) is refused; options not typed keep the saved values."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_cfg(epochs=3).to_dict()))
    res = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--batch",
                                   str(TrainConfig.batch)])
    assert res.exit_code == 2 and "batch differ(s)" in res.output, res.output
    from edgeseg.cli.train import _given

    ctx = get_command(app).commands["train"].make_context(  # type: ignore[attr-defined]
        "train", ["--out", str(run), "--resume", "--lr", "0.01", "--no-sync-bn", "--input", "8x16",
                  "--model-arg", "deep_skip=false"])
    assert _given(ctx) == {"lr": 0.01, "sync_bn": False, "input_hw": (8, 16),
                           "model_args": {"deep_skip": False}}
