/*
 * edgeseg 2x2 max-unpool CUDA kernel behind a plain C function (no TensorRT, no CUDA headers
 * needed by callers, so Python can load it with ctypes and the TensorRT plugin can call it).
 *
 * Contract (the numpy reference edgeseg/unpool/reference.py is the specification):
 *   x   (N, C, H, W)        pre-pool activation, NCHW linear, dtype `dtype`
 *   y   (N, C, H/2, W/2)    decoder tensor (floor division), NCHW linear, dtype `dtype`
 *   out (N, C, H, W)        out[n,c,2i+di,2j+dj] = y[n,c,i,j] where (di,dj) is the FIRST
 *                           maximal element of the 2x2 window of x in row-major order, or
 *                           its LAST NaN if it has any (PyTorch's max-pool rule), 0 elsewhere;
 *                           for odd H (W) the last row (column) lies outside every window: 0.
 * Every element of `out` is written exactly once; `out` must not alias `x` or `y`.
 */
#ifndef EDGESEG_UNPOOL_KERNEL_H
#define EDGESEG_UNPOOL_KERNEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EDGESEG_API __declspec(dllexport)
#else
#define EDGESEG_API __attribute__((visibility("default")))
#endif

/* Element types understood by edgeseg_unpool2x2 (values fixed: Python passes them by number). */
enum
{
    EDGESEG_DTYPE_FLOAT32 = 0,
    EDGESEG_DTYPE_FLOAT16 = 1
};

/*
 * Launch the unpool on `stream` (a cudaStream_t; NULL = legacy default stream). Asynchronous.
 * Returns 0 (cudaSuccess) when the launch succeeded, 1 (cudaErrorInvalidValue) for bad
 * arguments (unknown dtype, negative sizes, NULL pointers with a non-empty tensor), or the
 * cudaError_t of the launch otherwise.
 */
EDGESEG_API int edgeseg_unpool2x2(void const* x, void const* y, void* out, int64_t n, int64_t c,
    int64_t height, int64_t width, int dtype, void* stream);

/* Version of this C interface (bumped when the signature or semantics change). */
EDGESEG_API int edgeseg_unpool_kernel_abi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* EDGESEG_UNPOOL_KERNEL_H */
