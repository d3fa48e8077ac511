// TensorRT IPluginV3 "MaxUnpool2x2": build-time shape/type/format logic and runtime enqueue around
// edgeseg_unpool2x2() (unpool_kernel.cu). See unpool_plugin.h for the contract.
#include "unpool_plugin.h"

#include "unpool_kernel.h"

#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <set>
#include <string>

using namespace nvinfer1;

namespace
{

std::mutex gLoggerMutex;
// TensorRT's ILoggerFinder (setLoggerFinder) is kept, not its answer: ILoggerFinder::findLogger must
// be called from the thread of the plugin method that logs (NvInferRuntime.h), which is how NVIDIA's
// own plugins use it. An application's explicit logger (initEdgesegPlugins) takes precedence.
ILoggerFinder* gLoggerFinder{nullptr};
ILogger* gAppLogger{nullptr};

void logError(std::string const& message) noexcept
{
    std::string const line = std::string("edgeseg MaxUnpool2x2 plugin: ") + message;
    ILoggerFinder* finder{nullptr};
    ILogger* logger{nullptr};
    {
        std::lock_guard<std::mutex> lock(gLoggerMutex);
        finder = gLoggerFinder;
        logger = gAppLogger;
    }
    if (logger == nullptr && finder != nullptr)
    {
        logger = finder->findLogger(); // on this thread, for this call
    }
    if (logger != nullptr)
    {
        logger->log(ILogger::Severity::kERROR, line.c_str());
    }
    else
    {
        std::fprintf(stderr, "%s\n", line.c_str());
    }
}

bool isSupportedType(DataType type) noexcept
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

int kernelDtype(DataType type) noexcept
{
    return type == DataType::kHALF ? EDGESEG_DTYPE_FLOAT16 : EDGESEG_DTYPE_FLOAT32;
}

// x (N,C,H,W) and y (N,C,H/2,W/2) with known (runtime) dimensions.
bool shapesMatch(Dims const& x, Dims const& y) noexcept
{
    return x.nbDims == 4 && y.nbDims == 4 && x.d[0] == y.d[0] && x.d[1] == y.d[1] && x.d[2] / 2 == y.d[2]
        && x.d[3] / 2 == y.d[3];
}

std::string dimsText(Dims const& d)
{
    std::string s = "(";
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        s += (i ? "," : "") + std::to_string(d.d[i]);
    }
    return s + ")";
}

} // namespace

namespace edgeseg
{

// ---- IPluginV3 -------------------------------------------------------------------------------
IPluginCapability* MaxUnpool2x2Plugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* MaxUnpool2x2Plugin::clone() noexcept
{
    return new (std::nothrow) MaxUnpool2x2Plugin();
}

// ---- IPluginV3OneCore ------------------------------------------------------------------------
char const* MaxUnpool2x2Plugin::getPluginName() const noexcept
{
    return kUnpoolPluginName;
}

char const* MaxUnpool2x2Plugin::getPluginVersion() const noexcept
{
    return kUnpoolPluginVersion;
}

char const* MaxUnpool2x2Plugin::getPluginNamespace() const noexcept
{
    return kUnpoolPluginNamespace;
}

// ---- IPluginV3OneBuild -----------------------------------------------------------------------
int32_t MaxUnpool2x2Plugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || in == nullptr || out == nullptr)
    {
        logError("expects 2 inputs (x, y) and 1 output");
        return -1;
    }
    return 0;
}

int32_t MaxUnpool2x2Plugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbInputs != 2 || nbOutputs != 1)
    {
        logError("expects 2 inputs (x, y) and 1 output");
        return -1;
    }
    if (inputTypes[0] != inputTypes[1] || !isSupportedType(inputTypes[1]))
    {
        // Strongly typed networks (TensorRT 11) take these types as given: say what is wrong.
        logError("x and y must both be FP32 or both FP16 (cast them in the ONNX file)");
        return -1;
    }
    outputTypes[0] = inputTypes[1];
    return 0;
}

int32_t MaxUnpool2x2Plugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
    int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    static_cast<void>(shapeInputs);
    static_cast<void>(exprBuilder);
    if (nbInputs != 2 || nbOutputs != 1 || nbShapeInputs != 0 || inputs[0].nbDims != 4 || inputs[1].nbDims != 4)
    {
        logError("expects x (N,C,H,W) and y (N,C,H/2,W/2), both 4-D");
        return -1;
    }
    // Build-time check where both sizes are constants; the rest is checked in onShapeChange().
    for (int32_t axis = 2; axis < 4; ++axis)
    {
        IDimensionExpr const* xd = inputs[0].d[axis];
        IDimensionExpr const* yd = inputs[1].d[axis];
        if (xd->isConstant() && yd->isConstant() && xd->getConstantValue() / 2 != yd->getConstantValue())
        {
            logError("y must have half the height/width of x (floor division)");
            return -1;
        }
    }
    outputs[0] = inputs[0];
    return 0;
}

bool MaxUnpool2x2Plugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos >= 3)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR || !isSupportedType(desc.type))
    {
        return false;
    }
    // Decisions for pos may depend on inOut[0..pos-1] only (TensorRT's rule).
    return pos == 0 || desc.type == inOut[0].desc.type;
}

int32_t MaxUnpool2x2Plugin::getNbOutputs() const noexcept
{
    return 1;
}

size_t MaxUnpool2x2Plugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept
{
    static_cast<void>(inputs);
    static_cast<void>(nbInputs);
    static_cast<void>(outputs);
    static_cast<void>(nbOutputs);
    return 0;
}

// ---- IPluginV3OneRuntime ---------------------------------------------------------------------
int32_t MaxUnpool2x2Plugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (nbInputs != 2 || nbOutputs != 1)
    {
        logError("expects 2 inputs (x, y) and 1 output");
        return -1;
    }
    if (!shapesMatch(in[0].dims, in[1].dims))
    {
        logError("x " + dimsText(in[0].dims) + " and y " + dimsText(in[1].dims)
            + " do not fit: y must be (N,C,H/2,W/2) for x (N,C,H,W)");
        return -1;
    }
    static_cast<void>(out);
    return 0;
}

int32_t MaxUnpool2x2Plugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    static_cast<void>(outputDesc);
    static_cast<void>(workspace);
    Dims const& x = inputDesc[0].dims;
    int const status = edgeseg_unpool2x2(inputs[0], inputs[1], outputs[0], x.d[0], x.d[1], x.d[2], x.d[3],
        kernelDtype(inputDesc[0].type), static_cast<void*>(stream));
    if (status != 0)
    {
        logError("kernel launch failed with CUDA error " + std::to_string(status));
        return -1;
    }
    return 0;
}

IPluginV3* MaxUnpool2x2Plugin::attachToContext(IPluginResourceContext* context) noexcept
{
    static_cast<void>(context); // no per-context resources
    return clone();
}

PluginFieldCollection const* MaxUnpool2x2Plugin::getFieldsToSerialize() noexcept
{
    return &mSerialized;
}

// ---- IPluginCreatorV3One ---------------------------------------------------------------------
MaxUnpool2x2PluginCreator::MaxUnpool2x2PluginCreator()
{
    // The ONNX node carries plugin_version / plugin_namespace (TensorRT 10.3's parser reads them to
    // find this creator). Declaring them means the parser may pass them on; they are accepted and
    // ignored. The op has no other attributes.
    mFields.emplace_back("plugin_version", nullptr, PluginFieldType::kCHAR, 0);
    mFields.emplace_back("plugin_namespace", nullptr, PluginFieldType::kCHAR, 0);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

char const* MaxUnpool2x2PluginCreator::getPluginName() const noexcept
{
    return kUnpoolPluginName;
}

char const* MaxUnpool2x2PluginCreator::getPluginVersion() const noexcept
{
    return kUnpoolPluginVersion;
}

char const* MaxUnpool2x2PluginCreator::getPluginNamespace() const noexcept
{
    return kUnpoolPluginNamespace;
}

PluginFieldCollection const* MaxUnpool2x2PluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

IPluginV3* MaxUnpool2x2PluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, TensorRTPhase phase) noexcept
{
    static_cast<void>(name);
    static_cast<void>(phase);
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        char const* field = fc->fields[i].name;
        if (field == nullptr || (std::strcmp(field, "plugin_version") != 0 && std::strcmp(field, "plugin_namespace") != 0))
        {
            logError(std::string("unknown attribute '") + (field ? field : "(null)")
                + "'; MaxUnpool2x2 takes none (re-export the ONNX file with edgeseg export --unpool plugin)");
            return nullptr;
        }
    }
    return new (std::nothrow) MaxUnpool2x2Plugin();
}

} // namespace edgeseg

// ---- Library entry points --------------------------------------------------------------------
//
// Two loading styles must both work with ONE library:
//  * dlopen only (trtexec --staticPlugins, ctypes.CDLL): nothing calls into the library, so a
//    static object registers the creator in the global registry when the library is loaded.
//  * IPluginRegistry::loadLibrary (trtexec --dynamicPlugins, Python registry.load_library): the
//    registry dlopens the library (running the static registration) and then registers whatever
//    getCreators() returns; a creator that is already registered makes loadLibrary fail ("plugin
//    creator ... exists already"). So getCreators() first withdraws the static registration.
// The library remembers what it registered itself and never asks the registry: TensorRT 10.3's
// IPluginRegistry::getCreator logs "Error Code 4: API Usage Error (Cannot find plugin ...)" for a
// creator that is not there, which would put an error in the log of every normal load.
namespace
{

edgeseg::MaxUnpool2x2PluginCreator& creator()
{
    static edgeseg::MaxUnpool2x2PluginCreator instance;
    return instance;
}

std::mutex gRegisterMutex;
std::set<std::string> gRegisteredNamespaces; // registered by this library (static or explicit)
bool gHandedToLoader{false};                 // getCreators() gave the creator to loadLibrary (namespace "")

struct StaticRegistration
{
    StaticRegistration()
    {
        std::lock_guard<std::mutex> lock(gRegisterMutex);
        IPluginRegistry* registry = getPluginRegistry();
        if (registry != nullptr && registry->registerCreator(creator(), edgeseg::kUnpoolPluginNamespace))
        {
            gRegisteredNamespaces.insert(edgeseg::kUnpoolPluginNamespace);
        }
    }
};

StaticRegistration const gStaticRegistration;

} // namespace

extern "C" void setLoggerFinder(ILoggerFinder* finder) noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    gLoggerFinder = finder;
}

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept
{
    {
        std::lock_guard<std::mutex> lock(gRegisterMutex);
        if (gRegisteredNamespaces.erase(edgeseg::kUnpoolPluginNamespace) != 0)
        {
            getPluginRegistry()->deregisterCreator(creator());
        }
        gHandedToLoader = true;
    }
    static IPluginCreatorInterface* const creators[] = {&creator()};
    nbCreators = 1;
    return creators;
}

extern "C" bool initEdgesegPlugins(void* logger, char const* libNamespace) noexcept
{
    if (logger != nullptr)
    {
        std::lock_guard<std::mutex> lock(gLoggerMutex);
        gAppLogger = static_cast<ILogger*>(logger);
    }
    std::string const ns = libNamespace != nullptr ? libNamespace : "";
    std::lock_guard<std::mutex> lock(gRegisterMutex);
    if (gRegisteredNamespaces.count(ns) != 0 || (gHandedToLoader && ns == edgeseg::kUnpoolPluginNamespace))
    {
        return true; // already registered: statically, by an earlier call, or by loadLibrary
    }
    IPluginRegistry* registry = getPluginRegistry();
    if (registry == nullptr || !registry->registerCreator(creator(), ns.c_str()))
    {
        return false;
    }
    gRegisteredNamespaces.insert(ns);
    return true;
}
