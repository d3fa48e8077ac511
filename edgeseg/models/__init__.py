"""The seed models (DESIGN.md §3). Importing this package imports torch and registers builders."""

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
