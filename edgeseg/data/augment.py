"""Joint image + mask augmentation for training, and the evaluation resize.

Built on albumentations 2.0.8 (MIT; the ``[train]`` extra), imported inside the functions so
the runtime never needs it. Masks are only ever resampled with nearest neighbour, and padding
fills masks with the ignore index (or 0 = background when the dataset has none), so a mask never
gains a value that was not a label or the ignore index.

Both transforms return a callable ``(image_bgr, mask) -> (image_bgr, mask)`` on uint8 arrays
(HxWx3 BGR, HxW label ids or None) whose outputs are exactly ``hw`` = (H, W).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeseg.errors import ConfigError

Transform = Callable[[np.ndarray, "np.ndarray | None"], tuple[np.ndarray, "np.ndarray | None"]]


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation settings.

    After resizing to ``hw`` the image is scaled by a random factor in ``scale``, padded if
    smaller than ``hw`` and randomly cropped back to ``hw``; ``hflip``/``vflip`` are flip
    probabilities; ``jitter`` is the brightness/contrast/saturation range (+-) and ``hue`` the
    hue shift range (+-, fraction of the hue circle), applied with probability ``jitter_p``.
    """

    scale: tuple[float, float] = (0.75, 1.5)
    hflip: float = 0.5
    vflip: float = 0.0
    jitter: float = 0.25
    hue: float = 0.03
    jitter_p: float = 0.8

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ConfigError(f"augment scale={self.scale} must be (low, high) with 0 < low <= high")
        for name in ("hflip", "vflip", "jitter_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment {name}={getattr(self, name)} must be a probability in 0..1")
        if not 0.0 <= self.jitter < 1.0 or not 0.0 <= self.hue <= 0.5:
            raise ConfigError(f"augment jitter={self.jitter} must be in [0, 1) and "
                              f"hue={self.hue} in [0, 0.5]")


def _check_hw(hw: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in hw)
    except (TypeError, ValueError):
        raise ConfigError(f"hw={hw!r} is not (height, width); pass e.g. (360, 480)") from None
    if h < 1 or w < 1:
        raise ConfigError(f"hw={h}x{w} must be positive")
    return h, w


class _Albu:
    """Wraps an albumentations Compose as ``(image_bgr, mask) -> (image_bgr, mask)``.

    Colour ops assume RGB, so the image is flipped to RGB for the pipeline and back.
    """

    def __init__(self, compose: Any) -> None:
        self.compose = compose

    def set_seed(self, seed: int) -> None:
        """Make the random draws reproducible from here on (e.g. per DataLoader worker)."""
        self.compose.set_random_seed(seed)

    def __call__(self, image_bgr: np.ndarray, mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        out = self.compose(image=rgb, mask=mask) if mask is not None else self.compose(image=rgb)
        image = np.ascontiguousarray(out["image"][..., ::-1])
        return image, (out["mask"] if mask is not None else None)


def train_transform(hw: tuple[int, int], ignore_index: int | None = None,
                    config: AugmentConfig | None = None, seed: int | None = None) -> _Albu:
    """Random scale, pad (mask fill = ``ignore_index`` or 0), crop to ``hw``, flips, colour jitter."""
    import albumentations as A

    h, w = _check_hw(hw)
    cfg = config or AugmentConfig()
    fill_mask = 0 if ignore_index is None else int(ignore_index)
    ops = [
        A.Resize(h, w, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST),
        A.RandomScale(scale_limit=(cfg.scale[0] - 1.0, cfg.scale[1] - 1.0), interpolation=cv2.INTER_LINEAR,
                      mask_interpolation=cv2.INTER_NEAREST, p=1.0),
        A.PadIfNeeded(min_height=h, min_width=w, border_mode=cv2.BORDER_CONSTANT, fill=0,
                      fill_mask=fill_mask, position="random"),
        A.RandomCrop(h, w),
        A.HorizontalFlip(p=cfg.hflip),
        A.VerticalFlip(p=cfg.vflip),
        A.ColorJitter(brightness=cfg.jitter, contrast=cfg.jitter, saturation=cfg.jitter,
                      hue=cfg.hue, p=cfg.jitter_p),
    ]
    return _Albu(A.Compose(ops, seed=seed))


def eval_transform(hw: tuple[int, int]) -> Transform:
    """Resize to ``hw`` (bilinear image, nearest-neighbour mask); no randomness, OpenCV only."""
    h, w = _check_hw(hw)

    def apply(image_bgr: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if image_bgr.shape[:2] != (h, w):
            image_bgr = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        if mask is not None and mask.shape[:2] != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        return image_bgr, mask

    return apply
