"""Benchmark issue 16: the pipelined loop and argmax / preprocessing inside the graph.

For each model (the shipped demo, 96x128, 5 classes; lite-unet at 368x480, CamVid's 11 classes,
freshly initialised — weights do not change timings) on 360x480 synthetic frames read one by one
(file-like, nothing dropped), onnxruntime CPU, headless, in ONE process with the variants
interleaved round by round (so load from other work hits all alike):

* ``bare``       — ``backend.infer`` alone on preprocessed frames (the model's speed)
* ``sequential`` — ``run_stream`` with ``pipelined=False`` (``--no-pipeline``): the loop before
  issue 16, every stage one after another on one thread
* ``pipelined``  — ``run_stream`` (capture+preprocess / inference / post on their own threads;
  OpenCV held to 1 thread while it runs, the default)
* ``pipelined cvdef`` — the same with OpenCV's own thread count (``opencv_threads=None``, as
  before ``--opencv-threads``)
* ``argmax``     — ``run_stream`` on the file from ``edgeseg deploy`` (argmax in the graph)
* ``argmax+pre`` — ``run_stream`` on ``edgeseg deploy --frame-size 360x480`` (both in the graph)
* ``bare 2x1t``  — two threads calling ``infer`` at once on a 1-thread session (``--threads 1``):
  the model's throughput when two frames run concurrently, the baseline for the next one
* ``workers 2x1t`` — ``run_stream`` with ``infer_workers=2`` on that 1-thread session
  (``edgeseg stream --infer-workers 2 --threads 1``)

Ratios are given against ``bare`` (one call at a time, ``--threads`` threads: what ``edgeseg bench``
reports) and, for the two 2x1t variants, also against ``bare 2x1t`` (``fps_vs_bare_2x1t``).

Reported per variant: FPS, FPS / bare FPS (median over rounds of the ratio within a round, and
of the totals), CPU milliseconds per frame (the process's CPU time, all threads: what the frame
costs the cores), the median capture -> shown latency (streams), bytes copied out of the model per
frame, host
milliseconds per frame in the stages other than inference (summed stage times: the host work) and
wall milliseconds per frame not covered by inference (what the loop adds). Plus: labels from the
in-graph argmax vs the host argmax on 100 frames, and in-graph vs host preprocessing max |diff|.

Usage: ``.venv/bin/python scripts/bench_pipeline.py --out runs/bench-pipeline [--rounds 12 --frames 25]``
Writes OUT/bench_pipeline.json and OUT/bench_pipeline.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.export.deploy_graph import deploy_onnx, preprocess_model
from edgeseg.export.options import DeployOptions
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.report import host_facts
from edgeseg.runtime.sources import SourceOptions, open_source
from edgeseg.runtime.stages import ArgmaxLabels
from edgeseg.runtime.stream import StreamOptions, run_stream

from edgeseg.io import write_json_atomic, write_text_atomic
from edgeseg.preprocess import preprocess

FRAME_HW = (360, 480)
DEMO = Path(__file__).resolve().parents[1] / "edgeseg" / "assets" / "demo-lite-unet.onnx"
# variant -> (how it runs, which file)
VARIANTS: dict[str, tuple[str, str]] = {
    "bare": ("bare", "logits"),
    "sequential": ("sequential", "logits"),
    "pipelined": ("pipelined", "logits"),
    "pipelined cvdef": ("cvdef", "logits"),
    "argmax": ("pipelined", "labels"),
    "argmax+pre": ("pipelined", "framed"),
    "bare 2x1t": ("bare2", "logits"),
    "workers 2x1t": ("workers2", "logits"),
}
ONE_THREAD = ("bare 2x1t", "workers 2x1t")  # these run on a 1-thread session
now = time.perf_counter


def lite_unet(out: Path) -> Path:
    """lite-unet 368x480 (nearest multiple of 16 covering 360x480), exported here (needs torch)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_stream", Path(__file__).with_name("bench_stream.py"))
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    path = out / "lite-unet-368x480.onnx"
    return path if path.is_file() else mod.build_model(out, None, None)[0]


def source(frames: int, seed: int) -> Any:
    return open_source("synthetic", SourceOptions(synthetic_hw=FRAME_HW, synthetic_frames=frames,
                                                  synthetic_seed=seed))


def bare(backend: Any, frames: int) -> dict[str, float]:
    src = source(8, 99)
    inputs = [preprocess(src.read().frame.image_bgr, backend.card) for _ in range(8)]
    t0, infer, cpu = now(), 0.0, time.process_time()
    for i in range(frames):
        t = now()
        out = backend.infer(inputs[i % 8])
        infer += now() - t
    wall, cpu = now() - t0, time.process_time() - cpu
    return {"frames": frames, "wall_s": wall, "infer_s": infer, "host_s": 0.0, "out_bytes": out.nbytes,
            "cpu_s": cpu}


def bare_concurrent(backend: Any, frames: int, workers: int = 2) -> dict[str, float]:
    """``workers`` threads calling ``infer`` at once, ``frames`` calls in all (the inference time is
    the sum of the calls' own times)."""
    import threading

    src = source(8, 99)
    inputs = [preprocess(src.read().frame.image_bgr, backend.card) for _ in range(8)]
    spent = [0.0] * workers
    outs: list[Any] = [None] * workers

    def run(w: int) -> None:
        for i in range(w, frames, workers):
            t = now()
            outs[w] = backend.infer(inputs[i % 8])
            spent[w] += now() - t

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    t0, cpu = now(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = now() - t0, time.process_time() - cpu
    return {"frames": frames, "wall_s": wall, "infer_s": sum(spent), "host_s": 0.0,
            "out_bytes": outs[0].nbytes, "cpu_s": cpu, "workers": workers}


def streamed(backend: Any, frames: int, seed: int, pipelined: bool = True,
             workers: int = 1, cv_threads: int | None = 1) -> dict[str, float]:
    """``run_stream`` headless; host time = the mean stage times other than capture and inference."""
    cpu = time.process_time()  # CPU time of every thread of this process (the loop's and onnxruntime's)
    opts = StreamOptions(pipelined=pipelined, infer_workers=workers, opencv_threads=cv_threads)
    rep = run_stream(backend, source(frames, seed), [], opts)
    cpu = time.process_time() - cpu
    mean = {k: v["mean"] or 0.0 for k, v in rep.stages_ms.items()}
    host = sum(v for k, v in mean.items() if k not in ("inference", "capture_wait"))
    out = backend.infer(np.zeros((1, *backend.card.frame_hw, 3), np.uint8) if backend.card.frame_hw else
                        np.zeros((1, 3, *backend.card.input_hw), np.float32))
    return {"frames": rep.frames, "wall_s": rep.wall_s, "infer_s": mean["inference"] * rep.frames / 1e3,
            "host_s": host * rep.frames / 1e3, "out_bytes": out.nbytes, "cpu_s": cpu, "workers": workers,
            "latency_p50_ms": rep.latency_ms["p50"]}


def checks(logits: Path, labels: Path, framed: Path, frames: int = 100) -> dict[str, Any]:
    """In-graph argmax vs host argmax (labels equal?), in-graph vs host preprocessing (max |diff|)."""
    import onnxruntime as ort

    b_logits, b_labels = open_backend(logits, threads=2), open_backend(labels, threads=2)
    card = b_logits.card
    pre_graph = ort.InferenceSession(preprocess_model(card, FRAME_HW).SerializeToString(),
                                     providers=["CPUExecutionProvider"])
    b_framed = open_backend(framed, threads=2)
    argmax, src = ArgmaxLabels(), source(frames, 123)
    same_frames, same_px, px, diff, framed_px = 0, 0, 0, 0.0, 0
    for _ in range(frames):
        image = src.read().frame.image_bgr
        x = preprocess(image, card)
        host = argmax(b_logits.infer(x)).copy()
        graph = b_labels.infer(x)[0]
        same_frames += bool((host == graph).all())
        same_px, px = same_px + int((host == graph).sum()), px + host.size
        diff = max(diff, float(np.abs(pre_graph.run(None, {"frame": image[None]})[0] - x).max()))
        framed_px += int((b_framed.infer(image[None])[0] == host).sum())
    return {"frames": frames, "argmax_identical_frames": same_frames, "argmax_identical_pixels": same_px / px,
            "preprocess_max_abs_diff": diff,
            "preprocess_max_diff_grey_levels": diff * 255 * max(card.std),
            "argmax_pre_vs_host_pixels": framed_px / px}


def bench_model(name: str, logits: Path, out: Path, rounds: int, frames: int, threads: int) -> dict[str, Any]:
    labels, _ = deploy_onnx(logits, out / f"{name}.labels.onnx", DeployOptions(argmax=True))
    framed, _ = deploy_onnx(logits, out / f"{name}.frame.onnx", DeployOptions(argmax=True, frame_hw=FRAME_HW))
    files = {"logits": logits, "labels": labels, "framed": framed}
    backends = {v: open_backend(files[f], threads=1 if v in ONE_THREAD else threads)
                for v, (_, f) in VARIANTS.items()}
    for b in backends.values():  # warm-up
        bare(b, 3) if b.card.frame_hw is None else b.infer(np.zeros((1, *FRAME_HW, 3), np.uint8))
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    load = [os.getloadavg()[0]]
    order = list(backends)
    for r in range(rounds):
        for v in order[r % len(order):] + order[:r % len(order)]:  # rotated: no variant always first
            how, b = VARIANTS[v][0], backends[v]
            runs[v].append(bare(b, frames) if how == "bare" else bare_concurrent(b, frames) if how == "bare2"
                           else streamed(b, frames, r, how != "sequential", 2 if how == "workers2" else 1,
                                         None if how == "cvdef" else 1))
        print(f"{name}: round {r + 1}/{rounds} done", flush=True)
    load.append(os.getloadavg()[0])
    for b in backends.values():
        b.close()
    res = {v: summarize(rs) for v, rs in runs.items()}
    for v in VARIANTS:  # the load changes from round to round: each round's ratio, then the median
        ratios = [f / b for f, b in zip(res[v]["round_fps"], res["bare"]["round_fps"], strict=True)]
        res[v]["fps_vs_bare"] = round(float(np.median(ratios)), 4)
        res[v]["fps_vs_bare_total"] = round(res[v]["fps"] / res["bare"]["fps"], 4)
    for v in ONE_THREAD:
        ratios = [f / b for f, b in zip(res[v]["round_fps"], res["bare 2x1t"]["round_fps"], strict=True)]
        res[v]["fps_vs_bare_2x1t"] = round(float(np.median(ratios)), 4)
    return {"model": str(logits), "input_hw": list(backends["bare"].card.input_hw), "load_1m": load,
            "variants": res, "checks": checks(logits, labels, framed)}


def summarize(rs: list[dict[str, float]]) -> dict[str, float]:
    n, wall = sum(r["frames"] for r in rs), sum(r["wall_s"] for r in rs)
    infer, host = sum(r["infer_s"] for r in rs), sum(r["host_s"] for r in rs)
    return {"frames": n, "fps": round(n / wall, 3), "inference_ms": round(1e3 * infer / n, 3),
            "cpu_ms": round(1e3 * sum(r["cpu_s"] for r in rs) / n, 3),
            "host_ms_outside_inference": round(1e3 * host / n, 3),
            # concurrent runs overlap: what the inference threads covered is their time / their number
            "wall_ms_not_covered_by_inference": round(1e3 * (wall - infer / rs[0].get("workers", 1)) / n, 3),
            "round_fps": [round(r["frames"] / r["wall_s"], 3) for r in rs],
            # median over rounds of each round's median capture->shown latency (streams only)
            "latency_p50_ms": (round(float(np.median([r["latency_p50_ms"] for r in rs])), 2)
                               if "latency_p50_ms" in rs[0] else None),
            "bytes_out_per_frame": int(rs[0]["out_bytes"])}


def markdown(res: dict[str, Any]) -> str:
    h = res["host"]
    lines = ["# Pipelined loop, argmax and preprocessing in the graph", "",
             f"onnxruntime {res['ort']} CPU, {res['threads']} threads; {h['cpu_count']} cores shared "
             f"with other engineers' work; {res['rounds']} interleaved rounds of {res['frames']} frames "
             f"per variant; 360x480 synthetic frames, headless; {res['date']}.", ""]
    for name, m in res["models"].items():
        hw = f"{m['input_hw'][0]}x{m['input_hw'][1]}"
        lines += [f"## {name} (input {hw}; 1-min load {m['load_1m'][0]:.1f} -> {m['load_1m'][1]:.1f})", "",
                  "| variant | FPS | FPS / bare (median of rounds) | FPS / bare (totals) | "
                  "CPU ms per frame | latency p50 ms | inference ms | host ms outside inference | "
                  "wall ms not covered by inference | bytes out of the model per frame | FPS per round |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        two = {v: m["variants"][v].get("fps_vs_bare_2x1t") for v in ONE_THREAD}
        for v, d in m["variants"].items():
            cells = [v, f"{d['fps']:.2f}", f"{d['fps_vs_bare']:.3f}", f"{d['fps_vs_bare_total']:.3f}",
                     f"{d['cpu_ms']:.2f}",
                     "-" if d["latency_p50_ms"] is None else f"{d['latency_p50_ms']:.1f}",
                     f"{d['inference_ms']:.2f}",
                     f"{d['host_ms_outside_inference']:.2f}", f"{d['wall_ms_not_covered_by_inference']:.2f}",
                     f"{d['bytes_out_per_frame']:,}", ", ".join(f"{x:.1f}" for x in d["round_fps"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "FPS / bare 2x1t (median of rounds): "
                  + ", ".join(f"{v} {x:.3f}" for v, x in two.items() if x is not None)]
        c = m["checks"]
        lines += ["", f"- in-graph argmax vs host argmax, {c['frames']} frames: "
                  f"{c['argmax_identical_frames']} identical frames, "
                  f"{100 * c['argmax_identical_pixels']:.4f} % identical pixels",
                  f"- in-graph preprocessing (360x480 uint8 BGR -> {hw}) vs edgeseg.preprocess: max |diff| "
                  f"{c['preprocess_max_abs_diff']:.4g} (= {c['preprocess_max_diff_grey_levels']:.2f} grey "
                  f"levels); labels of the argmax+pre file vs the host path: "
                  f"{100 * c['argmax_pre_vs_host_pixels']:.3f} % identical pixels", ""]
    return "\n".join(lines)


def main() -> None:
    import onnxruntime

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench-pipeline"))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--frames", type=int, default=25, help="frames per variant per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="demo,lite-unet")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"threads": args.threads, "rounds": args.rounds, "frames": args.frames,
                           "ort": onnxruntime.__version__, "host": host_facts(),
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "models": {}}
    for name in args.models.split(","):
        logits = DEMO if name == "demo" else lite_unet(args.out)
        res["models"][name] = bench_model(name, logits, args.out, args.rounds, args.frames, args.threads)
    write_json_atomic(args.out / "bench_pipeline.json", res)
    write_text_atomic(args.out / "bench_pipeline.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
