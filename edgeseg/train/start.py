"""How a run starts: a new run folder, a resumed one (``last/``), or a warm start (``--init``).

Every rank runs the checks and loads; rank 0 alone creates and cleans files
(:func:`create_folder`); the training loop calls them through :func:`dd.agreed` so that a
problem on any rank stops every rank with one line from rank 0.
"""

from __future__ import annotations

from pathlib import Path

import torch

import edgeseg.train.dist as dd
import edgeseg.train.state as st
from edgeseg.errors import ConfigError, ModelError
from edgeseg.io import write_json_atomic
from edgeseg.models.checkpoint import check_state
from edgeseg.train.config import TrainConfig, read_config
from edgeseg.train.setup import Run


def check_resume_world(folder: Path, d: dd.Dist) -> None:
    """Refuse to resume a run written by another number of processes (same verdict on all ranks).

    Exactness across world sizes is not possible bit for bit: each process draws from its own
    generator and float sums change order, so the run would silently stop being the one it was.
    """
    saved = st.saved_world_size(folder)
    if saved is None or saved == d.world:
        return
    how = "in one process: edgeseg train" if saved == 1 else \
        f"with {saved} processes, e.g. edgeseg train --nproc {saved}"
    raise ConfigError(f"{folder} was trained by {saved} process(es) and this job has {d.world}; resume "
                      f"exactly needs the same number, so run it {how} --out {folder} --resume")


def restore(run: Run) -> tuple[torch.Tensor, st.Progress]:
    """Load ``last/`` into the run: weights, optimizer, scaler, this rank's generators; returns
    (training confusion matrix, progress)."""
    d = run.dist
    restored = st.load_state(run.folder, run.cfg.model, clean=False, set_rng=not d.enabled)
    if d.enabled:
        dd.set_rank_rng(restored.tensors, d, run.device)
    check_state(run.model, restored.model.state_dict(), str(run.folder / st.LAST), run.cfg.model)
    run.model.load_state_dict(restored.model.state_dict())
    run.optimizer.load_state_dict(restored.optimizer_state)
    run.scaler.load_state_dict(restored.scaler_state)
    # the saved matrix is the sum over ranks: rank 0 carries it on, the others start from zero
    confusion = restored.confusion if d.main else torch.zeros_like(restored.confusion)
    return confusion.to(run.device), restored.progress


def warm_start(run: Run, path: Path) -> None:
    """Load the weights of checkpoint ``path`` (same architecture, arguments and classes)."""
    from edgeseg.models.checkpoint import load_checkpoint

    model, card = load_checkpoint(path)
    if (card.architecture, card.arch_args, card.class_names) != (
            run.card.architecture, run.card.arch_args, run.card.class_names):
        raise ModelError(f"--init {path} is a {card.architecture} {card.arch_args} for classes "
                         f"{list(card.class_names)}, but this run trains a {run.card.architecture} "
                         f"{run.card.arch_args} for {list(run.card.class_names)}; use a matching checkpoint")
    run.model.load_state_dict(model.state_dict())
    run.card = run.card.replace(extra={**run.card.extra, "init": str(path), "init_sha256": card.file_sha256})


# Options --resume may change. lr is one: the non-finite-loss error advises "--resume --lr LOWER".
RESUME_OVERRIDES = ("max_steps", "workers", "device", "threads", "checkpoint_every", "lr")


def check_folder(cfg: TrainConfig, folder: Path, resume: bool) -> TrainConfig:
    """The config to use: the saved one (resume; only RESUME_OVERRIDES may differ) or ``cfg``
    (a new run: ``folder`` must not hold one). Reads only."""
    if resume:
        saved = read_config(folder / "config.json")
        diff = [k for k, v in cfg.to_dict().items()
                if k not in RESUME_OVERRIDES and saved.to_dict()[k] != v]
        if diff:
            raise ConfigError(f"--resume continues the run in {folder} as configured there, but "
                              f"{', '.join(diff)} differ(s); drop those options or start a new --out")
        return saved.replace(**{k: getattr(cfg, k) for k in RESUME_OVERRIDES})
    if (folder / st.LAST).exists() or (folder / "config.json").exists():
        raise ConfigError(f"run folder {folder} already holds a run; pass --resume to continue it or "
                          "choose a new --out")
    return cfg


def create_folder(cfg: TrainConfig, folder: Path, resume: bool) -> None:
    """Rank 0 only: write ``config.json`` of a new run, or tidy a resumed run's ``last/`` (a save
    killed half-way)."""
    if resume:
        st.clean_partial(folder)
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "config.json", cfg.to_dict())
