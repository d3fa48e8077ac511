#!/usr/bin/env python
"""Data-parallel training throughput: ``edgeseg train`` in 1 process vs N processes, one run each.

Both runs train the same model on the same synthetic data with the same global batch for one
epoch; images/s is the run's own ``train_images_per_s`` (global batch x steps / training
seconds, data loading included, validation excluded) from ``log.json``. On the CPU the N
processes get ``--threads 1`` each and the single process is run twice, with ``--threads N``
(the same cores) and with ``--threads 1``; the ratio is taken against the faster of the two. On
CUDA each process drives one GPU. The ratio is taken within one invocation; the load average
is recorded before and after because a shared machine makes the numbers noisy.

    .venv/bin/python scripts/bench_train_ddp.py --nproc 2 --input 64x64 --batch 8 \\
        --synthetic-num 128 --out runs/bench-ddp
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def one_run(nproc: int, threads: int | None, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "edgeseg", "train", "--model", args.model, "--data", "synthetic",
           "--input", args.input, "--batch", str(args.batch), "--synthetic-num", str(args.synthetic_num),
           "--epochs", "1", "--device", args.device, "--checkpoint-every", "0", "--out", str(folder)]
    if threads:
        cmd += ["--threads", str(threads)]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    log = json.loads((folder / "log.json").read_text())
    row = log["epochs"][0]
    return {"processes": nproc, "threads_per_process": threads, "steps": row["step"],
            "train_seconds": row["epoch_seconds"], "images_per_s": row["train_images_per_s"],
            "wall_seconds_incl_startup_and_validation": round(wall, 1), "command": " ".join(cmd[1:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--model", default="lite-unet")
    ap.add_argument("--input", default="64x64")
    ap.add_argument("--batch", type=int, default=8, help="global batch (same for both runs)")
    ap.add_argument("--synthetic-num", type=int, default=128)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", type=Path, default=Path("runs/bench-ddp"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        plan = [(1, args.nproc), (1, 1), (args.nproc, 1)] if args.device == "cpu" else \
            [(1, None), (args.nproc, None)]
        runs = [one_run(n, t, args, Path(tmp) / f"p{n}t{t}") for n, t in plan]
    load_after = os.getloadavg()
    ratio = runs[-1]["images_per_s"] / max(r["images_per_s"] for r in runs[:-1])
    result = {"model": args.model, "input": args.input, "global_batch": args.batch, "device": args.device,
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "date_utc":
              time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "load_avg_before": load_before,
              "load_avg_after": load_after, "runs": runs, f"ratio_{args.nproc}_vs_1": round(ratio, 3)}
    from edgeseg.io import write_json_atomic, write_text_atomic

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(f"{args.out}.json", result)
    lines = ["| processes | threads each | images/s | train s | steps |", "|---|---|---|---|---|"]
    lines += [f"| {r['processes']} | {r['threads_per_process'] or '-'} | {r['images_per_s']:.2f} | "
              f"{r['train_seconds']:.1f} | {r['steps']} |" for r in runs]
    md = (f"# {args.model} {args.input}, global batch {args.batch}, {args.device}\n\n" + "\n".join(lines)
          + f"\n\nratio {args.nproc} processes vs the faster single process: {ratio:.2f}x; "
          f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}\n")
    write_text_atomic(f"{args.out}.md", md)
    print(md)


if __name__ == "__main__":
    main()
