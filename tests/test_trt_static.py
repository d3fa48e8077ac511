"""Static checks of the TensorRT code, for machines without TensorRT (DESIGN.md §7).

* every TensorRT name the Python modules use exists in the TensorRT 10.3 and 11.4 bindings
  binaries (wheels fetched by scripts/setup.sh into .cache/trt-wheels; skip with a reason when
  absent), and the check itself can see names that 11.x removed;
* mypy against tensorrt-stubs (.cache/trt-stubs);
* the C++ plugin registers exactly the ONNX node's name/version/namespace and implements every
  pure virtual of IPluginV3 / IPluginV3One{Core,Build,Runtime} / IPluginCreatorV3One; it is
  compiled against real TensorRT headers where they exist (they are not on PyPI).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from edgeseg.export.unpool import OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "export" / "unpool" / "plugin"
WHEELS = REPO / ".cache" / "trt-wheels"
STUBS = REPO / ".cache" / "trt-stubs"


def _checker():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("check_trt_api", REPO / "scripts" / "check_trt_api.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chk = _checker()


def _wheel_or_skip(version: str) -> Path:
    wheel = chk.find_wheel(WHEELS, version)
    if wheel is None:
        pytest.skip(f"TensorRT {version} bindings wheel not in {WHEELS} (run scripts/setup.sh; it downloads "
                    "tensorrt-cu12-bindings==10.3.0 / tensorrt-cu13-bindings==11.4.0.106)")
    return wheel


@pytest.mark.parametrize("version", ["10.3", "11.4"])
def test_every_trt_name_exists(version: str) -> None:
    _wheel_or_skip("10.3")
    _wheel_or_skip("11.4")
    missing, checked = chk.check_wheels(WHEELS)
    assert checked[version] > 50
    assert missing[version] == [], f"TensorRT {version} lacks: {missing[version]}"


def test_check_sees_what_tensorrt_11_removed() -> None:
    """Positive control: the binaries tell 10.3 from 11.4 (NVIDIA's 10.x -> 11.x migration list)."""
    n10, n11 = chk.wheel_names(_wheel_or_skip("10.3")), chk.wheel_names(_wheel_or_skip("11.4"))
    for removed in ("FP16", "platform_has_fast_fp16", "int8_calibrator", "set_calibration_profile"):
        assert chk.present(removed, n10) and not chk.present(removed, n11), removed
    for kept in ("execute_async_v3", "set_tensor_address", "STRONGLY_TYPED", "get_creator", "nptype"):
        assert chk.present(kept, n10) and chk.present(kept, n11), kept
    assert not chk.present("execute_async_v4", n10)


def test_collected_names_cover_builder_and_runtime() -> None:
    used = chk.collect_names([REPO / m for m in chk.TRT_MODULES])
    for name in ("Builder", "OnnxParser", "parse_from_file", "build_serialized_network",
                 "set_memory_pool_limit", "STRONGLY_TYPED", "deserialize_cuda_engine", "execute_async_v3",
                 "set_tensor_address", "set_input_shape", "get_plugin_registry", "get_creator",
                 "node_operator"):
        assert name in used, name


def test_trt10_only_names_stay_in_the_weakly_typed_path() -> None:
    """BuilderFlag.FP16/INT8 (gone in 11) are reached only through _builder_flag, which only
    weakly typed (TensorRT 10.x) plans call with those names."""
    assert chk.trt10_only() == {"FP16", "INT8"}
    tree = ast.parse((REPO / "export" / "trt_engine.py").read_text())
    owners = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Attribute) and node.attr in ("FP16", "INT8")
                        and isinstance(node.value, ast.Attribute) and node.value.attr == "BuilderFlag"):
                    owners.add(fn.name)
    assert owners == {"_builder_flag"}


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


MOCK = REPO / "tests" / "trt_mock"


def test_plugin_compiles_against_declaration_double() -> None:
    """-Wall -Wextra -Werror against tests/trt_mock/NvInferRuntime.h (the declarations the plugin
    uses, transcribed from NVIDIA's headers): catches syntax errors and override mismatches here."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-isystem",
                    str(MOCK), f"-I{PLUGIN}", str(PLUGIN / "unpool_plugin.cpp")], check=True)


def test_plugin_logic_on_cpu(tmp_path: Path) -> None:
    """Registration (static, getCreators, initEdgesegPlugins), creator fields, capabilities,
    type/format/shape rules and enqueue's kernel call, run against the test double."""
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    exe = tmp_path / "plugin_driver"
    subprocess.run(["g++", "-std=c++17", "-O0", "-isystem", str(MOCK), f"-I{PLUGIN}",
                    str(MOCK / "plugin_driver.cpp"), str(PLUGIN / "unpool_plugin.cpp"), "-o", str(exe)],
                   check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
    assert "unknown attribute 'kernel_size'" in done.stderr  # the refusal is explained
