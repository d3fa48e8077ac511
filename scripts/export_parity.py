"""Export parity table: every model x unpool mode, PyTorch vs onnxruntime on 20 CamVid val frames.

Each model is random-initialised (seed 0, BatchNorm statistics warmed on noise so the logits are
not degenerate), saved as an edgeseg checkpoint and exported with ``export_onnx`` exactly as
``edgeseg export`` does; the figures are the ones ``export_onnx`` measures and writes into the
card (argmax agreement, max and mean abs logit difference on random inputs and on the frames).
Without ../shared/datasets/camvid the synthetic scenes are used.

    .venv/bin/python scripts/export_parity.py --input 360x480 --frames 20 --out export_parity
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = [("segnet", "native"), ("segnet", "plugin"), ("segnet-basic", "native"),
         ("segnet-basic", "plugin"), ("res-segnet", "native"), ("res-segnet", "plugin"),
         ("unet", "native"), ("lite-unet", "native"), ("enet", "native"), ("enet", "plugin")]


def make_checkpoint(folder: Path, name: str, hw: tuple[int, int]) -> Path:
    import torch

    from edgeseg.card import ModelCard
    from edgeseg.models.checkpoint import save_checkpoint
    from edgeseg.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(name, num_classes=11).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, *hw))
    card = ModelCard(architecture=name, arch_args={"num_classes": 11},
                     class_names=tuple(f"c{i}" for i in range(11)),
                     class_colors=tuple((i, 2 * i, 3 * i) for i in range(11)), input_hw=hw,
                     ignore_index=11)
    return save_checkpoint(model.eval(), card, folder / name)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default="360x480")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="dataset (default: ../shared/datasets/camvid)")
    ap.add_argument("--out", default="export_parity", help="report stem (.json + .md)")
    ap.add_argument("--models", default=None, help="comma-separated subset (default: all six)")
    args = ap.parse_args()
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    from edgeseg.models.registry import get_spec, parse_hw
    from edgeseg.report import write_report

    hw = parse_hw(args.input)
    camvid = REPO.parent / "shared" / "datasets" / "camvid"
    data = args.data or (str(camvid) if camvid.is_dir() else "synthetic")
    md = [f"inputs: {data} (val), {args.frames} frames at {hw[0]}x{hw[1]}; random: 2 N(0,1) tensors", "",
          "| model | input | unpool | frames: argmax agreement | frames: max abs diff "
          "| frames: mean abs diff | random: agreement | random: max abs diff | export s |",
          "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wanted = args.models.split(",") if args.models else None
        for name, mode in CASES:
            if wanted is not None and name not in wanted:
                continue
            m = get_spec(name).multiple  # UNets need multiples of 16: 360x480 -> 368x480
            size = (-(-hw[0] // m) * m, -(-hw[1] // m) * m)
            ckpt = make_checkpoint(Path(tmp), name, size)
            t0 = time.perf_counter()
            _, card = export_onnx(ckpt, Path(tmp) / f"{name}-{mode}.onnx", ExportOptions(
                unpool=mode, data=data, verify_frames=args.frames, threads=args.threads, min_agreement=0.0))
            rand, frames = card.extra["export"]["verification"]
            rows.append({"model": name, "input_hw": list(size), "unpool": card.unpool_mode,
                         "random": rand, "frames": frames, "seconds": time.perf_counter() - t0})
            md.append(f"| {name} | {size[0]}x{size[1]} | {card.unpool_mode} | "
                      f"{100 * frames['argmax_agreement']:.4f} % | "
                      f"{frames['max_abs_diff']:.1e} | {frames['mean_abs_diff']:.1e} | "
                      f"{100 * rand['argmax_agreement']:.4f} % | {rand['max_abs_diff']:.1e} | "
                      f"{rows[-1]['seconds']:.0f} |")
            print(md[-1], flush=True)
    write_report(Path(args.out), {"input_hw": list(hw), "data": data, "rows": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
