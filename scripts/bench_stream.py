"""Benchmark the streaming runtime (the figures in docs/stream.md).

1. Throughput: lite-unet ONNX (input 368x480, the nearest multiple of 16) on 360x480 frames,
   onnxruntime CPU, synthetic frames read frame by frame (file-like), headless: end-to-end FPS,
   per-stage latency, and the share of wall time spent outside inference (target <= 10 %).
   The bare model (``backend.infer`` in a loop) is timed in the same process for comparison.
2. Live latency: the synthetic source as a live device producing frames faster than the model
   (newest frame kept, the rest dropped) for ``--live-frames`` processed frames: capture ->
   overlay-shown latency per frame, first 100 vs last 100, and a PNG plot of latency per frame.

The model: ``--onnx FILE`` (with its card), or ``--checkpoint`` exported here at 368x480, or by
default a freshly initialised lite-unet (CamVid's 11 classes) saved and exported here — weights
do not change the timings (but make the IoU meaningless, so it is not reported then).

Usage (repository root): ``.venv/bin/python scripts/bench_stream.py --out runs/bench-stream``
Writes OUT/bench_stream.json, OUT/bench_stream.md, OUT/latency.png, OUT/live_stats.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.report import distribution_ms, host_facts
from edgeseg.runtime.sinks import StatsSink
from edgeseg.runtime.sources import SourceOptions, open_source
from edgeseg.runtime.stream import StreamOptions, run_stream

from edgeseg.io import write_json_atomic, write_text_atomic

FRAME_HW = (360, 480)  # CamVid-sized frames
MODEL_HW = (368, 480)  # lite-unet needs multiples of 16: the nearest size covering 360x480


def build_model(out: Path, checkpoint: Path | None, onnx_path: Path | None) -> tuple[Path, str]:
    """The ONNX file to benchmark and where it came from."""
    if onnx_path is not None:
        return onnx_path, f"given ONNX {onnx_path}"
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    origin = f"checkpoint {checkpoint}"
    if checkpoint is None:
        import torch

        from edgeseg.card import ModelCard
        from edgeseg.data.known import CAMVID as CAMVID_INFO
        from edgeseg.models import build_model as build
        from edgeseg.models.checkpoint import save_checkpoint

        torch.manual_seed(0)
        model = build("lite-unet", num_classes=len(CAMVID_INFO.class_names)).eval()
        card = ModelCard("lite-unet", {"num_classes": len(CAMVID_INFO.class_names)},
                         CAMVID_INFO.class_names, CAMVID_INFO.class_colors, MODEL_HW,
                         ignore_index=CAMVID_INFO.ignore_index, unpool_mode="none")
        checkpoint, _ = save_checkpoint(model, card, out / "init")
        origin = "freshly initialised lite-unet (seed 0, 11 classes)"
    path, _ = export_onnx(checkpoint, out / "lite-unet-368x480.onnx", ExportOptions(
        input_hw=MODEL_HW, unpool="native", verify_frames=2, random_inputs=1, threads=2))
    return path, origin


def bare_inference(backend: Any, frames: int) -> list[float]:
    """Seconds per ``backend.infer`` alone on preprocessed synthetic frames (nothing else)."""
    from edgeseg.preprocess import preprocess

    src = open_source("synthetic", SourceOptions(synthetic_hw=FRAME_HW))
    inputs = [preprocess(src.read().frame.image_bgr, backend.card) for _ in range(8)]
    times = []
    for i in range(frames):
        t = time.perf_counter()
        backend.infer(inputs[i % len(inputs)])
        times.append(time.perf_counter() - t)
    return times


def throughput(model: Path, threads: int, frames: int, out: Path, rounds: int = 3) -> dict[str, Any]:
    """Pipeline runs interleaved with bare-model runs (``rounds`` each), so load changes on a
    shared machine hit both alike; stage figures pool the per-frame stats of every round."""
    backend = open_backend(model, threads=threads)
    per = max(1, frames // rounds)
    bare: list[float] = []
    lines: list[dict[str, Any]] = []
    wall, reports = 0.0, []
    for r in range(rounds):
        bare += bare_inference(backend, per)
        stats = out / f"throughput_stats_{r}.jsonl"
        src = open_source("synthetic", SourceOptions(synthetic_hw=FRAME_HW, synthetic_frames=per,
                                                     synthetic_seed=r))
        rep = run_stream(backend, src, [StatsSink(stats)], StreamOptions())
        wall += rep.wall_s
        reports.append(rep.to_dict())
        lines += [json.loads(x) for x in stats.read_text().splitlines()]
    backend.close()
    stages = {k[:-3]: distribution_ms(np.array([x[k] for x in lines]) / 1000.0)
              for k in lines[0] if k.endswith("_ms") and k != "latency_ms"}
    infer_s = sum(x["inference_ms"] for x in lines) / 1000.0
    fps = len(lines) / wall
    bare_fps = len(bare) / sum(bare)
    return {"frames": len(lines), "rounds": rounds, "wall_s": round(wall, 3), "fps": round(fps, 3),
            "outside_inference_share": round(1 - infer_s / wall, 4),
            "overhead_ms_per_frame": round(1000 * (wall - infer_s) / len(lines), 3),
            "stages_ms": stages,
            "latency_ms": distribution_ms(np.array([x["latency_ms"] for x in lines]) / 1e3),
            "bare_model": {"frames": len(bare), "fps": round(bare_fps, 3),
                           "latency_ms": distribution_ms(bare)},
            "pipeline_vs_bare_fps": round(fps / bare_fps, 4), "params": reports[0]["model"]["params"],
            "rounds_detail": [{"fps": r["fps"], "outside_inference_share": r["outside_inference_share"]}
                              for r in reports]}


def stage_speedups(model: Path, reps: int = 50) -> dict[str, Any]:
    """The OpenCV stages vs the plain numpy reference, same inputs, interleaved, one process."""
    from edgeseg.runtime.stages import ArgmaxLabels, Preprocessor

    from edgeseg.card import read_card
    from edgeseg.preprocess import preprocess

    card = read_card(model)
    frame = open_source("synthetic", SourceOptions(synthetic_hw=FRAME_HW)).read().frame.image_bgr
    logits = np.random.default_rng(0).normal(size=(1, card.num_classes, *card.input_hw)).astype(np.float32)
    pairs = {"preprocess": (lambda: preprocess(frame, card), Preprocessor(card), frame),
             "argmax": (lambda: logits[0].argmax(0).astype(np.uint8), ArgmaxLabels(), logits)}
    out = {}
    for name, (ref, fast, x) in pairs.items():
        t_ref, t_fast = [], []
        for _ in range(reps):
            t = time.perf_counter()
            ref()
            t_ref.append(time.perf_counter() - t)
            t = time.perf_counter()
            fast(x)
            t_fast.append(time.perf_counter() - t)
        r, f = float(np.median(t_ref)), float(np.median(t_fast))
        out[name] = {"numpy_ms": round(1000 * r, 3), "opencv_ms": round(1000 * f, 3),
                     "speedup": round(r / f, 2)}
    return out


def live_latency(model: Path, threads: int, frames: int, fps: float, out: Path) -> dict[str, Any]:
    backend = open_backend(model, threads=threads)
    opts = SourceOptions(synthetic_hw=FRAME_HW, synthetic_fps=fps, timeout_s=5.0)
    stats_path = out / "live_stats.jsonl"
    report = run_stream(backend, open_source("synthetic", opts), [StatsSink(stats_path)],
                        StreamOptions(max_frames=frames))
    backend.close()
    return {"source_fps": fps, "report": report.to_dict(), **analyse_live(stats_path)}


def analyse_live(stats_path: Path) -> dict[str, Any]:
    """First-100 vs last-100 latency, its trend, and latency minus inference (what the pipeline
    and the newest-frame slot add: this is what would grow if frames queued up)."""
    lines = [json.loads(x) for x in stats_path.read_text().splitlines()]
    lat = np.array([x["latency_ms"] for x in lines])
    extra = lat - np.array([x["inference_ms"] for x in lines])
    k = min(100, len(lat) // 2)
    idx = np.arange(len(lat))

    def trend(a: np.ndarray) -> float:
        return round(100 * float(np.polyfit(idx, a, 1)[0]), 4) if len(a) > 1 else 0.0

    return {"first_100_ms": distribution_ms(lat[:k] / 1e3), "last_100_ms": distribution_ms(lat[-k:] / 1e3),
            "trend_ms_per_100_frames": trend(lat),
            "non_inference_first_100_ms": distribution_ms(extra[:k] / 1e3),
            "non_inference_last_100_ms": distribution_ms(extra[-k:] / 1e3),
            "non_inference_trend_ms_per_100_frames": trend(extra),
            "latency_ms_per_frame": lat.round(3).tolist(),
            "non_inference_ms_per_frame": extra.round(3).tolist()}


def plot(live: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat, extra = np.array(live["latency_ms_per_frame"]), np.array(live["non_inference_ms_per_frame"])
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    ax.plot(lat, lw=0.6, color="tab:blue", label="capture -> overlay shown")
    ax.plot(extra, lw=0.6, color="tab:green", label="same minus inference (pipeline + waiting)")
    if len(lat) >= 25:
        med = np.convolve(lat, np.ones(25) / 25, mode="valid")
        ax.plot(np.arange(12, 12 + len(med)), med, color="tab:orange", lw=1.5, label="latency, 25-frame mean")
    ax.set_xlabel("processed frame")
    ax.set_ylabel("ms")
    rep = live["report"]
    ax.set_title(f"lite-unet 368x480, onnxruntime CPU, 2 cores shared; live source {live['source_fps']:g} "
                 f"fps\npipeline {rep['fps']:.2f} fps, {rep['dropped']} frames dropped, "
                 f"{rep['frames']} processed", fontsize=10)
    ax.set_ylim(0, max(1.0, float(np.percentile(lat, 99.5)) * 1.2))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(res: dict[str, Any]) -> str:
    t, live = res["throughput"], res["live"]
    rows = [f"| {s} | {d['mean']} | {d['p50']} | {d['p90']} | {d['p99']} |"
            for s, d in t["stages_ms"].items()]
    lr = live["report"]
    return "\n".join([
        "# Streaming runtime benchmark", "",
        f"Model: {res['model_origin']} ({t['params']:,} params), input 368x480, frames 360x480; "
        f"onnxruntime CPU, {res['threads']} threads; host {t['host']['cpu_count']} cores shared with other "
        f"work (1-min load average {t['host']['loadavg_1m']} -> {t['load_end']} during the throughput "
        f"run, {live['host']['loadavg_1m']} -> {live['load_end']} during the live run).", "",
        f"## Throughput ({t['frames']} synthetic frames read one by one, headless, {t['rounds']} rounds "
        "interleaved with bare-model rounds)", "",
        f"- end-to-end: **{t['fps']:.2f} FPS**; bare model (`infer` alone) "
        f"{t['bare_model']['fps']:.2f} FPS; ratio {t['pipeline_vs_bare_fps']:.3f}",
        f"- time outside inference: **{100 * t['outside_inference_share']:.1f} %** of wall time "
        f"({t['overhead_ms_per_frame']:.1f} ms per frame)", "",
        "| stage (ms) | mean | p50 | p90 | p99 |", "|---|---:|---:|---:|---:|", *rows, "",
        "OpenCV stages vs the numpy reference (median of 50, same inputs, interleaved):", "",
        "| stage | numpy ms | OpenCV ms | speedup |", "|---|---:|---:|---:|",
        *[f"| {k} | {v['numpy_ms']} | {v['opencv_ms']} | {v['speedup']}x |" for k, v in res["stages"].items()
          if isinstance(v, dict) and "speedup" in v], "",
        f"## Live source ({live['source_fps']:g} fps, faster than the model), {lr['frames']} frames", "",
        f"- pipeline {lr['fps']:.2f} FPS, {lr['dropped']} frames dropped (newest-frame slot)",
        f"- latency capture -> overlay shown, first 100 frames: mean {live['first_100_ms']['mean']} ms, "
        f"p50 {live['first_100_ms']['p50']}, p90 {live['first_100_ms']['p90']}",
        f"- last 100 frames: mean {live['last_100_ms']['mean']} ms, p50 {live['last_100_ms']['p50']}, "
        f"p90 {live['last_100_ms']['p90']}",
        f"- linear trend over the run: {live['trend_ms_per_100_frames']:+.3f} ms per 100 frames",
        f"- latency minus inference (pipeline + waiting in the newest-frame slot): first 100 mean "
        f"{live['non_inference_first_100_ms']['mean']} ms, last 100 mean "
        f"{live['non_inference_last_100_ms']['mean']} ms, trend "
        f"{live['non_inference_trend_ms_per_100_frames']:+.3f} ms per 100 frames",
        "", "![latency per frame](latency.png)", ""])


def timed_part(fn: Any, *args: Any) -> dict[str, Any]:
    """Run one benchmark part, recording the host load before and after it."""
    host = host_facts()
    res = fn(*args)
    return {**res, "host": host, "load_end": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-stream"))
    ap.add_argument("--onnx", type=Path, default=None, help="benchmark this ONNX file (with its card)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="export this lite-unet checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=300, help="throughput run length (all rounds)")
    ap.add_argument("--live-frames", type=int, default=1000)
    ap.add_argument("--live-fps", type=float, default=None, help="default: 3x the pipeline FPS, >= 30")
    ap.add_argument("--parts", default="stages,throughput,live",
                    help="parts to run; a part left out is read from OUT/<part>.json of an earlier run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    parts = {p.strip() for p in args.parts.split(",")}
    model, origin = build_model(args.out, args.checkpoint, args.onnx)
    print(f"model: {model} ({origin})", flush=True)
    res: dict[str, Any] = {"model": str(model), "model_origin": origin, "threads": args.threads}
    for part in ("stages", "throughput", "live"):
        path = args.out / f"{part}.json"
        if part not in parts:
            if path.exists():
                res[part] = json.loads(path.read_text())
            continue
        if part == "stages":
            res[part] = timed_part(stage_speedups, model)
        elif part == "throughput":
            res[part] = timed_part(throughput, model, args.threads, args.frames, args.out)
        else:
            fps = args.live_fps or max(30.0, round(3 * res["throughput"]["fps"]))
            res[part] = timed_part(live_latency, model, args.threads, args.live_frames, fps, args.out)
        write_json_atomic(path, res[part])
        print(f"{part}: done", flush=True)
    if not all(p in res for p in ("stages", "throughput", "live")):
        t = res.get("throughput")
        if t:
            print(f"throughput {t['fps']:.2f} FPS, {100 * t['outside_inference_share']:.1f} % outside "
                  f"inference, {t['overhead_ms_per_frame']:.1f} ms per frame outside inference")
        print(f"partial run: wrote {', '.join(f'{p}.json' for p in parts)} to {args.out}")
        return
    t, live = res["throughput"], res["live"]
    print(f"throughput {t['fps']:.2f} FPS, {100 * t['outside_inference_share']:.1f} % outside inference; "
          f"live latency first-100 mean {live['first_100_ms']['mean']} ms, last-100 mean "
          f"{live['last_100_ms']['mean']} ms, {live['report']['dropped']} dropped", flush=True)
    write_json_atomic(args.out / "bench_stream.json", res)
    write_text_atomic(args.out / "bench_stream.md", markdown(res))
    plot(live, args.out / "latency.png")
    print(f"wrote {args.out}/bench_stream.json, bench_stream.md, latency.png")


if __name__ == "__main__":
    main()
