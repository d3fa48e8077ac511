"""Model profiles: parameters per block, FLOPs, activation memory, input constraints.

Everything is measured on a model built on torch's ``meta`` device: no weights are allocated and
no arithmetic is done, but every operator runs its shape logic, so the counters see the real
graph at the real input size.

* FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` (a real operator counter; it counts
  convolutions, transposed convolutions and matrix products as 2 FLOPs per multiply-accumulate,
  and nothing for BatchNorm, ReLU, pooling, unpooling, resizing or additions).
* Activation memory: the bytes of every tensor the forward pass creates (batch 1, float32), except
  views and in-place results — what a training step keeps for backward, roughly, and an upper
  bound of what an inference engine must be able to hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from edgeseg.models.registry import check_build_args, check_input_hw


@dataclass(frozen=True)
class BlockProfile:
    """One block of a model: dotted module path, trainable parameters, FLOPs at the input size."""

    name: str
    params: int
    flops: int


@dataclass(frozen=True)
class ModelProfile:
    """Profile of one model at one input size (batch 1)."""

    name: str
    input_hw: tuple[int, int]
    num_classes: int
    params: int
    flops: int
    activation_bytes: int
    multiple: int
    min_size: int
    blocks: tuple[BlockProfile, ...]

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_hw": list(self.input_hw),
            "num_classes": self.num_classes,
            "params": self.params,
            "gflops": round(self.gflops, 4),
            "activation_mib": round(self.activation_bytes / 2**20, 2),
            "multiple": self.multiple,
            "min_size": self.min_size,
            "blocks": [{"name": b.name, "params": b.params, "gflops": b.flops / 1e9} for b in self.blocks],
        }


class _ActivationBytes(TorchDispatchMode):
    """Sums the bytes of every tensor an operator creates (views and in-place results excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if not any(r.alias_info is not None for r in func._schema.returns):
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.total += t.numel() * t.element_size()
        return out


def blocks_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's blocks: children of encoder/decoder-like parts, ModuleLists expanded.

    A top-level child without submodule structure of its own (a conv, a Sequential head) is one
    block. The blocks partition the model's parameters.
    """
    rows: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, (nn.Sequential, nn.Conv2d)) or not any(True for _ in child.children()):
            rows.append((name, child))
            continue
        for sub, grand in child.named_children():
            if isinstance(grand, nn.ModuleList):
                rows += [(f"{name}.{sub}.{i}", m) for i, m in enumerate(grand)]
            else:
                rows.append((f"{name}.{sub}", grand))
    return rows


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def profile_model(
    name: str, *, input_hw: tuple[int, int], num_classes: int, **kwargs: Any
) -> ModelProfile:
    """Profile ``name`` built with ``num_classes`` and ``kwargs`` at ``input_hw`` (batch 1).

    Raises ConfigError for unknown names/arguments, bad class counts and unusable input sizes.
    """
    args = {"num_classes": num_classes, **kwargs}
    spec = check_build_args(name, args)
    check_input_hw(name, input_hw)
    in_channels = int(args.get("in_channels", 3))
    with torch.device("meta"):
        model = spec.builder(**args).eval()
        x = torch.empty(1, in_channels, *input_hw)
    counter = FlopCounterMode(display=False)
    acts = _ActivationBytes()
    with torch.no_grad(), counter, acts:
        model(x)
    per_module = counter.get_flop_counts()
    prefix = type(model).__name__
    blocks = tuple(
        BlockProfile(
            block, _param_count(mod), int(sum(per_module.get(f"{prefix}.{block}", {}).values()))
        )
        for block, mod in blocks_of(model)
    )
    return ModelProfile(
        name=name,
        input_hw=tuple(input_hw),  # type: ignore[arg-type]
        num_classes=num_classes,
        params=_param_count(model),
        flops=int(counter.get_total_flops()),
        activation_bytes=acts.total,
        multiple=spec.multiple,
        min_size=spec.min_size,
        blocks=blocks,
    )
