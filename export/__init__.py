"""PyTorch -> ONNX export, the unpool op, the TensorRT builder and plugin sources (import edgeseg.export).

Torch-free at import time: submodules that need torch import it themselves.
"""
