"""Synchronized BatchNorm for data-parallel training, on CUDA and on the CPU.

On CUDA this is ``torch.nn.SyncBatchNorm``. torch's SyncBatchNorm refuses CPU tensors (its
kernels ``batch_norm_stats`` / ``batch_norm_gather_stats_with_counts`` exist for CUDA only), so
on the CPU (gloo) the same computation runs here: per-channel sums over the local batch are
all-reduced, the global mean and biased variance normalize the input, the running statistics get
the unbiased variance, and the backward all-reduces the two per-channel gradient sums exactly as
torch's CUDA implementation does. Result: the statistics of the global batch, as one process
with the whole batch computes them (up to float summation order).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _reduce_dims(x: torch.Tensor) -> list[int]:
    return [0, *range(2, x.dim())]


def _shape(x: torch.Tensor) -> list[int]:
    return [1, -1] + [1] * (x.dim() - 2)


class _SyncBNFunction(torch.autograd.Function):
    """y = (x - mean) * invstd * weight + bias with mean/var over every rank's batch (NC... input)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None, eps: float,
                momentum: float) -> torch.Tensor:
        dims, shape = _reduce_dims(x), _shape(x)
        # float64 sums: the E[x^2] - E[x]^2 form is then accurate at float32 resolution
        xd = x.detach().double()
        stats = torch.cat([xd.sum(dims), (xd * xd).sum(dims),
                           torch.tensor([x.numel() // x.shape[1]], dtype=torch.float64)])
        tdist.all_reduce(stats)
        c = x.shape[1]
        count = stats[-1]
        mean = stats[:c] / count
        var = (stats[c:2 * c] / count - mean * mean).clamp_min(0.0)
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp_min(1.0)
                running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
                running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        mean_f, invstd_f = mean.to(x.dtype), invstd.to(x.dtype)
        xhat = (x - mean_f.view(shape)) * invstd_f.view(shape)
        ctx.save_for_backward(xhat, weight, invstd_f)
        ctx.count = float(count)
        y = xhat
        if weight is not None:
            y = y * weight.view(shape)
        if bias is not None:
            y = y + bias.view(shape)
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[Any, ...]:
        xhat, weight, invstd = ctx.saved_tensors
        dims, shape = _reduce_dims(grad_y), _shape(grad_y)
        sum_dy = grad_y.sum(dims)
        sum_dy_xhat = (grad_y * xhat).sum(dims)
        # weight/bias gradients stay local: DDP averages them like every other parameter
        grad_w = sum_dy_xhat if weight is not None and ctx.needs_input_grad[1] else None
        grad_b = sum_dy if ctx.needs_input_grad[2] else None
        both = torch.cat([sum_dy, sum_dy_xhat])
        tdist.all_reduce(both)
        c = grad_y.shape[1]
        mean_dy, mean_dy_xhat = both[:c] / ctx.count, both[c:] / ctx.count
        scale = invstd if weight is None else invstd * weight
        grad_x = (grad_y - mean_dy.view(shape) - xhat * mean_dy_xhat.view(shape)) * scale.view(shape)
        return grad_x, grad_w, grad_b, None, None, None, None


class CpuSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics span every rank's batch, for CPU tensors (gloo).

    Not a subclass of ``nn.SyncBatchNorm``: DistributedDataParallel refuses those on the CPU.
    Outside training, or without a process group, it is a plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        syncing = (self.training and input.device.type == "cpu" and tdist.is_available()
                   and tdist.is_initialized() and tdist.get_world_size() > 1)
        if not syncing:
            return super().forward(input)
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm
                momentum = 1.0 / float(self.num_batches_tracked)
        track = self.track_running_stats
        return _SyncBNFunction.apply(input, self.weight, self.bias, self.running_mean if track else None,
                                     self.running_var if track else None, self.eps, momentum)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every ``BatchNorm*d`` of ``model`` as a synchronized one (same parameters, same state-dict
    keys, so checkpoints stay plain BatchNorm checkpoints)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.__class__ = CpuSyncBatchNorm  # BatchNorm{1,2,3}d hold exactly _BatchNorm's fields
    return model
