"""TensorRT op check: standard ops, pooling indices, MaxUnpool, plugin attributes, opset ranges,
per-version differences, the data file, and the torch-free ``edgeseg check-ops`` command."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from edgeseg.export.opcheck import check_file, check_ops, count_ops, load_support, resolve_versions
from onnx import TensorProto, helper
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import ConfigError, ExportError, ModelError
from edgeseg.unpool import OP_DOMAIN, OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
OUT = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)


def model(nodes: list, opset: int = 17, outputs: list | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [X], outputs or [OUT])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                   helper.make_opsetid(OP_DOMAIN, 1)])


def plugin_node(**attrs: str) -> onnx.NodeProto:
    return helper.make_node(OP_NAME, ["x", "p"], ["out"], domain=OP_DOMAIN, **attrs)


POOL = helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2])


def test_plain_graph_parses_on_both_versions():
    m = model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["out"])])
    for v in ("10.3", "11"):
        c = check_ops(m, v)
        assert c.ok and c.ops == {"Identity": 1, "Relu": 1} and c.opset == 17
        assert "all 2 op types parse" in c.summary()


def test_pooling_indices_and_maxunpool_are_rejected():
    pool = helper.make_node("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2, 2], strides=[2, 2])
    unpool = helper.make_node("MaxUnpool", ["p", "idx"], ["out"], kernel_shape=[2, 2], strides=[2, 2])
    for v in ("10.3", "11"):
        c = check_ops(model([pool, unpool]), v)
        assert not c.ok
        reasons = {p.op: p.reason for p in c.problems}
        assert "Indices" in reasons["MaxPool"]
        assert reasons["MaxUnpool"] == "not supported by this parser"
    assert check_ops(model([POOL, helper.make_node("Relu", ["p"], ["out"])]), "10.3").ok


def test_maxpool_with_an_unnamed_second_output_is_rejected_by_10_3_only():
    """onnx-tensorrt 10.3 refuses a MaxPool with more than one output; 11.0 only a named second one."""
    pool = helper.make_node("MaxPool", ["x"], ["p", ""], kernel_shape=[2, 2], strides=[2, 2])
    graph = model([pool, helper.make_node("Relu", ["p"], ["out"])])
    c10, c11 = check_ops(graph, "10.3"), check_ops(graph, "11")
    assert not c10.ok and "even an unnamed one" in {p.op: p.reason for p in c10.problems}["MaxPool"]
    assert c11.ok, c11.summary()


def test_edgeseg_plugin_node_parses_with_matching_attributes():
    explicit = plugin_node(plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE)
    defaults = plugin_node()  # the parser's defaults ("1", "") are what the plugin registers
    for node in (explicit, defaults):
        c = check_ops(model([POOL, node]), "10.3")
        assert c.ok, c.summary()
        assert c.ops == {"MaxPool": 1, f"{OP_DOMAIN}::{OP_NAME}": 1}


def test_plugin_attribute_mismatch_and_unknown_custom_op_are_rejected():
    wrong = check_ops(model([POOL, plugin_node(plugin_version="2", plugin_namespace="")]), "11")
    assert [p.op for p in wrong.problems] == [f"{OP_DOMAIN}::{OP_NAME}"]
    assert "plugin_version='2'" in wrong.problems[0].reason
    other = helper.make_node("FancyOp", ["x"], ["out"], domain="com.example")
    c = check_ops(model([other]), "11")
    assert c.problems[0].op == "com.example::FancyOp" and "no TensorRT plugin" in c.problems[0].reason


def test_versions_differ_where_the_parser_changed():
    # STFT: supported since TensorRT 10.5 (changelog), so 10.3 rejects it and 11.x accepts it.
    stft = helper.make_node("STFT", ["x", "step"], ["out"])
    c103, c11 = check_ops(model([stft]), "10.3"), check_ops(model([stft]), "11")
    assert [p.op for p in c103.problems] == ["STFT"] and c11.ok
    relu = [helper.make_node("Relu", ["x"], ["out"])]
    assert [p.op for p in check_ops(model(relu, opset=21), "10.3").problems] == ["opset"]
    assert check_ops(model(relu, opset=21), "11").ok


def test_subgraph_nodes_are_checked():
    then_graph = helper.make_graph([helper.make_node("MaxUnpool", ["x", "x"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    iff = helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=then_graph)
    c = check_ops(model([iff]), "11")
    assert count_ops(model([iff])) == {"If": 1, "MaxUnpool": 2}
    assert [p.op for p in c.problems] == ["MaxUnpool"] and c.problems[0].nodes == 2


def test_data_file_names_sources_and_versions():
    data = load_support()
    assert set(data["versions"]) == {"10.3", "11"}
    assert any("onnx-tensorrt" in s and "operators.md" in s for s in data["sources"])
    for spec in data["versions"].values():
        assert "MaxUnpool" not in spec["supported"] and "Conv" in spec["supported"]
        assert not set(spec["supported"]) & set(data["never_supported"])
    assert set(data["versions"]["10.3"]["supported"]) < set(data["versions"]["11"]["supported"])


def test_resolve_versions():
    assert resolve_versions(None) == ("10.3", "11")
    assert resolve_versions("11.2") == ("11",) and resolve_versions("10.3.0") == ("10.3",)
    with pytest.raises(ConfigError, match="unknown TensorRT version '10.4'"):
        resolve_versions("10.4")


def test_check_file_errors(tmp_path: Path):
    with pytest.raises(ExportError, match="does not exist"):
        check_file(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(ModelError, match="not a readable ONNX file"):  # edgeseg.io.load_onnx, shared
        check_file(bad)


def test_check_ops_cli(tmp_path: Path):
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(model([POOL, plugin_node(plugin_version="1", plugin_namespace="")]), str(good))
    pool = helper.make_node("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2, 2], strides=[2, 2])
    onnx.save(model([pool, helper.make_node("MaxUnpool", ["p", "idx"], ["out"], kernel_shape=[2, 2])]),
              str(bad))
    runner = CliRunner()
    ok = runner.invoke(app, ["check-ops", str(good), "--list"])
    assert ok.exit_code == 0, ok.output
    assert f"{OP_DOMAIN}::{OP_NAME}" in ok.stdout and "TensorRT 10.3" in ok.stdout
    fail = runner.invoke(app, ["check-ops", str(bad), "--trt", "10.3"])
    assert fail.exit_code == 1
    assert "MaxUnpool" in fail.stdout and "TensorRT 11" not in fail.stdout
    missing = runner.invoke(app, ["check-ops", str(tmp_path / "none.onnx")])
    assert missing.exit_code == 2 and missing.stderr.startswith("error:")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_plugin_mode_file_says_what_runs_it(tmp_path: Path):
    """A custom node passes TensorRT's check (with the plugin) but no stock runtime runs it: say so,
    and name the native export (issue 21)."""
    from edgeseg.unpool.onnx_graph import stock_runtime_note

    plugin = model([POOL, plugin_node(plugin_version="1", plugin_namespace="")])
    note = stock_runtime_note(plugin)
    assert note is not None and f"{OP_NAME} x1 ({OP_DOMAIN})" in note
    assert "stock onnxruntime, OpenVINO and OpenCV DNN cannot run" in note
    assert "edgeseg build-engine" in note and "--unpool native" in note
    assert stock_runtime_note(model([helper.make_node("Relu", ["x"], ["out"])])) is None
    path = tmp_path / "plugin.onnx"
    onnx.save(plugin, str(path))
    r = CliRunner().invoke(app, ["check-ops", str(path)])
    assert r.exit_code == 0, r.output
    assert "cannot run this file" in r.stdout and "edgeseg export CHECKPOINT -o model.native.onnx " \
                                                     "--unpool native" in " ".join(r.stdout.split())
