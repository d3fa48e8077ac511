"""The resumable training state in ``RUN/last/``, written without pickle and atomically.

``last/`` holds a normal checkpoint (``model.safetensors`` + ``model.json``, loadable by
``edgeseg eval``), ``state.safetensors`` (optimizer tensors, RNG states, the running train
confusion matrix) and ``state.json`` (everything else: epoch, step, LR groups, scaler, history).
The folder is built under a temporary name and swapped in with renames: a kill at any moment
leaves either the previous ``last/`` or the new one (``.last.old`` covers the instant between
the two renames), never a mix.

A data-parallel run (N processes) stores every rank's generator states
(``rng.rank{r}.torch`` / ``rng.rank{r}.cuda``) and ``world_size`` N in ``state.json``; only
rank 0 writes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.card import ModelCard
from edgeseg.errors import ModelError
from edgeseg.io import output_error, umask_mode, write_json_atomic
from edgeseg.models.checkpoint import load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    import torch

LAST = "last"
_OLD = ".last.old"
_TMP_PREFIX = ".last.tmp-"


@dataclass
class Progress:
    """Where training stands: the next step to run is step ``step_in_epoch`` of ``epoch``."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    best_miou: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    # The log row of an epoch stopped part-way (--max-steps, Ctrl-C), with a fractional epoch; kept
    # (and logged after the full rows) until that epoch ends and its full row replaces it.
    partial: dict[str, Any] | None = None


def _flatten_optimizer(opt_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into safetensors tensors and JSON-able rest."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, dict[str, Any]] = {}
    for pid, slots in opt_state["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{pid}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                rest.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": rest}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, slots in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(slots)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_tensors() -> dict[str, torch.Tensor]:
    import torch

    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return out


def _set_rng(tensors: dict[str, torch.Tensor]) -> None:
    import torch

    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_state(run: Path, model: torch.nn.Module, card: ModelCard, optimizer: torch.optim.Optimizer,
               scaler_state: dict[str, Any], confusion: torch.Tensor, progress: Progress, *,
               rng: dict[str, torch.Tensor] | None = None, world_size: int = 1) -> Path:
    """Write ``run/last`` atomically (folder swap); return its path.

    ``rng``: every rank's generator states of a data-parallel run (None: this process's)."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    try:
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=run))
    except OSError as e:
        raise output_error(e, run / LAST, "training state") or e from None
    tmp.chmod(umask_mode(0o777))  # mkdtemp makes it private; the run folder follows the umask
    try:
        save_checkpoint(model, card, tmp)
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        rng = _rng_tensors() if rng is None else rng
        tensors = {**opt_tensors, **rng, "train.confusion": confusion.detach().cpu().contiguous()}
        try:
            save_file(tensors, str(tmp / "state.safetensors"))
        except Exception as e:  # safetensors reports ENOSPC/EFBIG as its own error type
            raise output_error(e, run / LAST, "training state") or e from None
        meta = {"progress": asdict(progress), "optimizer": opt_meta, "scaler": scaler_state,
                "world_size": world_size}
        write_json_atomic(tmp / "state.json", meta)
        _swap_in(run, tmp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return run / LAST


def _swap_in(run: Path, tmp: Path) -> None:
    last, old = run / LAST, run / _OLD
    if old.exists():
        shutil.rmtree(old)
    if last.exists():
        os.replace(last, old)
    os.replace(tmp, last)
    shutil.rmtree(old, ignore_errors=True)


def clean_partial(run: Path) -> None:
    """Remove temporary folders a killed save left behind; restore ``last`` from ``.last.old``."""
    for p in run.glob(_TMP_PREFIX + "*"):
        shutil.rmtree(p, ignore_errors=True)
    last, old = run / LAST, run / _OLD
    if old.exists():
        if last.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, last)


@dataclass
class Restored:
    model: torch.nn.Module
    card: ModelCard
    optimizer_state: dict[str, Any]
    scaler_state: dict[str, Any]
    confusion: torch.Tensor
    progress: Progress
    tensors: dict[str, torch.Tensor]


def saved_world_size(run: Path) -> int | None:
    """Number of processes that wrote ``run/last`` (1 for runs from before data parallelism;
    None if there is no state)."""
    path = run / LAST / "state.json"
    if not path.exists():  # a save killed between its two renames left only the previous state
        path = run / _OLD / "state.json"
    if not path.exists():
        return None
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("world_size", 1))
    except (OSError, ValueError, TypeError) as e:
        raise ModelError(f"{path} is not readable ({e}); start a new run with another --out") from None


def load_state(run: Path, architecture: str, *, clean: bool = True, set_rng: bool = True) -> Restored:
    """Read ``run/last`` (after :func:`clean_partial` if ``clean``); ModelError if absent or of
    another model. ``set_rng``: restore this process's generators (single-process layout)."""
    from safetensors.torch import load_file

    if clean:
        clean_partial(run)
    last = run / LAST
    if not (last / "state.json").exists():
        raise ModelError(f"no resumable state in {last} (a run saves it at each epoch end and every "
                         "--checkpoint-every steps; this one stopped before its first save); start it "
                         f"again with the same options and a new --out, or remove {run} and re-run")
    model, card = load_checkpoint(last)
    if card.architecture != architecture:
        raise ModelError(f"{last} holds a {card.architecture!r} checkpoint but the run's config.json says "
                         f"{architecture!r}: the run folder was mixed up; start a new run with a new --out")
    meta = json.loads((last / "state.json").read_text(encoding="utf-8"))
    tensors = load_file(str(last / "state.safetensors"))
    if set_rng:
        _set_rng(tensors)
    progress = Progress(**meta["progress"])
    return Restored(model, card, _unflatten_optimizer(tensors, meta["optimizer"]), meta["scaler"],
                    tensors["train.confusion"], progress, tensors)
