"""SegNet and SegNet-Basic (Badrinarayanan, Kendall, Cipolla, TPAMI 2017).

``segnet``: VGG16 encoder (13 3x3 convs in 5 stages of 2-2-3-3-3 convs, 64-128-256-512-512 maps,
each conv followed by BatchNorm and ReLU, each stage by a 2x2 max pooling that keeps its indices),
a mirrored decoder (unpool with the stage's indices, then the stage's convs in reverse, the last
conv of each decoder stage reducing to the next shallower width) and a 3x3 classifier conv.

``segnet-basic``: paper Table 1 / Sec. 3.1: 4 encoders of one 7x7 conv with 64 maps + BN + ReLU +
max pooling; 4 decoders of index unpooling + one 7x7 conv with 64 maps + BN (no ReLU in the
decoder, no conv biases); a 1x1 classifier conv. 11 classes -> 1,416,075 trainable parameters
(paper: 1.425 M, i.e. within 0.7 %).

Points the papers leave open and what this module does:

* Classifier of ``segnet``: the reference Caffe model's last decoder conv (conv1_1_D) maps 64
  channels straight to the classes with a 3x3 kernel; here it is a plain 3x3 conv with bias, not
  followed by BN/ReLU (logits out; softmax lives in the loss).
* The decoder's last conv of each stage changes width (512->256 in stage 4, 256->128, 128->64),
  as in the Caffe reference; the first decoder stage keeps 64 channels before the classifier.
* Odd sizes: pooling floors (a 45-row map pools to 22 rows) and unpooling restores the pre-pool
  size exactly (the last row/column receives zeros), as the Caffe reference did at 360x480 with
  explicit upsample sizes. So no input multiple is required (``multiple=1``); the minimum input
  is 2 ** (number of poolings) so the deepest map has at least one pixel.
* Pooling and unpooling go through :func:`edgeseg.unpool.torch_op.max_pool2x2` /
  :func:`max_unpool2x2`, so ``edgeseg export`` can swap the unpool for native ops or the plugin.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.blocks import ConvBNReLU, conv_stack
from edgeseg.models.registry import register_model
from edgeseg.unpool.torch_op import max_pool2x2, max_unpool2x2

SEGNET_PAPER = "SegNet, TPAMI 2017"
_VGG16_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class IndexPoolEncoder(nn.Module):
    """Stages of convs, each followed by index-keeping 2x2 max pooling.

    forward: x (N, C, H, W) -> (deepest pooled map, [(pre_pool_map, indices) per stage]).
    ``indices`` is None outside the ``train`` unpool mode (export computes it from pre_pool_map).
    """

    def __init__(self, stages: list[nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor | None]]]:
        skips: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        for stage in self.stages:
            pre = stage(x)
            x, idx = max_pool2x2(pre)
            skips.append((pre, idx))
        return x, skips


class IndexUnpoolDecoder(nn.Module):
    """Stages applied deepest first, each after unpooling with its encoder stage's indices.

    ``stages[i]`` is the decoder of encoder stage ``i`` (so it runs in reverse order).
    """

    def __init__(self, stages: list[nn.Module]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(
        self, x: torch.Tensor, skips: list[tuple[torch.Tensor, torch.Tensor | None]]
    ) -> torch.Tensor:
        for stage, (pre, idx) in zip(reversed(self.stages), reversed(skips), strict=True):
            x = stage(max_unpool2x2(x, pre, idx))
        return x


class SegNet(nn.Module):
    """Encoder -> index-unpooling decoder -> classifier; (N, in, H, W) -> (N, classes, H, W)."""

    def __init__(self, encoder: IndexPoolEncoder, decoder: IndexUnpoolDecoder, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deepest, skips = self.encoder(x)
        return self.head(self.decoder(deepest, skips))


def _vgg16_segnet(num_classes: int, in_channels: int) -> SegNet:
    enc: list[nn.Module] = []
    dec: list[nn.Module] = []
    prev = in_channels
    for i, (width, convs) in enumerate(_VGG16_STAGES):
        enc.append(conv_stack([prev] + [width] * convs))
        # decoder of stage i: (convs - 1) convs keeping `width`, then one to the shallower width
        shallower = _VGG16_STAGES[i - 1][0] if i > 0 else width
        dec.append(conv_stack([width] * convs + [shallower]))
        prev = width
    head = nn.Conv2d(_VGG16_STAGES[0][0], num_classes, 3, padding=1)
    return SegNet(IndexPoolEncoder(enc), IndexUnpoolDecoder(dec), head)


@register_model(
    "segnet",
    paper=SEGNET_PAPER,
    description="VGG16-BN encoder (13 convs), mirrored decoder with index unpooling",
    multiple=1,
    has_unpool=True,
    min_size=32,
)
def segnet(*, num_classes: int, in_channels: int = 3) -> SegNet:
    """SegNet: (N, in_channels, H, W) -> logits (N, num_classes, H, W); H, W >= 32."""
    return _vgg16_segnet(num_classes, in_channels)


@register_model(
    "segnet-basic",
    paper=SEGNET_PAPER + ", Table 1",
    description="4 levels x 64 maps, 7x7 convs, index unpooling, no decoder ReLU",
    multiple=1,
    has_unpool=True,
    min_size=16,
)
def segnet_basic(*, num_classes: int, in_channels: int = 3) -> SegNet:
    """SegNet-Basic: (N, in_channels, H, W) -> logits (N, num_classes, H, W); H, W >= 16."""
    width, kernel, levels = 64, 7, 4
    enc: list[nn.Module] = [
        ConvBNReLU(in_channels if i == 0 else width, width, kernel) for i in range(levels)
    ]
    dec: list[nn.Module] = [ConvBNReLU(width, width, kernel, relu=False) for _ in range(levels)]
    head = nn.Conv2d(width, num_classes, 1)
    return SegNet(IndexPoolEncoder(enc), IndexUnpoolDecoder(dec), head)
