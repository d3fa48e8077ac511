"""lite-unet: lightweight U-Net with deep skip connections (seed 003, Hua Sun 2023, Sec. 2).

B = 5 levels; level u has c_u = 8 * 2**(u-1) maps (8, 16, 32, 64, 128) in encoder and decoder;
3x3 kernels. Decoder level u (Eq. 1), Π = conv, I = upsampling, [.] = concatenation, Φ = two
conv-BN-ReLU::

    Z_Fr^u = Φ([Π(Z_Rb^u), Π(I(Z_Rb^j)) for j = u+1 .. B-1, Π(I(Z_Fr^{u+1}))])   u = 1 .. B-2
    Z_Fr^u = Φ([Π(Z_Rb^u), Π(I(Z_Rb^B))])                                        u = B-1

then a 1x1 classifier on Z_Fr^1. Encoders (Eq. 3, Eq. 4): ``vgg`` = two 3x3 conv-BN-ReLU per
level, 2x2 max pooling before levels 2..5; ``resnet34`` = one 3x3 conv-BN-ReLU stem at level 1,
then ResNet34's BasicBlock counts q = 3, 4, 6, 3 at levels 2..5, the first block of each level
with stride 2 and a 1x1 projection shortcut.

Points the paper leaves open and what this module does:

* Channels of each Π: every source is brought to c_u maps (this is what makes Eq. 2's closed form
  (Σ_{j=u}^{B-1} 2^{j-u} + B-u+4) 2^{2u-2} b^2 j_r^2 come out, and what Fig. 3 describes as
  "adjusting the channel count"). So level u concatenates B-u+1 maps of c_u channels and runs
  B-u+3 convolutions: B-u Π's on encoder maps, one on the deeper decoder map, and Φ's two —
  the paper's "B-u+3 convolutional operations". The parameter count of each decoder level equals
  Eq. 2 exactly (checked in tests/test_models.py).
* Π is a 3x3 conv followed by BN and ReLU (as every conv of Φ; UNet3+-style skip branches). The
  paper's parameter formulas count conv weights only, which is unchanged.
* I: bilinear upsampling (align_corners=False) by 2**(j-u), applied before Π as written (Π(I(.))).
* "Every deeper encoder map except the last": j runs to B-1; Z_Rb^B enters only as the input of
  decoder level B-1, exactly as in Eq. 1.
* ``deep_skip=False`` (the paper's plain-skip ablation): the deeper encoder terms are dropped and
  every level uses the u = B-1 form [Π(Z_Rb^u), Π(I(Z_Fr^{u+1}))]; all else is identical.
* ResNet34 levels downsample with their first (stride-2) block instead of ResNet34's stem
  pooling, because the paper downsamples once per encoder level ("each layer ... undergoes a
  downsampling operation") and Eq. 4 has no pooling or 7x7 stem.
* 4 downsamplings with fixed x2 upsampling: H and W must be multiples of 16 (``multiple=16``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import ConfigError
from edgeseg.models.blocks import ConvBNReLU, DoubleConv, resnet_stage
from edgeseg.models.registry import register_model

LEVELS = 5
BASE_WIDTH = 8
RESNET34_BLOCKS = (3, 4, 6, 3)  # levels 2..5
ENCODERS = ("vgg", "resnet34")


def level_widths(base: int = BASE_WIDTH, levels: int = LEVELS) -> list[int]:
    """c_u for u = 1..levels (index 0 is level 1)."""
    return [base * 2**i for i in range(levels)]


class LiteEncoder(nn.Module):
    """x -> [Z_Rb^1 (H), Z_Rb^2 (H/2), ..., Z_Rb^5 (H/16)]."""

    def __init__(self, in_channels: int, kind: str) -> None:
        super().__init__()
        w = level_widths()
        self.kind = kind
        levels: list[nn.Module]
        if kind == "vgg":
            levels = [DoubleConv(in_channels, w[0])]
            levels += [DoubleConv(a, b) for a, b in zip(w[:-1], w[1:], strict=True)]
        else:
            levels = [ConvBNReLU(in_channels, w[0])]
            levels += [
                resnet_stage(a, b, q, stride=2)
                for a, b, q in zip(w[:-1], w[1:], RESNET34_BLOCKS, strict=True)
            ]
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        for i, level in enumerate(self.levels):
            if i > 0 and self.kind == "vgg":
                x = F.max_pool2d(x, 2, 2)
            x = level(x)
            feats.append(x)
        return feats


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=float(factor), mode="bilinear", align_corners=False)


class DeepSkipLevel(nn.Module):
    """Decoder level u: Π of each source at c_u maps, concatenated, then Φ.

    ``source_widths[k]`` / ``factors[k]``: channels and upsampling factor of source k, in the
    order same-level encoder map, deeper encoder maps (if any), deeper decoder map.
    """

    def __init__(self, source_widths: list[int], factors: list[int], width: int) -> None:
        super().__init__()
        self.factors = factors
        self.pis = nn.ModuleList(ConvBNReLU(c, width) for c in source_widths)
        self.phi = DoubleConv(len(source_widths) * width, width)

    def forward(self, sources: list[torch.Tensor]) -> torch.Tensor:
        parts = [
            pi(_upsample(s, f)) for pi, s, f in zip(self.pis, sources, self.factors, strict=True)
        ]
        return self.phi(torch.cat(parts, dim=1))


class LiteDecoder(nn.Module):
    """Encoder maps (shallow first) -> Z_Fr^1 (N, 8, H, W)."""

    def __init__(self, deep_skip: bool) -> None:
        super().__init__()
        w = level_widths()
        self.deep_skip = deep_skip
        levels = []
        for u in range(LEVELS - 1):  # 0-based level index; decoder level u+1 in paper terms
            deeper = list(range(u + 1, LEVELS - 1)) if deep_skip else []
            widths = [w[u]] + [w[j] for j in deeper] + [w[u + 1]]
            factors = [1] + [2 ** (j - u) for j in deeper] + [2]
            levels.append(DeepSkipLevel(widths, factors, w[u]))
        self.levels = nn.ModuleList(levels)  # levels[u] is decoder level u+1

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]  # Z_Rb^B feeds decoder level B-1
        for u in range(LEVELS - 2, -1, -1):
            deeper = feats[u + 1 : LEVELS - 1] if self.deep_skip else []
            x = self.levels[u]([feats[u], *deeper, x])
        return x


class LiteUNet(nn.Module):
    """(N, in_channels, H, W) -> logits (N, num_classes, H, W); H, W multiples of 16."""

    def __init__(self, num_classes: int, in_channels: int, encoder: str, deep_skip: bool) -> None:
        super().__init__()
        self.encoder = LiteEncoder(in_channels, encoder)
        self.decoder = LiteDecoder(deep_skip)
        self.head = nn.Conv2d(BASE_WIDTH, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(self.encoder(x)))


@register_model(
    "lite-unet",
    paper="Hua Sun 2023 (seed 003)",
    description="5 levels 8..128 maps, 3x3, deep skips; encoder vgg|resnet34",
    multiple=16,
    has_unpool=False,
)
def lite_unet(
    *, num_classes: int, in_channels: int = 3, encoder: str = "vgg", deep_skip: bool = True
) -> LiteUNet:
    """lite-unet; ``encoder`` in {"vgg", "resnet34"}; ``deep_skip=False`` = plain-skip ablation."""
    if encoder not in ENCODERS:
        raise ConfigError(
            f"lite-unet encoder {encoder!r} is unknown; expected one of {', '.join(ENCODERS)}"
        )
    if not isinstance(deep_skip, bool):
        raise ConfigError(f"lite-unet deep_skip must be true or false, got {deep_skip!r}")
    return LiteUNet(num_classes, in_channels, encoder, deep_skip)
