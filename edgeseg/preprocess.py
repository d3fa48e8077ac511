"""Image preprocessing shared by training, export verification, calibration and the runtime.

numpy + OpenCV only (runs on a Jetson image without torch). Frames arrive as OpenCV gives them:
uint8 HxWx3 in BGR order.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.card import ModelCard


def to_input_hwc(frame_bgr: np.ndarray, card: ModelCard) -> np.ndarray:
    """Resize a BGR uint8 frame to the card's input size and channel order (uint8, HxWx3)."""
    h, w = card.input_hw
    if frame_bgr.shape[:2] != (h, w):
        frame_bgr = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    if card.channel_order == "RGB":
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    return frame_bgr


def normalize_hwc(image_hwc: np.ndarray, card: ModelCard) -> np.ndarray:
    """uint8 HxWx3 (card channel order) -> float32 1x3xHxW normalized with the card's mean/std."""
    x = image_hwc.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(card.mean, dtype=np.float32)
    x /= np.asarray(card.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess(frame_bgr: np.ndarray, card: ModelCard) -> np.ndarray:
    """BGR uint8 frame of any size -> float32 nchw (1x3xHxW) network input."""
    return normalize_hwc(to_input_hwc(frame_bgr, card), card)


def resize_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize a label map with nearest neighbour (labels are never interpolated)."""
    h, w = hw
    if mask.shape[:2] == (h, w):
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
