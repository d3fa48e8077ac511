"""Unpool export: plugin mode is ONE custom node, native mode only standard ops; both run in
onnxruntime bit-exactly like F.max_unpool2d (ties and odd sizes included)."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from edgeseg.errors import BackendError
from edgeseg.unpool import OP_DOMAIN, OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from edgeseg.unpool.ort_op import session_options
from edgeseg.unpool.reference import max_unpool2x2_ref

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from edgeseg.unpool.torch_op import max_pool2x2, max_unpool2x2, unpool_mode  # noqa: E402


class PoolUnpool(torch.nn.Module):
    """x -> pool -> (times 3 minus 1) -> unpool with x: isolates the op (no conv rounding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, idx = max_pool2x2(x)
        return max_unpool2x2(p * 3.0 - 1.0, x, idx)


def export(mode: str, shape: tuple[int, ...], dynamic: bool = False) -> onnx.ModelProto:
    f = io.BytesIO()
    with unpool_mode(mode), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            PoolUnpool(), (torch.zeros(shape),), f, dynamo=False, opset_version=17,
            input_names=["input"], output_names=["out"],
            dynamic_axes={"input": {0: "n"}, "out": {0: "n"}} if dynamic else None,
            custom_opsets={OP_DOMAIN: 1},
        )
    return onnx.load_from_string(f.getvalue())


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), session_options(threads=1),
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def torch_reference(x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(x)
    p, idx = F.max_pool2d(t, 2, 2, return_indices=True)
    return F.max_unpool2d(p * 3.0 - 1.0, idx, 2, 2, output_size=t.shape[-2:]).numpy()


def test_plugin_mode_is_one_custom_node_with_trt_attributes():
    model = export("plugin", (1, 2, 8, 8))
    custom = [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    assert [(n.op_type, n.domain) for n in custom] == [(OP_NAME, OP_DOMAIN)]
    node = custom[0]
    assert len(node.input) == 2 and node.input[0] == "input"  # (x, y): x is the pre-pool map
    attrs = {a.name: helper.get_attribute_value(a).decode() for a in node.attribute}
    assert attrs == {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE}
    for n in model.graph.node:  # no pooling indices anywhere, no MaxUnpool
        assert n.op_type != "MaxUnpool"
        assert not (n.op_type == "MaxPool" and len([o for o in n.output if o]) > 1)
    assert OP_DOMAIN in {o.domain for o in model.opset_import}
    onnx.checker.check_model(model, full_check=True)


def test_native_mode_uses_only_standard_ops():
    model = export("native", (1, 2, 8, 8))
    assert {n.domain for n in model.graph.node} <= {"", "ai.onnx"}
    ops = {n.op_type for n in model.graph.node}
    assert "ArgMax" in ops and "MaxUnpool" not in ops
    assert all(len([o for o in n.output if o]) == 1 for n in model.graph.node if n.op_type == "MaxPool")


@pytest.mark.parametrize("mode", ["native", "plugin"])
@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 2, 7, 9)])
@pytest.mark.parametrize("ties", [False, True])
def test_onnxruntime_matches_max_unpool2d_bit_exactly(mode, shape, ties):
    rng = np.random.default_rng(sum(shape) + ties)
    x = rng.standard_normal(shape).astype(np.float32)
    if ties:
        x = np.round(x)  # many equal maxima inside windows: first one (row-major) must win
    got = run(export(mode, shape), x)
    np.testing.assert_array_equal(got, torch_reference(x))


def test_dynamic_batch_plugin_mode():
    model = export("plugin", (1, 3, 6, 6), dynamic=True)
    x = np.random.default_rng(1).standard_normal((3, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(run(model, x), torch_reference(x))


def test_session_options_threads():
    assert session_options(threads=2).intra_op_num_threads == 2
    with pytest.raises(BackendError, match="threads=0"):
        session_options(threads=0)


PLUGIN_GRAPH_NO_TORCH = f"""
import sys
sys.modules["torch"] = None
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper
from edgeseg.unpool.ort_op import session_options
from edgeseg.unpool.reference import max_unpool2x2_ref
node = helper.make_node("{OP_NAME}", ["x", "y"], ["out"], domain="{OP_DOMAIN}",
                        plugin_version="{PLUGIN_VERSION}", plugin_namespace="{PLUGIN_NAMESPACE}")
g = helper.make_graph([node], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 6]),
     helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 3])],
    [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 4, 6])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("{OP_DOMAIN}", 1)])
s = ort.InferenceSession(m.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
x = np.round(np.random.default_rng(0).standard_normal((1, 2, 4, 6))).astype(np.float32)
y = np.random.default_rng(1).standard_normal((1, 2, 2, 3)).astype(np.float32)
np.testing.assert_array_equal(s.run(None, {{"x": x, "y": y}})[0], max_unpool2x2_ref(x, y))
print("ok")
"""


def test_plugin_node_runs_in_onnxruntime_without_torch():
    out = subprocess.run([sys.executable, "-c", PLUGIN_GRAPH_NO_TORCH], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_reference_first_maximum_wins():
    # The reference is the kernel spec: y lands on the first maximum of each window, zeros elsewhere.
    x = np.array([[[[1, 1, 0, 2], [0, 1, 2, 2]]]], dtype=np.float32)
    y = np.array([[[[5, 7]]]], dtype=np.float32)
    expected = np.array([[[[5, 0, 0, 7], [0, 0, 0, 0]]]], dtype=np.float32)
    np.testing.assert_array_equal(max_unpool2x2_ref(x, y), expected)


def export_edgeseg(mode: str, shape: tuple[int, ...], opset: int = 17,
                   dynamic: bool = False) -> onnx.ModelProto:
    """Through edgeseg's exporter (native at opset >= 13: plugin export + plugin_to_native)."""
    from edgeseg.export.onnx_export import INPUT_NAME, ExportOptions, check_graph, torch_to_onnx

    opts = ExportOptions(unpool=mode, opset=opset, dynamic_batch=dynamic)
    model = check_graph(torch_to_onnx(PoolUnpool(), shape, mode, opts))
    assert model.graph.input[0].name == INPUT_NAME
    return model


def test_edgeseg_native_export_is_space_to_depth_form():
    ops = [n.op_type for n in export_edgeseg("native", (1, 2, 8, 8)).graph.node]
    assert ops.count("SpaceToDepth") == 1 and ops.count("DepthToSpace") == 1 and ops.count("ArgMax") == 2
    assert "Transpose" not in ops and "MaxUnpool" not in ops


@pytest.mark.parametrize("shape", [(2, 3, 8, 10), (1, 2, 7, 9), (1, 1, 2, 3)])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dynamic", [False, True])
def test_edgeseg_native_export_matches_max_unpool2d_bit_exactly(shape, ties, dynamic):
    rng = np.random.default_rng(sum(shape) + 2 * ties + dynamic)
    x = rng.standard_normal(shape).astype(np.float32)
    if ties:
        x = np.round(x)
    model = export_edgeseg("native", shape, dynamic=dynamic)
    np.testing.assert_array_equal(run(model, x), torch_reference(x))
    if dynamic:  # another batch size through the same file
        x3 = np.concatenate([x, -x, x * 2])
        np.testing.assert_array_equal(run(model, x3), torch_reference(x3))


def test_edgeseg_native_export_below_opset_13_keeps_torch_form():
    model = export_edgeseg("native", (1, 2, 8, 8), opset=11)
    ops = {n.op_type for n in model.graph.node}
    assert "ArgMax" in ops and "SpaceToDepth" not in ops
    x = np.random.default_rng(3).standard_normal((1, 2, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(run(model, x), torch_reference(x))
