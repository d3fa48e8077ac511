"""PyTorch -> ONNX export, the deploy graph, the TensorRT builder and plugin build (import edgeseg.export).

The unpool op itself (torch forms, ONNX graph code, plugin sources) is :mod:`edgeseg.unpool`.

Torch-free at import time: submodules that need torch import it themselves.
"""

from typing import Any


def export_module(model: Any, out: Any, **kwargs: Any) -> Any:
    """Export your own ``nn.Module``: ``export_module(model, "m.onnx", input_hw=(360, 480),
    classes=["road", "car"])`` -> (path, card). See :func:`edgeseg.export.module_export.export_module`
    (imported here on first call: this package stays torch-free at import)."""
    from edgeseg.export.module_export import export_module as _export_module

    return _export_module(model, out, **kwargs)
