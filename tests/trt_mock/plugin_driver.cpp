// Runs the edgeseg plugin's TensorRT-facing logic on the CPU, compiled against NVIDIA's real
// headers of one TensorRT version (10.3 or 11.x) with the closed-library parts from
// mock_registry.h: registration (static, getCreators + loader, initEdgesegPlugins) without any
// error TensorRT would log, the logger finder asked on the logging thread, creator fields,
// capability interfaces, type/format rules, output shapes with constant AND symbolic dimensions,
// and the kernel call made by enqueue (kernel replaced by a recorder).
// Built and run by tests/test_trt_static.py; prints "ok TensorRT <major>" and exits 0, or names
// the failed check.
#include "mock_registry.h"
#include "unpool_kernel.h"
#include "unpool_plugin.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace nvinfer1;

namespace
{
struct Call
{
    int64_t n, c, h, w;
    int dtype;
    void* stream;
} gLast{};
} // namespace

extern "C" TENSORRTAPI IPluginRegistry* getPluginRegistry() noexcept
{
    return &registry();
}
extern "C" int edgeseg_unpool2x2(
    void const*, void const*, void*, int64_t n, int64_t c, int64_t h, int64_t w, int dtype, void* stream)
{
    gLast = Call{n, c, h, w, dtype, stream};
    return 0;
}

#define CHECK(cond)                                                                                                    \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            std::printf("FAILED line %d: %s\n", __LINE__, #cond);                                                      \
            for (auto const& e : registry().errors)                                                                    \
                std::printf("  registry error: %s\n", e.c_str());                                                      \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

static DynamicPluginTensorDesc desc(DataType t, TensorFormat f = TensorFormat::kLINEAR)
{
    DynamicPluginTensorDesc d{};
    d.desc.type = t;
    d.desc.format = f;
    return d;
}

static PluginTensorDesc tensor(std::vector<int64_t> dims, DataType t)
{
    PluginTensorDesc d{};
    d.dims.nbDims = static_cast<int32_t>(dims.size());
    for (size_t i = 0; i < dims.size(); ++i)
        d.dims.d[i] = dims[i];
    d.type = t;
    return d;
}

static DimsExprs dims(std::vector<IDimensionExpr const*> d)
{
    DimsExprs e{};
    e.nbDims = static_cast<int32_t>(d.size());
    for (size_t i = 0; i < d.size(); ++i)
        e.d[i] = d[i];
    return e;
}

static bool sameExprs(DimsExprs const& a, DimsExprs const& b)
{
    if (a.nbDims != b.nbDims)
        return false;
    for (int32_t i = 0; i < a.nbDims; ++i)
        if (a.d[i] != b.d[i])
            return false;
    return true;
}

int main()
{
    // 1. the static registrar ran at load time, without asking the registry first (TensorRT 10.3
    //    logs an API usage error for every getCreator miss)
    CHECK(registry().peek("MaxUnpool2x2", "1", "") != nullptr && registry().errors.empty());
    // 2. loadLibrary-style: getCreators withdraws the static registration, then the loader adds it
    int32_t nb = 0;
    IPluginCreatorInterface* const* list = getCreators(nb);
    CHECK(nb == 1 && registry().peek("MaxUnpool2x2", "1", "") == nullptr);
    auto* creator = static_cast<IPluginCreatorV3One*>(list[0]);
    CHECK(std::strcmp(creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0);
    CHECK(std::strcmp(creator->getPluginName(), "MaxUnpool2x2") == 0);
    CHECK(std::strcmp(creator->getPluginVersion(), "1") == 0 && std::strcmp(creator->getPluginNamespace(), "") == 0);
    CHECK(registry().registerCreator(*list[0], ""));
    // 3. initLibNvInferPlugins-style call is idempotent; another namespace registers once more
    CHECK(initEdgesegPlugins(nullptr, nullptr) && registry().entries.size() == 1);
    CHECK(initEdgesegPlugins(nullptr, "edgeseg_test") && initEdgesegPlugins(nullptr, "edgeseg_test"));
    CHECK(registry().entries.size() == 2 && registry().peek("MaxUnpool2x2", "1", "edgeseg_test") != nullptr);
    CHECK(registry().errors.empty()); // nothing TensorRT would log as an error
    // 4. declared fields; the ONNX node's attributes are accepted, unknown ones refused
    PluginFieldCollection const* names = creator->getFieldNames();
    CHECK(names->nbFields == 2 && std::strcmp(names->fields[0].name, "plugin_version") == 0);
    PluginField attrs[] = {PluginField("plugin_version", "1", PluginFieldType::kCHAR, 2),
        PluginField("plugin_namespace", "", PluginFieldType::kCHAR, 1)};
    PluginFieldCollection fc{2, attrs};
    IPluginV3* plugin = creator->createPlugin("unpool_0", &fc, TensorRTPhase::kBUILD);
    CHECK(plugin != nullptr);
    PluginField bad[] = {PluginField("kernel_size", nullptr, PluginFieldType::kINT32, 1)};
    PluginFieldCollection fcBad{1, bad};
    CHECK(creator->createPlugin("unpool_1", &fcBad, TensorRTPhase::kBUILD) == nullptr); // -> stderr (no logger)
    // 5. logger finder: asked on the thread of each failing call, not once at setLoggerFinder
    LoggerFinder finder;
    setLoggerFinder(&finder);
    CHECK(finder.callers.empty());
    CHECK(creator->createPlugin("unpool_2", &fcBad, TensorRTPhase::kBUILD) == nullptr);
    IPluginV3* fromThread = &*plugin;
    std::thread worker([&] { fromThread = creator->createPlugin("unpool_3", &fcBad, TensorRTPhase::kRUNTIME); });
    worker.join();
    CHECK(fromThread == nullptr && finder.callers.size() == 2 && finder.callers[0] != finder.callers[1]);
    CHECK(finder.callers[0] == std::this_thread::get_id());
    CHECK(finder.logger.messages.size() == 2 && finder.logger.messages[0].rfind("1 edgeseg MaxUnpool2x2", 0) == 0);
    CHECK(finder.logger.messages[1].find("unknown attribute 'kernel_size'") != std::string::npos);
    // 6. capabilities
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* run = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    CHECK(core && build && run && std::strcmp(core->getPluginName(), "MaxUnpool2x2") == 0);
    CHECK(std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0);
    CHECK(build->getNbOutputs() == 1 && run->getFieldsToSerialize()->nbFields == 0);
    // 7. types: both inputs the same FP32/FP16 type, output = that type
    DataType out{};
    DataType halves[] = {DataType::kHALF, DataType::kHALF};
    DataType mixed[] = {DataType::kFLOAT, DataType::kHALF};
    DataType ints[] = {DataType::kINT8, DataType::kINT8};
    CHECK(build->getOutputDataTypes(&out, 1, halves, 2) == 0 && out == DataType::kHALF);
    CHECK(build->getOutputDataTypes(&out, 1, mixed, 2) != 0 && build->getOutputDataTypes(&out, 1, ints, 2) != 0);
    // 8. formats: linear only, every position the type of position 0
    DynamicPluginTensorDesc io[3] = {desc(DataType::kFLOAT), desc(DataType::kFLOAT), desc(DataType::kFLOAT)};
    CHECK(build->supportsFormatCombination(0, io, 2, 1) && build->supportsFormatCombination(2, io, 2, 1));
    io[1] = desc(DataType::kHALF);
    CHECK(!build->supportsFormatCombination(1, io, 2, 1));
    io[0] = desc(DataType::kHALF, TensorFormat::kHWC8);
    CHECK(!build->supportsFormatCombination(0, io, 2, 1));
    io[0] = desc(DataType::kINT8);
    CHECK(!build->supportsFormatCombination(0, io, 2, 1));
    // 9. shapes through the real IExprBuilder/IDimensionExpr: output = x's expressions
    ExprBuilder eb;
    DimsExprs outShape{};
    DimsExprs in[2] = {dims({eb.make(2), eb.make(3), eb.make(9), eb.make(11)}),
        dims({eb.make(2), eb.make(3), eb.make(4), eb.make(5)})};
    CHECK(build->getOutputShapes(in, 2, nullptr, 0, &outShape, 1, eb) == 0 && sameExprs(outShape, in[0]));
    in[1].d[3] = eb.make(6); // constant y width 6 != 11 / 2: refused at build time
    CHECK(build->getOutputShapes(in, 2, nullptr, 0, &outShape, 1, eb) != 0);
    // symbolic batch, height and width (dynamic shapes): accepted, checked later in onShapeChange
    Expr const* n = eb.symbol();
    Expr const* h = eb.symbol();
    Expr const* w = eb.symbol();
    CHECK(!h->isConstant() && h->getConstantValue() == std::numeric_limits<int64_t>::min());
    in[0] = dims({n, eb.make(3), h, w});
    in[1] = dims({n, eb.make(3), eb.symbol(), eb.symbol()});
    CHECK(build->getOutputShapes(in, 2, nullptr, 0, &outShape, 1, eb) == 0 && sameExprs(outShape, in[0]));
    in[1].d[2] = eb.make(4); // constant y height with symbolic x height: cannot be decided yet
    CHECK(build->getOutputShapes(in, 2, nullptr, 0, &outShape, 1, eb) == 0 && outShape.d[2] == h);
    in[1] = dims({n, eb.make(3), eb.symbol()}); // 3-D y: refused
    CHECK(build->getOutputShapes(in, 2, nullptr, 0, &outShape, 1, eb) != 0);
    // 10. runtime: shape check and the kernel call
    PluginTensorDesc rin[2] = {tensor({2, 3, 9, 11}, DataType::kHALF), tensor({2, 3, 4, 5}, DataType::kHALF)};
    PluginTensorDesc rout[1] = {tensor({2, 3, 9, 11}, DataType::kHALF)};
    CHECK(run->onShapeChange(rin, 2, rout, 1) == 0);
    rin[1] = tensor({2, 3, 5, 5}, DataType::kHALF);
    CHECK(run->onShapeChange(rin, 2, rout, 1) != 0);
    rin[1] = tensor({2, 3, 4, 5}, DataType::kHALF);
    int dummy = 0;
    void const* inputs[2] = {&dummy, &dummy};
    void* outputs[1] = {&dummy};
    auto* stream = reinterpret_cast<cudaStream_t>(&dummy);
    CHECK(run->enqueue(rin, rout, inputs, outputs, nullptr, stream) == 0);
    CHECK(gLast.n == 2 && gLast.c == 3 && gLast.h == 9 && gLast.w == 11);
    CHECK(gLast.dtype == EDGESEG_DTYPE_FLOAT16 && gLast.stream == stream);
    // 11. clones are independent objects with the same identity
    IPluginV3* copy = run->attachToContext(nullptr);
    CHECK(copy != nullptr && copy != plugin);
    delete copy;
    delete plugin;
    CHECK(registry().errors.empty());
    std::printf("ok TensorRT %d\n", NV_TENSORRT_MAJOR);
    return 0;
}
