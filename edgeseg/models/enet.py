"""ENet (Paszke, Chaurasia, Kim, Culurciello 2016, "ENet: A Deep Neural Network Architecture for
Real-Time Semantic Segmentation", arXiv:1606.02147), Table 1:

======================  ==========  =======================================
stage                   output      blocks
======================  ==========  =======================================
initial                 16, H/2     3x3 stride-2 conv (13 maps) || 2x2 max pool of the input
1                       64, H/4     bottleneck1.0 downsampling, 4 x bottleneck1.x
2                       128, H/8    2.0 downsampling, 2.1 regular, 2.2 dilated 2, 2.3 asymmetric 5,
                                    2.4 dilated 4, 2.5 regular, 2.6 dilated 8, 2.7 asymmetric 5,
                                    2.8 dilated 16
3                       128, H/8    stage 2 without 2.0
4                       64, H/4     4.0 upsampling, 4.1, 4.2 regular
5                       16, H/2     5.0 upsampling, 5.1 regular
fullconv                C, H        transposed conv to the classes
======================  ==========  =======================================

Bottleneck (paper Fig. 2b): main branch 1x1 projection (2x2 stride-2 conv when downsampling) ->
main conv (3x3 regular / dilated, 5x1 + 1x5 asymmetric, or a 3x3 stride-2 transposed conv when
upsampling) -> 1x1 expansion, each followed by BatchNorm, the first two by PReLU; spatial dropout;
added to the shortcut (identity; max pooling + zero-padded channels when downsampling; 1x1 conv +
BatchNorm + max unpooling with the indices of the matching downsampling when upsampling); PReLU.
No convolution in the bottlenecks has a bias ("we have chosen not to use bias terms in any of the
projections").

The pooling keeps its indices through :func:`edgeseg.unpool.torch_op.max_pool2x2` and the
decoder unpools with :func:`max_unpool2x2`, so ``edgeseg export`` swaps the unpool for the plugin
node or native ops like for the SegNet family.

Points the paper leaves open and what this module does:

* Internal (reduced) width of a bottleneck: the paper says only "reduce the dimensionality"; the
  authors' Torch code uses a quarter of the output width (of the input width when upsampling).
  Here: ``out // 4`` everywhere except upsampling (``in // 4``), as the Torch code.
* Initial block: BatchNorm + PReLU over the 16 concatenated maps (the Torch code; the paper draws
  the concatenation only). The conv has 16 - in_channels maps (13 for RGB).
* Activations: the paper uses PReLU throughout; the authors' decoder uses ReLU. Here PReLU (one
  slope per channel) everywhere, as the paper says.
* Spatial dropout: paper: p = 0.01 before bottleneck2.0 and 0.1 afterwards. Here 0.01 in stage 1,
  0.1 in stages 2 and 3, none in the decoder (stages 4-5), as the Torch decoder; inference is
  unaffected.
* Asymmetric 5: 5x1 then 1x5 conv with no BatchNorm/PReLU between them (one "conv" of the block).
* Upsampling main conv: 3x3 transposed conv, stride 2, padding 1, output padding 1 (exact 2x);
  fullconv: 2x2 transposed conv, stride 2 with bias (it produces the logits).
* Input size: the initial conv rounds up and the pools round down, so H and W must be multiples
  of 8 (``multiple=8``); 360x480 works as is.

Parameters at 11 classes: 376,706 trainable, 2.69 GFLOPs at 360x480 (``edgeseg info enet --input
360x480 --classes 11``); paper: 0.37 M (rounded; it gives no per-block count), i.e. within 2 %.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import ConfigError
from edgeseg.models.registry import register_model
from edgeseg.unpool.torch_op import max_pool2x2, max_unpool2x2

_PAPER = "Paszke et al. 2016 (arXiv:1606.02147), Table 1"
# (kind, argument) of stages 2 and 3 after 2.0: regular, dilated d, asymmetric k
_STAGE23 = (("regular", 1), ("dilated", 2), ("asymmetric", 5), ("dilated", 4),
            ("regular", 1), ("dilated", 8), ("asymmetric", 5), ("dilated", 16))


def _bn_prelu(ch: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(ch), nn.PReLU(ch)]


class InitialBlock(nn.Module):
    """(N, in, H, W) -> (N, 16, H/2, W/2): stride-2 conv (16 - in maps) || max pool, BN, PReLU."""

    def __init__(self, in_channels: int, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1, bias=False)
        self.post = nn.Sequential(*_bn_prelu(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(torch.cat([self.conv(x), F.max_pool2d(x, 2, 2)], dim=1))


class Bottleneck(nn.Module):
    """Regular / dilated / asymmetric bottleneck at constant resolution and width.

    (N, ch, H, W) -> (N, ch, H, W); ``kind`` in ``regular``, ``dilated`` (``arg`` = dilation),
    ``asymmetric`` (``arg`` = kernel length).
    """

    def __init__(self, ch: int, kind: str = "regular", arg: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        mid = ch // 4
        if kind == "asymmetric":
            main: list[nn.Module] = [
                nn.Conv2d(mid, mid, (arg, 1), padding=(arg // 2, 0), bias=False),
                nn.Conv2d(mid, mid, (1, arg), padding=(0, arg // 2), bias=False)]
        else:
            dil = arg if kind == "dilated" else 1
            main = [nn.Conv2d(mid, mid, 3, padding=dil, dilation=dil, bias=False)]
        self.branch = nn.Sequential(
            nn.Conv2d(ch, mid, 1, bias=False), *_bn_prelu(mid),
            *main, *_bn_prelu(mid),
            nn.Conv2d(mid, ch, 1, bias=False), nn.BatchNorm2d(ch),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class DownBottleneck(nn.Module):
    """(N, cin, H, W) -> ((N, cout, H/2, W/2), pre-pool map, pool indices or None).

    Shortcut: 2x2 max pool (indices kept for the decoder) and zero channels up to ``cout``;
    branch: 2x2 stride-2 projection, 3x3 conv, 1x1 expansion.
    """

    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        mid = cout // 4
        self.extra = cout - cin
        self.branch = nn.Sequential(
            nn.Conv2d(cin, mid, 2, stride=2, bias=False), *_bn_prelu(mid),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False), *_bn_prelu(mid),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        pooled, idx = max_pool2x2(x)
        shortcut = F.pad(pooled, (0, 0, 0, 0, 0, self.extra))  # zero maps appended (channel axis)
        return self.act(shortcut + self.branch(x)), x, idx


class UpBottleneck(nn.Module):
    """(N, cin, h, w) + the matching downsampling's (pre-pool map, indices) -> (N, cout, 2h, 2w).

    Shortcut: 1x1 conv + BN to ``cout``, then max unpooling with the encoder's indices; branch:
    1x1 projection, 3x3 stride-2 transposed conv, 1x1 expansion.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cin // 4
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.branch = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), *_bn_prelu(mid),
            nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1, bias=False),
            *_bn_prelu(mid),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor, pre: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return self.act(max_unpool2x2(self.shortcut(x), pre, idx) + self.branch(x))


class ENet(nn.Module):
    """(N, in_channels, H, W) -> logits (N, num_classes, H, W); H, W multiples of 8."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.initial = InitialBlock(in_channels)
        self.down1 = DownBottleneck(16, 64, 0.01)
        self.stage1 = nn.Sequential(*(Bottleneck(64, dropout=0.01) for _ in range(4)))
        self.down2 = DownBottleneck(64, 128, 0.1)
        self.stage2 = nn.Sequential(*(Bottleneck(128, k, a) for k, a in _STAGE23))
        self.stage3 = nn.Sequential(*(Bottleneck(128, k, a) for k, a in _STAGE23))
        self.up4 = UpBottleneck(128, 64)
        self.stage4 = nn.Sequential(*(Bottleneck(64, dropout=0.0) for _ in range(2)))
        self.up5 = UpBottleneck(64, 16)
        self.stage5 = Bottleneck(16, dropout=0.0)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.initial(x)
        x, pre1, idx1 = self.down1(x)
        x, pre2, idx2 = self.down2(self.stage1(x))
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, pre2, idx2))
        x = self.stage5(self.up5(x, pre1, idx1))
        return self.fullconv(x)


@register_model(
    "enet",
    paper=_PAPER,
    description="initial block + 5 bottleneck stages (dilated/asymmetric), PReLU, index unpooling",
    multiple=8,
    has_unpool=True,
    min_size=16,
)
def enet(*, num_classes: int, in_channels: int = 3) -> ENet:
    """ENet: (N, in_channels, H, W) -> logits (N, num_classes, H, W); H, W multiples of 8, >= 16."""
    if not 0 < in_channels < 16:
        raise ConfigError(f"enet takes 1..15 input channels (its initial block concatenates the "
                          f"input to a 16-map conv), got {in_channels}")
    return ENet(num_classes, in_channels)
