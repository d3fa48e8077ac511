"""U-Net (Ronneberger, Fischer, Brox, MICCAI 2015): the baseline of seed 003.

Encoder: 5 levels of two 3x3 conv-BN-ReLU (``width`` = 64 -> 128 -> 256 -> 512 -> 1024 maps),
2x2 max pooling between levels (4 poolings). Decoder: 2x2 stride-2 transposed conv halving the
width, concatenation with the same-level encoder map, two 3x3 conv-BN-ReLU. 1x1 classifier.

Points where this differs from / fills in the paper:

* "Same" padding instead of the paper's unpadded convs + cropping, so the output has the input's
  size; BatchNorm after every conv (the paper predates BN). Both are what "standard U-Net" means
  in current segmentation code.
* Upsampling is a learned 2x2 stride-2 transposed conv ("up-convolution" in the paper), so H and
  W must be multiples of 16 (``multiple=16``); 360x480 is refused with 352x480 / 368x480 named.
* Pooling is plain max pooling (no indices are needed): ``has_unpool=False``.
* ``width`` (first-level maps, default 64 as in the paper) scales all levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import ConfigError
from edgeseg.models.blocks import DoubleConv
from edgeseg.models.registry import register_model

LEVELS = 5


class UNetEncoder(nn.Module):
    """x -> [level-1 map (H), level-2 map (H/2), ..., level-5 map (H/16)]."""

    def __init__(self, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        ins = [in_channels, *widths[:-1]]
        self.levels = nn.ModuleList(DoubleConv(a, b) for a, b in zip(ins, widths, strict=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else F.max_pool2d(x, 2, 2))
            feats.append(x)
        return feats


class UpLevel(nn.Module):
    """Transposed conv (in -> in/2, x2) -> concat skip (in/2) -> DoubleConv(in -> out)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, 2, stride=2)
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNetDecoder(nn.Module):
    """Encoder maps (shallow first) -> (N, widths[0], H, W)."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        rev = widths[::-1]
        self.levels = nn.ModuleList(UpLevel(a, b) for a, b in zip(rev[:-1], rev[1:], strict=True))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for level, skip in zip(self.levels, feats[-2::-1], strict=True):
            x = level(x, skip)
        return x


class UNet(nn.Module):
    """(N, in_channels, H, W) -> logits (N, num_classes, H, W); H, W multiples of 16."""

    def __init__(self, num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(LEVELS)]
        self.encoder = UNetEncoder(in_channels, widths)
        self.decoder = UNetDecoder(widths)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))


@register_model(
    "unet",
    paper="U-Net, MICCAI 2015",
    description="5 levels 64..1024 maps, double 3x3 conv-BN-ReLU, transposed-conv upsampling",
    multiple=16,
    has_unpool=False,
)
def unet(*, num_classes: int, in_channels: int = 3, width: int = 64) -> UNet:
    """Standard U-Net; ``width`` = maps of the first level (doubles per level)."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 2 or width % 2:
        raise ConfigError(f"unet width must be an even integer >= 2, got {width!r}; e.g. width=64")
    return UNet(num_classes, in_channels, width)
