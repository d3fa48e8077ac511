"""One NaN-window rule for every form of the unpool, equal to PyTorch's.

PyTorch's max pooling keeps ``val > max || isnan(val)`` while scanning a window in row-major order,
so ``F.max_pool2d`` indices (and ``F.max_unpool2d`` on them) point at the first maximum of a
NaN-free window and at the LAST NaN of a window with NaNs. Every 2x2 NaN pattern (16 masks) is
combined with distinct values, ties, +inf and -inf, and the unpool of each form is compared with
``F.max_unpool2d`` bit for bit (NaN positions included):

* the numpy reference (``edgeseg/unpool/reference.py``, also what onnxruntime runs for plugin nodes);
* the torch native form (``native_unpool``: the plugin node's PyTorch forward);
* the native ONNX graph (``edgeseg.unpool.onnx_graph.plugin_to_native``: what ``export --unpool
  native`` writes) and the torch form exported below opset 13, both in onnxruntime;
* the CUDA kernel's window function, host-compiled with nvcc (tests/kernel_host), FP32 and FP16.
"""

from __future__ import annotations

import ctypes
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgeseg.unpool import OP_DOMAIN, OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from edgeseg.unpool.reference import max_unpool2x2_ref

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from edgeseg.unpool.torch_op import native_unpool  # noqa: E402

NAN, INF = float("nan"), float("inf")
PATTERNS = ([1.0, 3.0, 2.0, 0.5], [2.0, 2.0, 2.0, 2.0], [0.0, 5.0, 5.0, 1.0], [INF, 1.0, INF, -2.0],
            [-INF, -INF, -3.0, -INF], [-1.0, -2.0, -3.0, -4.0])


def nan_windows() -> tuple[np.ndarray, np.ndarray]:
    """x (2, 3, 2, 2*16) float32: every NaN mask of a 2x2 window over every value pattern, channel
    by channel; y (2, 3, 1, 16) distinct non-zero values."""
    windows = []
    for pattern in PATTERNS:
        for mask in itertools.product((False, True), repeat=4):
            windows.append([NAN if m else v for v, m in zip(pattern, mask, strict=True)])
    w = np.asarray(windows, dtype=np.float32).reshape(2, 3, 16, 2, 2)  # 96 windows
    x = np.ascontiguousarray(w.transpose(0, 1, 3, 2, 4).reshape(2, 3, 2, 32))  # window k at columns 2k, 2k+1
    y = (np.arange(96, dtype=np.float32) + 1.0).reshape(2, 3, 1, 16)
    return x, y


def torch_truth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xt = torch.from_numpy(x)
    _, idx = F.max_pool2d(xt.float(), 2, 2, return_indices=True)
    out = F.max_unpool2d(torch.from_numpy(y).float(), idx, 2, 2, output_size=x.shape[-2:])
    return out.numpy().astype(y.dtype)


def test_the_inputs_cover_the_rule() -> None:
    x, y = nan_windows()
    truth = torch_truth(x, y)
    windows = x.reshape(2, 3, 2, 16, 2).transpose(0, 1, 3, 2, 4).reshape(-1, 4)
    picked = truth.reshape(2, 3, 2, 16, 2).transpose(0, 1, 3, 2, 4).reshape(-1, 4).argmax(axis=1)
    for win, k in zip(windows, picked, strict=True):
        nan = np.isnan(win)
        expected = 3 - int(nan[::-1].argmax()) if nan.any() else int(win.argmax())
        assert k == expected, (win, k)
    assert np.isnan(windows).all(axis=1).sum() == len(PATTERNS)  # all-NaN windows included


def test_reference_equals_max_unpool2d() -> None:
    x, y = nan_windows()
    np.testing.assert_array_equal(max_unpool2x2_ref(x, y), torch_truth(x, y))
    h = x.astype(np.float16)
    y16 = y.astype(np.float16)
    np.testing.assert_array_equal(max_unpool2x2_ref(h, y16), torch_truth(h, y16))


def test_torch_native_form_equals_max_unpool2d() -> None:
    x, y = nan_windows()
    out = native_unpool(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    np.testing.assert_array_equal(out, torch_truth(x, y))


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def test_native_onnx_graph_equals_max_unpool2d() -> None:
    """plugin node -> plugin_to_native (SpaceToDepth ... IsNaN branch ... DepthToSpace), in onnxruntime."""
    from edgeseg.unpool.onnx_graph import native_unpool_groups, plugin_to_native

    x, y = nan_windows()
    node = helper.make_node(OP_NAME, ["x", "y"], ["out"], "unpool", domain=OP_DOMAIN,
                            plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
                                            helper.make_tensor_value_info("y", TensorProto.FLOAT, y.shape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, x.shape)])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(OP_DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    native = plugin_to_native(model)
    onnx.checker.check_model(native)
    ops = [n.op_type for n in native.graph.node]
    assert "IsNaN" in ops and OP_NAME not in ops
    (group,) = native_unpool_groups(native)  # one unpool, NaN branch included
    assert (group.x, group.y, group.out) == ("x", "y", "out") and len(group.nodes) == len(native.graph.node)
    np.testing.assert_array_equal(_run(native, {"x": x, "y": y}), torch_truth(x, y))


def test_torch_form_below_opset_13_equals_max_unpool2d(tmp_path: Path) -> None:
    """Below opset 13 edgeseg exports the torch native form itself (no SpaceToDepth rewrite)."""
    import io
    import warnings

    class Unpool(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return native_unpool(x, y)

    x, y = nan_windows()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Unpool(), (torch.from_numpy(x), torch.from_numpy(y)), buf, opset_version=11,
                          input_names=["x", "y"], dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    np.testing.assert_array_equal(_run(model, {"x": x, "y": y}), torch_truth(x, y))


@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """tests/kernel_host/unpool_host.cu (includes unpool_kernel.cu) built for the CPU with nvcc."""
    from edgeseg.export.plugin_build import plugin_source_dir

    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc (CUDA toolkit) is not installed")
    lib = tmp_path_factory.mktemp("nan-kernel") / "unpool_host.so"
    subprocess.run([nvcc, "-std=c++17", "-O1", "-shared", "-Xcompiler", "-fPIC", f"-I{plugin_source_dir()}",
                    "-gencode=arch=compute_87,code=sm_87",
                    str(Path(__file__).parent / "kernel_host" / "unpool_host.cu"), "-o", str(lib)],
                   check=True)
    return ctypes.CDLL(str(lib))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_kernel_window_function_equals_max_unpool2d(dtype: type, host_kernel: ctypes.CDLL) -> None:
    """unpool_kernel.cu's unpoolWindow (the code every GPU thread runs), host-compiled; the paired
    (vector) and scalar paths, 32- and 64-bit indexing."""
    fn = host_kernel.edgeseg_unpool2x2_host
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 4 + [ctypes.c_int] * 3
    x, y = (a.astype(dtype) for a in nan_windows())
    truth = torch_truth(x, y)
    for pairs, index64 in itertools.product((0, 1), (0, 1)):
        out = np.full(x.shape, -7.0, dtype)
        code = fn(x.ctypes.data, y.ctypes.data, out.ctypes.data, *x.shape, int(dtype == np.float16), pairs,
                  index64)
        assert code == 0
        np.testing.assert_array_equal(out, truth, err_msg=f"pairs={pairs} index64={index64}")
