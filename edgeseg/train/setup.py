"""Building a training run from its config: device, data, model, card, loss, optimizer, LR."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeseg.card import ModelCard
from edgeseg.errors import ConfigError, DataError
from edgeseg.train.config import POLY_POWER, TrainConfig
from edgeseg.train.data import TorchSegDataset, steps_per_epoch
from edgeseg.train.dist import Dist, rank_seed


@dataclass
class Run:
    """Everything a training run works with (built once by :func:`build_run`).

    ``model`` is the bare network (saved, loaded, evaluated); ``net`` is what a training step
    calls: ``model`` itself, or its DistributedDataParallel wrapper when ``dist.world`` > 1.
    """

    cfg: TrainConfig
    folder: Path
    device: torch.device
    amp: bool
    model: torch.nn.Module
    card: ModelCard
    loss_fn: Any
    optimizer: torch.optim.Optimizer
    scaler: Any
    train_ds: TorchSegDataset
    val_ds: TorchSegDataset
    steps_per_epoch: int
    total_steps: int
    dist: Dist
    net: torch.nn.Module


def setup_torch(cfg: TrainConfig, local_rank: int = 0) -> torch.device:
    """Threads, device, seeds and determinism; ConfigError if CUDA is asked for but absent.

    A data-parallel process uses GPU ``local_rank`` of its node."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA GPU is visible to torch; use --device cpu or auto")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    if use_cuda:
        torch.backends.cudnn.benchmark = not cfg.deterministic
    return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


def open_splits(cfg: TrainConfig) -> tuple[Any, Any]:
    """(train, val) datasets of ``edgeseg.data``; DataError if their classes differ."""
    from edgeseg.data import open_dataset

    if cfg.data == "synthetic":
        train = open_dataset("synthetic", cfg.train_split, hw=cfg.input_hw, num=cfg.synthetic_num,
                             seed=cfg.seed)
        val = open_dataset("synthetic", cfg.val_split, hw=cfg.input_hw,
                           num=max(8, cfg.synthetic_num // 8), seed=cfg.seed)
    else:
        train = open_dataset(cfg.data, cfg.train_split)
        val = open_dataset(cfg.data, cfg.val_split)
    if train.info.class_names != val.info.class_names:
        raise DataError(f"splits {cfg.train_split!r} and {cfg.val_split!r} of {cfg.data} describe "
                        "different classes; use one dataset description for both")
    return train, val


def make_card(cfg: TrainConfig, info: Any, arch_args: dict[str, Any]) -> ModelCard:
    return ModelCard(
        architecture=cfg.model, arch_args=arch_args, class_names=tuple(info.class_names),
        class_colors=tuple(tuple(c) for c in info.class_colors), input_hw=cfg.input_hw,
        ignore_index=info.ignore_index, extra={"dataset": info.name, "data": cfg.data},
    )


def build_model_for(cfg: TrainConfig, num_classes: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    from edgeseg.models import build_model, check_input_hw

    check_input_hw(cfg.model, cfg.input_hw)
    if "num_classes" in cfg.model_args:
        raise ConfigError("--model-arg num_classes is taken from the dataset's classes; remove it")
    arch_args = {"num_classes": num_classes, **cfg.model_args}
    return build_model(cfg.model, **arch_args), arch_args


def build_loss_for(cfg: TrainConfig, train_data: Any) -> Any:
    """The loss; ``weighted-ce`` without ``class_weights`` gets median-frequency weights computed
    from the training masks (as SegNet did)."""
    from edgeseg.losses import build_loss

    info = train_data.info
    kwargs = dict(cfg.loss_args)
    if cfg.loss == "weighted-ce" and "class_weights" not in kwargs and "label_maps" not in kwargs:
        kwargs["label_maps"] = (train_data[i].mask for i in range(len(train_data)))
    return build_loss(cfg.loss, num_classes=info.num_classes, ignore_index=info.ignore_index, **kwargs)


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.base_lr, momentum=0.9, weight_decay=cfg.base_weight_decay)
    return torch.optim.AdamW(params, lr=cfg.base_lr, weight_decay=cfg.base_weight_decay)


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) in a run of ``total`` steps."""
    frac = min(step, total) / max(total, 1)
    if cfg.schedule == "poly":
        return cfg.base_lr * (1.0 - frac) ** POLY_POWER
    if cfg.schedule == "cosine":
        return cfg.base_lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    return cfg.base_lr


def build_run(cfg: TrainConfig, folder: Path, d: Dist | None = None,
              device: torch.device | None = None) -> Run:
    """Open the data and build model, card, loss, optimizer and AMP scaler on the chosen device.

    With ``d.world`` > 1 BatchNorm layers become synchronized (``cfg.sync_bn``) and every rank
    but 0 reseeds its global generator after the (identical) initialization, so ranks draw
    different random numbers while one process stays exactly as before. ``run.net`` is the bare
    model until :func:`wrap_ddp`.
    """
    from edgeseg.data.augment import eval_transform, train_transform

    d = d or Dist()
    device = device if device is not None else setup_torch(cfg, d.local_rank)
    train_data, val_data = open_splits(cfg)
    model, arch_args = build_model_for(cfg, train_data.info.num_classes)
    card = make_card(cfg, train_data.info, arch_args)
    amp = device.type == "cuda"
    if d.enabled and cfg.sync_bn:
        from edgeseg.train.syncbn import convert_sync_batchnorm

        model = convert_sync_batchnorm(model, device)
    model = model.to(device)
    if amp:
        # nn.Module.to's overloads omit its documented memory_format keyword
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if d.rank:
        torch.manual_seed(rank_seed(cfg.seed, d.rank))
    spe = steps_per_epoch(len(train_data), cfg.batch, cfg.data)
    return Run(
        cfg=cfg, folder=folder, device=device, amp=amp, model=model, card=card,
        loss_fn=build_loss_for(cfg, train_data).to(device), optimizer=make_optimizer(cfg, model),
        scaler=torch.amp.GradScaler("cuda", enabled=amp),
        train_ds=TorchSegDataset(train_data, card, train_transform(cfg.input_hw, card.ignore_index)),
        val_ds=TorchSegDataset(val_data, card, eval_transform(cfg.input_hw)),
        steps_per_epoch=spe, total_steps=spe * cfg.epochs, dist=d, net=model,
    )


def wrap_ddp(run: Run) -> None:
    """Wrap ``run.model`` in DistributedDataParallel (after its weights are final: DDP broadcasts
    rank 0's parameters and buffers when it is built). No-op for one process."""
    if not run.dist.enabled:
        return
    from torch.nn.parallel import DistributedDataParallel

    ids = [run.device.index] if run.device.type == "cuda" else None
    run.net = DistributedDataParallel(run.model, device_ids=ids, output_device=ids[0] if ids else None)
