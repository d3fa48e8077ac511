"""Graph surgery for ``edgeseg import``: give a foreign ONNX edgeseg's I/O contract.

Every edgeseg stage (runtime backends, calibration, FP16, TensorRT build) runs a graph with one
float32 NCHW image input of fixed height/width (batch 1 or dynamic) and one logits output
(N, K, H, W) at the input size. A foreign file that differs gets a small adapter, built here from
standard ops (all parsed by TensorRT 10.3 and 11.x), and nothing else in the graph changes:

* input (``adapt_input``): edgeseg's float32 NCHW tensor -> Transpose to NHWC (NHWC models) ->
  Round, Clip to 0..255, Cast to uint8 (uint8 models; the card's mean 0 / std 1/255 make the
  normalized tensor the raw pixel values, so the cast is exact); dynamic H/W become the card's.
* output (``adapt_output``): NHWC logits -> Transpose to NCHW; labels (N,H,W) -> one-hot float
  (Equal with 0..K-1; argmax of it is the labels exactly); logits at a lower resolution
  (DeepLab/LRASPP heads) -> Resize (bilinear, half-pixel, as ``F.interpolate(...,
  align_corners=False)``) to the input size, so the argmax that follows is at full resolution.
  Unused outputs (an ``aux`` head) are dropped with the nodes only they need.

The adapter's last input node writes the original input's tensor name and the adapter reads
the original output's tensor name, so no node of the foreign graph is renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from edgeseg.export.options import Layout
from onnx import TensorProto, helper, numpy_helper

ADAPTER_MIN_OPSET = 11  # Resize sizes/half_pixel, Round, Clip with inputs, Equal on int32


@dataclass(frozen=True)
class IoPlan:
    """What the foreign graph has and what the adapter must do.

    ``layout``: ``nchw`` | ``nhwc`` of the image input; ``uint8``: the input is uint8 pixels;
    ``batch``: fixed batch (1) or None (dynamic); ``hw``: the input size the card records;
    ``output_kind``: ``logits`` | ``logits_lowres`` | ``labels``; ``output_nhwc``: logits are
    (N, h, w, K); ``num_classes``: K (for the labels one-hot).
    """

    input_name: str
    layout: Layout
    uint8: bool
    batch: int | None
    hw: tuple[int, int]
    output_name: str
    output_kind: str
    output_nhwc: bool
    num_classes: int
    labels_4d: bool = False

    def steps(self, dims_dynamic: bool, extra_outputs: bool) -> list[str]:
        """Human-readable adapter steps (empty: the file already has edgeseg's contract)."""
        s: list[str] = []
        if self.layout == "nhwc":
            s.append("input: NCHW -> NHWC transpose")
        if self.uint8:
            s.append("input: float pixels -> uint8 (round, clip 0..255, cast)")
        if dims_dynamic:
            s.append(f"input: dynamic height/width fixed to {self.hw[0]}x{self.hw[1]}")
        if self.output_nhwc:
            s.append("output: NHWC logits -> NCHW transpose")
        if self.output_kind == "labels":
            s.append(f"output: labels -> one-hot over {self.num_classes} classes (argmax = labels)")
        if self.output_kind == "logits_lowres":
            s.append(f"output: upsampled to {self.hw[0]}x{self.hw[1]} (Resize, bilinear, half-pixel) "
                     "before the argmax")
        if extra_outputs:
            s.append(f"output: only {self.output_name!r} kept (other outputs and their nodes dropped)")
        return s


def _fresh(model: onnx.ModelProto, want: str) -> str:
    """``want`` if no tensor of the graph has that name, else ``edgeseg_<want>``."""
    g = model.graph
    names = {t.name for t in (*g.input, *g.output, *g.initializer)}
    names |= {o for n in g.node for o in (*n.input, *n.output)}
    return want if want not in names else f"edgeseg_{want}"


def _dims(batch: int | None, *rest: int) -> list[int | str]:
    return ["batch" if batch is None else batch, *rest]


def opset_of(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def adapt_input(model: onnx.ModelProto, plan: IoPlan) -> str:
    """Replace the image input by edgeseg's float32 NCHW input; return its name."""
    g = model.graph
    h, w = plan.hw
    old = next(i for i in g.input if i.name == plan.input_name)
    if plan.layout == "nchw" and not plan.uint8:  # only the dims change
        shape = old.type.tensor_type.shape
        for d, v in zip(shape.dim, _dims(plan.batch, 3, h, w), strict=True):
            d.Clear()
            if isinstance(v, int):
                d.dim_value = v
            else:
                d.dim_param = v
        return plan.input_name
    new = _fresh(model, "input")
    nodes: list[onnx.NodeProto] = []
    t = new
    if plan.layout == "nhwc":
        out = plan.input_name if not plan.uint8 else new + "_nhwc"
        nodes.append(helper.make_node("Transpose", [t], [out], "edgeseg_in_transpose", perm=[0, 2, 3, 1]))
        t = out
    if plan.uint8:
        lo, hi = new + "_lo", new + "_hi"
        g.initializer.extend([numpy_helper.from_array(np.array(0.0, np.float32), lo),
                              numpy_helper.from_array(np.array(255.0, np.float32), hi)])
        nodes += [helper.make_node("Round", [t], [new + "_round"], "edgeseg_in_round"),
                  helper.make_node("Clip", [new + "_round", lo, hi], [new + "_clip"], "edgeseg_in_clip"),
                  helper.make_node("Cast", [new + "_clip"], [plan.input_name], "edgeseg_in_cast",
                                   to=TensorProto.UINT8)]
    g.input.remove(old)
    g.input.insert(0, helper.make_tensor_value_info(new, TensorProto.FLOAT, _dims(plan.batch, 3, h, w)))
    for i, n in enumerate(nodes):
        g.node.insert(i, n)
    return new


def adapt_output(model: onnx.ModelProto, plan: IoPlan) -> str:
    """Make ``plan.output_name`` the only output, as (N, K, H, W) logits; return its name."""
    g = model.graph
    h, w = plan.hw
    kept = next(o for o in g.output if o.name == plan.output_name)
    elem = kept.type.tensor_type.elem_type
    if plan.output_kind == "logits" and not plan.output_nhwc:
        del g.output[:]
        g.output.append(kept)
        return plan.output_name
    new = _fresh(model, "logits")
    nodes: list[onnx.NodeProto] = []
    t = plan.output_name

    def step(op: str, inputs: list[str], **attrs: Any) -> None:
        nonlocal t
        out = f"{new}_{len(nodes)}_{op.lower()}"
        nodes.append(helper.make_node(op, inputs, [out], f"edgeseg_out_{len(nodes)}_{op.lower()}", **attrs))
        t = out

    def const(name: str, values: np.ndarray) -> str:
        g.initializer.append(numpy_helper.from_array(values, f"{new}_{name}"))
        return f"{new}_{name}"

    if plan.output_nhwc:
        step("Transpose", [t], perm=[0, 3, 1, 2])
    if plan.output_kind == "labels":
        elem = TensorProto.FLOAT
        step("Cast", [t], to=TensorProto.INT32)
        if not plan.labels_4d:
            if opset_of(model) >= 13:
                step("Unsqueeze", [t, const("axis", np.array([1], np.int64))])
            else:
                step("Unsqueeze", [t], axes=[1])
        ids = np.arange(plan.num_classes, dtype=np.int32).reshape(1, -1, 1, 1)
        step("Equal", [t, const("ids", ids)])
        step("Cast", [t], to=TensorProto.FLOAT)
    if plan.output_kind == "logits_lowres":
        source = t
        step("Shape", [t])
        nk = f"{new}_nk"
        ends = [const("s0", np.array([0], np.int64)), const("s2", np.array([2], np.int64))]
        nodes.append(helper.make_node("Slice", [t, *ends], [nk], "edgeseg_out_nk"))
        sizes = f"{new}_sizes"
        nodes.append(helper.make_node("Concat", [nk, const("hw", np.array([h, w], np.int64))], [sizes],
                                      "edgeseg_out_sizes", axis=0))
        empty = "" if opset_of(model) >= 13 else const("empty", np.zeros(0, np.float32))
        step("Resize", [source, empty, empty, sizes], mode="linear",
             coordinate_transformation_mode="half_pixel")
    nodes[-1].output[0] = new
    g.node.extend(nodes)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(new, elem, _dims(plan.batch, plan.num_classes, h, w)))
    return new


def prune(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers no graph output depends on (an unused ``aux`` head)."""
    g = model.graph
    needed = {o.name for o in g.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(g.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
            for attr in node.attribute:  # outer-scope names read by If/Loop bodies
                for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    needed.update(i for n in sub.node for i in n.input)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [t for t in g.initializer if t.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.value_info[:]  # stale after the surgery; shape inference fills it again
