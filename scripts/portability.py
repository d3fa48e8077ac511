"""Portability table: every ONNX artifact edgeseg writes for a checkpoint, in every stock tool.

For each checkpoint: the files its commands write at ``--input`` (``edgeseg export`` native and,
for unpool models, plugin; ``convert-fp16``; ``calibrate`` with the TensorRT and the full Q/DQ
placement, min/max on 16 training images of ``--data``), each loaded and run by onnxruntime,
OpenVINO (CPU, its default inference precision), OpenCV DNN and Polygraphy's onnxruntime runner
(tests/_portability.py, the helper of tests/test_portability.py). Argmax agreement is measured
against the PyTorch checkpoint on ``--frames`` validation images of ``--data``.

    .venv/bin/python scripts/portability.py RUN/best/model.safetensors [...] --data DATA \\
        --input 64x64 --frames 16 -o docs/figures/portability

Writes OUT.json and OUT.md; model files go to OUT.artifacts/.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tool runners are the test tier's own helper


def reference(checkpoint: Path, data: str, frames: int, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(N,3,H,W) preprocessed validation frames and the PyTorch argmax (N,H,W) at ``hw``."""
    import torch

    from edgeseg.data import open_dataset
    from edgeseg.models.checkpoint import load_checkpoint
    from edgeseg.preprocess import preprocess

    model, card = load_checkpoint(checkpoint)
    card = card.replace(input_hw=hw)
    ds = open_dataset(data, "val")
    x = np.concatenate([preprocess(ds[i].image_bgr, card) for i in range(min(frames, len(ds)))])
    with torch.inference_mode():
        return x, model(torch.from_numpy(x)).argmax(1).numpy()


def short_error(error: str, custom_ops: list[str]) -> str:
    """A table-sized error: the custom op the tool names, else the error's first 160 characters."""
    named = [op for op in custom_ops if op in error]
    text = f"refuses the custom node {', '.join(named)}" if named else error[:160]
    return text.replace("|", "\\|")


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["# Portability: edgeseg's ONNX artifacts in stock third-party tools", "",
             f"`{meta['command']}`", "",
             f"{meta['date']}, {meta['machine']}; {meta['frames']} {meta['data']} val images at "
             f"{meta['input']}; agreement = share of pixels whose argmax equals the PyTorch checkpoint's.",
             "", "| model | artifact | tool | version | loads | runs | argmax agreement | note |",
             "|---|---|---|---|---|---|---:|---|"]
    for r in rows:
        agree = "-" if r["agreement"] is None else f"{100 * r['agreement']:.2f} %"
        note = r["note"] or ""
        if r["error"]:
            note = (note + "; " if note else "") + short_error(r["error"], r.get("custom_ops", []))
        lines.append(f"| {r['model']} | {r['artifact']} | {r['tool']} | {r['version']} | "
                     f"{'yes' if r['loads'] else 'no'} | {'yes' if r['runs'] else 'no'} | {agree} | {note} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import onnx
    from _portability import check_file, make_artifacts
    from edgeseg.runtime.bench.machine import cpu_model

    from edgeseg.card import read_card
    from edgeseg.models.registry import parse_hw
    from edgeseg.report import write_report

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--data", required=True, help="labelled dataset (calibration: train, frames: val)")
    ap.add_argument("--input", default="64x64")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("-o", "--out", type=Path, default=Path("portability"))
    args = ap.parse_args()
    hw = parse_hw(args.input)
    rows: list[dict[str, Any]] = []
    for ckpt in args.checkpoints:
        arch = read_card(ckpt).architecture
        folder = args.out.with_name(args.out.name + ".artifacts") / arch
        artifacts = make_artifacts(ckpt, folder, hw, args.data, log=lambda m, a=arch: print(f"{a}: {m}"))
        x, ref = reference(ckpt, args.data, args.frames, hw)
        for kind, path in artifacts.items():
            nodes = onnx.load(str(path)).graph.node
            custom = sorted({n.op_type for n in nodes if n.domain not in ("", "ai.onnx")})
            for r in check_file(path, x, ref):
                print(f"{arch} {kind} {r.tool}: loads {r.loads} runs {r.runs} agreement {r.agreement}")
                rows.append({"model": arch, "artifact": kind, "file": str(path), "custom_ops": custom,
                             **r.to_dict()})
    meta = {"command": " ".join(["python", "scripts/portability.py", *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{cpu_model()} ({platform.machine()})", "data": args.data, "frames": args.frames,
            "input": args.input}
    for p in write_report(args.out, {**meta, "rows": rows}, markdown(rows, meta)):
        print(f"wrote {p}")


if __name__ == "__main__":
    main()
