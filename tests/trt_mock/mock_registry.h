// Test double shared by nvinfer_stub.cpp (the stub libnvinfer) and plugin_driver.cpp: an in-memory
// IPluginRegistry for V3 creators keyed by name/version/namespace, refusing duplicates as
// TensorRT does. Include once per binary (it defines the registry in an unnamed namespace).
#pragma once
#include "NvInferRuntime.h"

#include <string>
#include <utility>
#include <vector>

namespace
{
struct Registry final : nvinfer1::IPluginRegistry
{
    using Creator = nvinfer1::IPluginCreatorInterface;
    std::vector<std::pair<std::string, Creator*>> entries;
    // Deprecated V2-creator overloads: this registry holds V3 creators only.
    bool registerCreator(nvinfer1::IPluginCreator&, nvinfer1::AsciiChar const* const) noexcept override
    {
        return false;
    }
    bool deregisterCreator(nvinfer1::IPluginCreator const&) noexcept override { return false; }
    static std::string key(char const* n, char const* v, char const* ns)
    {
        return std::string(n) + "/" + v + "/" + ns;
    }
    bool registerCreator(Creator& c, nvinfer1::AsciiChar const* const ns) noexcept override
    {
        auto& v3 = static_cast<nvinfer1::IPluginCreatorV3One&>(c);
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
    Creator* getCreator(nvinfer1::AsciiChar const* const n, nvinfer1::AsciiChar const* const v,
        nvinfer1::AsciiChar const* const ns) noexcept override
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
    bool deregisterCreator(Creator const& c) noexcept override
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
