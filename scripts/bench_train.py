#!/usr/bin/env python
"""Training throughput (images/s) of edgeseg models on this machine's CPU (or GPU with --device).

One optimizer step = forward + cross-entropy + backward + SGD (momentum 0.9) update on random
normalized inputs and random labels, exactly the work ``edgeseg train`` does per batch minus data
loading and augmentation (measured separately as ``data_images_per_s`` on the synthetic
generator unless --no-data). After ``--warmup`` steps, ``--steps`` steps are timed one by one;
images/s = batch * steps / total time, with the min/median step time alongside. The load
average is recorded before and after because a shared machine makes these numbers noisy.

    .venv/bin/python scripts/bench_train.py --models lite-unet res-segnet --input 360x480 \
        --batch 2 --steps 3 --out runs/bench-train
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def model_hw(name: str, hw: tuple[int, int]) -> tuple[int, int]:
    """``hw`` or, if the model needs multiples of its stride, the next valid size up."""
    from edgeseg.models import get_spec

    m = get_spec(name).multiple
    return (-(-hw[0] // m) * m, -(-hw[1] // m) * m)


def bench_model(name: str, hw: tuple[int, int], batch: int, steps: int, warmup: int, classes: int,
                device: str) -> dict[str, Any]:
    import torch

    from edgeseg.models import build_model

    torch.manual_seed(0)
    model = build_model(name, num_classes=classes).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, *hw, device=device)
    y = torch.randint(0, classes, (batch, *hw), device=device)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {
        "model": name, "input_hw": list(hw), "batch": batch, "steps": steps, "warmup": warmup,
        "images_per_s": batch * steps / sum(times), "step_s_min": min(times),
        "step_s_median": statistics.median(times),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def bench_data(hw: tuple[int, int], n: int) -> float:
    """Images/s of synthetic generation + training augmentation + normalization (one process)."""
    from edgeseg.card import ModelCard
    from edgeseg.data import open_dataset
    from edgeseg.data.augment import train_transform
    from edgeseg.train.data import TorchSegDataset

    ds = open_dataset("synthetic", "train", hw=hw, num=n)
    card = ModelCard("lite-unet", {}, ds.info.class_names, ds.info.class_colors, hw)
    tds = TorchSegDataset(ds, card, train_transform(hw))
    t0 = time.perf_counter()
    for i in range(n):
        tds[(i, i)]
    return n / (time.perf_counter() - t0)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Training throughput", "",
        f"Machine: {m['cpu']}, {m['cores']} cores visible, torch {m['torch']} with {m['threads']} "
        f"threads, device {m['device']}. Load average before/after: {m['load_before']} / "
        f"{m['load_after']} (shared machine: numbers are noisy, compare within one run only).", "",
        "| model | input | batch | images/s | step s (median) | step s (min) | params |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["models"]:
        lines.append(f"| {r['model']} | {r['input_hw'][0]}x{r['input_hw'][1]} | {r['batch']} | "
                     f"{r['images_per_s']:.3f} | {r['step_s_median']:.2f} | {r['step_s_min']:.2f} | "
                     f"{r['parameters']:,} |")
    if result.get("data_images_per_s"):
        lines += ["", f"Data pipeline (synthetic scenes + augmentation + normalization, one process): "
                      f"{result['data_images_per_s']:.1f} images/s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lite-unet", "res-segnet"])
    ap.add_argument("--input", default="360x480", help="HxW; models needing multiples of 16 round up")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--classes", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--no-data", action="store_true", help="skip the data-pipeline measurement")
    ap.add_argument("--out", default="runs/bench-train", help="report stem (STEM.json + STEM.md)")
    args = ap.parse_args()

    import torch

    from edgeseg.models.registry import parse_hw
    from edgeseg.report import write_report

    torch.set_num_threads(args.threads)
    hw = parse_hw(args.input)
    load_before = os.getloadavg()
    rows = []
    for name in args.models:
        size = model_hw(name, hw)
        print(f"{name} at {size[0]}x{size[1]}, batch {args.batch}: "
              f"{args.warmup} warm-up + {args.steps} steps")
        rows.append(bench_model(name, size, args.batch, args.steps, args.warmup, args.classes, args.device))
        print(f"  {rows[-1]['images_per_s']:.3f} images/s (median step {rows[-1]['step_s_median']:.2f} s)")
    data_rate = None if args.no_data else bench_data(hw, 16)
    result = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": args.device,
                    "load_before": [round(v, 2) for v in load_before],
                    "load_after": [round(v, 2) for v in os.getloadavg()]},
        "models": rows, "data_images_per_s": data_rate,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = write_report(Path(args.out), result, markdown(result))
    print(markdown(result))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
