"""Training configuration: one frozen dataclass, saved as ``config.json`` in the run folder.

torch-free, so the CLI can validate options before importing torch.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from edgeseg.errors import ConfigError, did_you_mean

# Each choice is declared once, as a Literal; the tuples and the CLI's choices derive from it.
Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["poly", "cosine", "constant"]
Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA (with AMP) when torch sees a GPU, else the CPU
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
DEVICES: tuple[str, ...] = get_args(Device)
# lr / weight_decay left at None take their optimizer's value (SGD with momentum 0.9 as in seed 000)
DEFAULT_LR: dict[str, float] = {"sgd": 0.05, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY: dict[str, float] = {"sgd": 5e-4, "adamw": 1e-2}
POLY_POWER = 0.9
DIST_TIMEOUT_S = 600.0  # seconds to wait for the other processes (rendezvous, each collective)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (the run folder's ``config.json``).

    ``input_hw``: network input (height, width); training crops/resizes to it and validation
    resizes image and mask (nearest) to it. ``lr`` / ``weight_decay`` None take the optimizer's
    default (``DEFAULT_LR`` / ``DEFAULT_WEIGHT_DECAY``).
    ``max_steps`` stops after that many optimizer steps in total (smoke runs); the LR schedule
    always spans ``epochs`` so a run cut short by ``max_steps`` follows the same curve.
    ``checkpoint_every``: also save ``last/`` every N steps inside an epoch (0: epoch ends only).
    ``data``: a dataset folder / list file, or "synthetic" (``synthetic_num`` frames).
    ``init``: start from the weights of this checkpoint (same model, arguments and classes;
    fine-tuning) instead of a random initialization; optimizer and schedule start fresh.
    ``batch`` is the global batch: with N data-parallel processes each takes ``batch / N``.
    ``sync_bn``: with more than one process, BatchNorm statistics span the global batch
    (SyncBatchNorm); False keeps per-process statistics (faster, differs from one process).
    """

    model: str
    data: str
    input_hw: tuple[int, int]
    model_args: dict[str, Any] = field(default_factory=dict)
    loss: str = "ce"
    loss_args: dict[str, Any] = field(default_factory=dict)
    optimizer: Optimizer = "sgd"
    lr: float | None = None
    weight_decay: float | None = None
    schedule: Schedule = "poly"
    batch: int = 8
    epochs: int = 30
    workers: int = 0
    device: Device = "auto"
    seed: int = 0
    val_split: str = "val"
    train_split: str = "train"
    max_steps: int | None = None
    checkpoint_every: int = 50
    threads: int | None = None
    deterministic: bool = True
    synthetic_num: int = 256
    init: str | None = None
    sync_bn: bool = True

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("device", self.device, DEVICES)
        for name in ("batch", "epochs", "synthetic_num"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("workers", "checkpoint_every", "seed"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def base_weight_decay(self) -> float:
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY[self.optimizer]

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_hw"] = list(self.input_hw)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"{source}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], names)}; "
                              f"valid keys: {', '.join(names)}")
        d = dict(d)
        d["input_hw"] = (int(d["input_hw"][0]), int(d["input_hw"][1]))
        return cls(**d)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"--{name} {value!r} is not valid{did_you_mean(value, allowed)}; "
                          f"choose one of {', '.join(allowed)}")


def parse_kv(items: list[str] | None, option: str) -> dict[str, Any]:
    """Parse repeated ``key=value`` options; values are JSON when they parse (1, 0.5, true), else text.

    ``encoder=resnet34`` -> {"encoder": "resnet34"}; ``deep_skip=false`` -> {"deep_skip": False}.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r} is not key=value; write it like {option} encoder=vgg")
        text = raw.strip()
        lowered = {"True": "true", "False": "false", "None": "null"}.get(text, text)
        try:
            out[key] = json.loads(lowered)
        except json.JSONDecodeError:
            out[key] = text
    return out


def read_config(path: Path) -> TrainConfig:
    """Read a run folder's ``config.json`` (ConfigError if missing or invalid)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; --resume needs a run folder written by edgeseg train") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); start a new run with another --out") from None
    return TrainConfig.from_dict(data, source=str(path))


def run_config(folder: Path, resume: bool, given: dict[str, Any]) -> TrainConfig:
    """The config of the run in ``folder``: the saved one with ``given`` applied (``resume``), or a
    new one from ``given`` and the field defaults. ``given``: the fields the user set, by name.

    Reads only; a resumed run's options that may not change are checked when it starts
    (:func:`edgeseg.train.start.check_folder`).
    """
    if resume:
        return read_config(folder / "config.json").replace(**given)
    missing = [f"--{k}" for k in ("model", "data") if k not in given]
    if missing or "input_hw" not in given:
        need = missing + ([] if "input_hw" in given else ["--input"])
        raise ConfigError(f"a new run needs {', '.join(need)} (e.g. --model lite-unet --data synthetic "
                          "--input 128x128); to continue a run pass --out RUN --resume")
    return TrainConfig(**given)
