"""Checkpoints: safetensors + card round trip, strict loading, no pickle, atomic saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import edgeseg
from edgeseg.card import ModelCard, read_card
from edgeseg.errors import ModelError
from edgeseg.models import build_model
from edgeseg.models.checkpoint import load_checkpoint, save_checkpoint


def _card(arch: str, args: dict, k: int = 2) -> ModelCard:
    return ModelCard(arch, {"num_classes": k, **args}, tuple(f"c{i}" for i in range(k)),
                     tuple((i, i, i) for i in range(k)), (32, 32))


def _save(tmp_path: Path, arch: str = "lite-unet", **args) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=2, **args)
    weights, _ = save_checkpoint(model, _card(arch, args), tmp_path / "ck")
    return model, weights


def test_round_trip_rebuilds_from_card_and_matches(tmp_path: Path) -> None:
    model, weights = _save(tmp_path, encoder="resnet34", deep_skip=False)
    assert sorted(p.name for p in weights.parent.iterdir()) == ["model.json", "model.safetensors"]
    loaded, card = load_checkpoint(weights.parent)
    assert not loaded.training
    assert card.artifact == "checkpoint" and card.unpool_mode == "none"
    assert card.arch_args == {"num_classes": 2, "encoder": "resnet34", "deep_skip": False}
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(1, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), loaded(x))
    assert isinstance(edgeseg.load_model(str(weights)), torch.nn.Module)


def test_segnet_family_card_says_train_unpool(tmp_path: Path) -> None:
    _, weights = _save(tmp_path, "res-segnet")
    assert read_card(weights).unpool_mode == "train"


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, weights = _save(tmp_path)

    def refuse(*a, **k):
        raise AssertionError("torch.load / pickle must not be used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr("pickle.load", refuse)
    monkeypatch.setattr("pickle.loads", refuse)
    load_checkpoint(weights)
    assert weights.read_bytes()[8:9] == b"{"  # safetensors: u64 header length, then JSON header


def _edit_card(weights: Path, **changes) -> None:
    path = weights.with_suffix(".json")
    d = json.loads(path.read_text())
    d.update(changes)  # the card alone is edited: its file_sha256 still matches the weights
    path.write_text(json.dumps(d))


def test_unknown_architecture_is_named(tmp_path: Path) -> None:
    _, weights = _save(tmp_path)
    _edit_card(weights, architecture="lite-unett")
    with pytest.raises(ModelError, match="lite-unett"):
        load_checkpoint(weights)


@pytest.mark.parametrize("changes, pattern", [
    ({"architecture": "unet", "arch_args": {"num_classes": 2}}, "missing"),
    ({"arch_args": {"num_classes": 2, "encoder": "resnet34"}}, "missing|unexpected"),
])
def test_weights_of_another_architecture_are_refused(tmp_path: Path, changes, pattern) -> None:
    _, weights = _save(tmp_path)
    _edit_card(weights, **changes)
    with pytest.raises(ModelError, match=pattern):
        load_checkpoint(weights)


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    _, weights = _save(tmp_path)
    _edit_card(weights, arch_args={"num_classes": 3}, class_names=["a", "b", "c"],
               class_colors=[[0, 0, 0]] * 3)
    with pytest.raises(ModelError, match="shape"):
        load_checkpoint(weights)


def test_changed_weights_file_is_detected(tmp_path: Path) -> None:
    _, weights = _save(tmp_path)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_checkpoint(weights)


def test_missing_card_or_file(tmp_path: Path) -> None:
    _, weights = _save(tmp_path)
    weights.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="card"):
        load_checkpoint(weights)
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing" / "model.safetensors")


def test_failed_save_leaves_previous_checkpoint_and_no_temp_files(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model, weights = _save(tmp_path)
    before = weights.read_bytes(), weights.with_suffix(".json").read_text()

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError):
        save_checkpoint(model, _card("lite-unet", {}), weights.parent)
    assert (weights.read_bytes(), weights.with_suffix(".json").read_text()) == before
    assert sorted(p.name for p in weights.parent.iterdir()) == ["model.json", "model.safetensors"]
    load_checkpoint(weights)
