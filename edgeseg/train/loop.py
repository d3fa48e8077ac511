"""The training loop: epochs of optimizer steps, validation, checkpoints, resume, logs.

Run folder ``RUN/``: ``config.json``, ``last/`` (resumable state, see ``state.py``), ``best/``
(checkpoint with the best validation mIoU), ``log.csv``, ``log.json``, ``curves.png``.
A first Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves ``last/`` and stops; a
SIGKILL loses at most the steps since the last save (``--checkpoint-every``), and ``--resume``
then continues bit-exactly from there (same weights as an uninterrupted run on the CPU).

Data parallel (started by torchrun, see ``dist.py``): every rank runs this loop on its share of
each global batch; rank 0 alone prints and writes files; all ranks agree every step on the loss,
a non-finite loss and a stop request, so they stop at the same step; ``--resume`` needs the same
number of processes (refused otherwise, with the command that works).
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

import edgeseg.train.dist as dd
import edgeseg.train.state as st
from edgeseg.errors import EdgesegError, signal_exit_code
from edgeseg.metrics import SegMetrics
from edgeseg.models.checkpoint import save_checkpoint
from edgeseg.train.config import DIST_TIMEOUT_S, TrainConfig
from edgeseg.train.data import make_loader
from edgeseg.train.history import TrainSummary, write_logs
from edgeseg.train.setup import Run, build_run, lr_at, setup_torch, wrap_ddp
from edgeseg.train.start import check_folder, check_resume_world, create_folder, restore, warm_start


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
def _graceful_stop(escalate: bool = True):
    """Turn the first SIGINT/SIGTERM into a flag checked between steps (a second one kills).

    ``escalate`` False (under torchrun): the launcher forwards the terminal's Ctrl-C to its
    workers, so each gets the signal twice; the launcher itself SIGKILLs them if they do not
    finish within its shutdown timeout (30 s).
    """
    stop = _Stop()
    previous = {}

    def handler(signum: int, frame: Any) -> None:
        if stop.requested and escalate:
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


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor, progress: st.Progress, stop: _Stop
               ) -> tuple[float, torch.Tensor, bool]:
    """One optimizer step: (loss averaged over ranks, predictions, stop agreed by the ranks).

    TrainingError (weights untouched, on every rank) if any rank's loss is not finite."""
    fmt = torch.channels_last if run.amp else torch.contiguous_format
    x = x.to(run.device, non_blocking=True, memory_format=fmt)
    y = y.to(run.device, non_blocking=True)
    lr = lr_at(run.cfg, progress.global_step, run.total_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=run.amp):
        logits = run.net(x)
        loss = run.loss_fn(logits.float(), y)
    value, bad, stopping = dd.step_flags(run.dist, run.device, float(loss.detach()), stop.requested)
    if bad:
        where = f" on at least one of {run.dist.world} processes" if run.dist.enabled else ""
        saved = _saved_step(run.folder)
        lower = f"{run.cfg.lr / 10:.3g}" if run.cfg.lr is not None else f"{lr / 10:.3g}"
        # The advice must work when typed: --lr may change on --resume (RESUME_OVERRIDES); without a
        # saved state there is nothing to resume, so the run starts again in a new folder.
        fix = (f"continue from step {saved} with a lower LR: {_resume_command(run, f'--lr {lower}')}"
               if saved.isdigit() else
               f"no state was saved yet: start again with a lower --lr {lower} and a new --out")
        raise TrainingError(
            f"loss became {value}{where} at epoch {progress.epoch + 1} step {progress.step_in_epoch + 1} "
            f"(global step {progress.global_step + 1}, lr {lr:.3g}); stopped before updating the "
            f"weights (check the data if a lower LR does not help); {fix}")
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return value, logits.detach().argmax(1), stopping


def _saved_step(folder: Path) -> str:
    import json

    path = folder / st.LAST / "state.json"
    if not path.exists():
        return "none saved yet"
    return str(json.loads(path.read_text(encoding="utf-8"))["progress"]["global_step"])


@torch.inference_mode()
def validate(run: Run) -> tuple[float, SegMetrics]:
    """Mean loss and metrics on the validation split at the model input size.

    Data parallel: each rank scores its share and the confusion matrices (integers) are summed,
    so the metrics equal the single-process ones exactly; the loss is a float sum (last bits).
    """
    run.model.eval()
    k = run.card.num_classes
    cm = torch.zeros((k, k), dtype=torch.int64, device=run.device)
    total, count = 0.0, 0
    try:
        for x, y in make_loader(run.val_ds, run.cfg, epoch=0, start_step=0, train=False,
                                rank=run.dist.rank, world=run.dist.world):
            x, y = x.to(run.device), y.to(run.device)
            with torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=run.amp):
                logits = run.model(x)
            total += float(run.loss_fn(logits.float(), y)) * x.shape[0]
            count += x.shape[0]
            confusion_update(cm, logits.argmax(1), y)
    finally:
        run.model.train()
    dd.all_sum(run.dist, cm)
    sums = dd.all_sum(run.dist, torch.tensor([total, count], dtype=torch.float64, device=run.device))
    total, count = float(sums[0]), int(sums[1])
    return total / max(count, 1), _metrics(cm)


def _global_cm(run: Run, cm: torch.Tensor) -> torch.Tensor:
    """The training confusion matrix summed over ranks (``cm`` itself for one process)."""
    return dd.all_sum(run.dist, cm.clone()) if run.dist.enabled else cm


def save_last(run: Run, cm: torch.Tensor, progress: st.Progress) -> None:
    """Save ``last/``: collective (RNG of every rank, summed confusion), then rank 0 writes."""
    if not run.dist.enabled:
        st.save_state(run.folder, run.model, _card(run, progress), run.optimizer,
                      run.scaler.state_dict(), cm, progress)
        return
    rng, total = dd.gather_rng(run.dist, run.device), _global_cm(run, cm)
    if run.dist.main:
        st.save_state(run.folder, run.model, _card(run, progress), run.optimizer,
                      run.scaler.state_dict(), total, progress, rng=rng, world_size=run.dist.world)


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
                         train=True, rank=run.dist.rank, world=run.dist.world)
    t0 = time.perf_counter()
    with _progress_bar(console) as bar:
        task = bar.add_task(f"epoch {progress.epoch + 1}/{cfg.epochs}", total=run.steps_per_epoch,
                            completed=progress.step_in_epoch, loss=float("nan"))
        for x, y in loader:
            if cfg.max_steps is not None and progress.global_step >= cfg.max_steps:
                return False
            loss, pred, stopping = train_step(run, x, y, progress, stop)
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
            if stopping or (stop.requested and not run.dist.enabled):
                progress.partial = _partial_row(run, progress, cm, None, None, None)  # train columns only
                save_last(run, cm, progress)
                _write_logs(run, progress)
                raise TrainingInterrupted(
                    f"interrupted at epoch {progress.epoch + 1} step {progress.step_in_epoch} (global "
                    f"step {progress.global_step}); state saved in {run.folder / st.LAST}; continue "
                    f"with: {_resume_command(run)}", stop.signals[0] if stop.signals else signal.SIGINT)
            if cfg.checkpoint_every and progress.global_step % cfg.checkpoint_every == 0:
                save_last(run, cm, progress)
    return not (cfg.max_steps is not None and progress.global_step >= cfg.max_steps
                and progress.step_in_epoch < run.steps_per_epoch)


def _write_logs(run: Run, progress: st.Progress) -> None:
    if run.dist.main:
        rows = progress.history + ([progress.partial] if progress.partial else [])
        write_logs(run.folder, rows, summary(run, progress))


def _resume_command(run: Run, extra: str = "") -> str:
    """The command that continues this run (``extra``: options --resume may change, e.g. --lr)."""
    tail = f" {extra}" if extra else ""
    if not run.dist.enabled:
        return f"edgeseg train --out {run.folder} --resume{tail}"
    return (f"edgeseg train --out {run.folder} --resume{tail} --nproc {run.dist.world} (one node) or the "
            f"same torchrun command with --resume{tail}")


def _partial_row(run: Run, progress: st.Progress, cm: torch.Tensor, val_loss: float | None,
                 val: SegMetrics | None, seconds: float | None) -> dict[str, Any]:
    """The row of an epoch stopped after ``step_in_epoch`` steps: epoch as a fraction (2.25 = a
    quarter into epoch 3), ``partial: true``; validation columns empty when it was not validated."""
    row = _row(run, progress, cm, val_loss, val, seconds)
    row["epoch"] = round(progress.epoch + progress.step_in_epoch / max(run.steps_per_epoch, 1), 4)
    return {**row, "partial": True}


def _row(run: Run, progress: st.Progress, cm: torch.Tensor, val_loss: float | None, val: SegMetrics | None,
         seconds: float | None) -> dict[str, Any]:
    train = _metrics(_global_cm(run, cm))
    row: dict[str, Any] = {
        "epoch": progress.epoch + 1, "step": progress.global_step,
        "lr": lr_at(run.cfg, progress.global_step, run.total_steps),
        "train_loss": progress.loss_sum / max(progress.loss_count, 1),
        "train_miou": train.miou, "train_dice": train.mean_dice,
        "val_loss": val_loss, "val_miou": val and val.miou, "val_dice": val and val.mean_dice,
        "val_global_acc": val and val.global_acc, "val_class_avg_acc": val and val.class_avg_acc,
        "epoch_seconds": seconds,
        "train_images_per_s": progress.loss_count * run.cfg.batch / seconds if seconds else None,
    }
    if run.card.num_classes == 2:  # binary task: the foreground class is what papers report
        if val is not None:
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
    if run.dist.main:
        save_checkpoint(run.model, _card(run, progress, **extra), run.folder / "best")
    console.print(f"  new best val mIoU {val.miou:.4f} -> {run.folder / 'best' / 'model.safetensors'}")


def end_epoch(run: Run, cm: torch.Tensor, progress: st.Progress, seconds: float, console: Console) -> None:
    """Validate, log a row, keep the best checkpoint, start the next epoch and save ``last/``."""
    val_loss, val = validate(run)
    row = _row(run, progress, cm, val_loss, val, seconds)
    progress.history.append(row)
    progress.partial = None  # the full row replaces the part-way one
    fg = f" fg IoU {row['val_fg_iou']:.4f}" if "val_fg_iou" in row else ""
    console.print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} | val loss {val_loss:.4f} "
                  f"mIoU {val.miou:.4f} Dice {val.mean_dice:.4f}{fg}")
    _maybe_best(run, progress, val, console)
    progress.epoch += 1
    progress.step_in_epoch, progress.loss_sum, progress.loss_count = 0, 0.0, 0
    cm.zero_()
    save_last(run, cm, progress)
    _write_logs(run, progress)


def summary(run: Run, progress: st.Progress) -> TrainSummary:
    import platform

    return TrainSummary(
        title=f"{run.cfg.model} on {run.card.extra.get('dataset', run.cfg.data)} "
              f"{run.cfg.input_hw[0]}x{run.cfg.input_hw[1]}",
        model=run.cfg.model, data=run.cfg.data, input_hw=run.cfg.input_hw,
        parameters=sum(p.numel() for p in run.model.parameters()),
        device=str(run.device), processes=run.dist.world, torch_threads=torch.get_num_threads(),
        cpu=platform.processor() or platform.machine(),
        gpu=torch.cuda.get_device_name(0) if run.device.type == "cuda" else None,
        epochs_done=progress.epoch, global_step=progress.global_step,
        train_seconds=round(progress.train_seconds, 2),
        best_val_miou=progress.best_miou, best_epoch=progress.best_epoch,
    )


def train(cfg: TrainConfig, folder: Path, *, resume: bool = False, console: Console | None = None,
          dist_timeout_s: float = DIST_TIMEOUT_S) -> TrainSummary:
    """Train (or resume) the run in ``folder``; returns the run summary (also in ``log.json``).

    Under torchrun (``RANK``/``WORLD_SIZE`` set) this process is one rank of a data-parallel job:
    it joins the process group (``dist_timeout_s`` for the rendezvous and every collective) and
    trains its share; only rank 0 prints and writes.
    """
    d = dd.from_env()
    if not d.main:
        console = Console(quiet=True)
    console = console or Console(stderr=True, soft_wrap=True)
    folder = Path(folder)
    dd.check_world(cfg, d)
    if resume:
        check_resume_world(folder, d)  # reads only: refused before any process group or write
    device = setup_torch(cfg, d.local_rank)
    dd.init(d, device, dist_timeout_s)
    try:
        return _train(cfg, folder, resume, console, d, device)
    except (RuntimeError, torch.distributed.DistError) as e:
        lost = dd.peer_lost(d, e, f"seen by rank {d.rank}")
        if lost is None:
            raise
        raise lost from None
    finally:
        dd.shutdown()


def _train(cfg: TrainConfig, folder: Path, resume: bool, console: Console, d: dd.Dist,
           device: torch.device) -> TrainSummary:
    # each phase ends with all ranks agreeing that it worked (the agreement is also the barrier
    # between rank 0's writes and everybody's reads)
    cfg = dd.agreed(d, lambda: check_folder(cfg, folder, resume))
    if resume:  # tidy a save killed half-way before any rank reads last/
        dd.agreed(d, lambda: create_folder(cfg, folder, resume) if d.main else None)
    run, cm, progress = dd.agreed(d, lambda: _start(cfg, folder, resume, d, device))
    if not resume:
        # Only now, with data, model and --init accepted, does a new run folder get its config: a
        # refused run leaves nothing that would block the corrected command.
        dd.agreed(d, lambda: create_folder(cfg, folder, resume) if d.main else None)
    if resume:
        console.print(f"resuming {folder} at epoch {progress.epoch + 1} step {progress.step_in_epoch} "
                      f"(global step {progress.global_step})")
    elif cfg.init is not None:
        console.print(f"starting from the weights of {cfg.init}")
    wrap_ddp(run)
    if d.enabled:
        console.print(f"data parallel: {d.world} processes ({'nccl' if device.type == 'cuda' else 'gloo'}), "
                      f"{cfg.batch // d.world} images each of the global batch {cfg.batch}"
                      f"{', SyncBatchNorm' if cfg.sync_bn else ', per-process BatchNorm'}")
    run.model.train()
    with _graceful_stop(escalate=not dd.launched()) as stop:
        try:
            _epochs(run, cm, progress, stop, console)
        except (TrainingError, TrainingInterrupted, dd.PeerLost):
            raise  # every rank raises these together (or, PeerLost, rank 0 says it)
        except EdgesegError as e:
            if d.main:
                raise
            raise dd.RankError(f"rank {d.rank}: {e}") from None
        except (RuntimeError, torch.distributed.DistError) as e:
            lost = dd.peer_lost(d, e, f"seen by rank {d.rank} at global step {progress.global_step + 1}")
            if lost is None:
                raise
            raise lost from None
    result = summary(run, progress)
    _write_logs(run, progress)
    return result


def _start(cfg: TrainConfig, folder: Path, resume: bool, d: dd.Dist, device: torch.device
           ) -> tuple[Run, torch.Tensor, st.Progress]:
    """Build the run and load its starting weights (``last/`` or ``--init``); no collectives."""
    run = build_run(cfg, folder, d, device)
    cm = torch.zeros((run.card.num_classes,) * 2, dtype=torch.int64, device=run.device)
    progress = st.Progress()
    if resume:
        cm, progress = restore(run)
    elif cfg.init is not None:
        warm_start(run, Path(cfg.init))
    return run, cm, progress


def _epochs(run: Run, cm: torch.Tensor, progress: st.Progress, stop: _Stop, console: Console) -> None:
    cfg = run.cfg
    while progress.epoch < cfg.epochs:
        seconds = progress.train_seconds
        if not run_epoch(run, cm, progress, stop, console):
            _stop_at_max_steps(run, cm, progress, progress.train_seconds - seconds, console)
            break
        end_epoch(run, cm, progress, progress.train_seconds - seconds, console)
        if cfg.max_steps is not None and progress.global_step >= cfg.max_steps:
            break


def _stop_at_max_steps(run: Run, cm: torch.Tensor, progress: st.Progress, seconds: float,
                       console: Console) -> None:
    """--max-steps reached mid-epoch: validate, log a part-way row, keep best, save ``last/``."""
    val_loss, val = validate(run)
    progress.partial = _partial_row(run, progress, cm, val_loss, val, seconds)
    console.print(f"stopped at --max-steps {run.cfg.max_steps}: val loss {val_loss:.4f} "
                  f"mIoU {val.miou:.4f} Dice {val.mean_dice:.4f}")
    _maybe_best(run, progress, val, console)
    save_last(run, cm, progress)
