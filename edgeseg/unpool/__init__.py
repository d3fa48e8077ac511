"""The edgeseg 2x2 max-unpool op, in one folder (STYLE.md §5).

Contents:
* ``reference.py`` — numpy reference (the specification for the CUDA kernel; torch-free).
* ``torch_op.py`` — the one function models call (:func:`max_unpool2x2`), with its three modes:
  ``train`` (``F.max_unpool2d`` with pooling indices), ``native`` (standard ONNX ops) and
  ``plugin`` (an autograd function whose ONNX symbolic is one custom node for the TensorRT plugin).
* ``onnx_graph.py`` — the op in ONNX graphs: finds plugin nodes and native subgraphs, rewrites
  plugin nodes into the native standard-op form (torch-free).
* ``ort_op.py`` — registers the plugin node with onnxruntime (torch-free, runs ``reference.py``).
* ``plugin/`` — CUDA kernel, C++ IPluginV3 plugin and CMake project.

Only ``torch_op.py`` imports torch; this package sits just above the core modules (docs/design.md
§2, layers): the models, the runtime, export and calibration all use it, it uses none of them.

Definition: for 2x2/stride-2 pooling of the pre-pool activation ``x`` (N,C,H,W) and a decoder
tensor ``y`` (N,C,H//2,W//2), the output (N,C,H,W) holds ``y`` at the first maximal element of
each 2x2 window of ``x`` (row-major scan, PyTorch's choice) and 0 elsewhere; a window holding NaNs
routes to its LAST NaN (PyTorch's max pooling keeps ``val > max || isnan(val)``). For odd H/W the
last row/column (outside every window) is 0. Kernel, numpy reference, torch and ONNX forms follow
this one rule (tests/test_nan_windows.py).
"""

OP_NAME = "MaxUnpool2x2"
# The domain is onnxruntime-extensions' custom-op domain so that plugin-mode files run unchanged in
# onnxruntime (its Python custom ops can only live in "ai.onnx.contrib"). TensorRT ignores it: the
# parser looks the plugin up by op name + the plugin_version / plugin_namespace attributes, and only
# 10.10+ falls back to the domain when no plugin matches those attributes.
OP_DOMAIN = "ai.onnx.contrib"
OP_DOMAIN_VERSION = 1
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
