"""Built-in synthetic scenes with exact ground truth (numpy + OpenCV; fast enough to stream live).

A scene is a textured background with moving shapes of four classes: disks, rotated rectangles,
triangles and small dots (a few pixels across: the small-object class). Frame ``t`` is a pure
function of (hw, seed, t): object centres move linearly and wrap around the frame edges, so
frames t and t+1 differ by a small motion and any frame can be rendered without the ones before.
Image and mask are drawn from the same polygons without anti-aliasing, so every pixel of the mask
is exactly the class that painted that pixel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeseg.data.known import DatasetInfo
from edgeseg.data.sample import Sample
from edgeseg.errors import ConfigError, DataError, did_you_mean

SYNTHETIC_INFO = DatasetInfo(
    name="synthetic",
    class_names=("background", "disk", "rectangle", "triangle", "dot"),
    class_colors=((0, 0, 0), (230, 60, 60), (60, 90, 230), (60, 200, 80), (250, 220, 40)),
    ignore_index=None,
)
BACKGROUND, DISK, RECTANGLE, TRIANGLE, DOT = range(5)
SPLIT_KEYS = {"train": 1, "val": 2, "test": 3}
DEFAULT_NUM = {"train": 200, "val": 50, "test": 50}
_SHIFT = 4  # fixed-point bits for OpenCV drawing: sub-pixel motion
_ONE = 1 << _SHIFT
# per class: (hue centre in OpenCV 0..180, count range, size range as a fraction of min(h, w))
_CLASS_SPEC = {
    DISK: (0, (2, 4), (0.05, 0.11)),
    RECTANGLE: (115, (2, 3), (0.08, 0.22)),
    TRIANGLE: (60, (2, 3), (0.07, 0.14)),
    DOT: (28, (6, 14), (0.006, 0.012)),
}


@dataclass(frozen=True)
class _Shape:
    cls: int
    start_xy: tuple[float, float]
    velocity_xy: tuple[float, float]
    size: float
    angle0: float
    spin: float  # radians per frame
    vertex_scale: tuple[float, float, float]  # triangle irregularity / rectangle aspect
    color_bgr: tuple[int, int, int]


def _check_hw(hw: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in hw)
    except (TypeError, ValueError):
        raise ConfigError(f"synthetic hw={hw!r} is not (height, width); pass e.g. hw=(360, 480)") from None
    if h < 16 or w < 16:
        raise ConfigError(f"synthetic hw={h}x{w} is too small; use at least 16x16")
    return h, w


def _texture(hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Low-saturation background: smooth colour blobs + oriented stripes, uint8 HxWx3 BGR."""
    h, w = hw
    small = rng.uniform(70, 170, size=(max(2, h // 40), max(2, w // 40), 3)).astype(np.float32)
    small = small * 0.4 + small.mean(axis=2, keepdims=True) * 0.6  # keep colours muted
    blobs = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(8, 24)
    k = 2 * np.pi / period
    ax = np.arange(w, dtype=np.float32) * np.float32(k * np.cos(theta))
    ay = np.arange(h, dtype=np.float32) * np.float32(k * np.sin(theta))
    # sin(ax + ay) = sin(ax)cos(ay) + cos(ax)sin(ay): two outer products instead of an HxW sin
    stripes = np.outer(np.cos(ay), np.sin(ax)) + np.outer(np.sin(ay), np.cos(ax))
    tex = blobs + (rng.uniform(8, 20) * stripes)[..., None]
    return np.clip(tex, 0, 255).astype(np.uint8)


def _color(hue: int, rng: np.random.Generator) -> tuple[int, int, int]:
    hsv = np.array([[[(hue + rng.integers(-8, 9)) % 180, rng.integers(150, 256), rng.integers(150, 256)]]],
                   dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _make_shapes(hw: tuple[int, int], rng: np.random.Generator) -> list[_Shape]:
    h, w = hw
    base = min(h, w)
    shapes = []
    for cls, (hue, (lo, hi), (smin, smax)) in _CLASS_SPEC.items():
        for _ in range(int(rng.integers(lo, hi + 1))):
            speed = rng.uniform(0.4, 2.5) * base / 360
            heading = rng.uniform(0, 2 * np.pi)
            shapes.append(_Shape(
                cls=cls, start_xy=(rng.uniform(0, w), rng.uniform(0, h)),
                velocity_xy=(speed * np.cos(heading), speed * np.sin(heading)),
                size=max(1.5, rng.uniform(smin, smax) * base), angle0=rng.uniform(0, 2 * np.pi),
                spin=rng.uniform(-0.04, 0.04), vertex_scale=tuple(rng.uniform(0.6, 1.0, 3)),
                color_bgr=_color(hue, rng)))
    order = rng.permutation(len(shapes))
    ordered = [shapes[i] for i in order]
    # small objects on top, so they are never fully hidden
    return [s for s in ordered if s.cls != DOT] + [s for s in ordered if s.cls == DOT]


def _outline(shape: _Shape, cx: float, cy: float, angle: float) -> np.ndarray:
    """Polygon (N, 2) float for a rectangle or triangle centred at (cx, cy)."""
    if shape.cls == RECTANGLE:
        half_w, half_h = shape.size, shape.size * shape.vertex_scale[0]
        corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    else:
        a = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
        r = shape.size * np.asarray(shape.vertex_scale)
        corners = np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    c, s = np.cos(angle), np.sin(angle)
    return corners @ np.array([[c, s], [-s, c]]) + (cx, cy)


class SyntheticScenes:
    """A deterministic moving scene: ``frame(t)`` -> :class:`Sample` of size ``hw`` = (H, W).

    ``info`` describes the 5 classes (background, disk, rectangle, triangle, dot). ``key``
    extends the seed (the dataset uses it to give every sample its own scene).
    """

    info = SYNTHETIC_INFO

    def __init__(self, hw: tuple[int, int] = (360, 480), seed: int = 0, *, key: tuple[int, ...] = ()) -> None:
        self.hw = _check_hw(hw)
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, *key])
        self._background = _texture(self.hw, rng)
        grain = rng.integers(0, 256, size=self.hw, dtype=np.uint8)
        self._grain = cv2.cvtColor(cv2.GaussianBlur(grain, (3, 3), 0), cv2.COLOR_GRAY2BGR)
        self._shapes = _make_shapes(self.hw, rng)

    def _position(self, shape: _Shape, t: int) -> tuple[float, float]:
        h, w = self.hw
        m = 2 * shape.size  # margin so objects leave the frame fully before re-entering
        x = (shape.start_xy[0] + shape.velocity_xy[0] * t + m) % (w + 2 * m) - m
        y = (shape.start_xy[1] + shape.velocity_xy[1] * t + m) % (h + 2 * m) - m
        return x, y

    def _draw(self, image: np.ndarray, mask: np.ndarray, shape: _Shape, t: int) -> None:
        cx, cy = self._position(shape, t)
        if shape.cls in (DISK, DOT):
            centre = (round(cx * _ONE), round(cy * _ONE))
            radius = round(shape.size * _ONE)
            cv2.circle(image, centre, radius, shape.color_bgr, -1, cv2.LINE_8, _SHIFT)
            cv2.circle(mask, centre, radius, shape.cls, -1, cv2.LINE_8, _SHIFT)
            return
        poly = np.round(_outline(shape, cx, cy, shape.angle0 + shape.spin * t) * _ONE).astype(np.int32)
        cv2.fillPoly(image, [poly], shape.color_bgr, cv2.LINE_8, _SHIFT)
        cv2.fillPoly(mask, [poly], shape.cls, cv2.LINE_8, _SHIFT)

    def frame(self, t: int) -> Sample:
        """Frame ``t`` (any int): image_bgr HxWx3 uint8 and its exact HxW uint8 class mask."""
        image = self._background.copy()
        mask = np.zeros(self.hw, dtype=np.uint8)
        for shape in self._shapes:
            self._draw(image, mask, shape, int(t))
        image = cv2.addWeighted(image, 0.88, self._grain, 0.12, 0.0)
        return Sample(image, mask, f"synthetic-{self.seed}-{int(t):06d}")


class SyntheticDataset:
    """``num`` independent synthetic scenes (frame 0 of each) for ``split``; ``ds[i]`` is
    deterministic per (seed, split, i), and train/val/test never share a scene."""

    info = SYNTHETIC_INFO

    def __init__(self, split: str = "train", *, hw: tuple[int, int] = (360, 480), num: int | None = None,
                 seed: int = 0) -> None:
        if split not in SPLIT_KEYS:
            raise DataError(f"unknown split {split!r} for the synthetic dataset"
                            f"{did_you_mean(split, tuple(SPLIT_KEYS))}; "
                            f"use one of {', '.join(SPLIT_KEYS)}")
        num = DEFAULT_NUM[split] if num is None else num
        if int(num) < 1:
            raise ConfigError(f"synthetic num={num} must be at least 1")
        self.split, self.hw, self.num, self.seed = split, _check_hw(hw), int(num), int(seed)

    @classmethod
    def from_options(cls, split: str, **opts: Any) -> SyntheticDataset:
        """Build from ``open_dataset`` options; unknown options are refused with the valid ones."""
        valid = ("hw", "num", "seed")
        for key in opts:
            if key not in valid:
                raise ConfigError(f"unknown synthetic dataset option {key!r}{did_you_mean(key, valid)}; "
                                  f"valid: {', '.join(valid)}")
        return cls(split, **opts)

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> Sample:
        if not -self.num <= i < self.num:
            raise IndexError(f"index {i} out of range for a synthetic dataset of {self.num}")
        i %= self.num
        scene = SyntheticScenes(self.hw, self.seed, key=(SPLIT_KEYS[self.split], i))
        sample = scene.frame(0)
        return Sample(sample.image_bgr, sample.mask, f"synthetic-{self.split}-{self.seed}-{i:06d}")

    def __iter__(self) -> Iterator[Sample]:
        for i in range(self.num):
            yield self[i]
