// Runs the edgeseg plugin's TensorRT-facing logic on the CPU against the NvInferRuntime.h test double:
// registration (static, getCreators, initEdgesegPlugins), creator fields, capability interfaces,
// type/format/shape rules and the kernel call made by enqueue (kernel replaced by a recorder).
// Built and run by tests/test_trt_static.py; prints "ok" and exits 0, or names the failed check.
#include "mock_registry.h"
#include "unpool_kernel.h"
#include "unpool_plugin.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace nvinfer1;

// ---- test doubles (the registry: mock_registry.h) -------------------------------------------
namespace
{
struct Call
{
    int64_t n, c, h, w;
    int dtype;
    void* stream;
} gLast{};
IDimensionExpr gExprs[8];
} // namespace

extern "C" IPluginRegistry* getPluginRegistry() noexcept
{
    return &registry();
}
extern "C" int edgeseg_unpool2x2(void const*, void const*, void*, int64_t n, int64_t c, int64_t h, int64_t w, int dtype, void* stream)
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

int main()
{
    // 1. the static registrar ran at load time
    CHECK(registry().getCreator("MaxUnpool2x2", "1", "") != nullptr);
    // 2. loadLibrary-style: getCreators withdraws the static registration, then the registry adds it
    int32_t nb = 0;
    IPluginCreatorInterface* const* list = getCreators(nb);
    CHECK(nb == 1 && registry().getCreator("MaxUnpool2x2", "1", "") == nullptr);
    auto* creator = static_cast<IPluginCreatorV3One*>(list[0]);
    CHECK(std::strcmp(creator->getPluginName(), "MaxUnpool2x2") == 0);
    CHECK(std::strcmp(creator->getPluginVersion(), "1") == 0 && std::strcmp(creator->getPluginNamespace(), "") == 0);
    CHECK(registry().registerCreator(*list[0], ""));
    // 3. initLibNvInferPlugins-style call is idempotent
    CHECK(initEdgesegPlugins(nullptr, nullptr) && registry().entries.size() == 1);
    // 4. declared fields; the ONNX node's attributes are accepted, unknown ones refused
    PluginFieldCollection const* names = creator->getFieldNames();
    CHECK(names->nbFields == 2 && std::strcmp(names->fields[0].name, "plugin_version") == 0);
    PluginField attrs[] = {PluginField("plugin_version", "1", PluginFieldType::kCHAR, 1),
        PluginField("plugin_namespace", "", PluginFieldType::kCHAR, 0)};
    PluginFieldCollection fc{2, attrs};
    IPluginV3* plugin = creator->createPlugin("unpool_0", &fc, TensorRTPhase::kBUILD);
    CHECK(plugin != nullptr);
    PluginField bad[] = {PluginField("kernel_size", nullptr, PluginFieldType::kINT32, 1)};
    PluginFieldCollection fcBad{1, bad};
    CHECK(creator->createPlugin("unpool_1", &fcBad, TensorRTPhase::kBUILD) == nullptr);
    // 5. capabilities
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* run = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    CHECK(core && build && run && std::strcmp(core->getPluginName(), "MaxUnpool2x2") == 0);
    CHECK(build->getNbOutputs() == 1 && run->getFieldsToSerialize()->nbFields == 0);
    // 6. types: both inputs the same FP32/FP16 type, output = that type
    DataType out{};
    DataType halves[] = {DataType::kHALF, DataType::kHALF};
    DataType mixed[] = {DataType::kFLOAT, DataType::kHALF};
    DataType ints[] = {DataType::kINT8, DataType::kINT8};
    CHECK(build->getOutputDataTypes(&out, 1, halves, 2) == 0 && out == DataType::kHALF);
    CHECK(build->getOutputDataTypes(&out, 1, mixed, 2) != 0 && build->getOutputDataTypes(&out, 1, ints, 2) != 0);
    // 7. formats: linear only, every position the type of position 0
    DynamicPluginTensorDesc io[3] = {desc(DataType::kFLOAT), desc(DataType::kFLOAT), desc(DataType::kFLOAT)};
    CHECK(build->supportsFormatCombination(0, io, 2, 1) && build->supportsFormatCombination(2, io, 2, 1));
    io[1] = desc(DataType::kHALF);
    CHECK(!build->supportsFormatCombination(1, io, 2, 1));
    io[0] = desc(DataType::kHALF, TensorFormat::kHWC8);
    CHECK(!build->supportsFormatCombination(0, io, 2, 1));
    io[0] = desc(DataType::kINT8);
    CHECK(!build->supportsFormatCombination(0, io, 2, 1));
    // 8. shapes: output = x's dims; constant y that is not x/2 is refused
    IDimensionExpr const* e = gExprs;
    int64_t const values[] = {2, 3, 9, 11, 2, 3, 4, 5};
    for (int i = 0; i < 8; ++i)
        gExprs[i].mockValue = values[i];
    DimsExprs in[2]{};
    in[0].nbDims = in[1].nbDims = 4;
    for (int i = 0; i < 4; ++i)
    {
        in[0].d[i] = e + i;
        in[1].d[i] = e + 4 + i;
    }
    DimsExprs outShape{};
    IExprBuilder* builder = nullptr;
    CHECK(build->getOutputShapes(in, 2, nullptr, 0, &outShape, 1, *builder) == 0);
    CHECK(outShape.nbDims == 4 && outShape.d[2] == e + 2 && outShape.d[3] == e + 3);
    gExprs[7].mockValue = 6; // y width 6 != 11 / 2
    CHECK(build->getOutputShapes(in, 2, nullptr, 0, &outShape, 1, *builder) != 0);
    // 9. runtime: shape check and the kernel call
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
    // 10. clones are independent objects with the same identity
    IPluginV3* copy = run->attachToContext(nullptr);
    CHECK(copy != nullptr && copy != plugin);
    delete copy;
    delete plugin;
    std::printf("ok\n");
    return 0;
}
