// Runs the unpool kernel's per-window function (unpoolWindow in unpool_kernel.cu, included here so
// the very same source is exercised) on the CPU, window by window, so the index arithmetic, the
// first-maximum/NaN rule, FP16 handling, the paired (vector) path and odd sizes are checked on
// machines without a GPU. Built and driven by tests/test_kernel.py.
#include "unpool_kernel.cu"

namespace
{
template <typename T, typename Index, bool kPairs>
void runHost(void const* x, void const* y, void* out, int64_t planes, int64_t height, int64_t width)
{
    Index const windowsH = static_cast<Index>((height + 1) / 2);
    Index const windowsW = static_cast<Index>((width + 1) / 2);
    Index const total = static_cast<Index>(planes) * windowsH * windowsW;
    for (Index k = 0; k < total; ++k)
    {
        unpoolWindow<T, Index, kPairs>(static_cast<T const*>(x), static_cast<T const*>(y), static_cast<T*>(out), k,
            static_cast<Index>(height), static_cast<Index>(width), static_cast<Index>(height / 2),
            static_cast<Index>(width / 2), windowsH, windowsW);
    }
}

template <typename T>
int dispatch(void const* x, void const* y, void* out, int64_t planes, int64_t h, int64_t w, int pairs, int index64)
{
    if (pairs && w % 2 != 0)
    {
        return 1;
    }
    if (index64)
    {
        pairs ? runHost<T, int64_t, true>(x, y, out, planes, h, w) : runHost<T, int64_t, false>(x, y, out, planes, h, w);
    }
    else
    {
        pairs ? runHost<T, uint32_t, true>(x, y, out, planes, h, w)
              : runHost<T, uint32_t, false>(x, y, out, planes, h, w);
    }
    return 0;
}
} // namespace

extern "C" EDGESEG_API int edgeseg_unpool2x2_host(void const* x, void const* y, void* out, int64_t n, int64_t c,
    int64_t h, int64_t w, int dtype, int pairs, int index64)
{
    return dtype == EDGESEG_DTYPE_FLOAT16 ? dispatch<__half>(x, y, out, n * c, h, w, pairs, index64)
                                          : dispatch<float>(x, y, out, n * c, h, w, pairs, index64);
}
