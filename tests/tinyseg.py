"""Test helper: a tiny ONNX segmentation model (one 1x1 conv to K classes) plus its model card.

Built directly with ``onnx.helper`` so runtime tests need neither torch nor the exporter. With
``colour_oracle=True`` the conv scores each synthetic-scene class by how close a pixel's
normalized colour is to that class's typical colour: not a good model, but one whose IoU on
the synthetic source is well above chance, so IoU plumbing is tested on real numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeseg.card import ModelCard, write_card
from edgeseg.data.synthetic import SYNTHETIC_INFO


def tiny_card(input_hw: tuple[int, int], num_classes: int) -> ModelCard:
    if num_classes == len(SYNTHETIC_INFO.class_names):
        names, colors = SYNTHETIC_INFO.class_names, SYNTHETIC_INFO.class_colors
    else:
        names = tuple(f"class{c}" for c in range(num_classes))
        colors = tuple(((37 * c) % 256, (91 * c) % 256, (173 * c) % 256) for c in range(num_classes))
    return ModelCard(architecture="tiny-conv1x1", arch_args={}, class_names=tuple(names),
                     class_colors=tuple(colors), input_hw=input_hw, artifact="onnx", unpool_mode="none")


def tiny_weights(num_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(num_classes, 3, 1, 1)).astype(np.float32),
            rng.normal(scale=0.1, size=(num_classes,)).astype(np.float32))


def write_tiny_onnx(folder: Path, *, input_hw: tuple[int, int] = (48, 64), num_classes: int = 5,
                    name: str = "tiny.onnx", seed: int = 0, dynamic_batch: bool = False,
                    card: bool = True) -> Path:
    """Write ``folder/name`` (1x3xHxW -> 1xKxHxW logits) and, if ``card``, its card; return the path."""
    h, w = input_hw
    weight, bias = tiny_weights(num_classes, seed)
    batch: int | str = "N" if dynamic_batch else 1
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "weight", "bias"], ["logits"], kernel_shape=[1, 1])],
        "tiny_seg",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, num_classes, h, w])],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="edgeseg-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(folder) / name
    onnx.save(model, str(path))
    if card:
        write_card(path, tiny_card(input_hw, num_classes))
    return path


def reference_logits(image_nchw: np.ndarray, num_classes: int, seed: int = 0) -> np.ndarray:
    """What the tiny model computes, in numpy (for checking backends)."""
    weight, bias = tiny_weights(num_classes, seed)
    return np.einsum("kc,nchw->nkhw", weight[:, :, 0, 0], image_nchw) + bias[None, :, None, None]
