"""Static checks of the TensorRT code, for machines without TensorRT (docs/design.md §10).

* every TensorRT name the Python modules use exists in the class it is used on, in the pybind11
  binding sources of TensorRT 10.3.0 and 11.1 (../shared/tensorrt; skip with a reason when
  absent), and the check itself tells a removed name from the same name in another class;
* mypy against tensorrt-stubs (.cache/trt-stubs);
* the C++ plugin registers exactly the ONNX node's name/version/namespace and implements every
  pure virtual of IPluginV3 / IPluginV3One{Core,Build,Runtime} / IPluginCreatorV3One; it is
  compiled against an installed TensorRT where there is one. Compiling, linking and driving it
  against NVIDIA's published headers of 10.3.0 and 11.1: tests/test_trt_headers.py.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseg.unpool import OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "edgeseg" / "unpool" / "plugin"
STUBS = REPO / ".cache" / "trt-stubs"


def _checker():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("check_trt_api", REPO / "scripts" / "check_trt_api.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while the class is created
    spec.loader.exec_module(module)
    return module


chk = _checker()


def _rows_or_skip() -> list:
    try:
        return chk.check()
    except FileNotFoundError as e:
        pytest.skip(f"{e} (../shared/tensorrt holds NVIDIA's binding sources on the edgeseg CI machines; "
                    "it is not part of the repository)")


def test_every_trt_name_exists_in_its_class() -> None:
    """Each (class, name) edgeseg uses is bound in the 10.3 and 11.1 binding sources."""
    rows = _rows_or_skip()
    assert len(rows) > 50
    assert chk.missing(rows) == []
    table = {str(r.use): r.present for r in rows}
    assert table["BuilderFlag.FP16"] == {"10.3": "yes", "11.1": "n/a"}  # 10.x-only, guarded in code
    assert table["IExecutionContext.execute_async_v3"] == {"10.3": "yes", "11.1": "yes"}


def test_check_is_scoped_by_class() -> None:
    """Positive controls: a name bound on another class (INT8 and UINT8 on DataType, num_errors on
    OnnxParser) does not make it present on this one (BuilderFlag in 11.1, ParserError)."""
    _rows_or_skip()
    api10 = chk.binding_api(chk.SOURCES / "v10.3.0" / "python" / "src")
    api11 = chk.binding_api(chk.SOURCES / "v11.1" / "python" / "src")
    assert "INT8" in api10["BuilderFlag"] and "INT8" not in api11["BuilderFlag"]
    assert "INT8" in api11["DataType"] and "UINT8" in api11["DataType"]
    assert "FP16" not in api11["BuilderFlag"]
    for removed in ("platform_has_fast_fp16",):
        assert removed in api10["Builder"] and removed not in api11["Builder"]
    assert "int8_calibrator" in api10["IBuilderConfig"] and "int8_calibrator" not in api11["IBuilderConfig"]
    assert "num_errors" in api11["OnnxParser"] and "num_errors" not in api11["ParserError"]
    assert "Severity" in api11["ILogger"] and "ERROR" in api11["ILogger.Severity"]
    assert "execute_async_v3" in api11["IExecutionContext"]
    assert "execute_async_v4" not in api10["IExecutionContext"]


def test_collected_uses_are_resolved_to_classes() -> None:
    classes = frozenset({"Builder", "BuilderFlag", "ILogger", "ILogger.Severity", "OnnxParser", "ParserError",
                         "IBuilderConfig", "ITimingCache", "INetworkDefinition", "ITensor", "IPluginRegistry",
                         "Runtime", "ICudaEngine", "IExecutionContext", "TensorIOMode", "MemoryPoolType",
                         "NetworkDefinitionCreationFlag", "IOptimizationProfile", "Dims", "DeviceType"})
    used = {str(u) for u in chk.collect_uses([REPO / m for m in chk.TRT_MODULES], classes)}
    for name in ("trt.Builder", "trt.OnnxParser", "OnnxParser.parse_from_file",
                 "Builder.build_serialized_network",
                 "IBuilderConfig.set_memory_pool_limit", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
                 "Runtime.deserialize_cuda_engine", "IExecutionContext.execute_async_v3",
                 "IExecutionContext.set_tensor_address", "IExecutionContext.set_input_shape",
                 "trt.get_plugin_registry", "IPluginRegistry.get_creator", "ParserError.node_operator",
                 "ITimingCache.serialize", "ILogger.Severity.ERROR", "BuilderFlag.FP16"):
        assert name in used, name


def test_trt10_only_names_stay_in_the_weakly_typed_path() -> None:
    """BuilderFlag.FP16/INT8 (gone in 11) are reached only through _builder_flag, which only
    weakly typed (TensorRT 10.x) plans call with those names."""
    assert chk.trt10_only() == {"BuilderFlag.FP16", "BuilderFlag.INT8"}
    tree = ast.parse((REPO / "export" / "trt_engine.py").read_text())
    owners = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Attribute) and node.attr in ("FP16", "INT8")
                        and isinstance(node.value, ast.Attribute) and node.value.attr == "BuilderFlag"):
                    owners.add(fn.name)
    assert owners == {"_builder_flag"}


@pytest.mark.slow  # a mypy run (~14 s on 2 cores)
def test_mypy_against_tensorrt_stubs() -> None:
    if not (STUBS / "tensorrt" / "__init__.pyi").is_file():
        pytest.skip(f"tensorrt-stubs not in {STUBS} (run scripts/setup.sh)")
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e .[dev])")
    rc, out = chk.run_mypy(STUBS)
    assert rc == 0, out


def _header() -> str:
    return (PLUGIN / "unpool_plugin.h").read_text()


def test_plugin_registers_the_onnx_node_identity() -> None:
    consts = dict(re.findall(r'constexpr char const\* (kUnpoolPlugin\w+) = "([^"]*)";', _header()))
    assert consts == {"kUnpoolPluginName": OP_NAME, "kUnpoolPluginVersion": PLUGIN_VERSION,
                      "kUnpoolPluginNamespace": PLUGIN_NAMESPACE}
    cpp = (PLUGIN / "unpool_plugin.cpp").read_text()
    for field in ("plugin_version", "plugin_namespace"):  # declared, so the parser may pass them
        assert f'emplace_back("{field}"' in cpp


PURE_VIRTUALS = {  # NvInferRuntime.h / NvInferPluginBase.h, TensorRT 10.0+ (same in 11.x)
    "IPluginV3": ("getCapabilityInterface", "clone"),
    "IPluginV3OneCore": ("getPluginName", "getPluginVersion", "getPluginNamespace"),
    "IPluginV3OneBuild": ("configurePlugin", "getOutputDataTypes", "getOutputShapes",
                          "supportsFormatCombination", "getNbOutputs"),
    "IPluginV3OneRuntime": ("onShapeChange", "enqueue", "attachToContext", "getFieldsToSerialize"),
    "IPluginCreatorV3One": ("getPluginName", "getPluginVersion", "getPluginNamespace", "getFieldNames",
                            "createPlugin"),
}


def test_plugin_overrides_every_pure_virtual() -> None:
    header = _header()
    plugin, creator = header.split("class MaxUnpool2x2PluginCreator")
    for base, methods in PURE_VIRTUALS.items():
        body = creator if base == "IPluginCreatorV3One" else plugin
        assert f"public nvinfer1::{base}" in body, base
        for method in methods:
            assert re.search(rf"\b{method}\([^;]*\)[^;]*noexcept override;", body, re.S), f"{base}::{method}"
    for entry in ("void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept",
                  "nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept"):
        assert entry in header


def test_plugin_compiles_against_tensorrt_headers(tmp_path: Path) -> None:
    """Syntax/override check with the real headers: needs a TensorRT C++ install (not on PyPI: the
    bindings wheels hold only tensorrt.so, the libs wheels redirect to NVIDIA's index)."""
    from edgeseg.export.plugin_build import find_tensorrt

    from edgeseg.errors import EngineError

    try:
        install = find_tensorrt()
    except EngineError:
        pytest.skip("TensorRT C++ headers (NvInferRuntime.h) are not installed here and no PyPI package "
                    "ships them; the plugin compiles on a JetPack 6 / TensorRT tar machine")
    cuda_inc = Path(shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc").resolve().parents[1] / "include"
    subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", f"-I{install.include_dir}",
                    f"-I{cuda_inc}", f"-I{PLUGIN}", str(PLUGIN / "unpool_plugin.cpp")], check=True)
