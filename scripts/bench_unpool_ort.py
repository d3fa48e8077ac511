"""onnxruntime CPU latency of res-segnet with four unpool graphs, as ratios from ONE run.

* native          — edgeseg native mode: SpaceToDepth, first ArgMax over the 4 window elements,
                    one-hot, multiply, DepthToSpace (standard ops; what ``edgeseg export`` writes)
* native-torch-form — the same function as torch exports ``native_unpool`` itself (6-D window
                    reshape/transpose; what edgeseg wrote before, and still writes below opset 13)
* plugin-reference — edgeseg plugin mode: one MaxUnpool2x2 node, run by the onnxruntime-extensions
                    Python op (numpy reference). NOT the TensorRT plugin's speed: the Python op
                    converts every output to a Python list.
* standard        — what a generic exporter would emit: MaxPool with the Indices output +
                    ONNX MaxUnpool (TensorRT cannot parse this graph).

The graphs come from one random-init res-segnet (BatchNorm warmed on noise) and are
checked against each other before timing. Runs are interleaved (round robin) so that machine load
hits all graphs alike; medians and ratios to native are printed and written as JSON + Markdown.

    .venv/bin/python scripts/bench_unpool_ort.py --input 360x480 --runs 10 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from edgeseg.unpool import OP_NAME


def build_model(hw: tuple[int, int]) -> Any:
    import torch

    from edgeseg.models.registry import build_model as build

    torch.manual_seed(0)
    model = build("res-segnet", num_classes=11).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(1, 3, *hw))
    return model.eval()


def export(model: Any, hw: tuple[int, int], mode: str, opset: int = 17) -> onnx.ModelProto:
    from edgeseg.export.onnx_export import ExportOptions, check_graph, simplify, torch_to_onnx

    opts = ExportOptions(unpool=mode, opset=opset)
    return check_graph(simplify(torch_to_onnx(model, (1, 3, *hw), mode, opts)))


def to_standard_unpool(plugin: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every plugin node (x, y) by MaxPool(x) with Indices + MaxUnpool(y, idx, Shape(x)).

    The encoder's MaxPool on x gains the Indices output (as a generic exporter would write it).
    """
    model = onnx.ModelProto()
    model.CopyFrom(plugin)
    nodes = list(model.graph.node)
    pools = {n.input[0]: n for n in nodes if n.op_type == "MaxPool"}
    out: list[onnx.NodeProto] = []
    for i, node in enumerate(nodes):
        if node.op_type != OP_NAME:
            out.append(node)
            continue
        x, y = node.input
        pool = pools[x]
        idx, shape = f"unpool{i}_indices", f"unpool{i}_shape"
        if len(pool.output) == 1:
            pool.output.append(idx)
        out.append(helper.make_node("Shape", [x], [shape]))
        out.append(helper.make_node("MaxUnpool", [y, pool.output[1], shape], list(node.output),
                                    kernel_shape=[2, 2], strides=[2, 2]))
    del model.graph.node[:]
    model.graph.node.extend(out)
    onnx.checker.check_model(model)
    return model


def sessions(models: dict[str, onnx.ModelProto], threads: int) -> dict[str, Any]:
    import onnxruntime as ort

    from edgeseg.unpool.ort_op import session_options

    return {name: ort.InferenceSession(m.SerializeToString(), session_options(threads),
                                       providers=["CPUExecutionProvider"])
            for name, m in models.items()}


def time_round_robin(sess: dict[str, Any], x: np.ndarray, runs: int, warmup: int) -> dict[str, list[float]]:
    """ms per call of each session, interleaved call by call (edgeseg bench's timer)."""
    from edgeseg.runtime.bench.measure import measure_interleaved

    infers = [lambda x, s=s: s.run(None, {"input": x}) for s in sess.values()]
    timings, errors = measure_interleaved(infers, x, warmup=warmup, iters=runs)
    if errors:
        raise SystemExit(f"onnxruntime failed: {next(iter(errors.values()))}")
    return {name: [1000.0 * t for t in timing.seconds] for name, timing in zip(sess, timings, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default="360x480", help="HxW (default 360x480)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--out", default="bench_unpool_ort", help="report stem (.json + .md)")
    args = ap.parse_args()
    from edgeseg.models.registry import parse_hw
    from edgeseg.report import write_report

    hw = parse_hw(args.input)
    model = build_model(hw)
    plugin = export(model, hw, "plugin")
    models = {"native": export(model, hw, "native"),
              "native-torch-form": export(model, hw, "native", opset=12),
              "plugin-reference": plugin, "standard": to_standard_unpool(plugin)}
    sess = sessions(models, args.threads)
    x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
    outs = {name: s.run(None, {"input": x})[0] for name, s in sess.items()}
    diffs = {name: float(np.abs(o - outs["native"]).max()) for name, o in outs.items()}
    times = time_round_robin(sess, x, args.runs, args.warmup)
    med = {name: statistics.median(t) for name, t in times.items()}
    rows = [(name, med[name], med[name] / med["native"], diffs[name]) for name in sess]
    md = ["| graph | median ms | ratio to native | max abs diff vs native |", "|---|---:|---:|---:|"]
    md += [f"| {n} | {m:.1f} | {r:.2f} | {d:.1e} |" for n, m, r, d in rows]
    for line in md:
        print(line)
    data = {"model": "res-segnet (random init)", "input_hw": list(hw), "threads": args.threads,
            "runs": args.runs, "warmup": args.warmup, "machine": platform.processor() or platform.machine(),
            "median_ms": med, "ratio_to_native": {n: r for n, _, r, _ in rows},
            "max_abs_diff_vs_native": diffs, "times_ms": times}
    json_path, md_path = write_report(Path(args.out), data, "\n".join(md) + "\n")
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
