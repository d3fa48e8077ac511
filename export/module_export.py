"""Any ``nn.Module`` -> verified ONNX + card: ``edgeseg export --module pkg.mod:factory`` and
:func:`export_module` (``edgeseg.export.export_module(model, out, input_hw=..., classes=...)``).

The same pipeline as a checkpoint export (:mod:`edgeseg.export.onnx_export`: TorchScript
exporter, onnxsim, checker, PyTorch-vs-onnxruntime verification, TensorRT op check, atomic
write), plus the one thing a foreign module needs: its max unpooling.

Every ``nn.MaxUnpool2d`` / ``F.max_unpool2d`` with kernel 2, stride 2 (padding 0) is exported
through edgeseg's unpool (plugin node or native ops), computed from the pre-pool activation
(docs/design.md §5). While exporting, ``F.max_pool2d`` / ``F.max_pool2d_with_indices`` calls that
return indices (``nn.MaxPool2d(2, 2, return_indices=True)`` included) compute the pooled map
without indices and remember which input each indices tensor belongs to; the unpool looks its
indices up. So the exported graph has no index tensor, no MaxPool-with-indices and no MaxUnpool
(which TensorRT cannot parse). An unpool of another configuration, or one whose indices did not
come straight from such a pooling, is refused with a line naming the layer. Verification runs
the unpatched module (PyTorch's own indices), so it checks the rewrite.

Weights are never unpickled: ``.safetensors`` (safetensors) or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from edgeseg.export.onnx_export import (
    _enforce,
    _record,
    check_graph,
    simplify,
    torch_to_onnx,
)
from edgeseg.export.onnx_file import check_output_path, write_onnx
from edgeseg.export.onnx_import import ARCHITECTURE, parse_classes, preprocessing
from edgeseg.export.onnx_verify import verify
from edgeseg.export.options import ModuleExportOptions
from torch import nn

from edgeseg.card import ModelCard
from edgeseg.errors import ConfigError, ExportError, ModelError
from edgeseg.io import sha256_file
from edgeseg.models.blocks import param_count
from edgeseg.unpool.torch_op import max_unpool2x2, unpool_mode

Log = Callable[[str], None]


class _SingleOutput(nn.Module):
    """A module returning a dict (torchvision: ``out``/``aux``) or a tuple -> its main logits."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        if isinstance(y, dict):
            return y["out"]
        if isinstance(y, (tuple, list)):
            return y[0]
        return y


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _is_2x2(kernel: Any, stride: Any, padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False) -> bool:
    stride = kernel if stride is None or stride == [] or stride == () else stride
    return (_pair(kernel) == (2, 2) and _pair(stride) == (2, 2) and _pair(padding) == (0, 0)
            and _pair(dilation) == (1, 1) and not ceil_mode)


class _UnpoolRouter:
    """Patches torch's functional max pool / unpool while exporting (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.sources: dict[int, tuple[torch.Tensor, torch.Tensor, bool, str]] = {}
        self.layers: list[str] = []
        self.count = 0

    def _layer(self) -> str:
        return self.layers[-1] if self.layers else "(top-level forward)"

    def pool(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def max_pool2d(x: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
            if not return_indices:
                return orig(x, kernel_size, stride, padding, dilation, ceil_mode, False)
            ok = _is_2x2(kernel_size, stride, padding, dilation, ceil_mode)
            pooled = orig(x, kernel_size, stride, padding, dilation, ceil_mode, False)
            # A real indices tensor for the user's code to carry; nothing in the graph reads it, so
            # the exporter drops its node (no MaxPool-with-indices in the file).
            _, idx = orig(x, kernel_size, stride, padding, dilation, ceil_mode, True)
            self.sources[id(idx)] = (idx, x, ok, self._layer())
            return pooled, idx

        return max_pool2d

    def unpool(self, y: torch.Tensor, indices: torch.Tensor, kernel_size: Any, stride: Any = None,
               padding: Any = 0, output_size: Any = None) -> torch.Tensor:
        layer = self._layer()
        if not _is_2x2(kernel_size, stride, padding):
            raise ExportError(f"layer {layer!r} unpools with kernel_size={kernel_size}, stride={stride}, "
                              f"padding={padding}; edgeseg exports max unpooling with kernel 2, stride 2, "
                              "padding 0 only (its TensorRT plugin): change the layer to MaxUnpool2d(2, 2)")
        src = self.sources.get(id(indices))
        if src is None or src[0] is not indices:
            raise ExportError(f"layer {layer!r} unpools with indices that did not come straight from a "
                              "max pooling (F.max_pool2d / nn.MaxPool2d with return_indices=True) in this "
                              "forward; pass the pooling's indices to the unpool unchanged")
        _, x, ok, pool_layer = src
        if not ok:
            raise ExportError(f"layer {layer!r} unpools the indices of pooling layer {pool_layer!r}, which "
                              "is not a 2x2/stride-2 max pool (padding 0, dilation 1, floor mode); edgeseg "
                              "exports that configuration only: change it to MaxPool2d(2, 2)")
        if output_size is not None and tuple(output_size)[-2:] != tuple(x.shape[-2:]):
            raise ExportError(f"layer {layer!r} unpools to {tuple(output_size)[-2:]} but its pooling input "
                              f"was {tuple(x.shape[-2:])}; edgeseg restores the pre-pool size only")
        self.count += 1
        return max_unpool2x2(y, x, None)  # native or plugin, per the export's unpool mode

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        names = {m: n or type(self.model).__name__ for n, m in self.model.named_modules()}
        hooks = []
        def enter(name: str) -> Callable[..., None]:
            return lambda *_: self.layers.append(name)  # returns None: the input is unchanged

        def leave(*_: Any) -> None:  # must return None, else it would replace the module's output
            self.layers.pop()

        for module, name in names.items():
            hooks.append(module.register_forward_pre_hook(enter(name)))
            hooks.append(module.register_forward_hook(leave))
        saved = (F.max_pool2d, F.max_pool2d_with_indices, F.max_unpool2d)
        F.max_pool2d = self.pool(F.max_pool2d)
        F.max_pool2d_with_indices = self.pool(F.max_pool2d)
        # deliberate patch while tracing: self.unpool takes max_unpool2d's arguments (looser types)
        F.max_unpool2d = self.unpool  # type: ignore[assignment]
        try:
            yield
        finally:
            F.max_pool2d, F.max_pool2d_with_indices, F.max_unpool2d = saved
            for h in hooks:
                h.remove()
            self.sources.clear()


def export_module(model: nn.Module, out: str | os.PathLike[str],
                  options: ModuleExportOptions = ModuleExportOptions(), *,
                  source: dict[str, Any] | None = None, log: Log | None = None) -> tuple[Path, ModelCard]:
    """Export any segmentation ``model`` ((N,3,H,W) -> logits (N,K,H,W), or a dict with ``out`` /
    a tuple whose first item is that) to ``out`` + card; returns (path, card).

    ``options``: :class:`ModuleExportOptions`: the export options (``export.input_hw`` is required;
    ``export.data`` also gives the classes when ``facts.classes`` is None) plus the module's
    :class:`ModelFacts`: the classes, whose count must equal K, and the preprocessing as in
    ``edgeseg import`` (default ImageNet, /255, RGB).
    ``source``: where the module came from (factory, arguments, weights), kept in the card.
    Raises one-line EdgesegErrors; nothing is written unless verification passes.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"export_module needs a torch.nn.Module, got {type(model).__name__}")
    opts = options.export
    if opts.input_hw is None:
        raise ConfigError("export_module needs the input size: ModuleExportOptions(export=ExportOptions("
                          "input_hw=(H, W))), on the command line --input HxW (e.g. --input 360x480)")
    input_hw = opts.input_hw
    log = log or (lambda _m: None)
    out = Path(out)
    check_output_path(out)
    net = _SingleOutput(model).eval()
    k = _probe_classes(net, input_hw)
    facts = options.facts
    label = facts.name or type(model).__name__
    info = parse_classes(facts, opts.data, opts.data_split, k, label)
    fields, assumed, pre_record = preprocessing(facts, uint8=False)
    for text in assumed:
        log(f"assumed {text}")
    router = _UnpoolRouter(model)
    with router.active(), unpool_mode("native"), torch.no_grad():  # unpool problems surface here, whole
        net(torch.zeros(1, 3, *input_hw))
    router.count = 0
    log(f"exporting {label} {input_hw[0]}x{input_hw[1]}, unpool {opts.unpool_mode}, opset {opts.opset}")
    with router.active():
        onnx_model = torch_to_onnx(net, (1, 3, *input_hw), opts.unpool_mode, opts)
    mode = opts.unpool_mode if router.count else "none"
    if opts.simplify:
        onnx_model = simplify(onnx_model)
    onnx_model = check_graph(onnx_model)
    data_bytes = onnx_model.SerializeToString()
    card = ModelCard(architecture=ARCHITECTURE, arch_args={"name": label}, class_names=info.class_names,
                     class_colors=info.class_colors, input_hw=(input_hw[0], input_hw[1]),
                     ignore_index=info.ignore_index,
                     artifact="onnx", unpool_mode=mode, precision="fp32",
                     parent_sha256=(source or {}).get("weights_sha256"), **fields)
    log("verifying against PyTorch (onnxruntime, CPU)")
    results = verify(net, data_bytes, card, opts)
    forced = _enforce(results, opts)
    record = _record(opts, results, onnx_model, forced, unpool_layers=router.count)
    extra = {"export": record.to_json(), "params": param_count(net),  # trainable, as for edgeseg's own models
             "module": {**(source or {}), "class": f"{type(model).__module__}.{type(model).__qualname__}",
                        "preprocessing": pre_record, "assumed": assumed}}
    return write_onnx(out, data_bytes, card.replace(extra=extra))


def _probe_classes(net: nn.Module, input_hw: tuple[int, int]) -> int:
    """Run ``net`` once on zeros; K of its (N, K, H, W) logits, which must be at the input size."""
    with torch.no_grad():
        try:
            probe = net(torch.zeros(1, 3, *input_hw))
        except Exception as e:  # the user's forward: report its first line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise ModelError(f"the model fails on a 1x3x{input_hw[0]}x{input_hw[1]} input "
                             f"({type(e).__name__}: {first}); check --input") from None
    is_tensor = isinstance(probe, torch.Tensor)
    if not is_tensor or probe.dim() != 4 or tuple(probe.shape[-2:]) != tuple(input_hw):
        shape = tuple(probe.shape) if is_tensor else type(probe).__name__
        raise ModelError(f"the model returns {shape} for a {input_hw[0]}x{input_hw[1]} input; edgeseg "
                         "exports segmentation logits (N, K, H, W) at the input size (upsample in forward)")
    return int(probe.shape[1])


def parse_module_args(items: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; v is read as JSON (numbers, true/false, lists, quoted strings), else text.
    JSON is data: no code in a value ever runs."""
    args: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--module-arg {item!r} is not key=value; write it like num_classes=21")
        try:
            args[key] = json.loads(value)
        except json.JSONDecodeError:
            args[key] = value
    return args


def load_module(spec: str, args: dict[str, Any]) -> nn.Module:
    """Call the factory ``pkg.mod:factory`` (the user's own code, named on the command line) with
    ``args``; the current folder is importable, as with ``python -m``."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"--module {spec!r} is not pkg.module:factory; write it like mymodels.seg:build")
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:  # ImportError or whatever the user's module raises at import
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"--module {spec}: module {mod_name!r} does not import ({type(e).__name__}: "
                          f"{first}); run edgeseg from the folder that holds it or add that folder to "
                          "PYTHONPATH") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"--module {spec}: {mod_name} has no callable {attr!r}; name a function or class "
                          "that returns the nn.Module")
    try:
        model = factory(**args)
    except Exception as e:  # the user's factory
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"--module {spec}: {attr}(**{args}) failed ({type(e).__name__}: {first}); check "
                          "--module-arg") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--module {spec}: {attr}() returned {type(model).__name__}, not a "
                          "torch.nn.Module; name a factory that returns the model")
    return model


def load_weights(model: nn.Module, path: Path) -> str:
    """Load a state dict from ``.safetensors`` or a torch file (``weights_only=True``: no
    unpickling of code); strict key match. Returns the file's SHA-256."""
    if not path.is_file():
        raise ConfigError(f"--weights {path} does not exist; pass a .safetensors (or .pt/.pth) state dict")
    state: Any  # a state dict, or whatever else a .pt file holds (checked below)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors / torch's weights-only unpickler errors
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise ModelError(f"--weights {path} cannot be read as a state dict ({type(e).__name__}: {first}); "
                         "save it with safetensors.torch.save_file(model.state_dict(), path)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"--weights {path} holds a {type(state).__name__}, not a state dict; save "
                         "model.state_dict()")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        first = (str(e).strip().splitlines() or [""])[-1].strip()[:160]
        raise ModelError(f"--weights {path} does not fit the model ({first}); pass the weights saved from "
                         "this very architecture") from None
    problems = [*(f"missing {k}" for k in result.missing_keys),
                *(f"unexpected {k}" for k in result.unexpected_keys)]
    if problems:
        raise ModelError(f"--weights {path} does not fit the model ({len(problems)} key problems, first: "
                         f"{problems[0]}); pass the weights saved from this very architecture")
    return sha256_file(path)


def export_factory(factory: str, module_args: Sequence[str], weights: Path | None,
                   out: str | os.PathLike[str], options: ModuleExportOptions = ModuleExportOptions(), *,
                   log: Log | None = None) -> tuple[Path, ModelCard]:
    """``edgeseg export --module``: build the model with ``factory`` (``pkg.mod:factory``) called
    with the ``key=value`` ``module_args``, load ``weights`` (optional), export it. The card's
    name defaults to the factory's."""
    args = parse_module_args(module_args)
    check_output_path(Path(out))
    model = load_module(factory, args)
    source: dict[str, Any] = {"factory": factory, "module_args": args}
    if weights is not None:
        source["weights"] = str(weights.resolve())
        source["weights_sha256"] = load_weights(model, weights)
    if options.facts.name is None:
        options = dataclasses.replace(options, facts=dataclasses.replace(options.facts,
                                                                         name=factory.rpartition(":")[2]))
    return export_module(model, out, options, source=source, log=log)
