"""res-segnet: SegNet with multi-residual connections (seed 000, Gao et al. 2024, Sec. II-B).

The paper's steps, with F_k the encoder maps, PI the index unpooling, De the "deconvolution":

* F1 = conv(x)                       H   x W   x 64
* F2 = conv(pool(F1))                H/2 x W/2 x 128
* F3 = conv(pool(F2))                H/4 x W/4 x 256
* F4 = pool(F3)                      H/8 x W/8 x 256
* F'3 = Fuse(PI(.), F3), De -> 128   H/4
* F'2 = Fuse(PI(De(F'3)), F2), De -> 64   H/2
* out = Conc(Fuse(PI(De(F'2)), F1), F1)   H x W x 128 -> classifier

Points the paper leaves open (Fig. 2 is not in the text) and what this module does:

* "Convolution" in the encoder: two 3x3 conv-BN-ReLU per level (SegNet/VGG's first stages), the
  first changing the width. The paper's "linear activation" after the conv is read as ReLU.
* Bottleneck: F4 is the pooled F3 with no convolution after it in the text; unpooling F4 with its
  own indices would only put F3's maxima back in place, so the 1/8 level would compute nothing.
  A 3x3 conv-BN-ReLU pair (256 -> 256) runs on F4 before the first unpooling.
* "F'3 = Fuse(PI(F1), F3)": PI(F1) cannot be 1/4-size; read as PI of the decoder tensor (F4
  after the bottleneck) with pool-3 indices. Likewise the later steps unpool the decoder tensor.
* "Fuse" = element-wise addition (the paper calls these residual connections; the channel counts
  of the unpooled decoder tensor and F_k match: 256, 128, 64).
* "Deconvolution" = at the same resolution (H/4x256 -> H/4x128), i.e. a stride-1 transposed
  convolution, which is a convolution: here two 3x3 conv-BN-ReLU, the second halving the width
  (mirror of the encoder level). Upsampling is done only by the index unpooling.
* Classifier: after Conc(Fuse(...), F1) (128 maps) a 3x3 conv-BN-ReLU to 64 maps densifies the
  sparse unpooled part, then a 1x1 conv gives the class logits (softmax is in the loss).
* Odd sizes: index unpooling restores the pre-pool size exactly, so any H, W >= 8 works
  (``multiple=1``, ``min_size=8``); 360x480 runs as is.
"""

from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.blocks import ConvBNReLU, conv_stack
from edgeseg.models.registry import register_model
from edgeseg.unpool.torch_op import max_pool2x2, max_unpool2x2

WIDTHS = (64, 128, 256)


class ResSegNetEncoder(nn.Module):
    """x -> (bottleneck at H/8 x 256, [(F_k, pool-k indices)] for k = 1..3)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        ins = (in_channels, *WIDTHS[:-1])
        self.levels = nn.ModuleList(conv_stack([a, b, b]) for a, b in zip(ins, WIDTHS, strict=True))
        self.bottleneck = conv_stack([WIDTHS[-1]] * 3)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor | None]]]:
        skips: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        for level in self.levels:
            f = level(x)
            x, idx = max_pool2x2(f)
            skips.append((f, idx))
        return self.bottleneck(x), skips


class ResSegNetDecoder(nn.Module):
    """Unpool -> add F_k -> "deconvolve" (levels 3, 2); unpool -> add F1 -> concat F1 (level 1).

    Output: (N, 128, H, W).
    """

    def __init__(self) -> None:
        super().__init__()
        # De for levels 3 and 2: width_k -> width_k -> width_{k-1}
        self.deconvs = nn.ModuleList(conv_stack([w, w, w // 2]) for w in WIDTHS[:0:-1])

    def forward(
        self, x: torch.Tensor, skips: list[tuple[torch.Tensor, torch.Tensor | None]]
    ) -> torch.Tensor:
        deep_skips = skips[:0:-1]  # levels 3, 2
        for de, (f, idx) in zip(self.deconvs, deep_skips, strict=True):
            x = de(max_unpool2x2(x, f, idx) + f)
        f1, idx1 = skips[0]
        return torch.cat([max_unpool2x2(x, f1, idx1) + f1, f1], dim=1)


class ResSegNet(nn.Module):
    """(N, in_channels, H, W) -> logits (N, num_classes, H, W)."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.encoder = ResSegNetEncoder(in_channels)
        self.decoder = ResSegNetDecoder()
        self.head = nn.Sequential(ConvBNReLU(2 * WIDTHS[0], WIDTHS[0]), nn.Conv2d(WIDTHS[0], num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deepest, skips = self.encoder(x)
        return self.head(self.decoder(deepest, skips))


@register_model(
    "res-segnet",
    paper="Gao et al. 2024 (seed 000)",
    description="SegNet, 3 poolings (64/128/256), unpool + residual fuse, F1 concat head",
    multiple=1,
    has_unpool=True,
    min_size=8,
)
def res_segnet(*, num_classes: int, in_channels: int = 3) -> ResSegNet:
    """res-segnet: (N, in_channels, H, W) -> logits (N, num_classes, H, W); H, W >= 8."""
    return ResSegNet(num_classes, in_channels)
