"""INT8 / FP16 on the onnxruntime CPU: accuracy of each calibration method and latency ratios.

    .venv/bin/python scripts/bench_int8.py MODEL.onnx --set SET.json --data DATA [--split val]
        [--methods entropy,minmax,percentile] [--runs 30] [--threads 2] -o results/int8

For one FP32 ONNX file (from ``edgeseg export``) and a calibration set it:

1. calibrates one INT8 file per method (TensorRT Q/DQ placement, the deployable artifact) and one
   with onnxruntime's own placement (``full``) using the best method, and converts FP16;
2. scores all of them on ``DATA``/``split`` with the precision report (mIoU, per-class IoU, drop
   vs FP32, argmax disagreement vs FP32);
3. times FP32 and each INT8 placement (and FP16) on the onnxruntime CPU provider in the **same
   run**, interleaved round by round (each round runs every model once), and reports the median
   latency and its ratio to FP32 — a ratio, so machine load cancels as far as possible.

Writes ``OUT.json`` + ``OUT.md`` (the precision report separately as ``OUT.precision.*``) and the
model files in ``OUT``'s folder. Latencies depend on the CPU (the numbers in docs/precision.md say which).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--set", dest="calib_set", type=Path, required=True)
    p.add_argument("--data", default=None, help="labelled dataset to score on (not with --latency-only)")
    p.add_argument("--split", default="val")
    p.add_argument("--methods", default="entropy,minmax,percentile")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--num", type=int, default=None, help="score only the first N images")
    p.add_argument("--latency-only", action="store_true",
                   help="skip scoring (e.g. an untrained model): time FP32/FP16/INT8 of the first method")
    p.add_argument("-o", "--out", type=Path, required=True)
    return p.parse_args()


def make_models(model: Path, calib_set: Path, methods: list[str], folder: Path) -> dict[str, Path]:
    """FP32, FP16 and one INT8 file per method (tensorrt placement) -> {label: path}."""
    from edgeseg.calib.fp16 import convert_fp16
    from edgeseg.calib.quantize import CalibrateOptions, calibrate

    stem = model.name.removesuffix(".onnx")
    files = {"FP32": model, "FP16": convert_fp16(model, folder / f"{stem}.fp16.onnx")[0]}
    for method in methods:
        t0 = time.perf_counter()
        out, card = calibrate(model, calib_set, folder / f"{stem}.int8-{method}.onnx",
                              CalibrateOptions(method=method))
        hit = card.extra["calibration"]["cache_hit"]
        print(f"calibrated {method}: {time.perf_counter() - t0:.1f} s ({'cached' if hit else 'computed'})")
        files[f"INT8 ({method})"] = out
    return files


def latency(files: dict[str, Path], hw: tuple[int, int], runs: int, threads: int) -> dict[str, Any]:
    """Median ms per model, interleaved rounds (edgeseg bench's timer), onnxruntime CPU, batch 1;
    ratio vs FP32."""
    import onnxruntime as ort
    from edgeseg.runtime.bench.measure import measure_interleaved, random_batch

    from edgeseg.unpool.ort_op import session_options

    cpu = ["CPUExecutionProvider"]
    sessions = {label: ort.InferenceSession(str(path), session_options(threads), providers=cpu)
                for label, path in files.items()}
    infers = [lambda x, s=s: s.run(None, {s.get_inputs()[0].name: x}) for s in sessions.values()]
    timings, errors = measure_interleaved(infers, random_batch(1, hw), warmup=3, iters=runs)
    if errors:
        raise SystemExit(f"onnxruntime failed: {next(iter(errors.values()))}")
    lat = {label: t.latency_ms() for label, t in zip(sessions, timings, strict=True)}
    return {k: {"median_ms": v.p50, "p90_ms": v.p90, "ratio_vs_fp32": (v.p50 or 0) / (lat["FP32"].p50 or 1)}
            for k, v in lat.items()}


def _markdown(res: dict[str, Any]) -> str:
    lines = [f"# INT8 / FP16 on onnxruntime CPU: {res['model']}", "",
             f"Calibration set {res['calibration_set']} ({res['set_images']} images).", ""]
    if res["accuracy"]:
        lines += [f"Scored on {res['data']} ({res['split']}, {res['images']} images).", "",
                  "| file | mIoU (%) | Δ mIoU vs FP32 (points) | argmax disagreement (%) |",
                  "|---|---:|---:|---:|"]
        for lab, a in res["accuracy"].items():
            lines.append(f"| {lab} | {a['miou'] * 100:.2f} | {a['change_points']:+.2f} | "
                         f"{a['disagreement'] * 100:.3f} |")
        lines += ["", f"Best method (smallest |mIoU change|): **{res['best_method']}**.", ""]
    lines += [f"Latency, onnxruntime {res['onnxruntime']} CPU, {res['threads']} threads, batch 1, "
              f"{res['runs']} interleaved rounds ({res['cpu']}):", "",
              "| file | median (ms) | p90 (ms) | ratio vs FP32 |", "|---|---:|---:|---:|"]
    for lab, t in res["latency"].items():
        lines.append(f"| {lab} | {t['median_ms']:.2f} | {t['p90_ms']:.2f} | {t['ratio_vs_fp32']:.2f} |")
    return "\n".join(lines) + "\n"


def accuracy(files: dict[str, Path], methods: list[str], a: argparse.Namespace, folder: Path
             ) -> tuple[dict[str, Any], str, int]:
    """Precision report over all files -> (per-label accuracy, best method, images scored)."""
    from edgeseg.calib.precision import precision_report, write_precision_report

    rep = precision_report(list(files.values()), a.data, a.split, threads=a.threads, num=a.num)
    write_precision_report(rep, folder / f"{a.out.name}.precision")
    acc = {lab: {"miou": rep.metrics[lab].miou, "change_points": rep.change_points(lab),
                 "disagreement": rep.disagreement[lab]} for lab in rep.labels}
    # best = the method whose mIoU moves least from FP32 (a gain from quantization noise is not
    # a property to select on); ties go to the lower argmax disagreement
    best = min(methods, key=lambda m: (round(abs(acc[f"INT8 ({m})"]["change_points"]), 2),
                                       acc[f"INT8 ({m})"]["disagreement"]))
    return acc, best, rep.images


def main() -> None:
    import onnxruntime
    from edgeseg.calib.calib_set import load_calib_set
    from edgeseg.calib.quantize import CalibrateOptions, calibrate

    from edgeseg.card import read_card
    from edgeseg.report import write_report

    a = _args()
    if not a.latency_only and a.data is None:
        raise SystemExit("--data is required unless --latency-only")
    folder = a.out.parent
    folder.mkdir(parents=True, exist_ok=True)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()][: 1 if a.latency_only else None]
    files = make_models(a.model, a.calib_set, methods, folder)
    acc, best, images = ({}, methods[0], 0) if a.latency_only else accuracy(files, methods, a, folder)
    stem = a.model.name.removesuffix(".onnx")
    full, _ = calibrate(a.model, a.calib_set, folder / f"{stem}.int8-{best}-full.onnx",
                        CalibrateOptions(method=best, placement="full"))
    timed = {"FP32": files["FP32"], "FP16": files["FP16"], f"INT8 ({best}, tensorrt placement)":
             files[f"INT8 ({best})"], f"INT8 ({best}, full placement)": full}
    card = read_card(a.model)
    res = {"model": str(a.model), "architecture": card.architecture, "input_hw": list(card.input_hw),
           "calibration_set": str(a.calib_set), "set_images": len(load_calib_set(a.calib_set).images),
           "data": a.data, "split": a.split, "images": images, "accuracy": acc, "best_method": best,
           "latency": latency(timed, card.input_hw, a.runs, a.threads), "runs": a.runs,
           "threads": a.threads, "onnxruntime": onnxruntime.__version__,
           "cpu": platform.processor() or platform.machine()}
    json_path, md_path = write_report(a.out, res, _markdown(res))
    print(_markdown(res))
    print(f"wrote {json_path}, {md_path}")


if __name__ == "__main__":
    main()
