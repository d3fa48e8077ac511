"""Checkpoints: ``model.safetensors`` (weights) + ``model.json`` (model card), never pickled.

A checkpoint path may name the ``.safetensors`` file or the folder holding ``model.safetensors``.
Saving is atomic: weights and card are first written to temporary files in the target folder and
then renamed, so an interrupted save leaves the previous checkpoint (or nothing) behind, never a
half-written file. Loading rebuilds the network from ``card.architecture`` / ``card.arch_args``
with the model registry and checks every tensor name and shape before loading weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.card import ModelCard, card_path, read_card
from edgeseg.errors import ConfigError, ModelError
from edgeseg.io import atomic_path, sha256_file, write_json_atomic

if TYPE_CHECKING:
    import torch

WEIGHTS_NAME = "model.safetensors"


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """``model.safetensors`` for a folder, the path itself for a ``.safetensors`` file."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return p
    if p.is_dir() or not p.suffix:
        return p / WEIGHTS_NAME
    raise ModelError(
        f"{p} is not a checkpoint; expected a .safetensors file or a folder holding {WEIGHTS_NAME}"
    )


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (what safetensors accepts)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def checkpoint_card(card: ModelCard) -> ModelCard:
    """The card with checkpoint facts filled in: artifact, unpool mode from the registry spec."""
    from edgeseg.models.registry import get_spec

    try:
        spec = get_spec(card.architecture)
    except ConfigError as e:
        raise ModelError(f"cannot save checkpoint: {e}") from None
    return card.replace(
        artifact="checkpoint",
        unpool_mode="train" if spec.has_unpool else "none",
        precision="fp32",
        parent_sha256=None,
    )


def save_checkpoint(
    model: torch.nn.Module, card: ModelCard, path: str | os.PathLike[str]
) -> tuple[Path, ModelCard]:
    """Write ``model.safetensors`` + ``model.json`` atomically; return (weights path, card written).

    ``path``: a folder (created if missing) or a ``.safetensors`` file path. The card's
    ``file_sha256`` is set to the hash of the weights written.
    """
    from safetensors.torch import save_file

    weights = resolve_checkpoint(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    card = checkpoint_card(card)
    tensors = state_tensors(model)
    metadata = {"architecture": card.architecture, "format": "edgeseg-checkpoint"}
    with atomic_path(weights) as tmp_w, atomic_path(card_path(weights)) as tmp_c:
        save_file(tensors, str(tmp_w), metadata=metadata)
        card = card.replace(file_sha256=sha256_file(tmp_w))
        write_json_atomic(tmp_c, card.to_dict())
        # atomic_path renames tmp_c (inner) first, then tmp_w: a crash in between leaves a card
        # whose hash does not match the old weights, which read_card reports clearly.
    return weights, card


def _build(card: ModelCard, source: Path) -> torch.nn.Module:
    from edgeseg.models.registry import build_model

    args = dict(card.arch_args)
    if args.get("num_classes", card.num_classes) != card.num_classes:
        raise ModelError(
            f"{source}: card arch_args num_classes={args['num_classes']} but {card.num_classes} "
            "class names; re-create the checkpoint with edgeseg train"
        )
    args.setdefault("num_classes", card.num_classes)
    try:
        return build_model(card.architecture, **args)
    except ConfigError as e:
        raise ModelError(f"cannot rebuild checkpoint {source}: {e}") from None


def check_state(model: torch.nn.Module, tensors: dict[str, Any], source: str, arch: str) -> None:
    """Raise ModelError if ``tensors`` do not exactly fit ``model`` (names and shapes)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    hint = f"the weights in {source} do not belong to a {arch!r} with these arguments"
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ModelError(f"{hint}: {', '.join(parts)} tensor(s); use the card written with them")
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != shape:
            raise ModelError(f"{hint}: tensor {name} has shape {got}, expected {shape}; "
                             "use the card written with these weights")


def load_checkpoint(
    path: str | os.PathLike[str], device: str = "cpu"
) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model from the card and load its weights; returns (model in eval mode, card).

    Raises ModelError for a missing file/card, a card of another artifact type, an unknown
    architecture, or weights that do not match the architecture (missing/unexpected/shape).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = resolve_checkpoint(path)
    card = read_card(weights)
    if card.artifact != "checkpoint":
        raise ModelError(f"{weights}: card says artifact={card.artifact!r}, expected a checkpoint")
    model = _build(card, weights)
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"cannot read weights {weights} ({e}); the file is damaged, re-train or "
                         "re-copy it") from None
    check_state(model, tensors, str(weights), card.architecture)
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), card


def load_model(path: str | os.PathLike[str]) -> torch.nn.Module:
    """The model of a checkpoint (eval mode, CPU); see :func:`load_checkpoint`."""
    return load_checkpoint(path)[0]
