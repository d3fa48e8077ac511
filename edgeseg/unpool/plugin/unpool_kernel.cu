// edgeseg 2x2 max-unpool: CUDA kernel + the plain C launcher declared in unpool_kernel.h.
//
// One thread per 2x2 window of the output, with the window grid rounded UP (ceil(H/2) x ceil(W/2))
// so the odd last row/column is covered too: complete windows route y to their first maximum,
// partial edge windows write zeros. Every output element is written exactly once (no memset
// pass), which keeps the kernel at one read of x, one read of y and one write of out.
//
// The device part (everything up to and including the kernel) also compiles alone under NVRTC:
// CI uses CUDA 12.6's NVRTC to build it for sm_72 (Xavier), which CUDA 13's nvcc no longer targets.
#include <cuda_fp16.h>

#ifndef __CUDACC_RTC__
#include "unpool_kernel.h"

#include <cuda_runtime.h>

#include <cstdint>
#endif

namespace
{

template <typename T>
struct Elem;

template <>
struct Elem<float>
{
    using Pair = float2;
    __host__ __device__ static float value(float v) { return v; }
    __host__ __device__ static float zero() { return 0.0F; }
    __host__ __device__ static Pair pair(float lo, float hi) { return make_float2(lo, hi); }
    __host__ __device__ static float lo(Pair p) { return p.x; }
    __host__ __device__ static float hi(Pair p) { return p.y; }
};

template <>
struct Elem<__half>
{
    using Pair = __half2;
    __host__ __device__ static float value(__half v) { return __half2float(v); }
    __host__ __device__ static __half zero() { return __float2half(0.0F); }
    __host__ __device__ static Pair pair(__half lo, __half hi) { return __halves2half2(lo, hi); }
    __host__ __device__ static __half lo(Pair p) { return __low2half(p); }
    __host__ __device__ static __half hi(Pair p) { return __high2half(p); }
};

// True if `candidate` replaces the current maximum `best`: PyTorch's max-pooling test
// (`val > maxval || isnan(val)`). Scanning in row-major order, the strict comparison keeps the FIRST
// maximum of a NaN-free window, and every NaN replaces, so a window with NaNs routes to its LAST
// NaN: the rule of F.max_pool2d's indices, hence of F.max_unpool2d (edgeseg/unpool/reference.py).
// (v != v is the NaN test that means the same in host and device code; no fast-math here.)
__host__ __device__ __forceinline__ bool replaces(float candidate, float best)
{
    return candidate > best || candidate != candidate;
}

// Index (0..3, row-major) of the first maximal element of the window {a b / c d}.
__host__ __device__ __forceinline__ int firstMax(float a, float b, float c, float d)
{
    int arg = 0;
    float best = a;
    if (replaces(b, best)) { arg = 1; best = b; }
    if (replaces(c, best)) { arg = 2; best = c; }
    if (replaces(d, best)) { arg = 3; }
    return arg;
}

// One output window k (row-major over planes x windowsH x windowsW). kPairs: W is even and the
// pointers are aligned, so each window row is one 2-element vector load/store (adjacent threads
// touch adjacent vectors: fully coalesced). Host+device so tests can run it on the CPU.
template <typename T, typename Index, bool kPairs>
__host__ __device__ __forceinline__ void unpoolWindow(T const* __restrict__ x, T const* __restrict__ y,
    T* __restrict__ out, Index k, Index height, Index width, Index pooledH, Index pooledW, Index windowsH,
    Index windowsW)
{
    using E = Elem<T>;
    Index const j = k % windowsW;
    Index const rest = k / windowsW;
    Index const i = rest % windowsH;
    Index const plane = rest / windowsH;
    Index const top = (plane * height + 2 * i) * width + 2 * j;
    T const zero = E::zero();
    if (i < pooledH && j < pooledW)
    {
        T a, b, c, d;
        if (kPairs)
        {
            auto const up = *reinterpret_cast<typename E::Pair const*>(x + top);
            auto const down = *reinterpret_cast<typename E::Pair const*>(x + top + width);
            a = E::lo(up); b = E::hi(up); c = E::lo(down); d = E::hi(down);
        }
        else
        {
            a = x[top]; b = x[top + 1]; c = x[top + width]; d = x[top + width + 1];
        }
        T const v = y[(plane * pooledH + i) * pooledW + j];
        int const arg = firstMax(E::value(a), E::value(b), E::value(c), E::value(d));
        T const o0 = arg == 0 ? v : zero;
        T const o1 = arg == 1 ? v : zero;
        T const o2 = arg == 2 ? v : zero;
        T const o3 = arg == 3 ? v : zero;
        if (kPairs)
        {
            *reinterpret_cast<typename E::Pair*>(out + top) = E::pair(o0, o1);
            *reinterpret_cast<typename E::Pair*>(out + top + width) = E::pair(o2, o3);
        }
        else
        {
            out[top] = o0; out[top + 1] = o1; out[top + width] = o2; out[top + width + 1] = o3;
        }
    }
    else
    {
        // Partial window on the odd last row and/or column: outside every pooling window.
        bool const hasRight = 2 * j + 1 < width;
        bool const hasBelow = 2 * i + 1 < height;
        out[top] = zero;
        if (hasRight) { out[top + 1] = zero; }
        if (hasBelow) { out[top + width] = zero; }
        if (hasRight && hasBelow) { out[top + width + 1] = zero; }
    }
}

template <typename T, typename Index, bool kPairs>
__global__ void unpool2x2Kernel(T const* __restrict__ x, T const* __restrict__ y, T* __restrict__ out,
    Index planes, Index height, Index width, Index pooledH, Index pooledW, Index windowsH, Index windowsW)
{
    Index const total = planes * windowsH * windowsW;
    Index const stride = static_cast<Index>(gridDim.x) * static_cast<Index>(blockDim.x);
    for (Index k = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += stride)
    {
        unpoolWindow<T, Index, kPairs>(x, y, out, k, height, width, pooledH, pooledW, windowsH, windowsW);
    }
}

} // namespace

#ifndef __CUDACC_RTC__ // ---- host side: launcher and C entry points -------------------------------

namespace
{

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20; // grid-stride loop covers larger tensors

template <typename T, typename Index>
cudaError_t launchTyped(void const* x, void const* y, void* out, int64_t planes, int64_t height, int64_t width,
    cudaStream_t stream)
{
    int64_t const windowsH = (height + 1) / 2;
    int64_t const windowsW = (width + 1) / 2;
    int64_t const total = planes * windowsH * windowsW;
    int64_t const blocks64 = (total + kThreads - 1) / kThreads;
    unsigned const blocks = static_cast<unsigned>(blocks64 < kMaxBlocks ? blocks64 : kMaxBlocks);
    auto const align = static_cast<uintptr_t>(2 * sizeof(T));
    bool const aligned = ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % align) == 0;
    auto const* xt = static_cast<T const*>(x);
    auto const* yt = static_cast<T const*>(y);
    auto* ot = static_cast<T*>(out);
    Index const args[] = {static_cast<Index>(planes), static_cast<Index>(height), static_cast<Index>(width),
        static_cast<Index>(height / 2), static_cast<Index>(width / 2), static_cast<Index>(windowsH),
        static_cast<Index>(windowsW)};
    if (width % 2 == 0 && aligned)
    {
        unpool2x2Kernel<T, Index, true><<<blocks, kThreads, 0, stream>>>(
            xt, yt, ot, args[0], args[1], args[2], args[3], args[4], args[5], args[6]);
    }
    else
    {
        unpool2x2Kernel<T, Index, false><<<blocks, kThreads, 0, stream>>>(
            xt, yt, ot, args[0], args[1], args[2], args[3], args[4], args[5], args[6]);
    }
    return cudaGetLastError();
}

template <typename T>
cudaError_t launch(void const* x, void const* y, void* out, int64_t planes, int64_t height, int64_t width,
    cudaStream_t stream)
{
    // 32-bit index arithmetic (much cheaper divisions) whenever every element index fits.
    if (planes * height * width < (int64_t{1} << 31))
    {
        return launchTyped<T, uint32_t>(x, y, out, planes, height, width, stream);
    }
    return launchTyped<T, int64_t>(x, y, out, planes, height, width, stream);
}

} // namespace

extern "C" int edgeseg_unpool2x2(void const* x, void const* y, void* out, int64_t n, int64_t c, int64_t height,
    int64_t width, int dtype, void* stream)
{
    if (n < 0 || c < 0 || height < 0 || width < 0)
    {
        return static_cast<int>(cudaErrorInvalidValue);
    }
    int64_t const planes = n * c;
    if (planes == 0 || height == 0 || width == 0)
    {
        return static_cast<int>(cudaSuccess); // empty output: nothing to write
    }
    bool const hasWindows = height >= 2 && width >= 2;
    if (out == nullptr || ((x == nullptr || y == nullptr) && hasWindows))
    {
        return static_cast<int>(cudaErrorInvalidValue);
    }
    auto const s = static_cast<cudaStream_t>(stream);
    switch (dtype)
    {
    case EDGESEG_DTYPE_FLOAT32: return static_cast<int>(launch<float>(x, y, out, planes, height, width, s));
    case EDGESEG_DTYPE_FLOAT16: return static_cast<int>(launch<__half>(x, y, out, planes, height, width, s));
    default: return static_cast<int>(cudaErrorInvalidValue);
    }
}

extern "C" int edgeseg_unpool_kernel_abi_version(void)
{
    return 1;
}

#endif // __CUDACC_RTC__
