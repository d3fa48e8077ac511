"""The one unpool function every SegNet-family model calls, and its pooling partner.

Models call::

    pooled, indices = max_pool2x2(x)            # encoder
    ...
    up = max_unpool2x2(y, x, indices)           # decoder: y is the decoder tensor

In ``train`` mode (the default) this is exactly ``F.max_pool2d(..., return_indices=True)`` and
``F.max_unpool2d`` — as fast as PyTorch's own ops. Inside ``unpool_mode("native")`` or
``unpool_mode("plugin")`` (used by ``edgeseg export``) no index tensor is produced at all: the
unpool is computed from the pre-pool activation ``x`` (docs/design.md §5), either from standard ops or
as one custom node for the TensorRT plugin.

The plugin form is a ``torch.autograd.Function`` that computes like ``native_unpool`` and exports
as ONE custom ONNX node through its ``symbolic``::

    out = ai.onnx.contrib::MaxUnpool2x2(x, y; plugin_version="1", plugin_namespace="")

``x``: pre-pool activation (N,C,H,W); ``y``: decoder tensor (N,C,H//2,W//2); ``out``: shape of
``x``, dtype of ``y`` (constants in :mod:`edgeseg.unpool`). TensorRT (10.3 and 11.x) finds the
edgeseg plugin by op name + the two attributes; onnxruntime runs it through
:mod:`edgeseg.unpool.ort_op`.

Exporter choice (torch 2.13): the TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``) with a ``symbolic`` staticmethod. It writes exactly the node we describe -- op
type, domain and string attributes -- and needs nothing beyond torch. The default dynamo exporter
would need ``onnxscript`` plus a custom translation table for the same result, and on
``max_unpool2d`` it emits MaxPool-with-indices + ScatterND, which TensorRT cannot parse
(docs/design.md §5). The TorchScript exporter is deprecated in 2.13 but present;
``edgeseg.export.onnx_export`` is the only caller.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from edgeseg.card import UNPOOL_MODES
from edgeseg.errors import ConfigError
from edgeseg.unpool import OP_DOMAIN, OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

# The card's unpool modes a forward can run in ("none" describes a model without unpool).
MODES = tuple(m for m in UNPOOL_MODES if m != "none")
_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("edgeseg_unpool_mode", default="train")


@contextlib.contextmanager
def unpool_mode(mode: str) -> Iterator[None]:
    """Run model forwards with the given unpool mode (``train``, ``native`` or ``plugin``)."""
    if mode not in MODES:
        raise ConfigError(f"unknown unpool mode {mode!r}; expected one of {', '.join(MODES)}")
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


def current_mode() -> str:
    return _MODE.get()


def max_pool2x2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """2x2/stride-2 max pooling; returns (pooled, indices) — indices only in ``train`` mode."""
    if _MODE.get() == "train":
        return F.max_pool2d(x, 2, 2, return_indices=True)
    return F.max_pool2d(x, 2, 2), None


def max_unpool2x2(y: torch.Tensor, x: torch.Tensor, indices: torch.Tensor | None) -> torch.Tensor:
    """Unpool decoder tensor ``y`` (N,C,H//2,W//2) to ``x``'s shape (N,C,H,W).

    ``x`` is the pre-pool activation the indices came from; ``indices`` is what
    :func:`max_pool2x2` returned (None outside ``train`` mode).
    """
    mode = _MODE.get()
    if mode == "train":
        if indices is None:
            raise RuntimeError("max_unpool2x2 in train mode needs the indices from max_pool2x2")
        return F.max_unpool2d(y, indices, (2, 2), (2, 2), output_size=x.shape[-2:])
    if mode == "native":
        return native_unpool(x, y)
    return plugin_unpool(x, y)


def native_unpool(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The unpool from standard ops: window reshape, first ArgMax, one-hot, multiply, reshape back.

    Bit-exact with ``F.max_unpool2d`` on indices from ``F.max_pool2d``: ties go to the first
    element in row-major order (``torch.argmax`` returns the first maximum), a window with NaNs to
    its last NaN (max pooling's ``val > max || isnan(val)``; ``torch.argmax`` would pick the first).
    """
    hh, ww = x.shape[-2:]
    h, w = y.shape[-2:]
    c = x.shape[1]
    xc = x[:, :, : 2 * h, : 2 * w]
    win = xc.reshape(-1, c, h, 2, w, 2).permute(0, 1, 2, 4, 3, 5).reshape(-1, c, h, w, 4)
    first = torch.argmax(win, dim=-1, keepdim=True)
    nan = win.isnan()
    last_nan = 3 - torch.argmax(nan.flip(-1).to(torch.uint8), dim=-1, keepdim=True)
    first = torch.where(nan.any(dim=-1, keepdim=True), last_nan, first)
    onehot = (first == torch.arange(4, device=x.device)).to(y.dtype)
    out = onehot * y.unsqueeze(-1)
    out = out.reshape(-1, c, h, w, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(-1, c, 2 * h, 2 * w)
    if (hh, ww) != (2 * h, 2 * w):
        out = F.pad(out, (0, ww - 2 * w, 0, hh - 2 * h))
    return out


class _PluginUnpool(torch.autograd.Function):
    """Forward = the native unpool (bit-exact with ``F.max_unpool2d``); export = one custom node."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return native_unpool(x, y)

    @staticmethod
    def symbolic(g: Any, x: Any, y: Any) -> Any:
        out = g.op(
            f"{OP_DOMAIN}::{OP_NAME}",
            x,
            y,
            plugin_version_s=PLUGIN_VERSION,
            plugin_namespace_s=PLUGIN_NAMESPACE,
        )
        # Output has x's shape (and, for the float models we export, x's dtype == y's dtype);
        # declaring it lets ONNX shape inference continue past the custom node.
        out.setType(x.type())
        return out


def plugin_unpool(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unpool ``y`` (N,C,H//2,W//2) into ``x``'s shape (N,C,H,W); exports as the plugin node."""
    return _PluginUnpool.apply(x, y)
