"""The runtime on distribution OpenCV builds (Debian 12's 4.6, JetPack's 4.8) as well as pip's.

Debian's python3-opencv 4.6 has neither ``cv2.dnn.Image2BlobParams`` (4.8+) nor the
``cv2.utils.logging`` bindings; the JetPack-like CI venv runs the stream on it for real, these
tests take the same paths on any OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from edgeseg.runtime import live
from edgeseg.runtime.stages import Preprocessor

from edgeseg.card import ModelCard
from edgeseg.preprocess import preprocess


def _card() -> ModelCard:
    return ModelCard("unet", {"num_classes": 3}, ["a", "b", "c"], [(0, 0, 0), (1, 1, 1), (2, 2, 2)], (24, 32))


def test_preprocessor_without_image2blobparams(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    card = _card()
    monkeypatch.delattr(cv2.dnn, "Image2BlobParams", raising=False)
    x = Preprocessor(card)(frame)
    assert x.shape == (1, 3, 24, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(x, preprocess(frame, card))


def test_quiet_opencv_without_logging_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cv2.utils, "logging", raising=False)
    ran = []
    with live.quiet_opencv():
        ran.append(True)
    assert ran == [True]
