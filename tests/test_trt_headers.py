"""The TensorRT plugin compiled, linked and driven against NVIDIA's real TensorRT headers.

``../shared/tensorrt/<version>/include`` holds the public headers of TensorRT 10.3.0 (JetPack 6)
and 11.1 (see its README and COMMIT files). Per version:

* ``unpool_plugin.cpp`` compiles with g++ and with nvcc (its host compiler), ``-Wall -Wextra
  -Werror -Woverloaded-virtual -Wsuggest-override``, TensorRT and CUDA headers as ``-isystem``;
* the CMake project (``edgeseg build-plugin``'s code path, ``-DEDGESEG_WERROR=ON``) links
  ``libedgeseg_plugins.so`` for sm_87 + sm_90 against a stub ``libnvinfer.so.<major>``
  (tests/trt_mock/nvinfer_stub.cpp: only what TensorRT's closed library provides, written against
  the real interfaces); loading it registers the creator with no error TensorRT would log;
* tests/trt_mock/plugin_driver.cpp drives the plugin through the real ABI of that version:
  registration, logger finder, fields, types, formats, constant and symbolic output shapes, enqueue.

The kernel ``.cu`` compiles ``-Werror`` with nvcc once (it includes no TensorRT header).
Everything skips with the reason when ``../shared/tensorrt`` (not in a user's clone) or a compiler
is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "edgeseg" / "unpool" / "plugin"
MOCK = REPO / "tests" / "trt_mock"
TRT_HEADERS = REPO.parent / "shared" / "tensorrt"
VERSIONS = {"v10.3.0": 10, "v11.1": 11}  # folder -> TensorRT major
FULL_VERSION = {"v10.3.0": "10.3.0.26", "v11.1": "11.1.0.106"}
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Woverloaded-virtual", "-Wsuggest-override"]
NVCC = shutil.which("nvcc")


def _cuda_include() -> Path | None:
    if NVCC is None:
        return None
    nvcc = Path(subprocess.run(["readlink", "-f", NVCC], capture_output=True, text=True).stdout.strip())
    inc = nvcc.parents[1] / "include"
    if not (inc / "cuda_runtime_api.h").is_file():  # a wrapper script: ask nvcc where CUDA lives
        dry = subprocess.run([NVCC, "--dryrun", "-x", "cu", "-c", "/dev/null"], capture_output=True,
                             text=True)
        for line in dry.stderr.splitlines():
            if "TOP=" in line:
                inc = Path(line.split("TOP=", 1)[1].strip()) / "include"
    return inc if (inc / "cuda_runtime_api.h").is_file() else None


CUDA_INC = _cuda_include()


def headers(folder: str) -> Path:
    """The include folder of one TensorRT version, or skip with the reason."""
    inc = TRT_HEADERS / folder / "include"
    if not (inc / "NvInferRuntime.h").is_file():
        pytest.skip(f"TensorRT headers not found at {inc} (../shared/tensorrt is a build input of the "
                    "edgeseg CI machines, not part of the repository)")
    if CUDA_INC is None:
        pytest.skip("CUDA include folder (cuda_runtime_api.h, which TensorRT's headers include) not found")
    return inc


def _compile(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("folder", VERSIONS)
def test_plugin_cpp_compiles_werror_with_gxx(folder: str) -> None:
    inc = headers(folder)
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    _compile(["g++", "-std=c++17", "-fsyntax-only", *WARNINGS, "-isystem", str(inc), "-isystem",
              str(CUDA_INC), f"-I{PLUGIN}", str(PLUGIN / "unpool_plugin.cpp")])


@pytest.mark.slow
@pytest.mark.parametrize("folder", VERSIONS)
def test_plugin_cpp_compiles_werror_with_nvcc_host_compiler(folder: str, tmp_path: Path) -> None:
    inc = headers(folder)
    if NVCC is None:
        pytest.skip("nvcc is not installed")
    _compile([NVCC, "-std=c++17", "-c", "-Werror=all-warnings", "-Xcompiler", ",".join(WARNINGS),
              "-isystem", str(inc), f"-I{PLUGIN}", str(PLUGIN / "unpool_plugin.cpp"), "-o",
              str(tmp_path / "p.o")])


@pytest.mark.slow
def test_kernel_cu_compiles_werror_with_nvcc(tmp_path: Path) -> None:
    if NVCC is None:
        pytest.skip("nvcc is not installed")
    _compile([NVCC, "-std=c++17", "-c", "-Werror=all-warnings", "-Xcompiler", "-Wall,-Wextra,-Werror",
              "-gencode=arch=compute_87,code=sm_87", f"-I{PLUGIN}", str(PLUGIN / "unpool_kernel.cu"),
              "-o", str(tmp_path / "k.o")])


def test_no_handwritten_tensorrt_headers_remain() -> None:
    """The double is only what the closed library provides; NVIDIA's headers come from outside."""
    assert not list(MOCK.glob("NvInfer*.h"))
    for source in MOCK.iterdir():
        if source.suffix in (".h", ".cpp"):
            assert '#include "NvInfer' not in source.read_text(), source.name  # <NvInfer...> (-isystem)


@pytest.mark.slow
@pytest.mark.parametrize("folder", VERSIONS)
def test_plugin_driver_on_real_abi(folder: str, tmp_path: Path) -> None:
    """plugin_driver.cpp + unpool_plugin.cpp against the real headers of this version, -Werror."""
    inc = headers(folder)
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    exe = tmp_path / "plugin_driver"
    _compile(["g++", "-std=c++17", "-O0", "-pthread", *WARNINGS[:3], "-isystem", str(inc), "-isystem",
              str(CUDA_INC), f"-I{PLUGIN}", str(MOCK / "plugin_driver.cpp"),
              str(PLUGIN / "unpool_plugin.cpp"), "-o", str(exe)])
    done = subprocess.run([str(exe)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"ok TensorRT {VERSIONS[folder]}", \
        done.stdout + done.stderr
    # before a logger finder is set, the refusal is explained on stderr
    assert "unknown attribute 'kernel_size'" in done.stderr


@pytest.fixture(scope="module", params=list(VERSIONS))
def linked(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """(folder, stub libnvinfer.so.<major>, libedgeseg_plugins.so) built by ``edgeseg build-plugin``'s
    code path (find TensorRT, CMake -Werror, nvcc for sm_87+sm_90, --no-undefined, sidecar)."""
    from edgeseg.export.plugin_build import build_plugin

    folder = request.param
    inc = headers(folder)
    if NVCC is None or shutil.which("cmake") is None or shutil.which("g++") is None:
        pytest.skip("nvcc, cmake and g++ are needed")
    major = VERSIONS[folder]
    tmp = tmp_path_factory.mktemp(f"plugin-{folder}")
    libdir = tmp / "lib"
    libdir.mkdir()
    stub = libdir / f"libnvinfer.so.{major}"
    _compile(["g++", "-shared", "-fPIC", "-std=c++17", *WARNINGS[:3], "-isystem", str(inc), "-isystem",
              str(CUDA_INC), f"-Wl,-soname,libnvinfer.so.{major}", str(MOCK / "nvinfer_stub.cpp"), "-o",
              str(stub)])
    (libdir / "libnvinfer.so").symlink_to(stub.name)
    return folder, stub, build_plugin(tmp / "out", include=inc, lib=libdir, cuda_arch="87,90", werror=True)


@pytest.mark.slow
def test_cmake_links_the_plugin_library(linked: tuple[str, Path, Path]) -> None:
    from edgeseg.runtime.trt_common import check_plugin_library, linked_tensorrt_major, plugin_sidecar

    from edgeseg.errors import EngineError

    folder, _, lib = linked
    major = VERSIONS[folder]
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True,
                             check=True).stdout
    for entry in ("getCreators", "setLoggerFinder", "initEdgesegPlugins", "edgeseg_unpool2x2"):
        assert f" T {entry}" in symbols, entry
    side = plugin_sidecar(lib).read_text()
    assert f'"tensorrt_version": "{FULL_VERSION[folder]}"' in side and '"87"' in side and '"90"' in side
    assert linked_tensorrt_major(lib) == major
    check_plugin_library(lib, FULL_VERSION[folder])
    other = "11.1.0.106" if major == 10 else "10.3.0.26"
    with pytest.raises(EngineError, match=f"libnvinfer.so.{major}"):
        check_plugin_library(lib, other)


# Run in a fresh interpreter per TensorRT version: each stub libnvinfer is loaded RTLD_GLOBAL (as
# `import tensorrt` loads the real one), and a second stub in the same process would be shadowed by
# the first one's getPluginRegistry.
_LOAD_SCRIPT = """
import ctypes, sys, types
from edgeseg.runtime import trt_common
stub_path, lib, version = sys.argv[1:4]
stub = ctypes.CDLL(stub_path, mode=ctypes.RTLD_GLOBAL)
key = (b"MaxUnpool2x2", b"1", b"")

class Registry:
    def get_creator(self, name, version, namespace=""):
        return object() if stub.mock_has(name.encode(), version.encode(), namespace.encode()) else None

sys.modules["tensorrt"] = types.SimpleNamespace(__version__=version, Builder=object,
                                                get_plugin_registry=Registry)
sha = trt_common.load_plugin_library(lib)
assert len(sha) == 64 and stub.mock_has(*key) == 1 and stub.mock_size() == 1, "static registration"
assert trt_common.load_plugin_library(lib) == sha, "once per process"
plugin = ctypes.CDLL(lib)
count = ctypes.c_int32(0)
plugin.getCreators.restype = ctypes.c_void_p
creators = plugin.getCreators(ctypes.byref(count))
assert creators and count.value == 1 and stub.mock_has(*key) == 0, "getCreators withdraws it"
assert stub.mock_register_all(ctypes.c_void_p(creators), count) == 1, "the loader registers it"
plugin.initEdgesegPlugins.restype = ctypes.c_bool
assert plugin.initEdgesegPlugins(None, None) and plugin.initEdgesegPlugins(None, None)
assert stub.mock_has(*key) == 1 and stub.mock_size() == 1, "initEdgesegPlugins adds nothing"
assert stub.mock_errors() == 0, "an error TensorRT would log"
print("ok")
"""


@pytest.mark.slow
def test_loading_the_library_registers_the_creator(linked: tuple[str, Path, Path]) -> None:
    """load_plugin_library (ctypes, like NVIDIA's Python samples) -> the library's static registrar
    fills the registry of the libnvinfer already loaded, without a getCreator miss (TensorRT 10.3
    logs those as API usage errors); getCreators (IPluginRegistry::loadLibrary, trtexec
    --dynamicPlugins) withdraws it so the loader can add it without a clash; initEdgesegPlugins
    afterwards succeeds without registering twice."""
    import sys

    folder, stub, lib = linked
    done = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, str(stub), str(lib), FULL_VERSION[folder]],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
