"""Model registry: keyword-only builders that reject unknown arguments (STYLE.md §3).

This module is torch-free; the model modules register themselves when ``edgeseg.models`` is
imported (which imports torch).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeseg.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture.

    ``multiple``: input height and width must be multiples of this (2 ** number of poolings for
    models that upsample by fixed factors; 1 for index-unpooling models).
    ``has_unpool``: the decoder uses index unpooling (SegNet family), so export needs an unpool mode.
    ``min_size``: smallest input height/width (the deepest feature map must keep >= 1 pixel).
    Index-unpooling models restore odd sizes exactly, so they need no multiple (``multiple=1``)
    but still a minimum size.
    """

    name: str
    builder: Callable[..., Any]
    paper: str
    description: str
    multiple: int
    has_unpool: bool
    min_size: int = 1

    def arg_names(self) -> list[str]:
        sig = inspect.signature(self.builder)
        return [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def defaults(self) -> dict[str, Any]:
        sig = inspect.signature(self.builder)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        }


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, paper: str, description: str, multiple: int, has_unpool: bool, min_size: int = 1
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a builder. The builder must take keyword-only arguments only."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        bad = [p.name for p in sig.parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        if bad:  # a programming error in edgeseg, not user input
            raise TypeError(f"builder {fn.__name__} must take keyword-only arguments, not {bad}")
        if name in _REGISTRY:
            raise TypeError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(
            name, fn, paper, description, multiple, has_unpool, max(min_size, multiple)
        )
        return fn

    return deco


def model_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``; ConfigError listing valid names (and the closest) otherwise."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown model {name!r}{did_you_mean(name, model_names())}; "
            f"valid models: {', '.join(model_names())}"
        )
    return _REGISTRY[name]


def list_models() -> list[ModelSpec]:
    _ensure_loaded()
    return [_REGISTRY[n] for n in model_names()]


def check_build_args(name: str, kwargs: dict[str, Any]) -> ModelSpec:
    """Validate builder arguments without building (unknown names, class count, channel count)."""
    spec = get_spec(name)
    valid = spec.arg_names()
    for key in kwargs:
        if key not in valid:
            raise ConfigError(
                f"model {name!r} has no argument {key!r}{did_you_mean(key, valid)}; "
                f"valid arguments: {', '.join(valid)}"
            )
    for key in ("num_classes", "in_channels"):
        value = kwargs.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return spec


def build_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model: ``build_model("lite-unet", num_classes=2, encoder="vgg")``."""
    spec = check_build_args(name, kwargs)
    missing = [k for k in spec.arg_names() if k not in spec.defaults() and k not in kwargs]
    if missing:
        raise ConfigError(
            f"model {name!r} needs {', '.join(missing)}; e.g. build_model({name!r}, num_classes=11)"
        )
    return spec.builder(**kwargs)


def check_input_hw(name: str, hw: tuple[int, int]) -> None:
    """Raise ConfigError naming the nearest valid sizes if ``hw`` is not a multiple of the stride."""
    spec = get_spec(name)
    m = spec.multiple
    h, w = hw
    if h <= 0 or w <= 0:
        raise ConfigError(f"input size {h}x{w} must be positive, e.g. {m * 8}x{m * 8}")
    if h < spec.min_size or w < spec.min_size:
        lo = spec.min_size
        raise ConfigError(
            f"input {h}x{w} is too small for {name}; height and width must be at least {lo} "
            f"(e.g. {max(h, lo)}x{max(w, lo)})"
        )
    if h % m or w % m:
        def near(v: int) -> str:
            if v % m == 0:
                return str(v)
            lo, hi = (v // m) * m, (v // m + 1) * m
            return f"{lo} or {hi}" if lo > 0 else f"{hi}"

        raise ConfigError(
            f"input {h}x{w} is not divisible by {m} for {name}; use height {near(h)} and "
            f"width {near(w)} (e.g. {(h // m or 1) * m}x{(w // m or 1) * m})"
        )


# Modules whose import registers builders (they import torch).
MODEL_MODULES: tuple[str, ...] = (
    "edgeseg.models.segnet",
    "edgeseg.models.res_segnet",
    "edgeseg.models.unet",
    "edgeseg.models.lite_unet",
    "edgeseg.models.enet",
)


def _ensure_loaded() -> None:
    import importlib

    for module in MODEL_MODULES:  # cached after the first call
        importlib.import_module(module)


def parse_hw(text: str) -> tuple[int, int]:
    """Parse 'HxW' (e.g. '360x480') into (height, width)."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"input size {text!r} is not HxW; write it like 360x480 (height x width)") from None
    if h <= 0 or w <= 0:
        raise ConfigError(f"input size {text!r} must be positive; write it like 360x480")
    return h, w
