// Test double for libnvinfer.so.10: the plugin registry the plugin library links against, kept in
// memory, plus C hooks for the tests (mock_has / mock_size). Not TensorRT.
#include "mock_registry.h"

using namespace nvinfer1;

extern "C" __attribute__((visibility("default"))) IPluginRegistry* getPluginRegistry() noexcept
{
    return &registry();
}

extern "C" __attribute__((visibility("default"))) int mock_has(char const* n, char const* v, char const* ns)
{
    return registry().getCreator(n, v, ns) != nullptr;
}

extern "C" __attribute__((visibility("default"))) int mock_size()
{
    return static_cast<int>(registry().entries.size());
}
