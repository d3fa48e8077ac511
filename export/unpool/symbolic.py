"""Plugin-mode unpool: computes like ``native_unpool`` in PyTorch, exports as ONE custom ONNX node.

Exporter choice (torch 2.13): the TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``) with a ``symbolic`` staticmethod on a ``torch.autograd.Function``. It writes
exactly the node we describe — op type, domain and string attributes — and needs nothing beyond
torch. The default dynamo exporter would need ``onnxscript`` plus a custom translation table for
the same result, and on ``max_unpool2d`` it emits MaxPool-with-indices + ScatterND, which
TensorRT cannot parse (docs/design.md §5). The TorchScript exporter is deprecated in 2.13 but present;
``edgeseg.export.onnx_export`` is the only caller.

ONNX node (see ``edgeseg.export.unpool`` for the constants)::

    out = ai.onnx.contrib::MaxUnpool2x2(x, y; plugin_version="1", plugin_namespace="")

``x``: pre-pool activation (N,C,H,W); ``y``: decoder tensor (N,C,H//2,W//2); ``out``: shape of
``x``, dtype of ``y``. TensorRT (10.3 and 11.x) finds the edgeseg plugin by op name + the two
attributes; onnxruntime runs it through :mod:`edgeseg.export.unpool.ort_op`.
"""

from __future__ import annotations

from typing import Any

import torch
from edgeseg.export.unpool import OP_DOMAIN, OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from edgeseg.export.unpool.torch_op import native_unpool


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
