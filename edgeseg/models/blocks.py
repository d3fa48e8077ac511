"""Building blocks shared by the seed models: conv-BN-ReLU, ResNet BasicBlock, double conv.

All convolutions use "same" padding (``kernel // 2``) and no bias when a BatchNorm follows
(the BN shift makes a bias redundant). Shapes: every block maps (N, C_in, H, W) to
(N, C_out, H', W') with H' = H (stride 1) or ceil(H / 2) (stride 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """k x k convolution (no bias) -> BatchNorm -> ReLU (ReLU left out when ``relu=False``)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int = 3, *, stride: int = 1, relu: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def conv_stack(channels: list[int], kernel: int = 3) -> nn.Sequential:
    """ConvBNReLU chain through ``channels``: [64, 128, 128] gives 64->128 and 128->128."""
    return nn.Sequential(
        *(ConvBNReLU(a, b, kernel) for a, b in zip(channels[:-1], channels[1:], strict=True))
    )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU: in -> out -> out (U-Net's unit; Φ of the lite-unet paper)."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int | None = None) -> None:
        mid = out_ch if mid_ch is None else mid_ch
        super().__init__(ConvBNReLU(in_ch, mid), ConvBNReLU(mid, out_ch))


class BasicBlock(nn.Module):
    """ResNet BasicBlock (He et al. 2016): two 3x3 conv-BN, identity or 1x1-projection shortcut.

    (N, in_ch, H, W) -> (N, out_ch, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_ch, out_ch, 3, stride=stride)
        self.conv2 = ConvBNReLU(out_ch, out_ch, 3, relu=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def resnet_stage(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` BasicBlocks; the first changes channels/resolution, the rest keep them."""
    layers = [BasicBlock(in_ch, out_ch, stride)]
    layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def param_count(module: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
