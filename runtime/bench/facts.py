"""Model facts of a bench row from an ONNX file: parameters and GFLOPs, counted without torch.

The checkpoint profile (torch, :mod:`edgeseg.models.profile`) is the pipeline's
(:mod:`edgeseg.pipelines.bench_artifacts`); this count is what a torch-free host has.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgeseg.io import load_onnx


def onnx_gflops(path: str | os.PathLike[str]) -> float | None:
    """GFLOPs of one image through an ONNX graph: 2 x multiply-accumulates of Conv,
    ConvTranspose, Gemm and MatMul (the convention of :mod:`edgeseg.models.profile`).

    Shapes come from ONNX shape inference; None when a counted node's shapes are unknown.
    """
    import onnx

    # data_prop: sizes computed from Shape ops (F.interpolate(size=x.shape[-2:]) exports) propagate
    model = onnx.shape_inference.infer_shapes(load_onnx(path), data_prop=True)
    g = model.graph
    shapes: dict[str, list[int | None]] = {t.name: list(t.dims) for t in g.initializer}
    for vi in (*g.input, *g.value_info, *g.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    total = 0
    for node in g.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            return None
        total += macs
    return round(2 * total / 1e9, 4)


def _node_macs(node: Any, shapes: dict[str, list[int | None]]) -> int | None:
    """Multiply-accumulates of one node per image (0 for ops that are not counted)."""
    if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return 0
    w_dims, out_dims = shapes.get(node.input[1]), shapes.get(node.output[0])
    x_dims = shapes.get(node.input[0])
    if not w_dims or not out_dims or not x_dims:
        return None
    # the batch dimension (index 0 of out and x) may be dynamic; every other one must be static
    w, out_chw, x_chw = _static(w_dims), _static(out_dims[1:]), _static(x_dims[1:])
    if w is None or out_chw is None or x_chw is None:
        return None
    if node.op_type == "Conv":  # out (N, Cout, H, W), w (Cout, Cin/g, kh, kw)
        return int(np.prod(out_chw)) * int(np.prod(w[1:]))
    if node.op_type == "ConvTranspose":  # x (N, Cin, H, W), w (Cin, Cout/g, kh, kw)
        return int(np.prod(x_chw)) * int(np.prod(w[1:]))
    return int(np.prod(out_chw)) * int(w[-2])  # Gemm / MatMul: every output sums over K


def _static(dims: list[int | None]) -> list[int] | None:
    """``dims`` when every dimension is known, else None."""
    known = [d for d in dims if d is not None]
    return known if len(known) == len(dims) else None
