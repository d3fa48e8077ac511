"""Model card round trip, atomic writes, registry errors, unpool modes (the shared foundation)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeseg.card import ModelCard, card_path, read_card, write_card
from edgeseg.errors import ConfigError, EdgesegError, ModelError
from edgeseg.io import atomic_path
from edgeseg.unpool.reference import max_unpool2x2_ref


def _card(**kw):
    base = dict(
        architecture="lite-unet",
        arch_args={"num_classes": 2, "in_channels": 3},
        class_names=("background", "nucleus"),
        class_colors=((0, 0, 0), (255, 0, 0)),
        input_hw=(256, 256),
        ignore_index=None,
    )
    base.update(kw)
    return ModelCard(**base)


def test_card_round_trip_and_hash(tmp_path):
    f = tmp_path / "model.onnx"
    f.write_bytes(b"abc")
    cp = write_card(f, _card(artifact="onnx", unpool_mode="none"))
    assert cp == tmp_path / "model.onnx.json"
    card = read_card(f)
    assert card.class_names == ("background", "nucleus") and card.input_hw == (256, 256)
    f.write_bytes(b"abd")
    with pytest.raises(ModelError, match="does not match"):
        read_card(f)


def test_card_paths():
    assert card_path("a/model.safetensors").name == "model.json"
    assert card_path("a/model.fp16.engine").name == "model.fp16.engine.json"


def test_card_rejects_unknown_key(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    d = _card(artifact="onnx").to_dict()
    d["clas_names"] = d.pop("class_names")
    card_path(f).write_text(json.dumps(d))
    with pytest.raises(ModelError, match="did you mean 'class_names'"):
        read_card(f)


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_unwritable_dir(tmp_path):
    with pytest.raises(EdgesegError, match="does not exist"), atomic_path(tmp_path / "nope" / "x"):
        pass


def test_unpool_reference_ties_and_odd_sizes():
    x = np.zeros((1, 1, 3, 5), np.float32)  # all ties -> first element of each window
    y = np.arange(2, dtype=np.float32).reshape(1, 1, 1, 2) + 1
    out = max_unpool2x2_ref(x, y)
    expect = np.zeros((1, 1, 3, 5), np.float32)
    expect[0, 0, 0, 0], expect[0, 0, 0, 2] = 1, 2
    np.testing.assert_array_equal(out, expect)


def test_parse_hw_errors():
    from edgeseg.models.registry import parse_hw

    assert parse_hw("360x480") == (360, 480)
    with pytest.raises(ConfigError, match="HxW"):
        parse_hw("360")
