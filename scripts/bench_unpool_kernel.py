#!/usr/bin/env python3
"""Benchmark the edgeseg unpool CUDA kernel on a GPU (needs torch with CUDA and nvcc).

For SegNet-sized tensors it checks the kernel bit-exactly against the numpy reference (FP32) and
measures, in one run on one GPU:

* the kernel's achieved bandwidth (bytes of x + y read and out written, per second),
* a device-to-device copy moving the same number of bytes (the practical bandwidth ceiling),
* PyTorch's index-based ``F.max_unpool2d`` (it reads int64 indices instead of x) for scale.

Reported as ratios to the copy; JSON + Markdown via edgeseg.report.write_report.

    python scripts/bench_unpool_kernel.py [--out runs/bench_unpool_kernel] [--iters 50]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = ((1, 64, 360, 480), (1, 128, 180, 240), (1, 512, 45, 60), (8, 64, 360, 480))


def _timed(torch: Any, fn: Any, iters: int) -> float:
    """Mean seconds per call, CUDA events, after one warm-up call."""
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters / 1e3


def _kernel(lib: Path) -> Any:
    fn = ctypes.CDLL(str(lib)).edgeseg_unpool2x2
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 4 + [ctypes.c_int, ctypes.c_void_p]
    return fn


def bench_shape(torch: Any, fn: Any, shape: tuple[int, ...], dtype: Any, iters: int) -> dict[str, Any]:
    import torch.nn.functional as F

    from edgeseg.unpool.reference import max_unpool2x2_ref

    n, c, h, w = shape
    x = torch.randn(shape, device="cuda", dtype=dtype)
    y = torch.randn((n, c, h // 2, w // 2), device="cuda", dtype=dtype)
    out = torch.empty_like(x)
    stream = torch.cuda.current_stream().cuda_stream
    code = 0 if dtype == torch.float32 else 1

    def run() -> None:
        fn(x.data_ptr(), y.data_ptr(), out.data_ptr(), n, c, h, w, code, stream)

    run()
    torch.cuda.synchronize()
    exact = bool(np.array_equal(out.cpu().numpy(), max_unpool2x2_ref(x.cpu().numpy(), y.cpu().numpy())))
    moved = 2 * x.nbytes + y.nbytes
    src = torch.empty(moved // 2, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    _, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    t_kernel = _timed(torch, run, iters)
    t_copy = _timed(torch, lambda: dst.copy_(src), iters)
    t_torch = _timed(torch, lambda: F.max_unpool2d(y, idx, 2, 2, output_size=x.shape[-2:]), iters)
    return {"shape": list(shape), "dtype": str(dtype).removeprefix("torch."), "bit_exact": exact,
            "kernel_us": t_kernel * 1e6, "kernel_gbs": moved / t_kernel / 1e9,
            "copy_gbs": moved / t_copy / 1e9,
            "ratio_to_copy": t_copy / t_kernel, "torch_unpool_us": t_torch * 1e6,
            "speedup_vs_torch_unpool": t_torch / t_kernel}


def markdown(rows: list[dict[str, Any]], gpu: str) -> str:
    lines = [f"# Unpool kernel on {gpu}", "",
             "| shape | dtype | bit-exact | kernel µs | kernel GB/s | copy GB/s | kernel/copy | "
             "F.max_unpool2d µs | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        lines.append(f"| {shape} | {r['dtype']} | {r['bit_exact']} | {r['kernel_us']:.1f} | "
                     f"{r['kernel_gbs']:.0f} | {r['copy_gbs']:.0f} | {r['ratio_to_copy']:.2f} | "
                     f"{r['torch_unpool_us']:.1f} | {r['speedup_vs_torch_unpool']:.2f} |")
    lines += ["", "GB/s counts x and y read plus out written; the copy moves the same bytes (D2D)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench_unpool_kernel"))
    ap.add_argument("--iters", type=int, default=50)
    args = ap.parse_args()
    import torch
    from edgeseg.export.plugin_build import build_kernel_library

    from edgeseg.report import write_report

    if not torch.cuda.is_available():
        print("no CUDA GPU: this benchmark needs one", file=sys.stderr)
        return 2
    major, minor = torch.cuda.get_device_capability()
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_kernel_library(Path(tmp) / "libedgeseg_unpool_kernel.so", (f"{major}{minor}",))
        fn = _kernel(lib)
        dtypes = (torch.float32, torch.float16)
        rows = [bench_shape(torch, fn, s, dt, args.iters) for s in SHAPES for dt in dtypes]
    gpu = torch.cuda.get_device_name()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    paths = write_report(args.out, {"gpu": gpu, "compute_capability": f"{major}.{minor}", "rows": rows},
                         markdown(rows, gpu))
    print(markdown(rows, gpu))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
