"""Benchmark issue 16 on a live source: FPS, capture -> shown latency and dropped frames.

The shipped demo model (96x128, onnxruntime CPU) streams a live synthetic source (360x480, newest
frame only, frames the model cannot take are dropped and counted) at each ``--fps`` rate, three
ways, interleaved round by round in ONE process:

* ``sequential 1x2``  — ``--no-pipeline --threads 2``: every stage one after another
* ``pipelined 1x2``   — ``--threads 2`` (the default loop)
* ``workers 2x1t``    — ``--infer-workers 2 --threads 1``: two frames in the model at once

Reported per rate and variant: the median over rounds of FPS, latency p50 / p90 and the share of
produced frames dropped. File sources read ahead (their latency includes queueing); a live source
is read only when the model can take the frame, so this is the latency a camera user sees.

Usage: ``.venv/bin/python scripts/bench_live_latency.py --out runs/bench-live [--fps 60,120]``
Writes OUT/bench_live_latency.json and OUT/bench_live_latency.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.report import host_facts
from edgeseg.runtime.sources import SourceOptions, open_source
from edgeseg.runtime.stream import StreamOptions, run_stream

from edgeseg.io import write_json_atomic, write_text_atomic

DEMO = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "demo-lite-unet.onnx"
FRAME_HW = (360, 480)
# variant -> (onnxruntime threads per run, stream options except the frame limit)
VARIANTS: dict[str, tuple[int, dict[str, Any]]] = {
    "sequential 1x2": (2, {"pipelined": False}),
    "pipelined 1x2": (2, {}),
    "workers 2x1t": (1, {"infer_workers": 2}),
}


def run_rate(backends: dict[int, Any], fps: float, rounds: int, frames: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[Any]] = {v: [] for v in VARIANTS}
    order = list(VARIANTS)
    for r in range(rounds):
        for v in order[r % len(order):] + order[:r % len(order)]:  # rotated: no variant always first
            threads, extra = VARIANTS[v]
            src = open_source("synthetic", SourceOptions(synthetic_hw=FRAME_HW, synthetic_fps=fps))
            runs[v].append(run_stream(backends[threads], src, [], StreamOptions(max_frames=frames, **extra)))
        print(f"{fps:g} FPS: round {r + 1}/{rounds} done", flush=True)

    def med(xs: list[float]) -> float:
        return round(float(statistics.median(xs)), 3)

    return {v: {"fps": med([rep.fps for rep in reps]),
                "latency_p50_ms": med([rep.latency_ms["p50"] for rep in reps]),
                "latency_p90_ms": med([rep.latency_ms["p90"] for rep in reps]),
                "dropped_share": med([rep.dropped / max(1, rep.source["produced"]) for rep in reps])}
            for v, reps in runs.items()}


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Live source: latency and drops", "",
             f"demo model, onnxruntime CPU; live synthetic 360x480 source; {res['rounds']} interleaved "
             f"rounds of {res['frames']} frames; {res['host']['cpu_count']} cores; {res['date']}.", "",
             "| source FPS | variant | FPS | latency p50 ms | latency p90 ms | dropped |",
             "|---:|---|---:|---:|---:|---:|"]
    for fps, variants in res["rates"].items():
        for v, d in variants.items():
            lines.append(f"| {fps} | {v} | {d['fps']:.1f} | {d['latency_p50_ms']:.1f} | "
                         f"{d['latency_p90_ms']:.1f} | {100 * d['dropped_share']:.1f} % |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-live"))
    ap.add_argument("--fps", default="60,120", help="comma-separated live source rates")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--frames", type=int, default=150, help="frames per variant per round")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    backends = {t: open_backend(DEMO, threads=t) for t in (1, 2)}
    res: dict[str, Any] = {"rounds": args.rounds, "frames": args.frames, "host": host_facts(),
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rates": {}}
    for fps in (float(x) for x in args.fps.split(",")):
        res["rates"][f"{fps:g}"] = run_rate(backends, fps, args.rounds, args.frames)
    for b in backends.values():
        b.close()
    write_json_atomic(args.out / "bench_live_latency.json", res)
    write_text_atomic(args.out / "bench_live_latency.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
