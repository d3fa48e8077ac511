"""Evaluate any model artifact on a labelled dataset -> :class:`~edgeseg.metrics.SegMetrics`.

torch-free (the runtime path): the artifact is opened with ``open_backend`` (``.onnx`` through
onnxruntime, ``.engine`` through TensorRT, ``.safetensors`` through the torch backend, which
imports torch only itself). Each image is preprocessed exactly as the runtime does
(:func:`edgeseg.preprocess.preprocess` with the artifact's card).

**Resolution**: predictions are scored at the model's input size ``card.input_hw``; the
ground-truth mask is resized to it with nearest neighbour (labels are never interpolated).
This is the resolution the network sees, and the one training validates at, so ``edgeseg eval``
of a checkpoint reproduces the validation mIoU of ``edgeseg train``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.card import ModelCard
from edgeseg.errors import DataError
from edgeseg.metrics import ConfusionMeter, SegMetrics
from edgeseg.preprocess import preprocess, resize_mask

if TYPE_CHECKING:
    from edgeseg.runtime.backends import BackendOptions

RESOLUTION_NOTE = "model input size; masks resized with nearest neighbour"


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one artifact on one split, with what produced them."""

    metrics: SegMetrics
    card: ModelCard
    model: str
    data: str
    split: str
    images: int
    backend: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "data": self.data, "split": self.split, "images": self.images,
            "architecture": self.card.architecture, "artifact": self.card.artifact,
            "precision": self.card.precision, "input_hw": list(self.card.input_hw),
            "resolution": RESOLUTION_NOTE, "backend": self.backend,
            "seconds": round(self.seconds, 3),
            "metrics": self.metrics.to_dict(self.card.class_names),
        }


def check_classes(info: Any, card: ModelCard, data: str) -> None:
    """DataError unless the dataset's classes and ignore index are the card's."""
    if tuple(info.class_names) != tuple(card.class_names):
        raise DataError(
            f"dataset {data} has classes {list(info.class_names)} but the model was trained on "
            f"{list(card.class_names)}; evaluate on data with the model's classes (same order)")
    if info.ignore_index != card.ignore_index:
        raise DataError(f"dataset {data} ignores label {info.ignore_index} but the model card says "
                        f"{card.ignore_index}; use the dataset description the model was trained with")


def open_eval_data(data: str | os.PathLike[str], split: str, card: ModelCard, num: int | None = None) -> Any:
    """The dataset to score (``"synthetic"`` gets the card's input size); classes checked."""
    from edgeseg.data import open_dataset

    if str(data) == "synthetic":
        opts: dict[str, Any] = {"hw": card.input_hw}
        if num is not None:
            opts["num"] = num
        ds = open_dataset("synthetic", split, **opts)
    else:
        ds = open_dataset(data, split)
    check_classes(ds.info, card, str(data))
    return ds


def _model_input(image_bgr: np.ndarray, card: ModelCard) -> np.ndarray:
    """Normalized nchw input, or for a model with preprocessing inside its graph the uint8 BGR
    frame resized to its ``frame_hw`` (what a camera of that size would deliver)."""
    if card.frame_hw is None:
        return preprocess(image_bgr, card)
    import cv2

    h, w = card.frame_hw
    if image_bgr.shape[:2] != (h, w):
        image_bgr = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image_bgr)[None]


def score(backend: Any, dataset: Any, on_image: Callable[[int], None] | None = None) -> SegMetrics:
    """Run ``backend`` on every sample and accumulate the confusion matrix at the model's size."""
    card: ModelCard = backend.card
    meter = ConfusionMeter(card.num_classes, card.ignore_index)
    for i in range(len(dataset)):
        sample = dataset[i]
        if sample.mask is None:
            raise DataError(f"image {sample.name} has no mask; evaluation needs 'image mask' pairs")
        out = backend.infer(_model_input(sample.image_bgr, card))
        pred = (out[0] if out.ndim == 3 else np.argmax(out[0], axis=0)).astype(np.int64)  # labels or logits
        meter.update(pred, resize_mask(sample.mask, card.input_hw))
        if on_image is not None:
            on_image(i + 1)
    return meter.compute()


def evaluate(model: str | os.PathLike[str], data: str | os.PathLike[str], split: str = "val", *,
             runtime: str | None = None, backend_options: BackendOptions | dict[str, Any] | None = None,
             num: int | None = None, on_start: Callable[[int], None] | None = None,
             on_image: Callable[[int], None] | None = None) -> EvalResult:
    """Open ``model`` with its backend, score it on ``data``/``split``; close the backend.

    ``runtime`` and ``backend_options`` (the runtime's options dataclass or keyword options) go
    to :func:`edgeseg.runtime.backends.open_backend`."""
    from edgeseg.runtime.backends import open_backend

    if isinstance(backend_options, dict):
        opened = open_backend(Path(model), runtime, **backend_options)
    else:
        opened = open_backend(Path(model), runtime, backend_options)
    with opened as backend:
        dataset = open_eval_data(data, split, backend.card, num)
        if on_start is not None:
            on_start(len(dataset))
        t0 = time.perf_counter()
        metrics = score(backend, dataset, on_image)
        seconds = time.perf_counter() - t0
        return EvalResult(metrics, backend.card, str(model), str(data), split, len(dataset),
                          backend.describe(), seconds)
