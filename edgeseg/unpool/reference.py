"""numpy reference of the 2x2 max-unpool (torch-free; see package docstring for the definition)."""

from __future__ import annotations

import numpy as np


def max_unpool2x2_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unpool ``y`` (N,C,h,w) into the shape of ``x`` (N,C,H,W) with h=H//2, w=W//2.

    Each 2x2 window of ``x`` routes its ``y`` value to the first maximal element (row-major) or,
    when the window holds NaNs, to its last NaN (PyTorch's max pooling: ``val > max || isnan(val)``,
    so ``F.max_unpool2d`` on ``F.max_pool2d``'s indices does the same); all other elements are 0.
    Returns an array of ``y``'s dtype and ``x``'s shape.
    """
    n, c, hh, ww = x.shape
    h, w = hh // 2, ww // 2
    if y.shape != (n, c, h, w):
        raise ValueError(f"y has shape {y.shape}, expected {(n, c, h, w)} for x of shape {x.shape}")
    win = x[:, :, : 2 * h, : 2 * w].reshape(n, c, h, 2, w, 2).transpose(0, 1, 2, 4, 3, 5)
    flat = win.reshape(n, c, h, w, 4)
    first = flat.argmax(axis=-1)  # numpy argmax: the first maximum (NaN windows are decided below)
    nan = np.isnan(flat)
    last_nan = 3 - nan[..., ::-1].argmax(axis=-1)
    onehot = np.where(nan.any(axis=-1), last_nan, first)[..., None] == np.arange(4)
    out_win = np.where(onehot, y[..., None], np.zeros((), dtype=y.dtype)).astype(y.dtype)
    out = np.zeros((n, c, hh, ww), dtype=y.dtype)
    out[:, :, : 2 * h, : 2 * w] = out_win.reshape(n, c, h, w, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, 2 * h, 2 * w
    )
    return out
