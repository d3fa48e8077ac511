"""Test helpers for calibration tests: a tiny unpool ONNX model with its card, image folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeseg.card import ModelCard, write_card
from edgeseg.unpool import OP_DOMAIN, OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from edgeseg.unpool.onnx_graph import plugin_to_native

HW = (16, 16)
CLASSES = ("bg", "a", "b", "rare")


def _conv(name: str, x: str, cin: int, cout: int, rng: np.random.Generator, inits: list) -> onnx.NodeProto:
    w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
    w *= rng.uniform(0.2, 3.0, size=(cout, 1, 1, 1)).astype(np.float32)  # channels of different scale
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(w, name + ".w"), numpy_helper.from_array(b, name + ".b")]
    return helper.make_node("Conv", [x, name + ".w", name + ".b"], [name], name, pads=[1, 1, 1, 1])


def tiny_unpool_model(mode: str, seed: int = 0) -> onnx.ModelProto:
    """conv-relu -> maxpool -> conv-relu -> unpool(x=relu1, y=relu2) -> conv: (1,3,16,16)->(1,4,16,16)."""
    rng = np.random.default_rng(seed)
    inits: list = []
    nodes = [
        _conv("c1", "input", 3, 8, rng, inits), helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], "pool1", kernel_shape=[2, 2], strides=[2, 2]),
        _conv("c2", "p1", 8, 8, rng, inits), helper.make_node("Relu", ["c2"], ["r2"], "relu2"),
        helper.make_node(OP_NAME, ["r1", "r2"], ["u1"], "unpool1", domain=OP_DOMAIN,
                         plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE),
        _conv("logits", "u1", 8, len(CLASSES), rng, inits),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *HW])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, len(CLASSES), *HW])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(OP_DOMAIN, 1)])
    model.ir_version = 8
    return plugin_to_native(model) if mode == "native" else model


def save_tiny(folder: Path, mode: str, seed: int = 0) -> Path:
    """Write the tiny model as ``folder/tiny.<mode>.onnx`` with its FP32 ONNX card."""
    path = folder / f"tiny.{mode}.onnx"
    onnx.save(tiny_unpool_model(mode, seed), str(path))
    card = ModelCard("tiny", {}, CLASSES, ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)), HW,
                     ignore_index=None, artifact="onnx", unpool_mode=mode)
    write_card(path, card)
    return path


def write_images(folder: Path, n: int, hw: tuple[int, int] = (20, 24), seed: int = 0,
                 masks: bool = False) -> Path:
    """n smooth random colour images (and label masks with a rare class 3 in a few) under folder."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    if masks:
        (folder / "masks").mkdir(exist_ok=True)
        (folder / "classes.json").write_text(json.dumps({"class_names": list(CLASSES)}))
    for i in range(n):
        small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        img = cv2.resize(small, hw[::-1], interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / "images" / f"im{i:03d}.png"), img)
        if masks:
            m = np.zeros(hw, np.uint8)
            m[: hw[0] // 2] = 1
            m[:, : hw[1] // 3] = 2
            if i % 10 == 3:
                m[2:6, 2:6] = 3
            cv2.imwrite(str(folder / "masks" / f"im{i:03d}.png"), m)
    return folder / "images" if not masks else folder
