// Test double for libnvinfer.so.10: the plugin registry the plugin library links against, kept in
// memory, plus C hooks for the tests (mock_has / mock_size). Not TensorRT.
#include "NvInferRuntime.h"

#include <string>
#include <utility>
#include <vector>

using namespace nvinfer1;

namespace
{
struct Registry final : IPluginRegistry
{
    std::vector<std::pair<std::string, IPluginCreatorInterface*>> entries;
    // Deprecated V2-creator overloads: this registry holds V3 creators only.
    bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept override { return false; }
    bool deregisterCreator(IPluginCreator const&) noexcept override { return false; }
    static std::string key(char const* n, char const* v, char const* ns)
    {
        return std::string(n) + "/" + v + "/" + ns;
    }
    bool registerCreator(IPluginCreatorInterface& c, AsciiChar const* const ns) noexcept override
    {
        auto& v3 = static_cast<IPluginCreatorV3One&>(c);
        std::string const k = key(v3.getPluginName(), v3.getPluginVersion(), ns);
        for (auto const& e : entries)
        {
            if (e.first == k)
            {
                return false; // TensorRT refuses a duplicate too
            }
        }
        entries.emplace_back(k, &c);
        return true;
    }
    IPluginCreatorInterface* getCreator(
        AsciiChar const* const n, AsciiChar const* const v, AsciiChar const* const ns) noexcept override
    {
        for (auto const& e : entries)
        {
            if (e.first == key(n, v, ns))
            {
                return e.second;
            }
        }
        return nullptr;
    }
    bool deregisterCreator(IPluginCreatorInterface const& c) noexcept override
    {
        for (auto it = entries.begin(); it != entries.end(); ++it)
        {
            if (it->second == &c)
            {
                entries.erase(it);
                return true;
            }
        }
        return false;
    }
};

Registry& registry()
{
    static Registry r;
    return r;
}
} // namespace

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
