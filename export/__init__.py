"""PyTorch -> ONNX export, the deploy graph, the TensorRT builder and plugin build (import edgeseg.export).

The unpool op itself (torch forms, ONNX graph code, plugin sources) is :mod:`edgeseg.unpool`.

Torch-free at import time: submodules that need torch import it themselves. The stages' options
(:mod:`edgeseg.export.options`) are light and re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.export.options import (
    DeployOptions,
    ExportOptions,
    ImportOptions,
    ModelFacts,
    ModuleExportOptions,
)

if TYPE_CHECKING:
    from edgeseg.card import ModelCard

__all__ = ["DeployOptions", "ExportOptions", "ImportOptions", "ModelFacts", "ModuleExportOptions",
           "export_module"]


def export_module(model: Any, out: str | os.PathLike[str],
                  options: ModuleExportOptions = ModuleExportOptions(), *,
                  source: dict[str, Any] | None = None,
                  log: Callable[[str], None] | None = None) -> tuple[Path, ModelCard]:
    """Export your own ``nn.Module``: ``export_module(model, "m.onnx", ModuleExportOptions(
    export=ExportOptions(input_hw=(360, 480)), facts=ModelFacts(classes=("road", "car"))))``
    -> (path, card). See
    :func:`edgeseg.export.module_export.export_module` (imported here on first call: this package
    stays torch-free at import)."""
    from edgeseg.export.module_export import export_module as _export_module

    return _export_module(model, out, options, source=source, log=log)
