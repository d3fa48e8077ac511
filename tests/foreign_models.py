"""Segmentation models edgeseg did not write: plain torch modules exported by plain
``torch.onnx.export`` in the I/O forms other toolkits use (test helper, not part of the package)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TinySeg(nn.Module):
    """(N,3,H,W) float -> logits (N,K,H/stride,W/stride); a 3-conv encoder, bilinear head when
    ``upsample`` (torchvision-style), otherwise the low-resolution logits (DeepLab/LRASPP-style)."""

    def __init__(self, classes: int = 2, width: int = 8, stride: int = 1, upsample: bool = True,
                 refine: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=stride, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, classes, 1)
        self.aux = nn.Conv2d(width, classes, 1)
        self.upsample = upsample and stride > 1
        self.refine = nn.Conv2d(classes, classes, 3, padding=1) if refine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x))
        if self.upsample:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y if self.refine is None else self.refine(y)


class Wrapped(nn.Module):
    """I/O variants around TinySeg: ``uint8_nhwc`` input (normalizes in the graph, like TF/MMDeploy
    end-to-end exports), ``labels`` output (argmax in the graph), ``nhwc_out`` logits, ``aux``
    second output (torchvision's dict of out + aux)."""

    def __init__(self, net: TinySeg, *, uint8_nhwc: bool = False, labels: bool = False,
                 nhwc_out: bool = False, aux: bool = False) -> None:
        super().__init__()
        self.net, self.uint8_nhwc, self.labels = net, uint8_nhwc, labels
        self.nhwc_out, self.aux = nhwc_out, aux
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.uint8_nhwc:
            x = (x.permute(0, 3, 1, 2).float() - self.mean) / self.std
        y = self.net(x)
        if self.labels:
            return y.argmax(1)
        if self.nhwc_out:
            y = y.permute(0, 2, 3, 1)
        if self.aux:
            return y, self.net.aux(self.net.body(x))
        return y


def warmed(net: nn.Module, hw: tuple[int, int], seed: int = 0) -> nn.Module:
    """BatchNorm statistics from noise, so random-init logits are not degenerate; eval mode."""
    torch.manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(2, 3, *hw))
    return net.eval()


def export(model: nn.Module, path: Path, example: torch.Tensor, *, dynamic_hw: bool = False,
           outputs: tuple[str, ...] = ("out",), opset: int = 17) -> Path:
    """Plain ``torch.onnx.export`` (TorchScript exporter, as most toolkits still call it)."""
    axes = None
    if dynamic_hw:
        axes = {"image": {0: "n", 2: "h", 3: "w"}, **{o: {0: "n"} for o in outputs}}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=list(outputs), dynamic_axes=axes)
    path.write_bytes(buf.getvalue())
    return path


class UserSegNet(nn.Module):
    """A user's own SegNet-style model: ``nn.MaxPool2d(return_indices=True)`` + ``nn.MaxUnpool2d``
    and one functional ``F.max_unpool2d``; ``unpool_kernel`` != 2 makes an unpool edgeseg refuses."""

    def __init__(self, num_classes: int = 3, width: int = 8, unpool_kernel: int = 2) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.mid = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.unpool = nn.MaxUnpool2d(unpool_kernel, 2)
        self.dec = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = self.enc1(x)
        p1, i1 = self.pool(a)
        b = self.enc2(p1)
        p2, i2 = F.max_pool2d(b, 2, 2, return_indices=True)
        y = self.mid(p2)
        y = F.max_unpool2d(y, i2, 2, 2, output_size=b.shape[-2:])
        y = self.dec(self.unpool(y, i1, output_size=a.shape[-2:]))
        return {"out": self.head(y), "aux": y}


def build_user_segnet(num_classes: int = 3, width: int = 8, unpool_kernel: int = 2) -> UserSegNet:
    """Factory for ``edgeseg export --module foreign_models:build_user_segnet``."""
    return UserSegNet(num_classes, width, unpool_kernel)


def not_a_module(**_: object) -> str:
    return "not a model"
