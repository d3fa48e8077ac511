"""ONNX graph surgery for calibration: unpool inputs kept in float, dangling Q/DQ, graph order.

Torch-free (onnx + numpy). Finding the unpool and rewriting plugin nodes into standard ops is the
op's own business (:mod:`edgeseg.unpool.onnx_graph`); this module holds what calibration and the
FP16 conversion add on top.
"""

from __future__ import annotations

import onnx

from edgeseg.errors import CalibrationError
from edgeseg.unpool.onnx_graph import plugin_to_native, producers


def copy_value_info(model: onnx.ModelProto, typed: onnx.ModelProto | None = None) -> None:
    """Give ``model`` the inferred tensor types of ``typed`` (same tensor names) where it lacks them.

    A plugin node has no ONNX schema, so shape inference stops at it; the native-equivalent graph
    (default ``typed``) knows every type, and both the quantizer (Q/DQ only on typed tensors) and
    the FP16 converter (casts around blocked nodes) need them. In place.
    """
    typed = typed if typed is not None else plugin_to_native(model)
    inferred = onnx.shape_inference.infer_shapes(typed)
    have = {v.name for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
    names = {t for n in model.graph.node for t in (*n.input, *n.output)}
    for vi in inferred.graph.value_info:
        if vi.name in names and vi.name not in have:
            model.graph.value_info.append(vi)


def float_inputs_for(model: onnx.ModelProto, node_names: set[str]) -> int:
    """Make the named nodes read the float tensor behind any activation Q->DQ pair feeding them.

    The unpool routes values by comparing x elements (first max of each window); quantizing x
    first would create ties and move values. Returns how many inputs were rewired. Q/DQ pairs that
    no longer feed anything are removed.
    """
    prod = producers(model)
    rewired = 0
    for node in model.graph.node:
        if node.name not in node_names:
            continue
        for i, name in enumerate(node.input):
            dq = prod.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = prod.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
                rewired += 1
    remove_dangling_qdq(model)
    return rewired


def remove_dangling_qdq(model: onnx.ModelProto) -> None:
    graph_outputs = {o.name for o in model.graph.output}
    changed = True
    while changed:
        used = {i for n in model.graph.node for i in n.input} | graph_outputs
        dead = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        for n in dead:
            model.graph.node.remove(n)
        changed = bool(dead)
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder ``model.graph.node`` so every node follows the producers of its inputs (in place).

    Converters append nodes (casts) at the end; the ONNX spec and strict parsers want graph order.
    Stable: among ready nodes the original order is kept.
    """
    graph = model.graph
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(i in known for i in node.input):
                ordered.append(node)
                known.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise CalibrationError(f"graph has a cycle or a missing input at node {rest[0].name!r}; "
                                   "re-export the model")
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
