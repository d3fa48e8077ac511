// What TensorRT's closed library provides to a plugin library, as a test double written against
// NVIDIA's REAL headers (../shared/tensorrt/<version>/include, passed with -isystem): every class
// here derives from the real abstract interface and marks each method `override`, so a signature
// that drifts between TensorRT versions fails to compile instead of passing silently.
//
//   Registry     nvinfer1::IPluginRegistry: V3 creators keyed by name/version/namespace; refuses
//                duplicates; like TensorRT 10.3, a getCreator() miss records the error TensorRT logs
//                ("Error Code 4: API Usage Error (Cannot find plugin ...)") so tests can require
//                that a normal load never causes one.
//   Logger       nvinfer1::ILogger (10.x: plain interface; 11.x: derives from IVersionedInterface).
//   LoggerFinder nvinfer1::ILoggerFinder, counting findLogger() calls and their threads.
//   Expr/Builder nvinfer1::IDimensionExpr / IExprBuilder through their real pimpl interfaces
//                (apiv::VDimensionExpr / apiv::VExprBuilder): constants and symbolic dimensions.
//
// Shared by nvinfer_stub.cpp (the stub libnvinfer) and plugin_driver.cpp; include once per binary
// (it defines its objects in an unnamed namespace).
#pragma once
#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace
{
using nvinfer1::AsciiChar;

struct Registry final : nvinfer1::IPluginRegistry
{
    using Creator = nvinfer1::IPluginCreatorInterface;
    std::vector<std::pair<std::string, Creator*>> entries;
    std::vector<std::string> errors; // what TensorRT would have logged as errors

    static std::string key(char const* n, char const* v, char const* ns)
    {
        return std::string(n) + "/" + v + "/" + ns;
    }

    void setErrorRecorder(nvinfer1::IErrorRecorder* const) noexcept override {}
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override { return nullptr; }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    bool registerCreator(Creator& c, AsciiChar const* const ns) noexcept override
    {
        if (std::strcmp(c.getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0)
        {
            errors.push_back("registerCreator: only V3 creators in this double");
            return false;
        }
        auto& v3 = static_cast<nvinfer1::IPluginCreatorV3One&>(c);
        std::string const k = key(v3.getPluginName(), v3.getPluginVersion(), ns);
        for (auto const& e : entries)
        {
            if (e.first == k)
            {
                errors.push_back("registerCreator: plugin creator " + k + " exists already");
                return false;
            }
        }
        entries.emplace_back(k, &c);
        return true;
    }
    Creator* const* getAllCreators(int32_t* const numCreators) const noexcept override
    {
        *numCreators = 0;
        return nullptr;
    }
    Creator* getCreator(AsciiChar const* const n, AsciiChar const* const v, AsciiChar const* const ns) noexcept override
    {
        Creator* found = peek(n, v, ns);
        if (found == nullptr)
        {
            errors.push_back("IPluginRegistry::getCreator: Error Code 4: API Usage Error (Cannot find plugin: "
                + key(n, v, ns) + ")");
        }
        return found;
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
        errors.push_back("deregisterCreator: creator not registered");
        return false;
    }
    nvinfer1::IPluginResource* acquirePluginResource(AsciiChar const*, nvinfer1::IPluginResource*) noexcept override
    {
        return nullptr;
    }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return -1; }
#if NV_TENSORRT_MAJOR < 11
    // TensorRT 10.x: the IPluginV2 creator API, deprecated in 10.0 and removed in 11.0. Overriding
    // deprecated pure virtuals is what TensorRT's own registry has to do: silence that warning here only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    bool registerCreator(nvinfer1::IPluginCreator&, AsciiChar const* const) noexcept override { return false; }
    nvinfer1::IPluginCreator* const* getPluginCreatorList(int32_t* const numCreators) const noexcept override
    {
        *numCreators = 0;
        return nullptr;
    }
    nvinfer1::IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const,
        AsciiChar const* const) noexcept override
    {
        return nullptr;
    }
    bool deregisterCreator(nvinfer1::IPluginCreator const&) noexcept override { return false; }
#pragma GCC diagnostic pop
#else
    Creator* const* getAllCreatorsRecursive(int32_t* const numCreators) noexcept override
    {
        *numCreators = 0;
        return nullptr;
    }
#endif

    // Test hook: lookup without TensorRT's error log.
    Creator* peek(char const* n, char const* v, char const* ns) const
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
};

Registry& registry()
{
    static Registry r;
    return r;
}

struct Logger final : nvinfer1::ILogger
{
    std::mutex mutex;
    std::vector<std::string> messages;
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        std::lock_guard<std::mutex> lock(mutex);
        messages.push_back(std::to_string(static_cast<int>(severity)) + " " + msg);
    }
};

struct LoggerFinder final : nvinfer1::ILoggerFinder
{
    Logger logger;
    std::mutex mutex;
    std::vector<std::thread::id> callers; // thread of each findLogger() call
    nvinfer1::ILogger* findLogger() override
    {
        std::lock_guard<std::mutex> lock(mutex);
        callers.push_back(std::this_thread::get_id());
        return &logger;
    }
};

// A dimension expression: a constant, or a symbol (the value TensorRT knows only at run time).
class Expr final : public nvinfer1::IDimensionExpr
{
public:
    explicit Expr(int64_t value, bool constant = true, bool sizeTensor = false)
        : mValue(value)
        , mConstant(constant)
        , mSizeTensor(sizeTensor)
    {
        mImpl = &mVirtual;
    }

private:
    struct Virtual final : nvinfer1::apiv::VDimensionExpr
    {
        explicit Virtual(Expr const* owner)
            : self(owner)
        {
        }
        Expr const* self;
        bool isConstant() const override { return self->mConstant; }
        int64_t getConstantValue() const override
        {
            return self->mConstant ? self->mValue : std::numeric_limits<int64_t>::min(); // header contract
        }
        bool isSizeTensor() const override { return self->mSizeTensor; }
    };
    Virtual mVirtual{this};
    int64_t mValue;
    bool mConstant;
    bool mSizeTensor;
};

class ExprBuilder final : public nvinfer1::IExprBuilder
{
public:
    ExprBuilder() { mImpl = &mVirtual; }
    Expr const* symbol() { return make(0, false); }
    Expr const* make(int64_t value, bool constant = true, bool size = false)
    {
        mExprs.emplace_back(value, constant, size);
        return &mExprs.back();
    }
    int operations{0}; // how many expressions the plugin built

private:
    struct Virtual final : nvinfer1::apiv::VExprBuilder
    {
        explicit Virtual(ExprBuilder* owner)
            : self(owner)
        {
        }
        ExprBuilder* self;
        nvinfer1::IDimensionExpr const* constant(int64_t value) override { return self->make(value); }
        nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op,
            nvinfer1::IDimensionExpr const& a, nvinfer1::IDimensionExpr const& b) override
        {
            ++self->operations;
            if (!a.isConstant() || !b.isConstant())
            {
                return self->symbol();
            }
            int64_t const x = a.getConstantValue();
            int64_t const y = b.getConstantValue();
            switch (op)
            {
            case nvinfer1::DimensionOperation::kSUM: return self->make(x + y);
            case nvinfer1::DimensionOperation::kPROD: return self->make(x * y);
            case nvinfer1::DimensionOperation::kMAX: return self->make(x > y ? x : y);
            case nvinfer1::DimensionOperation::kMIN: return self->make(x < y ? x : y);
            case nvinfer1::DimensionOperation::kSUB: return self->make(x - y);
            case nvinfer1::DimensionOperation::kFLOOR_DIV: return self->make(x / y);
            default: return self->symbol();
            }
        }
        nvinfer1::IDimensionExpr const* declareSizeTensor(
            int32_t, nvinfer1::IDimensionExpr const&, nvinfer1::IDimensionExpr const&) override
        {
            return self->make(0, false, true);
        }
    };
    Virtual mVirtual{this};
    std::deque<Expr> mExprs; // stable addresses
};
} // namespace
