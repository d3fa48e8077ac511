"""The unpool CUDA kernel library (no TensorRT).

* compile: ``libedgeseg_unpool_kernel.so`` with nvcc for sm_72 (Xavier), sm_87 (Orin), sm_90
  (H100) and sm_110 (Jetson Thor, CUDA 13), one compile per architecture; an architecture the
  installed nvcc no longer lists is skipped with the reason (CUDA 13.0 dropped sm_72).
* compile with CUDA 12.6's NVRTC (the JetPack 6.1/6.2 compiler, from NVIDIA's pip wheels that
  scripts/setup.sh unpacks into .cache/cuda12): the device code for sm_72 (Xavier) and sm_87 (Orin),
  every kernel instantiation present in the cubin, the cubin's ELF header naming the SM.
* C launcher on the CPU: argument checks and empty tensors need no GPU, so they run everywhere.
* the CMake project (``edgeseg build-plugin``'s path) and the plugin library against NVIDIA's real
  TensorRT headers: tests/test_trt_headers.py.
* ``gpu``: bit-exact against the numpy reference and ``F.max_unpool2d`` on CUDA tensors, FP32 and
  FP16, ties and odd sizes; prints achieved bandwidth vs a device-to-device copy of the same bytes.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from edgeseg.export.plugin_build import (
    KERNEL_INSTANCES,
    build_kernel_library,
    compile_kernel_cubin,
    cubin_arch,
    plugin_source_dir,
)

from edgeseg.unpool.reference import max_unpool2x2_ref

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed")


CASES = [  # (N, C, H, W): odd batch/channel counts, odd H and W, a single window, tall/narrow
    (1, 1, 2, 2), (3, 5, 8, 10), (1, 7, 9, 11), (2, 3, 7, 6), (5, 1, 16, 3), (1, 2, 1, 5),
]


def supported_archs() -> set[str]:
    out = subprocess.run([str(NVCC), "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    return {a.removeprefix("compute_") for a in out.split()}


def load(lib: Path) -> ctypes.CDLL:
    dll = ctypes.CDLL(str(lib))
    dll.edgeseg_unpool2x2.restype = ctypes.c_int
    dll.edgeseg_unpool2x2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                      ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int,
                                      ctypes.c_void_p]
    return dll


@pytest.fixture(scope="module")
def kernel_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kernel library for this machine's GPU when torch sees one, else for sm_87."""
    if NVCC is None:
        pytest.skip("nvcc (CUDA toolkit) is not installed")
    arch = "87"
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            arch = f"{major}{minor}"
    except ImportError:
        pass
    return build_kernel_library(tmp_path_factory.mktemp("kernel") / "libedgeseg_unpool_kernel.so", (arch,))


@needs_nvcc
@pytest.mark.parametrize("arch", ["72", "87", "90", "110"])
def test_kernel_compiles(arch: str, tmp_path: Path) -> None:
    if arch not in supported_archs():
        pytest.skip(f"nvcc here does not support sm_{arch} (CUDA 13 dropped sm_72/Xavier; its device code is "
                    "compiled by test_kernel_device_code_compiles_with_cuda12_nvrtc with CUDA 12.6 NVRTC)")
    lib = build_kernel_library(tmp_path / "libedgeseg_unpool_kernel.so", (arch,))
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True,
                             check=True).stdout
    exported = {line.split()[-1] for line in symbols.splitlines() if " T " in line}
    assert exported == {"edgeseg_unpool2x2", "edgeseg_unpool_kernel_abi_version"}  # the rest stays hidden
    if shutil.which("cuobjdump"):  # not part of every CUDA install (absent on the CI hosts)
        elves = subprocess.run(["cuobjdump", "--list-elf", str(lib)], capture_output=True, text=True).stdout
        assert f"sm_{arch}" in elves


CUDA12 = Path(os.environ.get("EDGESEG_CUDA12_DIR", Path(__file__).parents[1] / ".cache" / "cuda12"))
NVRTC12 = CUDA12 / "nvidia" / "cuda_nvrtc" / "lib" / "libnvrtc.so.12"


@pytest.mark.parametrize("arch", ["72", "87"])
def test_kernel_device_code_compiles_with_cuda12_nvrtc(arch: str) -> None:
    if not NVRTC12.is_file():
        pytest.skip(f"CUDA 12.6 NVRTC not found at {NVRTC12} (scripts/setup.sh unpacks the "
                    "nvidia-cuda-nvrtc-cu12 wheel there; or set EDGESEG_CUDA12_DIR)")
    cubin = compile_kernel_cubin(arch, NVRTC12, CUDA12 / "nvidia" / "cuda_runtime" / "include")
    assert cubin.nvrtc_version.startswith("12.")
    assert cubin.arch == int(arch)  # the ELF header says sm_72 / sm_87, not just the flag we passed
    assert set(cubin.kernels) == set(KERNEL_INSTANCES)
    for symbol in cubin.kernels.values():  # every instantiation the launcher calls is in the image
        assert symbol.encode() in cubin.image


@needs_nvcc
@pytest.mark.parametrize("arch", ["87", "90", "110"])
def test_cubin_arch_reads_cuda13_elf_headers(arch: str, tmp_path: Path) -> None:
    """nvcc 13 writes ELF ABI version 8 (SM in e_flags bits 8-15), NVRTC 12 version 7 (low byte)."""
    if arch not in supported_archs():
        pytest.skip(f"nvcc here does not support sm_{arch}")
    out = tmp_path / "k.cubin"
    subprocess.run([str(NVCC), "-cubin", f"-arch=sm_{arch}", "-std=c++17", "-o", str(out),
                    str(plugin_source_dir() / "unpool_kernel.cu")], check=True)
    assert cubin_arch(out.read_bytes()) == int(arch)


def test_nvrtc_errors_name_the_compiler_and_arch() -> None:
    from edgeseg.errors import EngineError

    if not NVRTC12.is_file():
        pytest.skip(f"CUDA 12.6 NVRTC not found at {NVRTC12} (run scripts/setup.sh)")
    with pytest.raises(EngineError, match=r"NVRTC 12\.\d+ compile for sm_110 failed"):
        # sm_110 (Jetson Thor) needs CUDA 13: NVRTC 12 refuses it
        compile_kernel_cubin("110", NVRTC12, CUDA12 / "nvidia" / "cuda_runtime" / "include")


def test_cubin_arch_refuses_other_files() -> None:
    from edgeseg.errors import EngineError

    with pytest.raises(EngineError, match="not a 64-bit CUDA ELF"):
        cubin_arch(b"\x7fELF" + bytes(60))


def test_c_launcher_checks_arguments_without_gpu(kernel_lib: Path) -> None:
    dll = load(kernel_lib)
    assert dll.edgeseg_unpool_kernel_abi_version() == 1
    buf = ctypes.create_string_buffer(64)
    p = ctypes.addressof(buf)
    invalid = 1  # cudaErrorInvalidValue
    assert dll.edgeseg_unpool2x2(p, p, p, -1, 1, 2, 2, 0, None) == invalid  # negative size
    assert dll.edgeseg_unpool2x2(p, p, p, 1, 1, 2, 2, 7, None) == invalid  # unknown dtype
    assert dll.edgeseg_unpool2x2(None, None, p, 1, 1, 2, 2, 0, None) == invalid  # NULL x/y
    assert dll.edgeseg_unpool2x2(p, p, None, 1, 1, 2, 2, 0, None) == invalid  # NULL out
    assert dll.edgeseg_unpool2x2(None, None, None, 0, 3, 4, 4, 0, None) == 0  # empty batch: no work


@needs_nvcc
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_window_function_on_cpu_matches_reference(dtype: type, tmp_path: Path) -> None:
    """The kernel's per-window function (same source, host-compiled by tests/kernel_host/) equals
    the numpy reference bit for bit: random, ties, NaNs; odd N/C/H/W; paired and scalar paths;
    32- and 64-bit indexing. No GPU needed."""
    lib = tmp_path / "unpool_host.so"
    subprocess.run([str(NVCC), "-std=c++17", "-O1", "-shared", "-Xcompiler", "-fPIC",
                    f"-I{plugin_source_dir()}", "-gencode=arch=compute_87,code=sm_87",
                    str(Path(__file__).parent / "kernel_host" / "unpool_host.cu"), "-o", str(lib)],
                   check=True)
    fn = ctypes.CDLL(str(lib)).edgeseg_unpool2x2_host
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 4 + [ctypes.c_int] * 3
    rng = np.random.default_rng(0)
    checked = 0
    for shape in [*CASES, (2, 2, 3, 1), (1, 1, 4, 4)]:
        for mode in ("random", "ties", "nan"):
            n, c, h, w = shape
            x = (rng.integers(0, 3, shape) if mode == "ties" else rng.standard_normal(shape)).astype(dtype)
            if mode == "nan":
                x.flat[rng.integers(0, x.size, max(1, x.size // 5))] = np.nan
            y = rng.standard_normal((n, c, h // 2, w // 2)).astype(dtype)
            ref = max_unpool2x2_ref(x, y)
            for pairs in (0, 1) if w % 2 == 0 else (0,):
                for index64 in (0, 1):
                    out = np.full(shape, np.nan, dtype)
                    code = fn(x.ctypes.data, y.ctypes.data, out.ctypes.data, n, c, h, w,
                              int(dtype == np.float16), pairs, index64)
                    case = (shape, mode, pairs, index64)
                    assert code == 0 and np.array_equal(out, ref, equal_nan=True), case
                    checked += 1
    assert checked >= 60


# ---- on a CUDA GPU --------------------------------------------------------------------------------



def _launch(dll: ctypes.CDLL, x: object, y: object, out: object, torch: object) -> int:
    n, c, h, w = x.shape
    dtype = 0 if x.dtype == torch.float32 else 1
    return dll.edgeseg_unpool2x2(x.data_ptr(), y.data_ptr(), out.data_ptr(), n, c, h, w, dtype,
                                 torch.cuda.current_stream().cuda_stream)


def _run(dll: ctypes.CDLL, x: object, y: object, torch: object) -> object:
    out = torch.full_like(x, float("nan"))  # every element must be written
    assert _launch(dll, x, y, out, torch) == 0
    torch.cuda.synchronize()
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape", CASES)
def test_kernel_matches_reference_and_torch(kernel_lib: Path, dtype: str, ties: bool,
                                            shape: tuple[int, int, int, int]) -> None:
    import torch
    import torch.nn.functional as F

    dll = load(kernel_lib)
    g = torch.Generator(device="cpu").manual_seed(hash((shape, ties)) % 2**31)
    x = (torch.randint(0, 3, shape, generator=g).float() if ties else torch.randn(shape, generator=g))
    x = x.to(getattr(torch, dtype)).cuda()
    n, c, h, w = shape
    y = torch.randn((n, c, h // 2, w // 2), generator=g).to(x.dtype).cuda()
    out = _run(dll, x, y, torch)
    ref = max_unpool2x2_ref(x.cpu().numpy(), y.cpu().numpy())
    assert np.array_equal(out.cpu().numpy(), ref)  # bit-exact (zeros included)
    if h >= 2 and w >= 2:
        pooled, idx = F.max_pool2d(x.float(), 2, 2, return_indices=True)
        expected = F.max_unpool2d(y.float(), idx, 2, 2, output_size=x.shape[-2:]).to(x.dtype)
        assert torch.equal(out, expected)


@pytest.mark.gpu
def test_kernel_bandwidth_vs_copy(kernel_lib: Path) -> None:
    """Achieved bandwidth of the kernel vs a device-to-device copy of the same bytes (printed)."""
    import torch

    dll = load(kernel_lib)
    x = torch.randn((8, 64, 512, 512), device="cuda")
    y = torch.randn((8, 64, 256, 256), device="cuda")
    moved = x.nbytes + y.nbytes + x.nbytes  # read x, read y, write out
    src = torch.empty(moved // 2, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)  # a copy of moved/2 bytes also moves `moved` bytes

    def timed(fn: object, reps: int = 20) -> float:
        fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / reps / 1e3

    out = torch.empty_like(x)
    assert _launch(dll, x, y, out, torch) == 0  # a failing launch must not be timed
    t_kernel = timed(lambda: _launch(dll, x, y, out, torch))
    t_copy = timed(lambda: dst.copy_(src))
    gbs_kernel, gbs_copy = moved / t_kernel / 1e9, moved / t_copy / 1e9
    print(f"\nunpool kernel fp32 {tuple(x.shape)}: {gbs_kernel:.0f} GB/s; device copy of the same bytes: "
          f"{gbs_copy:.0f} GB/s; ratio {gbs_kernel / gbs_copy:.2f} ({torch.cuda.get_device_name()})")
    assert gbs_kernel > 0
