"""Compile the unpool plugin (``edgeseg build-plugin``) and the kernel-only library.

* :func:`build_plugin` runs the CMake project in ``edgeseg/unpool/plugin`` against the local
  TensorRT (headers + libnvinfer found in the usual Jetson/x86 places, or given) and writes
  ``libedgeseg_plugins.so`` plus ``libedgeseg_plugins.so.json`` (the TensorRT version and CUDA
  architectures it was built for; the loader refuses a library built for another TensorRT).
* :func:`build_kernel_library` compiles ``libedgeseg_unpool_kernel.so`` with nvcc alone (no
  TensorRT): what CI compiles per GPU architecture and what the GPU test loads with ctypes.
* :func:`compile_kernel_cubin` compiles the kernel's device code with NVRTC (a libnvrtc from any
  CUDA, e.g. the ``nvidia-cuda-nvrtc-cu12`` wheel) to a cubin: how CI builds for sm_72 (Jetson
  Xavier), which CUDA 13's nvcc no longer targets, and checks the CUDA 12.6 (JetPack 6) compiler.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgeseg.runtime.trt_common import (
    KERNEL_LIB_NAME,
    PLUGIN_LIB_NAME,
    default_plugin_dir,
    plugin_sidecar,
    same_minor,
)

from edgeseg.errors import ConfigError, EngineError
from edgeseg.io import atomic_path, sha256_bytes, sha256_file, write_json_atomic

INCLUDE_DIRS = ("/usr/include/aarch64-linux-gnu", "/usr/include/x86_64-linux-gnu",
                "/usr/local/tensorrt/include", "/opt/tensorrt/include", "/usr/include")
LIB_DIRS = ("/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/local/tensorrt/lib",
            "/opt/tensorrt/lib", "/usr/lib")
HEADER_HINT = (
    "TensorRT headers/libraries not found{where}; on a Jetson they come with JetPack 6 (sudo apt install "
    "nvidia-jetpack, or libnvinfer-dev), on x86_64 unpack the TensorRT tar from NVIDIA's developer site and "
    "pass --trt-include <tar>/include --trt-lib <tar>/lib (pip's tensorrt wheels have no C++ headers)"
)


def plugin_source_dir() -> Path:
    """The CMake project (kernel .cu, plugin .h/.cpp) shipped inside the package."""
    return Path(str(resources.files("edgeseg.unpool") / "plugin")).resolve()


@dataclass(frozen=True)
class TrtInstall:
    """Where TensorRT's C++ side lives and which version its headers declare."""

    include_dir: Path
    nvinfer: Path
    version: str


def parse_trt_version(header: str) -> str:
    """'10.3.0.26' from NvInferVersion.h (plain numbers, or one macro indirection as in newer 10.x)."""
    defines: dict[str, str] = dict(re.findall(r"^\s*#define\s+(\w+)\s+(\w+)", header, flags=re.M))
    parts = []
    for key in ("MAJOR", "MINOR", "PATCH", "BUILD"):
        value = defines.get(f"NV_TENSORRT_{key}", "")
        value = defines.get(value, value)  # NV_TENSORRT_MAJOR -> TRT_MAJOR_ENTERPRISE -> 10
        if not value.isdigit():
            raise EngineError(f"cannot read NV_TENSORRT_{key} from NvInferVersion.h; pass --trt-include "
                              "to the include folder of a TensorRT 10.x/11.x install")
        parts.append(value)
    return ".".join(parts)


def _first(candidates: list[Path], names: tuple[str, ...]) -> Path | None:
    for folder in candidates:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def find_tensorrt(include: Path | None = None, lib: Path | None = None) -> TrtInstall:
    """Locate NvInferRuntime.h and libnvinfer: the given folders, $TENSORRT_ROOT, then system paths."""
    root = os.environ.get("TENSORRT_ROOT")
    incs = [include] if include else [*([Path(root) / "include"] if root else []), *map(Path, INCLUDE_DIRS)]
    libs = [lib] if lib else [*([Path(root) / "lib"] if root else []), *map(Path, LIB_DIRS)]
    header = _first(incs, ("NvInferRuntime.h",))
    where = f" in {', '.join(str(p) for p in (include, lib) if p)}" if include or lib else ""
    if header is None:
        raise EngineError(HEADER_HINT.format(where=where))
    version = parse_trt_version((header.parent / "NvInferVersion.h").read_text(errors="replace"))
    major = version.split(".")[0]
    nvinfer = _first(libs, ("libnvinfer.so", f"libnvinfer.so.{major}"))
    if nvinfer is None:
        raise EngineError(HEADER_HINT.format(where=where or f" (libnvinfer.so for TensorRT {version})"))
    return TrtInstall(header.parent, nvinfer, version)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None and name == "nvcc" and Path("/usr/local/cuda/bin/nvcc").is_file():
        path = "/usr/local/cuda/bin/nvcc"  # JetPack installs CUDA there without putting it on PATH
    if path is None:
        hint = ("CUDA's nvcc (JetPack: /usr/local/cuda/bin on PATH; x86: the CUDA toolkit)" if name == "nvcc"
                else "CMake >= 3.18 (apt install cmake or pip install cmake)")
        raise EngineError(f"{name} not found on PATH; building the plugin needs {hint}")
    return path


def cuda_archs(requested: str | None) -> tuple[str, ...]:
    """'87', '87,90' or None (= this machine's GPU) -> ('87',) ..."""
    if requested:
        archs = tuple(a.strip().removeprefix("sm_") for a in requested.split(",") if a.strip())
        if not archs or not all(a.isdigit() for a in archs):
            raise ConfigError(f"--cuda-arch {requested!r}: expected numbers like 87 (Orin) or 87,90")
        return archs
    from edgeseg.runtime.trt_common import device_info

    try:
        return (device_info().compute_capability.replace(".", ""),)
    except EngineError:
        raise EngineError("no GPU found to build for; pass --cuda-arch (87 = Jetson Orin, 90 = H100, "
                          "86/89 = RTX 30/40)") from None


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stdout + "\n" + done.stderr).strip().splitlines()
        errors = [ln.strip() for ln in lines if "error" in ln.lower() or "undefined reference" in ln][:3]
        tail = " | ".join(errors or lines[-4:])
        raise EngineError(f"{what} failed ({tail}); fix the toolchain or paths and rerun")


def _source_hash() -> str:
    src = plugin_source_dir()
    files = sorted(p for p in src.iterdir() if p.suffix in (".cu", ".h", ".cpp", ".txt"))
    return sha256_bytes(b"".join(p.read_bytes() for p in files))


DEFAULT_JOBS = 2  # parallel compile jobs (edgeseg build-plugin --jobs)


def build_plugin(out_dir: Path | None = None, include: Path | None = None, lib: Path | None = None,
                 cuda_arch: str | None = None, jobs: int = DEFAULT_JOBS, werror: bool = False) -> Path:
    """Build ``libedgeseg_plugins.so`` for the local TensorRT; return its path (atomic, with sidecar).

    ``werror``: compile edgeseg's sources with -Wall -Wextra -Werror (TensorRT's headers are SYSTEM
    includes, so only warnings in our code fail the build); CI sets it.
    """
    install = find_tensorrt(include, lib)
    _check_python_tensorrt(install.version)
    archs = cuda_archs(cuda_arch)
    out_dir = out_dir or default_plugin_dir(install.version)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmake = _tool("cmake")
    nvcc = _tool("nvcc")
    with tempfile.TemporaryDirectory(prefix="edgeseg-plugin-") as build:
        _run([cmake, "-S", str(plugin_source_dir()), "-B", build, "-DCMAKE_BUILD_TYPE=Release",
              f"-DCMAKE_CUDA_COMPILER={nvcc}",
              f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)}", f"-DEDGESEG_TRT_INCLUDE={install.include_dir}",
              f"-DEDGESEG_TRT_NVINFER={install.nvinfer}", f"-DEDGESEG_WERROR={'ON' if werror else 'OFF'}"],
             "CMake configure")
        _run([cmake, "--build", build, "--target", "edgeseg_plugins", "-j", str(jobs)], "CMake build")
        target = out_dir / PLUGIN_LIB_NAME
        with atomic_path(target) as tmp:
            shutil.copyfile(Path(build) / PLUGIN_LIB_NAME, tmp)
            tmp.chmod(0o755)  # mkstemp made it private; the library is loaded by other users too
    write_json_atomic(plugin_sidecar(target), {
        "tensorrt_version": install.version, "cuda_archs": list(archs), "sha256": sha256_file(target),
        "source_sha256": _source_hash(), "include_dir": str(install.include_dir),
        "nvinfer": str(install.nvinfer),
    })
    return target


def _check_python_tensorrt(header_version: str) -> None:
    """The headers must be the TensorRT the Python module (builder/runtime) loads."""
    try:
        import tensorrt as trt
    except ImportError:
        return  # a C++-only install: nothing to compare with
    py = getattr(trt, "__version__", None)
    if py and not same_minor(py, header_version):
        raise EngineError(f"TensorRT headers are {header_version} but the Python tensorrt is {py}; point "
                          "--trt-include/--trt-lib at the install that matches the Python module")


def build_kernel_library(out: Path, archs: tuple[str, ...] = ("87",)) -> Path:
    """Compile ``libedgeseg_unpool_kernel.so`` (kernel + C launcher, no TensorRT) with nvcc."""
    nvcc = _tool("nvcc")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    src = plugin_source_dir() / "unpool_kernel.cu"
    with atomic_path(out) as tmp:
        _run([nvcc, "-std=c++17", "-O3", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden", *gencode,
              "-o", str(tmp), str(src)], f"nvcc ({', '.join('sm_' + a for a in archs)})")
        tmp.chmod(0o755)
    return out


# Every kernel instantiation the host launcher can call (dtype x index type x paired loads).
KERNEL_INSTANCES = tuple(f"unpool2x2Kernel<{t}, {i}, {p}>" for t in ("float", "__half")
                         for i in ("unsigned int", "long") for p in ("true", "false"))
EM_CUDA = 190  # ELF e_machine of a cubin


@dataclass(frozen=True)
class Cubin:
    """A device-code image compiled by NVRTC."""

    image: bytes
    arch: int               # the SM the ELF header names (e_flags), e.g. 72
    nvrtc_version: str      # '12.6'
    kernels: dict[str, str]  # instantiation -> mangled symbol present in the image


def cubin_arch(image: bytes) -> int:
    """The SM a cubin is for, from its ELF header (e_machine EM_CUDA; the SM is e_flags' low byte up
    to ELF ABI version 7 (CUDA <= 12), bits 8-15 from ABI version 8 (CUDA 13))."""
    if image[:4] != b"\x7fELF" or image[4] != 2 or struct.unpack_from("<H", image, 18)[0] != EM_CUDA:
        raise EngineError("not a 64-bit CUDA ELF image (cubin)")
    flags = struct.unpack_from("<I", image, 48)[0]
    return (flags >> 8) & 0xFF if image[8] >= 8 else flags & 0xFF


def compile_kernel_cubin(arch: str, nvrtc_lib: Path, include: Path) -> Cubin:
    """Compile unpool_kernel.cu's device code for ``sm_<arch>`` with NVRTC into a cubin.

    ``nvrtc_lib``: a libnvrtc.so (e.g. ``nvidia/cuda_nvrtc/lib/libnvrtc.so.12`` of the pip wheel);
    ``include``: a CUDA include folder with cuda_fp16.h (``nvidia/cuda_runtime/include``). NVRTC
    skips the host part (``#ifndef __CUDACC_RTC__``); every kernel instantiation the launcher uses is
    requested by name, so a template that fails to compile for the target fails here.
    """
    try:
        nvrtc = ctypes.CDLL(str(nvrtc_lib))
    except OSError as e:
        raise EngineError(f"cannot load NVRTC {nvrtc_lib} ({e}); install nvidia-cuda-nvrtc-cu12") from None
    nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
    major, minor = ctypes.c_int(), ctypes.c_int()
    nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    version = f"{major.value}.{minor.value}"

    def check(code: int, what: str, log: str = "") -> None:
        if code != 0:
            reason = nvrtc.nvrtcGetErrorString(code).decode()
            detail = f": {log}" if log else ""
            raise EngineError(f"NVRTC {version} {what} for sm_{arch} failed ({reason}){detail}")

    src = plugin_source_dir() / "unpool_kernel.cu"
    prog = ctypes.c_void_p()
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src.read_bytes(), src.name.encode(), 0, None, None),
          "create")
    try:
        for name in KERNEL_INSTANCES:
            check(nvrtc.nvrtcAddNameExpression(prog, name.encode()), f"name {name}")
        opts = [f"--gpu-architecture=sm_{arch}".encode(), b"-std=c++17", f"-I{include}".encode()]
        code = nvrtc.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(prog, log)
        check(code, "compile", " | ".join(log.value.decode(errors="replace").strip().splitlines()[:3]))
        check(nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "cubin size")
        image = ctypes.create_string_buffer(size.value)
        check(nvrtc.nvrtcGetCUBIN(prog, image), "cubin")
        kernels = {}
        for name in KERNEL_INSTANCES:
            lowered = ctypes.c_char_p()
            check(nvrtc.nvrtcGetLoweredName(prog, name.encode(), ctypes.byref(lowered)), f"lowered {name}")
            kernels[name] = (lowered.value or b"").decode()
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
    return Cubin(image.raw, cubin_arch(image.raw), version, kernels)


__all__ = ["KERNEL_LIB_NAME", "PLUGIN_LIB_NAME", "Cubin", "TrtInstall", "build_kernel_library",
           "build_plugin", "compile_kernel_cubin", "cubin_arch", "cuda_archs", "find_tensorrt",
           "parse_trt_version", "plugin_source_dir"]
