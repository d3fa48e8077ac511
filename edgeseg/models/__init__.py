"""The seed models (docs/design.md §3).

Importing this package does not import torch (CLI modules and the runtime may import the
registry); the model modules (which need torch) are imported, and so registered, the first time
the registry is asked for a model (``registry.MODEL_MODULES``).
"""

from edgeseg.models.registry import (
    ModelSpec,
    build_model,
    check_build_args,
    check_input_hw,
    get_spec,
    list_models,
    model_names,
    register_model,
)

__all__ = [
    "ModelSpec",
    "build_model",
    "check_build_args",
    "check_input_hw",
    "get_spec",
    "list_models",
    "model_names",
    "register_model",
]
