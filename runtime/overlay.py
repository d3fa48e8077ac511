"""Segmentation overlay: class colours blended over the frame, a legend and a HUD.

All drawing is OpenCV on buffers allocated once per (frame size, label size), so a steady
stream allocates nothing per frame. :meth:`Overlay.render` returns its own buffer: a sink must
consume it before the next ``render`` call (every edgeseg sink writes synchronously).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.errors import ConfigError

FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class OverlayOptions:
    """``alpha``: weight of the class colours (0 = frame only, 1 = colours only)."""

    alpha: float = 0.5
    legend: bool = True
    hud: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"overlay alpha={self.alpha} is outside 0..1; pass e.g. --alpha 0.5")


@dataclass
class _Buffers:
    color_small: np.ndarray  # labels_hw x 3: palette colours at model resolution
    color: np.ndarray  # frame_hw x 3: colours at frame resolution (aliases color_small if same size)
    out: np.ndarray  # frame_hw x 3: the blended result
    legend: np.ndarray | None  # pre-rendered legend patch (drawn once per frame size)
    font_scale: float


class Overlay:
    """Draws labels over frames. ``class_colors`` are RGB (as in the model card)."""

    def __init__(self, class_names: Sequence[str], class_colors: Sequence[Sequence[int]],
                 options: OverlayOptions | None = None) -> None:
        if len(class_names) != len(class_colors) or not class_names:
            raise ConfigError("overlay needs one RGB colour per class name; fix the model card")
        self.options = options or OverlayOptions()
        self.class_names = tuple(class_names)
        self.palette_bgr = np.array([[c[2], c[1], c[0]] for c in class_colors], dtype=np.uint8)
        self._bufs: dict[tuple[tuple[int, int], tuple[int, int]], _Buffers] = {}

    def _buffers(self, frame_hw: tuple[int, int], labels_hw: tuple[int, int]) -> _Buffers:
        key = (frame_hw, labels_hw)
        bufs = self._bufs.get(key)
        if bufs is None:
            self._bufs.clear()  # a new size replaces the old one (cameras rarely switch back)
            small = np.empty((*labels_hw, 3), np.uint8)
            color = small if labels_hw == frame_hw else np.empty((*frame_hw, 3), np.uint8)
            scale = float(np.clip(frame_hw[0] / 720.0, 0.35, 1.2))
            legend = self._legend(frame_hw, scale) if self.options.legend else None
            bufs = self._bufs[key] = _Buffers(small, color, np.empty((*frame_hw, 3), np.uint8), legend, scale)
        return bufs

    def render(self, frame_bgr: np.ndarray, labels_hw: np.ndarray, hud: Sequence[str] = ()) -> np.ndarray:
        """frame uint8 HxWx3 BGR + labels uint8 hxw (any size, ids < K) -> overlay HxWx3 BGR."""
        frame_hw = (frame_bgr.shape[0], frame_bgr.shape[1])
        bufs = self._buffers(frame_hw, (labels_hw.shape[0], labels_hw.shape[1]))
        np.take(self.palette_bgr, labels_hw, axis=0, out=bufs.color_small, mode="clip")
        if bufs.color is not bufs.color_small:
            cv2.resize(bufs.color_small, (frame_hw[1], frame_hw[0]), dst=bufs.color,
                       interpolation=cv2.INTER_NEAREST)
        a = self.options.alpha
        cv2.addWeighted(frame_bgr, 1.0 - a, bufs.color, a, 0.0, dst=bufs.out)
        if bufs.legend is not None:
            lh, lw = bufs.legend.shape[:2]
            bufs.out[4:4 + lh, frame_hw[1] - lw - 4:frame_hw[1] - 4] = bufs.legend
        if self.options.hud and hud:
            self._hud(bufs.out, hud, bufs.font_scale)
        return bufs.out

    def _legend(self, frame_hw: tuple[int, int], scale: float) -> np.ndarray | None:
        """An opaque patch listing class colours and names, fitted to the frame height."""
        row = int(22 * scale) + 4
        width = max(cv2.getTextSize(n, FONT, 0.5 * scale, 1)[0][0] for n in self.class_names)
        width += row + 12
        fit = max(0, (frame_hw[0] - 8) // row)
        if fit == 0 or width + 8 > frame_hw[1]:
            return None
        names = list(self.class_names)
        if len(names) > fit:
            names = names[:fit - 1] + [f"+{len(names) - fit + 1} more"]
        patch = np.full((row * len(names) + 4, width, 3), 32, np.uint8)
        for i, name in enumerate(names):
            y = 2 + i * row
            if i < len(self.class_names) and not name.startswith("+"):
                color = tuple(int(v) for v in self.palette_bgr[i])
                cv2.rectangle(patch, (4, y + 2), (4 + row - 6, y + row - 4), color, -1)
            cv2.putText(patch, name, (row + 4, y + row - 7), FONT, 0.5 * scale, (240, 240, 240), 1,
                        cv2.LINE_AA)
        return patch

    @staticmethod
    def _hud(out: np.ndarray, lines: Sequence[str], scale: float) -> None:
        """Text lines top-left on a dark box (drawn in place)."""
        fs = 0.55 * scale
        sizes = [cv2.getTextSize(t, FONT, fs, 1)[0] for t in lines]
        line_h = max(h for _, h in sizes) + int(10 * scale)
        box_w = min(out.shape[1], max(w for w, _ in sizes) + 12)
        box_h = min(out.shape[0], line_h * len(lines) + 8)
        out[:box_h, :box_w] //= 3
        for i, text in enumerate(lines):
            cv2.putText(out, text, (6, 4 + line_h * (i + 1) - int(6 * scale)), FONT, fs, (255, 255, 255), 1,
                        cv2.LINE_AA)
