"""Will TensorRT's ONNX parser take this graph? A static op check against data/tensorrt_ops.json.

Every node of the graph (subgraphs included) is classified for each TensorRT version:

* default ONNX domain: the op must be in that version's supported list, obey the listed
  restrictions (``MaxPool`` without its Indices output: 10.3 refuses any second output, even an
  unnamed one, 11.x a named one) and the model opset must be within the
  version's range;
* any other domain: the parser looks up a plugin by op name + ``plugin_version`` (default "1") +
  ``plugin_namespace`` (default ""); only the edgeseg unpool plugin is known here, and its
  attributes must match what the plugin registers.

Torch-free (onnx only). The list is data, with its sources, in ``export/data/tensorrt_ops.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, ExportError, did_you_mean
from edgeseg.io import load_onnx
from edgeseg.unpool import OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from edgeseg.unpool.onnx_graph import DEFAULT_DOMAINS, all_nodes


@dataclass(frozen=True)
class OpProblem:
    """One op (``domain::op`` outside the default domain) the parser will reject, and why."""

    op: str
    nodes: int
    reason: str


@dataclass(frozen=True)
class OpCheck:
    """Result for one TensorRT version: op counts, the opset, and the problems (empty = parses)."""

    version: str
    label: str
    opset: int
    ops: dict[str, int]
    problems: tuple[OpProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: 'TensorRT 10.3: all 12 op types parse' or the rejected ops with reasons."""
        if self.ok:
            return f"{self.label}: all {len(self.ops)} op types parse (opset {self.opset})"
        issues = "; ".join(f"{p.op} x{p.nodes}: {p.reason}" for p in self.problems)
        return f"{self.label}: cannot parse — {issues}"


@lru_cache(maxsize=1)
def load_support() -> dict[str, Any]:
    """The parsed data file (versions, restrictions, sources)."""
    text = resources.files("edgeseg.export").joinpath("data/tensorrt_ops.json").read_text("utf-8")
    return json.loads(text)


def trt_versions() -> tuple[str, ...]:
    return tuple(load_support()["versions"])


def resolve_versions(requested: str | None) -> tuple[str, ...]:
    """'10.3', '11', '11.2' (-> '11'), 'all' or None (-> all) to version keys; ConfigError else."""
    known = trt_versions()
    if requested in (None, "all"):
        return known
    for key in known:  # '10.3.0' -> '10.3', '11.2' -> '11'
        if requested == key or str(requested).startswith(key + "."):
            return (key,)
    raise ConfigError(
        f"unknown TensorRT version {requested!r}{did_you_mean(str(requested), known)}; "
        f"choose one of {', '.join(known)} or all"
    )


def _op_key(node: Any) -> str:
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"


def count_ops(model: Any) -> dict[str, int]:
    """Op type -> node count (``domain::op`` for non-default domains), subgraphs included."""
    return dict(sorted(Counter(_op_key(n) for n in all_nodes(model.graph)).items()))


def _default_opset(model: Any) -> int:
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return int(imp.version)
    return 1


def _plugin_problem(node: Any) -> str | None:
    """Why the parser would not find a plugin for this custom node (None: it finds ours)."""
    if node.op_type != OP_NAME:
        return "no TensorRT plugin of this name ships with edgeseg (the parser needs one)"
    attrs = {a.name: a.s.decode() for a in node.attribute if a.name.startswith("plugin_")}
    version = attrs.get("plugin_version", "1")
    namespace = attrs.get("plugin_namespace", "")
    if (version, namespace) != (PLUGIN_VERSION, PLUGIN_NAMESPACE):
        return (f"plugin_version={version!r} plugin_namespace={namespace!r} do not match the "
                f"edgeseg plugin ({PLUGIN_VERSION!r}, {PLUGIN_NAMESPACE!r}); re-export the file")
    return None


def _node_problem(node: Any, supported: frozenset[str], maxpool_rule: str) -> str | None:
    """Why the parser rejects ``node``, or None. ``maxpool_rule``: ``any`` (10.3 refuses a MaxPool
    with any second output, even an unnamed one) or ``named`` (11.x: only a named one)."""
    if node.domain not in DEFAULT_DOMAINS:
        return _plugin_problem(node)
    if node.op_type not in supported:
        return "not supported by this parser"
    if node.op_type == "MaxPool" and len(node.output) > 1 and (maxpool_rule == "any" or any(node.output[1:])):
        return load_support()["restrictions"]["MaxPool"][maxpool_rule]
    return None


def check_ops(model: Any, version: str) -> OpCheck:
    """Check an ``onnx.ModelProto`` against one TensorRT version key (see :func:`trt_versions`)."""
    spec = load_support()["versions"][version]
    supported = frozenset(spec["supported"])
    found: Counter[tuple[str, str]] = Counter()
    for node in all_nodes(model.graph):
        reason = _node_problem(node, supported, spec["maxpool_second_output"])
        if reason is not None:
            found[(_op_key(node), reason)] += 1
    problems = [OpProblem(op, n, reason) for (op, reason), n in sorted(found.items())]
    opset = _default_opset(model)
    if not spec["opset_min"] <= opset <= spec["opset_max"]:
        problems.append(OpProblem(
            "opset", 1, f"opset {opset} is outside {spec['opset_min']}..{spec['opset_max']}; "
            f"re-export with --opset {min(max(opset, spec['opset_min']), spec['opset_max'])}"))
    return OpCheck(version, spec["label"], opset, count_ops(model), tuple(problems))


def check_file(path: str | Path, versions: str | None = None) -> list[OpCheck]:
    """Load an ONNX file (structure only) and check it for the requested version(s)."""

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file {path} does not exist; check the path")
    model = load_onnx(path, weights=False)
    return [check_ops(model, v) for v in resolve_versions(versions)]
