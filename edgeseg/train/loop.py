"""The training loop: epochs of optimizer steps, validation, checkpoints, resume, logs.

Run folder ``RUN/``: ``config.json``, ``last/`` (resumable state, see ``state.py``), ``best/``
(checkpoint with the best validation mIoU), ``log.csv``, ``log.json``, ``curves.png``.
A first Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves ``last/`` and stops; a
SIGKILL loses at most the steps since the last save (``--checkpoint-every``), and ``--resume``
then continues bit-exactly from there (same weights as an uninterrupted run on the CPU).
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgeseg.checkpoint import check_state, save_checkpoint
from edgeseg.errors import ConfigError, EdgesegError, ModelError, signal_exit_code
from edgeseg.io import write_json_atomic
from edgeseg.metrics import SegMetrics
from edgeseg.train import state as st
from edgeseg.train.config import TrainConfig, read_config
from edgeseg.train.data import make_loader
from edgeseg.train.history import write_logs
from edgeseg.train.setup import Run, build_run, lr_at


class TrainingError(EdgesegError):
    """Training cannot go on (non-finite loss); the last good checkpoint is kept."""


class TrainingInterrupted(EdgesegError):
    """Stopped by Ctrl-C / SIGTERM after saving ``last/``; exit code 128 + signal (130 / 143)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = signal_exit_code(signum)


@dataclass
class _Stop:
    requested: bool = False
    signals: list[int] = field(default_factory=list)


@contextmanager
def _graceful_stop():
    """Turn the first SIGINT/SIGTERM into a flag checked between steps (a second one kills)."""
    stop = _Stop()
    previous = {}

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        stop.signals.append(signum)

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def confusion_update(cm: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> None:
    """Add a batch to the (K, K) int64 confusion matrix (rows = target); ignored labels skipped."""
    k = cm.shape[0]
    valid = (target >= 0) & (target < k)
    idx = target[valid] * k + pred[valid]
    cm += torch.bincount(idx, minlength=k * k).reshape(k, k)


def _metrics(cm: torch.Tensor) -> SegMetrics:
    return SegMetrics.from_confusion(cm.cpu().numpy())


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor, progress: st.Progress
               ) -> tuple[float, torch.Tensor]:
    """One optimizer step; TrainingError (weights untouched) if the loss is not finite."""
    fmt = torch.channels_last if run.amp else torch.contiguous_format
    x = x.to(run.device, non_blocking=True, memory_format=fmt)
    y = y.to(run.device, non_blocking=True)
    lr = lr_at(run.cfg, progress.global_step, run.total_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=run.amp):
        logits = run.model(x)
        loss = run.loss_fn(logits.float(), y)
    value = float(loss.detach())
    if not math.isfinite(value):
        saved = _saved_step(run.folder)
        lower = f"{run.cfg.lr / 10:.3g}" if run.cfg.lr is not None else f"{lr / 10:.3g}"
        # The advice must work when typed: --lr may change on --resume (RESUME_OVERRIDES); without a
        # saved state there is nothing to resume, so the run starts again in a new folder.
        fix = (f"continue from step {saved} with a lower LR: edgeseg train --out {run.folder} --resume "
               f"--lr {lower}" if saved.isdigit() else
               f"no state was saved yet: start again with a lower --lr {lower} and a new --out")
        raise TrainingError(
            f"loss became {value} at epoch {progress.epoch + 1} step {progress.step_in_epoch + 1} "
            f"(global step {progress.global_step + 1}, lr {lr:.3g}); stopped before updating the "
            f"weights (check the data if a lower LR does not help); {fix}")
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return value, logits.detach().argmax(1)


def _saved_step(folder: Path) -> str:
    import json

    path = folder / st.LAST / "state.json"
    if not path.exists():
        return "none saved yet"
    return str(json.loads(path.read_text(encoding="utf-8"))["progress"]["global_step"])


@torch.inference_mode()
def validate(run: Run) -> tuple[float, SegMetrics]:
    """Mean loss and metrics on the validation split at the model input size."""
    run.model.eval()
    k = run.card.num_classes
    cm = torch.zeros((k, k), dtype=torch.int64, device=run.device)
    total, count = 0.0, 0
    try:
        for x, y in make_loader(run.val_ds, run.cfg, epoch=0, start_step=0, train=False):
            x, y = x.to(run.device), y.to(run.device)
            with torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=run.amp):
                logits = run.model(x)
            total += float(run.loss_fn(logits.float(), y)) * x.shape[0]
            count += x.shape[0]
            confusion_update(cm, logits.argmax(1), y)
    finally:
        run.model.train()
    return total / max(count, 1), _metrics(cm)


def save_last(run: Run, cm: torch.Tensor, progress: st.Progress) -> None:
    st.save_state(run.folder, run.model, _card(run, progress), run.optimizer, run.scaler.state_dict(),
                  cm, progress)


def _card(run: Run, progress: st.Progress, **extra: Any):
    facts = {"epoch": progress.epoch, "global_step": progress.global_step, **extra}
    return run.card.replace(extra={**run.card.extra, **facts})


def _progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(),
                    console=console, transient=False)


def run_epoch(run: Run, cm: torch.Tensor, progress: st.Progress, stop: _Stop, console: Console) -> bool:
    """Train the rest of the current epoch; False if stopped early by --max-steps."""
    cfg = run.cfg
    loader = make_loader(run.train_ds, cfg, epoch=progress.epoch, start_step=progress.step_in_epoch,
                         train=True)
    t0 = time.perf_counter()
    with _progress_bar(console) as bar:
        task = bar.add_task(f"epoch {progress.epoch + 1}/{cfg.epochs}", total=run.steps_per_epoch,
                            completed=progress.step_in_epoch, loss=float("nan"))
        for x, y in loader:
            if cfg.max_steps is not None and progress.global_step >= cfg.max_steps:
                return False
            loss, pred = train_step(run, x, y, progress)
            confusion_update(cm, pred, y.to(run.device))
            progress.loss_sum += loss
            progress.loss_count += 1
            progress.step_in_epoch += 1
            progress.global_step += 1
            progress.train_seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            bar.update(task, advance=1, loss=progress.loss_sum / progress.loss_count)
            if not console.is_terminal and progress.step_in_epoch % max(1, run.steps_per_epoch // 10) == 0:
                # logs (nohup, CI) get a line every tenth of an epoch instead of a live bar
                console.print(f"  epoch {progress.epoch + 1} step {progress.step_in_epoch}/"
                              f"{run.steps_per_epoch} loss {progress.loss_sum / progress.loss_count:.4f} "
                              f"({progress.train_seconds:.0f} s)")
            if stop.requested:
                save_last(run, cm, progress)
                write_logs(run.folder, progress.history, summary(run, progress))
                raise TrainingInterrupted(
                    f"interrupted at epoch {progress.epoch + 1} step {progress.step_in_epoch} (global "
                    f"step {progress.global_step}); state saved in {run.folder / st.LAST}; continue "
                    f"with: edgeseg train --out {run.folder} --resume",
                    stop.signals[0] if stop.signals else signal.SIGINT)
            if cfg.checkpoint_every and progress.global_step % cfg.checkpoint_every == 0:
                save_last(run, cm, progress)
    return not (cfg.max_steps is not None and progress.global_step >= cfg.max_steps
                and progress.step_in_epoch < run.steps_per_epoch)


def _row(run: Run, progress: st.Progress, cm: torch.Tensor, val_loss: float, val: SegMetrics,
         seconds: float) -> dict[str, Any]:
    train = _metrics(cm)
    row: dict[str, Any] = {
        "epoch": progress.epoch + 1, "step": progress.global_step,
        "lr": lr_at(run.cfg, progress.global_step, run.total_steps),
        "train_loss": progress.loss_sum / max(progress.loss_count, 1),
        "train_miou": train.miou, "train_dice": train.mean_dice,
        "val_loss": val_loss, "val_miou": val.miou, "val_dice": val.mean_dice,
        "val_global_acc": val.global_acc, "val_class_avg_acc": val.class_avg_acc,
        "epoch_seconds": seconds,
        "train_images_per_s": progress.loss_count * run.cfg.batch / seconds if seconds > 0 else None,
    }
    if run.card.num_classes == 2:  # binary task: the foreground class is what papers report
        row["val_fg_iou"], row["val_fg_dice"] = float(val.iou[1]), float(val.dice[1])
        row["train_fg_iou"], row["train_fg_dice"] = float(train.iou[1]), float(train.dice[1])
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def _maybe_best(run: Run, progress: st.Progress, val: SegMetrics, console: Console) -> None:
    if math.isnan(val.miou) or (progress.best_miou is not None and val.miou <= progress.best_miou):
        return
    progress.best_miou, progress.best_epoch = float(val.miou), progress.epoch + 1
    extra = {"val_miou": float(val.miou), "val_mean_dice": float(val.mean_dice)}
    if run.card.num_classes == 2:
        extra["val_fg_iou"] = float(val.iou[1])
    save_checkpoint(run.model, _card(run, progress, **extra), run.folder / "best")
    console.print(f"  new best val mIoU {val.miou:.4f} -> {run.folder / 'best' / 'model.safetensors'}")


def end_epoch(run: Run, cm: torch.Tensor, progress: st.Progress, seconds: float, console: Console) -> None:
    """Validate, log a row, keep the best checkpoint, start the next epoch and save ``last/``."""
    val_loss, val = validate(run)
    row = _row(run, progress, cm, val_loss, val, seconds)
    progress.history.append(row)
    fg = f" fg IoU {row['val_fg_iou']:.4f}" if "val_fg_iou" in row else ""
    console.print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} | val loss {val_loss:.4f} "
                  f"mIoU {val.miou:.4f} Dice {val.mean_dice:.4f}{fg}")
    _maybe_best(run, progress, val, console)
    progress.epoch += 1
    progress.step_in_epoch, progress.loss_sum, progress.loss_count = 0, 0.0, 0
    cm.zero_()
    save_last(run, cm, progress)
    write_logs(run.folder, progress.history, summary(run, progress))


def summary(run: Run, progress: st.Progress) -> dict[str, Any]:
    import platform

    return {
        "title": f"{run.cfg.model} on {run.card.extra.get('dataset', run.cfg.data)} "
                 f"{run.cfg.input_hw[0]}x{run.cfg.input_hw[1]}",
        "model": run.cfg.model, "data": run.cfg.data, "input_hw": list(run.cfg.input_hw),
        "parameters": sum(p.numel() for p in run.model.parameters()),
        "device": str(run.device), "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(0) if run.device.type == "cuda" else None,
        "epochs_done": progress.epoch, "global_step": progress.global_step,
        "train_seconds": round(progress.train_seconds, 2),
        "best_val_miou": progress.best_miou, "best_epoch": progress.best_epoch,
    }


def _restore(run: Run) -> tuple[torch.Tensor, st.Progress]:
    restored = st.load_state(run.folder, run.cfg.model)
    check_state(run.model, restored.model.state_dict(), str(run.folder / st.LAST), run.cfg.model)
    run.model.load_state_dict(restored.model.state_dict())
    run.optimizer.load_state_dict(restored.optimizer_state)
    run.scaler.load_state_dict(restored.scaler_state)
    return restored.confusion.to(run.device), restored.progress


def warm_start(run: Run, path: Path) -> None:
    """Load the weights of checkpoint ``path`` (same architecture, arguments and classes)."""
    from edgeseg.checkpoint import load_checkpoint

    model, card = load_checkpoint(path)
    if (card.architecture, card.arch_args, card.class_names) != (
            run.card.architecture, run.card.arch_args, run.card.class_names):
        raise ModelError(f"--init {path} is a {card.architecture} {card.arch_args} for classes "
                         f"{list(card.class_names)}, but this run trains a {run.card.architecture} "
                         f"{run.card.arch_args} for {list(run.card.class_names)}; use a matching checkpoint")
    run.model.load_state_dict(model.state_dict())
    run.card = run.card.replace(extra={**run.card.extra, "init": str(path), "init_sha256": card.file_sha256})


def prepare_folder(cfg: TrainConfig, folder: Path, resume: bool) -> TrainConfig:
    """Create the run folder (new run) or read its config (resume). Returns the config to use."""
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
    return cfg  # config.json is written by train() once the run is built (bad input leaves nothing)


# Options --resume may change. lr is one: the non-finite-loss error advises "lower --lr, then --resume".
RESUME_OVERRIDES = ("max_steps", "workers", "device", "threads", "checkpoint_every", "lr")


def train(cfg: TrainConfig, folder: Path, *, resume: bool = False, console: Console | None = None
          ) -> dict[str, Any]:
    """Train (or resume) the run in ``folder``; returns the run summary (also in ``log.json``)."""
    console = console or Console(stderr=True, soft_wrap=True)
    folder = Path(folder)
    cfg = prepare_folder(cfg, folder, resume)
    run = build_run(cfg, folder)
    cm = torch.zeros((run.card.num_classes,) * 2, dtype=torch.int64, device=run.device)
    progress = st.Progress()
    if resume:
        cm, progress = _restore(run)
        console.print(f"resuming {folder} at epoch {progress.epoch + 1} step {progress.step_in_epoch} "
                      f"(global step {progress.global_step})")
    else:
        if cfg.init is not None:
            warm_start(run, Path(cfg.init))
            console.print(f"starting from the weights of {cfg.init}")
        # Only now, with data, model and --init accepted, does the run folder get its config: a
        # refused run leaves nothing that would block the corrected command.
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "config.json", cfg.to_dict())
    run.model.train()
    with _graceful_stop() as stop:
        while progress.epoch < cfg.epochs:
            seconds = progress.train_seconds
            if not run_epoch(run, cm, progress, stop, console):
                _stop_at_max_steps(run, cm, progress, console)
                break
            end_epoch(run, cm, progress, progress.train_seconds - seconds, console)
            if cfg.max_steps is not None and progress.global_step >= cfg.max_steps:
                break
    result = summary(run, progress)
    write_logs(folder, progress.history, result)
    return result


def _stop_at_max_steps(run: Run, cm: torch.Tensor, progress: st.Progress, console: Console) -> None:
    """--max-steps reached mid-epoch: save ``last/`` (resumable), validate, keep best."""
    val_loss, val = validate(run)
    console.print(f"stopped at --max-steps {run.cfg.max_steps}: val loss {val_loss:.4f} "
                  f"mIoU {val.miou:.4f} Dice {val.mean_dice:.4f}")
    _maybe_best(run, progress, val, console)
    save_last(run, cm, progress)
