"""Data-parallel ``edgeseg train``: torchrun with two gloo processes on the CPU, at tiny sizes.

What is asserted:
- the ranks' batches of a step together are the single-process batch (sampler, no processes);
- 2 processes reach the 1-process weights at the same global batch within float tolerance, and
  their sharded validation gives exactly the single-process mIoU on the same weights;
- SIGKILL of one rank stops the whole job, and ``--resume`` (through ``--nproc 2``) ends on the
  same bits as an uninterrupted 2-process run;
- bad input: one line, from rank 0 only, nothing written.

lite-unet at 32x32 on the synthetic generator, 1 torch thread per process; each torchrun start
costs a few seconds of imports, so the file runs a handful of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.train import TrainConfig, TrainSummary
from edgeseg.train.data import EpochSampler
from edgeseg.train.loop import train, validate
from edgeseg.train.setup import build_run
from edgeseg.train.start import warm_start

REPO = Path(__file__).resolve().parents[1]
# SGD with a small LR: float32 differences between 1 and 2 processes stay at rounding level.
# (At lr 0.05 this BatchNorm net on 2x2 deep maps amplifies them ~30x per step; measured.)
TINY = ["--model", "lite-unet", "--data", "synthetic", "--input", "32x32", "--threads", "1",
        "--optimizer", "sgd", "--lr", "0.002"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "80"}
for _name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
              "TORCHELASTIC_RUN_ID"):
    ENV.pop(_name, None)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cfg(**kw) -> TrainConfig:
    base = dict(model="lite-unet", data="synthetic", input_hw=(32, 32), threads=1, optimizer="sgd",
                lr=0.002)
    return TrainConfig(**{**base, **kw})


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


def _torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "edgeseg", "train", *args]


def _run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_ranks_batches_of_a_step_are_the_single_process_batch() -> None:
    n, batch, world = 23, 6, 2
    single = list(EpochSampler(n, 3, 1, start=batch, batch=batch, stop=n // batch * batch))
    ranks = [list(EpochSampler(n, 3, 1, start=batch, rank=r, world=world, batch=batch,
                               stop=n // batch * batch)) for r in range(world)]
    local = batch // world
    steps = len(single) // batch
    assert steps == 2 and all(len(r) == steps * local for r in ranks)
    for k in range(steps):
        union = [item for r in ranks for item in r[k * local:(k + 1) * local]]
        assert union == single[k * batch:(k + 1) * batch]  # same images, same augmentation seeds
    # validation (no stop): a disjoint cover of every image, shards may be uneven or empty
    val = [list(EpochSampler(8, 3, 0, shuffle=False, rank=r, world=world, batch=batch))
           for r in range(world)]
    assert sorted(i for r in val for i, _ in r) == list(range(8)) and [len(r) for r in val] == [5, 3]


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_two_processes_match_one_process_and_validation_is_exact(tmp_path: Path) -> None:
    # 4 steps of a 20-step epoch (global batch 4 = 2 + 2); --max-steps validates and keeps
    # best/ with the val mIoU in its card; 10 validation images in batches 4, 4, 2 leave rank 1
    # an empty shard at the end
    args = [*TINY, "--batch", "4", "--synthetic-num", "80", "--epochs", "1", "--max-steps", "4"]
    res = _run(_torchrun([*args, "--out", str(tmp_path / "two")]))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr.count("stopped at --max-steps 4") == 1  # rank 0 alone prints
    cfg = _cfg(batch=4, synthetic_num=80, epochs=1, max_steps=4)
    alone = train(cfg, tmp_path / "one", console=_quiet())

    one = load_file(str(tmp_path / "one" / "last" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "last" / "model.safetensors"))
    assert set(one) == set(two)
    for k in one:
        if not one[k].is_floating_point():
            assert torch.equal(one[k], two[k]), k  # num_batches_tracked
    # Tolerance rtol 1e-5, atol 1e-6: the two runs add the same float32 numbers in another
    # order (DDP averages two half-batch gradients, SyncBatchNorm combines per-rank sums), so
    # they differ by rounding; measured here max |diff| 3e-8 on weights, 1.2e-7 on running
    # variances after 4 steps, 10x below the bound. Not bit-exact, and not for many steps: this
    # tiny net amplifies rounding (a 1e-8 weight perturbation moves its gradients by ~1 %;
    # measured), so long runs drift apart as any two float orders of the same training would.
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)
    assert _max_diff(one, two) > 0.0  # really two different computations

    # sharded validation == single-process validation on the very same weights (integer sums)
    card = json.loads((tmp_path / "two" / "best" / "model.json").read_text())
    run = build_run(cfg, tmp_path)
    warm_start(run, tmp_path / "two" / "best")
    _, val = validate(run)
    assert card["extra"]["val_miou"] == val.miou
    summary = TrainSummary.from_json(json.loads((tmp_path / "two" / "log.json").read_text())["summary"])
    assert (summary.processes, alone.processes) == (2, 1) and summary.global_step == alone.global_step == 4
    assert not list((tmp_path / "two").glob(".last*"))


def _rank_pid(agent: int, rank: int) -> int | None:
    """PID of the worker with RANK=rank among the torchrun agent's children (Linux /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{agent}/task").glob("*"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            children += [int(p) for p in (task / "children").read_text().split()]
    for pid in children:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


def _saved_step(state: Path) -> int | None:
    try:
        return json.loads(state.read_text())["progress"]["global_step"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.slow
def test_sigkill_of_one_rank_stops_job_and_resume_matches(tmp_path: Path) -> None:
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    args = [*TINY, "--batch", "4", "--synthetic-num", "200", "--epochs", "1", "--checkpoint-every", "2"]
    proc = subprocess.Popen(_torchrun([*args, "--out", str(killed)]), cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while (_saved_step(killed / "last" / "state.json") or 0) < 4:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        output, _ = proc.communicate(timeout=90)  # the whole job ends, rank 0 included
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 0
    assert "another process of the 2-process job stopped" in output, output
    assert _rank_pid(proc.pid, 0) is None
    saved = json.loads((killed / "last" / "state.json").read_text())
    assert saved["world_size"] == 2 and 0 < saved["progress"]["step_in_epoch"] < 50
    target = saved["progress"]["global_step"] + 3

    res = _run([sys.executable, "-m", "edgeseg", "train", "--out", str(killed), "--resume", "--nproc", "2",
                "--max-steps", str(target)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    res = _run(_torchrun([*args, "--max-steps", str(target), "--out", str(reference)]))
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("model.safetensors", "state.safetensors"):  # weights; optimizer, RNG of both ranks
        a, b = load_file(str(killed / "last" / name)), load_file(str(reference / "last" / name))
        assert set(a) == set(b)
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        assert not differ, f"{name}: {differ[:3]}"
    state = load_file(str(reference / "last" / "state.safetensors"))
    assert {"rng.rank0.torch", "rng.rank1.torch"} <= set(state)
    assert not list(killed.glob(".last*"))

    # a new run into that folder: every rank finds it taken, rank 0 alone says so, nothing written
    before = (killed / "last" / "state.json").read_bytes()
    res = _run([sys.executable, "-m", "edgeseg", "train", *args, "--nproc", "2", "--out", str(killed)])
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1, res.stderr
    assert "already holds a run" in errors[0] and "Traceback" not in res.stderr
    assert (killed / "last" / "state.json").read_bytes() == before


def _as_rank(monkeypatch, rank: int, world: int = 2) -> None:
    for name, value in (("RANK", rank), ("WORLD_SIZE", world), ("LOCAL_RANK", rank),
                        ("LOCAL_WORLD_SIZE", world)):
        monkeypatch.setenv(name, str(value))


@pytest.mark.parametrize("options, expected", [
    (["--batch", "1"], "--batch 1 is the global batch and cannot be split over 2 processes"),
    (["--batch", "5"], "--batch 5 (the global batch) does not split evenly over 2 processes; use --batch 4"),
    (["--batch", "4", "--device", "cuda"], "--device cuda but no CUDA GPU is visible"),
])
def test_bad_job_is_one_line_from_rank_zero_only(tmp_path: Path, monkeypatch, options, expected) -> None:
    out = tmp_path / "run"
    args = ["train", *TINY, *options, "--out", str(out)]
    _as_rank(monkeypatch, 0)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert expected in res.output
    _as_rank(monkeypatch, 1)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and res.output == ""  # same verdict, said once by rank 0
    assert not out.exists()
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    res = CliRunner().invoke(app, [*args, "--nproc", "2"])  # refused before any process starts
    assert res.exit_code == 2 and expected in res.output and res.output.count("\n") == 1, res.output


def test_resume_with_another_world_size_is_refused(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    train(_cfg(batch=2, synthetic_num=8, epochs=1, max_steps=1), run, console=_quiet())
    before = {p.name: p.stat().st_mtime_ns for p in (run / "last").iterdir()}
    res = CliRunner().invoke(app, ["train", "--out", str(run), "--resume", "--nproc", "2"])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "trained by 1 process(es) and this job has 2" in res.output
    assert f"run it in one process: edgeseg train --out {run} --resume" in res.output
    _as_rank(monkeypatch, 1)
    res = CliRunner().invoke(app, ["train", "--out", str(run), "--resume"])
    assert res.exit_code == 0 and res.output == ""  # rank 0 reports, with its exit code
    assert before == {p.name: p.stat().st_mtime_ns for p in (run / "last").iterdir()}


def test_nproc_under_torchrun_is_refused(tmp_path: Path, monkeypatch) -> None:
    _as_rank(monkeypatch, 0)
    res = CliRunner().invoke(app, ["train", *TINY, "--batch", "2", "--out", str(tmp_path / "r"),
                                   "--nproc", "2"])
    assert res.exit_code == 2 and "--nproc starts torchrun itself" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_unreachable_rendezvous_is_one_line(tmp_path: Path) -> None:
    env = {**ENV, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "edgeseg", "train", *TINY, "--batch", "2", "--out", str(out),
                          "--dist-timeout", "3"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and lines, res.stderr
    assert lines[-1].startswith("error: rank 1 of 2 could not join"), res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_nproc_hands_every_given_option_to_the_processes(tmp_path: Path, monkeypatch) -> None:
    import edgeseg.train.launch as launch

    seen: dict[str, object] = {}
    monkeypatch.setattr(launch, "launch", lambda n, argv: seen.update(n=n, argv=argv) or 3)
    res = CliRunner().invoke(app, ["train", *TINY, "--batch", "4", "--model-arg", "deep_skip=false",
                                   "--no-sync-bn", "--out", str(tmp_path / "r"), "--nproc", "2"])
    assert res.exit_code == 3 and seen["n"] == 2  # the launcher's exit code is the command's
    argv = seen["argv"]
    assert "--nproc" not in argv and "--no-sync-bn" in argv and "--resume" not in argv
    assert argv[argv.index("--model-arg") + 1] == "deep_skip=false"
    assert argv[argv.index("--lr") + 1] == "0.002" and argv[argv.index("--out") + 1] == str(tmp_path / "r")


@pytest.mark.gpu
@pytest.mark.slow
def test_two_gpus_nccl_run_saves_every_ranks_cuda_generator(tmp_path: Path) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs for 2 NCCL processes")
    out = tmp_path / "run"
    res = _run([sys.executable, "-m", "edgeseg", "train", *TINY, "--batch", "4", "--synthetic-num", "16",
                "--epochs", "1", "--device", "cuda", "--nproc", "2", "--out", str(out)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 processes (nccl)" in res.stderr
    state = load_file(str(out / "last" / "state.safetensors"))
    assert {"rng.rank0.cuda", "rng.rank1.cuda"} <= set(state)
    assert json.loads((out / "last" / "state.json").read_text())["world_size"] == 2
