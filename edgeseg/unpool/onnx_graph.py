"""The unpool op in ONNX graphs: find it (plugin node or native subgraph), rewrite plugin -> native.

Torch-free (onnx + numpy). Two unpool forms can appear in an exported model (docs/design.md §5):

* ``plugin``: one custom node (``OP_NAME`` in ``OP_DOMAIN`` of :mod:`edgeseg.unpool`; inputs x, y).
* ``native``: standard ops, SpaceToDepth -> Reshape (N,4,C,h,w) -> ArgMax over the 4 window
  elements (first max; a window with NaNs takes its last NaN, from IsNaN -> ArgMax ->
  GatherElements -> Where) -> Equal -> Cast -> Mul(y) -> Reshape -> DepthToSpace (DCR), and Slice/Pad
  for odd sizes. ``edgeseg export --unpool native`` writes this form (:func:`plugin_to_native` applied to
  the plugin export). Files from earlier versions have Reshape/Transpose windows instead; both are
  recognised.

:func:`plugin_to_native` rewrites every plugin node into the native form *keeping the tensor
names at its boundary* (x, y in; the plugin's output name out). The native form is bit-exact with
the plugin, so every tensor shared by the two graphs has the same values, hence the same
calibration range: ranges measured on the native graph transfer to the plugin graph by name
(``edgeseg.calib``). Rewrite failures are ``CalibrationError`` (calibration was the first user;
export reports them the same way).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeseg.errors import CalibrationError
from edgeseg.unpool import OP_DOMAIN, OP_NAME

DEFAULT_DOMAINS = ("", "ai.onnx")  # the standard ONNX domain's two spellings
# The native form uses Unsqueeze with an axes input (opset 13) and ArgMax select_last_index (12).
NATIVE_MIN_OPSET = 13
# Ops the native unpool is built from (walked from its ArgMax to find the whole subgraph).
_WINDOW_OPS = frozenset({"Reshape", "Transpose", "Slice", "SpaceToDepth"})
_ROUTE_OPS = frozenset({"Equal", "Cast", "Mul", "Unsqueeze", "Reshape", "Transpose", "Pad", "Where",
                        "Expand", "Squeeze", "Slice", "DepthToSpace"})
# The NaN-window side branch (IsNaN -> Cast -> Mul -> ArgMax -> GatherElements) feeding the Where.
_NAN_OPS = frozenset({"IsNaN", "Cast", "Mul", "ArgMax", "GatherElements"})


@dataclass(frozen=True)
class UnpoolGroup:
    """One native unpool subgraph: its node names and the tensors at its boundary.

    ``x``: pre-pool activation (N,C,H,W) read by the window ops; ``y``: decoder tensor
    (N,C,H//2,W//2) multiplied into the one-hot; ``out``: the (N,C,H,W) result ("" if not found).
    """

    nodes: frozenset[str]
    x: str
    y: str
    out: str


def is_plugin_node(node: onnx.NodeProto) -> bool:
    return node.op_type == OP_NAME and node.domain == OP_DOMAIN


def plugin_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if is_plugin_node(n)]


def unpool_mode_of(model: onnx.ModelProto) -> str:
    """``plugin`` if the graph has plugin nodes, ``native`` if it has an ArgMax unpool, else ``none``."""
    if plugin_nodes(model):
        return "plugin"
    return "native" if any(n.op_type == "ArgMax" for n in model.graph.node) else "none"


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node writing it."""
    return {out: n for n in model.graph.node for out in n.output}


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    cons: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            cons[i].append(n)
    return cons


def native_unpool_groups(model: onnx.ModelProto) -> list[UnpoolGroup]:
    """Each native unpool subgraph, found from its ArgMax.

    Backwards from the ArgMax through window SpaceToDepth/Reshape/Transpose/Slice nodes (up to, not including,
    the op producing x); forwards through the routing ops (Equal, Cast, Mul, Reshape, ...) until a
    compute op (Conv, Add, ...) consumes the result; plus the Unsqueeze/Reshape feeding y into Mul.
    """
    prod, cons = producers(model), _consumers(model)
    groups: list[UnpoolGroup] = []
    for am in (n for n in model.graph.node if n.op_type == "ArgMax"):
        if prod.get(am.input[0]) is None or prod[am.input[0]].op_type not in _WINDOW_OPS:
            continue  # the NaN branch's ArgMax: collected with its unpool below
        names, x = {am.name}, am.input[0]
        node = prod.get(x)
        while node is not None and node.op_type in _WINDOW_OPS:
            names.add(node.name)
            x = node.input[0]
            node = prod.get(x)
        frontier, y = list(am.output), ""
        while frontier:
            for c in cons.get(frontier.pop(), []):
                if c.op_type in _ROUTE_OPS and c.name not in names:
                    names.add(c.name)
                    frontier.extend(c.output)
                    if c.op_type == "Mul":
                        chain, y = _layout_chain(c, prod, names)
                        names.update(chain)
                    if c.op_type == "Where":
                        names.update(_nan_branch(c, prod, names))
        groups.append(UnpoolGroup(frozenset(names), x, y, _group_output(model, names, cons)))
    return groups


def _nan_branch(where: onnx.NodeProto, prod: dict[str, onnx.NodeProto], names: set[str]) -> set[str]:
    """Nodes of the NaN-window branch that feeds ``where`` (empty for forms without one)."""
    found: set[str] = set()
    stack = [prod[i] for i in where.input
             if i in prod and prod[i].op_type in ("ArgMax", "GatherElements")]
    while stack:
        node = stack.pop()
        if node.name in names or node.name in found or node.op_type not in _NAN_OPS:
            continue
        found.add(node.name)
        stack.extend(prod[i] for i in node.input if i in prod)
    return found


def native_unpool_node_names(model: onnx.ModelProto) -> set[str]:
    """Names of all nodes that belong to native unpool subgraphs."""
    return {name for group in native_unpool_groups(model) for name in group.nodes}


def unpool_boundaries(model: onnx.ModelProto) -> list[tuple[str, str, str]]:
    """(x, y, out) tensor names of every unpool, plugin or native."""
    plug = [(n.input[0], n.input[1], n.output[0]) for n in plugin_nodes(model)]
    return plug + [(g.x, g.y, g.out) for g in native_unpool_groups(model)]


def _group_output(model: onnx.ModelProto, names: set[str], cons: dict[str, list[onnx.NodeProto]]) -> str:
    graph_outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.name in names:
            for out in node.output:
                if out in graph_outputs or any(c.name not in names for c in cons.get(out, [])):
                    return out
    return ""


def _layout_chain(mul: onnx.NodeProto, prod: dict[str, onnx.NodeProto],
                  names: set[str]) -> tuple[set[str], str]:
    """(Unsqueeze/Reshape nodes that bring y to the Mul of a native unpool, y's name)."""
    for name in mul.input:
        node = prod.get(name)
        if node is not None and node.name in names:
            continue  # the one-hot side
        found, y = set(), name
        while node is not None and node.op_type in ("Unsqueeze", "Reshape"):
            found.add(node.name)
            y = node.input[0]
            node = prod.get(y)
        return found, y
    return set(), ""


def _static_chw(model: onnx.ModelProto, tensor: str) -> tuple[int, int, int]:
    """(C, H, W) of ``tensor`` from shape inference; CalibrationError when not static."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input,
                                 *inferred.graph.output)}
    if tensor not in infos:
        raise CalibrationError(f"cannot infer the shape of unpool input {tensor!r}; expected a model "
                               "exported by edgeseg with a fixed input size; re-export it")
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in infos[tensor].type.tensor_type.shape.dim]
    chw = [d for d in dims[1:] if d is not None]
    if len(dims) != 4 or len(chw) != 3:
        raise CalibrationError(f"unpool input {tensor!r} has shape {dims}; calibration needs static "
                               "C, H, W (re-export with a fixed input size)")
    return int(chw[0]), int(chw[1]), int(chw[2])


def _const(graph: onnx.GraphProto, name: str, values: list[int] | np.ndarray) -> str:
    graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
    return name


def _const_f32(graph: onnx.GraphProto, name: str, values: np.ndarray) -> str:
    graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))
    return name


def _native_nodes(graph: onnx.GraphProto, x: str, y: str, out: str, chw: tuple[int, int, int],
                  p: str) -> list[onnx.NodeProto]:
    """Standard-op unpool (x (N,C,H,W), y (N,C,H//2,W//2)) -> ``out``; names prefixed with ``p``.

    SpaceToDepth puts window element k = 2*row + col of channel c at depth k*C + c (blocks first), so
    a Reshape to (N,4,C,h,w) lines the 4 window elements up on axis 1 in row-major order; ArgMax
    (first max) over it, one-hot, times y, and DepthToSpace in DCR mode (its exact inverse) puts
    each value back. NaN windows (PyTorch's rule: the LAST NaN; edgeseg/unpool/reference.py) are
    decided without relying on ArgMax's NaN behaviour, which ONNX leaves unspecified: the NaN mask
    weighted 1..4 has its maximum at the last NaN, and where that element is NaN, its index wins.
    One op per layout change instead of the 6-D transposes of torch's reshape/permute form
    (docs/export.md: onnxruntime timings); both map to single TensorRT layers. The one-hot multiply (as in
    torch's native form) rather than Where(one-hot, y, 0): Where is 1.5x
    slower in onnxruntime; the difference is only for non-finite y (y * 0 = NaN), where the model's
    output is already broken.
    """
    c, hh, ww = chw
    h, w = hh // 2, ww // 2
    odd = (hh, ww) != (2 * h, 2 * w)
    nodes = []
    xin = x
    if odd:
        nodes.append(helper.make_node("Slice", [x, _const(graph, p + "starts", [0, 0]),
                                                _const(graph, p + "ends", [2 * h, 2 * w]),
                                                _const(graph, p + "axes", [2, 3])], [p + "xc"], p + "slice"))
        xin = p + "xc"
    rank = _const_f32(graph, p + "rank", np.arange(1, 5).reshape(1, 4, 1, 1, 1))  # weights of the NaN mask
    nodes += [
        helper.make_node("SpaceToDepth", [xin], [p + "s2d"], p + "s2d", blocksize=2),
        helper.make_node("Reshape", [p + "s2d", _const(graph, p + "s5", [-1, 4, c, h, w])], [p + "win"],
                         p + "win"),
        helper.make_node("ArgMax", [p + "win"], [p + "amv"], p + "argmax", axis=1, keepdims=1,
                         select_last_index=0),
        helper.make_node("IsNaN", [p + "win"], [p + "nan"], p + "isnan"),
        helper.make_node("Cast", [p + "nan"], [p + "nanf"], p + "nancast", to=TensorProto.FLOAT),
        helper.make_node("Mul", [p + "nanf", rank], [p + "nanw"], p + "nanrank"),
        helper.make_node("ArgMax", [p + "nanw"], [p + "amn"], p + "lastnan", axis=1, keepdims=1),
        helper.make_node("GatherElements", [p + "nan", p + "amn"], [p + "hasnan"], p + "hasnan", axis=1),
        helper.make_node("Where", [p + "hasnan", p + "amn", p + "amv"], [p + "am"], p + "pick"),
        helper.make_node("Equal", [p + "am", _const(graph, p + "k", np.arange(4).reshape(1, 4, 1, 1, 1))],
                         [p + "eq"], p + "eq"),
        helper.make_node("Cast", [p + "eq"], [p + "oh"], p + "cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [y, _const(graph, p + "ax", [1])], [p + "yu"], p + "unsq"),
        helper.make_node("Mul", [p + "oh", p + "yu"], [p + "m"], p + "mul"),
        helper.make_node("Reshape", [p + "m", _const(graph, p + "s4", [-1, 4 * c, h, w])], [p + "r4"],
                         p + "r4"),
    ]
    d2s_out = out if not odd else p + "d2s"
    nodes.append(helper.make_node("DepthToSpace", [p + "r4"], [d2s_out], p + "d2s", blocksize=2, mode="DCR"))
    if odd:
        pads = _const(graph, p + "pads", [0, 0, 0, 0, 0, 0, hh - 2 * h, ww - 2 * w])
        nodes.append(helper.make_node("Pad", [d2s_out, pads], [out], p + "pad"))
    return nodes


def plugin_to_native(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every plugin unpool node replaced by the native subgraph.

    Boundary tensor names are kept (see module docstring). Nodes are replaced in graph order, and
    shapes re-inferred after each, so x of a later unpool has a known shape.
    """
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if plugin_nodes(model) and opset < NATIVE_MIN_OPSET:
        raise CalibrationError(f"the model is opset {opset}; rewriting its unpool into standard ops needs "
                               f"opset >= {NATIVE_MIN_OPSET}; re-export it with --opset 17")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for k in range(len(plugin_nodes(out))):
        graph = out.graph
        idx = next(i for i, n in enumerate(graph.node) if is_plugin_node(n))
        node = graph.node[idx]
        if len(node.input) != 2 or len(node.output) != 1:
            raise CalibrationError(f"plugin node {node.name!r} has {len(node.input)} inputs; expected "
                                   "(x, y); re-export the model with this edgeseg version")
        chw = _static_chw(out, node.input[0])
        new = _native_nodes(graph, node.input[0], node.input[1], node.output[0], chw,
                            f"edgeseg_unpool{k}/")
        del graph.node[idx]
        for j, n in enumerate(new):
            graph.node.insert(idx + j, n)
    _drop_domain(out, OP_DOMAIN)
    return out


def _drop_domain(model: onnx.ModelProto, domain: str) -> None:
    keep = [o for o in model.opset_import if o.domain != domain]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph``, those of its subgraphs (If/Loop bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from all_nodes(attr.g)
            for sub in attr.graphs:
                yield from all_nodes(sub)


def custom_ops(model: onnx.ModelProto) -> list[str]:
    """``"MaxUnpool2x2 x3 (ai.onnx.contrib)"`` for each op outside the standard ONNX domain."""
    found = Counter((n.domain, n.op_type) for n in all_nodes(model.graph) if n.domain not in DEFAULT_DOMAINS)
    return [f"{op} x{n} ({domain})" for (domain, op), n in sorted(found.items())]


def stock_runtime_fix(checkpoint: str = "CHECKPOINT", out: str = "model.native.onnx",
                      input_hw: str = "") -> str:
    """The command that writes the file every tool runs: the native export of the checkpoint."""
    import shlex

    size = f" --input {input_hw}" if input_hw else ""
    return f"edgeseg export {shlex.quote(checkpoint)} -o {shlex.quote(out)}{size} --unpool native"


def stock_runtime_note(model: onnx.ModelProto, **native: str) -> str | None:
    """For a graph with custom nodes: which stock runtimes refuse it and what runs it (else None).
    ``native``: ``checkpoint`` / ``out`` / ``input_hw`` of the suggested native export (placeholders
    when not given)."""
    custom = custom_ops(model)
    if not custom:
        return None
    ours = any(op.startswith(OP_NAME + " ") for op in custom)
    runs = ("it runs on TensorRT with the edgeseg plugin (edgeseg build-plugin, edgeseg build-engine) and "
            "in edgeseg's own onnxruntime backend (edgeseg stream/eval/bench, via onnxruntime-extensions); "
            if ours else "")
    return (f"custom node {', '.join(custom)}: stock onnxruntime, OpenVINO and OpenCV DNN cannot run this "
            f"file; {runs}for every other tool export native ops from the checkpoint: "
            f"{stock_runtime_fix(**native)}")
