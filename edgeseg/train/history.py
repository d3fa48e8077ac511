"""Per-epoch training log: ``log.csv``, ``log.json`` and ``curves.png`` (loss, Dice, IoU for train
and validation, as in seed 003 Fig. 5). All written atomically after every epoch.

torch-free: :class:`TrainSummary` is the record ``train()`` returns and ``log.json`` holds.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError
from edgeseg.io import atomic_path, write_json_atomic, write_text_atomic

COLUMNS = (
    "epoch", "step", "lr", "train_loss", "train_miou", "train_dice", "val_loss", "val_miou",
    "val_dice", "train_fg_iou", "train_fg_dice", "val_fg_iou", "val_fg_dice", "val_global_acc",
    "val_class_avg_acc",
    "epoch_seconds", "train_images_per_s",
)


@dataclass(frozen=True)
class TrainSummary:
    """What a training run did: ``log.json``'s ``summary`` and the value of ``train()``.

    ``input_hw``: network input (height, width). ``device``: the torch device trained on
    (``cpu``, ``cuda:0``); ``processes``: data-parallel world size; ``gpu``: the CUDA device name
    (None on the CPU). ``epochs_done`` counts whole epochs; ``train_seconds`` sums the step times
    (data loading included, validation excluded). ``best_val_miou`` / ``best_epoch``: the best
    validation mIoU so far and its epoch (None before any validation).
    """

    title: str
    model: str
    data: str
    input_hw: tuple[int, int]
    parameters: int
    device: str
    processes: int
    torch_threads: int
    cpu: str
    gpu: str | None
    epochs_done: int
    global_step: int
    train_seconds: float
    best_val_miou: float | None
    best_epoch: int | None

    def to_json(self) -> dict[str, Any]:
        """The ``log.json`` summary object (keys in field order; ``input_hw`` a list)."""
        return {**dataclasses.asdict(self), "input_hw": list(self.input_hw)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainSummary:
        """Read a ``log.json`` summary (every field required; extra keys from newer versions ignored)."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise ConfigError(f"training summary lacks {', '.join(missing)}; it is not a log.json "
                              "summary written by edgeseg train")
        values = {n: d[n] for n in names}
        values["input_hw"] = (int(d["input_hw"][0]), int(d["input_hw"][1]))
        return cls(**values)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_logs(run: Path, history: list[dict[str, Any]], summary: TrainSummary) -> None:
    """Write ``log.csv`` (one row per epoch), ``log.json`` (rows + run summary) and the curves."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in history:
        writer.writerow([_fmt(row.get(c)) for c in COLUMNS])
    write_text_atomic(run / "log.csv", buf.getvalue())
    write_json_atomic(run / "log.json", {"summary": summary.to_json(), "epochs": history})
    if history:
        plot_curves(run / "curves.png", history, summary.title)


def plot_curves(path: Path, history: list[dict[str, Any]], title: str) -> Path:
    """Three panels over epochs: loss, Dice, IoU (train and validation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("loss", "loss"), ("dice", "Dice"), ("miou", "IoU"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for split, style, color in (("train", "-o", "C0"), ("val", "-s", "C1")):
            ys = [r.get(f"{split}_{key}") for r in history]
            ys = [math.nan if y is None else y for y in ys]
            ax.plot(epochs, ys, style, color=color, markersize=3, label=f"{split}_{key}")
            fg = {"dice": "fg_dice", "miou": "fg_iou"}.get(key)
            if fg and any(r.get(f"{split}_{fg}") is not None for r in history):
                ys = [math.nan if r.get(f"{split}_{fg}") is None else r[f"{split}_{fg}"] for r in history]
                ax.plot(epochs, ys, style.replace("-", "--"), color=color, markersize=3,
                        label=f"{split}_{fg} (foreground)")
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
