// Stub libnvinfer.so.<major>: the one symbol a plugin library links against (getPluginRegistry,
// declared in NVIDIA's NvInferRuntime.h), backed by the in-memory registry of mock_registry.h,
// plus C hooks for the tests. Built against the real headers of one TensorRT version. Not TensorRT.
#include "mock_registry.h"

using namespace nvinfer1;

extern "C" TENSORRTAPI IPluginRegistry* getPluginRegistry() noexcept
{
    return &registry();
}

extern "C" __attribute__((visibility("default"))) int mock_has(char const* n, char const* v, char const* ns)
{
    return registry().peek(n, v, ns) != nullptr;
}

extern "C" __attribute__((visibility("default"))) int mock_size()
{
    return static_cast<int>(registry().entries.size());
}

//! Number of errors TensorRT would have logged (getCreator misses, duplicate registrations, ...).
extern "C" __attribute__((visibility("default"))) int mock_errors()
{
    return static_cast<int>(registry().errors.size());
}

//! What IPluginRegistry::loadLibrary does with a library's getCreators(): register each creator.
extern "C" __attribute__((visibility("default"))) int mock_register_all(
    IPluginCreatorInterface* const* creators, int32_t count)
{
    int ok = 0;
    for (int32_t i = 0; i < count; ++i)
    {
        ok += registry().registerCreator(*creators[i], "") ? 1 : 0;
    }
    return ok;
}
