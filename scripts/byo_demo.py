"""Bring your own model, end to end (docs/own-model.md): a segmentation net edgeseg did not write.

1. A plain torch module (defined here, no edgeseg code), trained with a plain torch loop on
   DSB2018 train (nuclei vs background) at a small size, exported with plain
   ``torch.onnx.export`` with dynamic batch/height/width (as most exports are).
2. Then only the edgeseg CLI: import -> calib-set -> calibrate -> convert-fp16 ->
   precision-report -> stream -> bench, each command printed before it runs.

    .venv/bin/python scripts/byo_demo.py --data ../shared/datasets/dsb2018 --input 64x64 \
        --epochs 6 --out runs/byo-demo
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class NucleiNet(nn.Module):
    """A small encoder-decoder: two stride-2 stages, a dilated context conv, bilinear upsampling
    with a skip from full resolution, 2 logits. (N,3,H,W) -> (N,2,H,W); H, W multiples of 4."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def block(a: int, b: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
            conv = nn.Conv2d(a, b, 3, stride, padding=dilation, dilation=dilation, bias=False)
            return nn.Sequential(conv, nn.BatchNorm2d(b), nn.ReLU(inplace=True))

        self.stem = block(3, width)
        self.down1 = block(width, 2 * width, stride=2)
        self.down2 = block(2 * width, 4 * width, stride=2)
        self.context = block(4 * width, 4 * width, dilation=2)
        self.fuse = block(4 * width + width, width)
        self.classifier = nn.Conv2d(width, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        y = self.context(self.down2(self.down1(s)))
        y = F.interpolate(y, size=s.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([y, s], 1)))


def load_split(root: Path, split: str, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(N,3,H,W) normalized float32 images (RGB, ImageNet mean/std), (N,H,W) int64 labels 0/1."""
    xs, ys = [], []
    for line in (root / f"{split}.txt").read_text().split("\n"):
        if not line.strip():
            continue
        img_rel, mask_rel = line.split()
        img = cv2.resize(cv2.imread(str(root / img_rel), cv2.IMREAD_COLOR), hw[::-1],
                         interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(cv2.imread(str(root / mask_rel), cv2.IMREAD_GRAYSCALE), hw[::-1],
                          interpolation=cv2.INTER_NEAREST)
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        xs.append(((rgb - MEAN) / STD).transpose(2, 0, 1))
        ys.append((mask > 127).astype(np.int64))
    return np.stack(xs), np.stack(ys)


def train(root: Path, hw: tuple[int, int], epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    x, y = load_split(root, "train", hw)
    model = NucleiNet()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    weight = torch.tensor([1.0, 3.0])  # nuclei are ~11 % of the pixels
    steps = epochs * (len(x) // 16)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(x))
        total = 0.0
        for i in range(0, len(order) - 15, 16):
            idx = order[i:i + 16]
            xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
            if np.random.default_rng(seed * 1000 + epoch * 100 + i).random() < 0.5:
                xb, yb = xb.flip(-1), yb.flip(-1)
            loss = F.cross_entropy(model(xb), yb, weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    return model.eval()


def export(model: nn.Module, path: Path, hw: tuple[int, int]) -> None:
    """Plain torch.onnx.export, dynamic batch/height/width (TorchScript exporter, opset 17)."""
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(1, 3, *hw),), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["logits"], dynamic_axes=axes)


def run(*args: str) -> None:
    print("\n$ " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/datasets/dsb2018")
    ap.add_argument("--input", default="64x64")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calib-num", type=int, default=64)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", default="runs/byo-demo")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.input.split("x"))
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "nuclei.onnx"
    if not onnx_path.is_file():
        export(train(data, (h, w), args.epochs, args.seed), onnx_path, (h, w))
    es = str(Path(sys.executable).with_name("edgeseg"))
    model = str(out / "nuclei.edgeseg.onnx")  # dynamic H/W: import writes a fixed-size copy
    t = str(args.threads)
    run(es, "import", str(onnx_path), "--input", args.input, "--data", str(data))
    run(es, "calib-set", str(data), "--model", model, "--num", str(args.calib_num),
        "-o", str(out / "calib.json"))
    run(es, "calibrate", model, "--set", str(out / "calib.json"), "--method", "entropy",
        "-o", str(out / "nuclei.edgeseg.int8.onnx"))
    run(es, "convert-fp16", model, "-o", str(out / "nuclei.edgeseg.fp16.onnx"))
    run(es, "precision-report", model, str(out / "nuclei.edgeseg.fp16.onnx"),
        str(out / "nuclei.edgeseg.int8.onnx"), "--data", str(data), "--threads", t,
        "-o", str(out / "precision"))
    run(es, "stream", model, "--source", str(data / "images"), "--masks", str(data / "masks"),
        "--max-frames", "64", "--threads", t, "--headless", "--quiet", "--report", str(out / "stream.json"))
    run(es, "bench", model, "--backends", "torch,ort,ort-fp16,ort-int8", "--data", str(data), "--iters",
        str(args.iters), "--threads", t, "--interleave", "--out", str(out / "bench"))


if __name__ == "__main__":
    main()
