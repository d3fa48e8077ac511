/*
 * TensorRT IPluginV3 plugin "MaxUnpool2x2" (version "1", namespace "") around the CUDA kernel in
 * unpool_kernel.cu. Written to the IPluginV3 / IPluginV3OneCore / IPluginV3OneBuild /
 * IPluginV3OneRuntime / IPluginCreatorV3One API of NvInferRuntime.h (TensorRT 10.0+; same
 * signatures in 10.3 (JetPack 6) and 11.x). Name, version and namespace must equal
 * edgeseg.unpool.OP_NAME / PLUGIN_VERSION / PLUGIN_NAMESPACE (the ONNX node's op type and
 * its plugin_version / plugin_namespace attributes): tests/test_trt_static.py checks that.
 *
 * Inputs : 0 = x (N,C,H,W) pre-pool activation, 1 = y (N,C,H/2,W/2) decoder tensor.
 * Output : 0 = (N,C,H,W), same type as the inputs. FP32 or FP16 (both inputs the same), NCHW linear.
 *
 * Library entry points (see unpool_plugin.cpp for how they avoid double registration):
 *   getCreators / setLoggerFinder  - IPluginRegistry::loadLibrary, trtexec --dynamicPlugins,
 *                                    Python tensorrt.get_plugin_registry().load_library(path)
 *   static registration on dlopen  - trtexec --staticPlugins, ctypes.CDLL(path)
 *   initEdgesegPlugins             - explicit initLibNvInferPlugins-style call from C++ apps
 */
#ifndef EDGESEG_UNPOOL_PLUGIN_H
#define EDGESEG_UNPOOL_PLUGIN_H

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>
#include <vector>

#if defined(_WIN32)
#define EDGESEG_PLUGIN_API __declspec(dllexport)
#else
#define EDGESEG_PLUGIN_API __attribute__((visibility("default")))
#endif

namespace edgeseg
{

constexpr char const* kUnpoolPluginName = "MaxUnpool2x2";
constexpr char const* kUnpoolPluginVersion = "1";
constexpr char const* kUnpoolPluginNamespace = "";

class MaxUnpool2x2Plugin final : public nvinfer1::IPluginV3,
                                 public nvinfer1::IPluginV3OneCore,
                                 public nvinfer1::IPluginV3OneBuild,
                                 public nvinfer1::IPluginV3OneRuntime
{
public:
    MaxUnpool2x2Plugin() = default;
    ~MaxUnpool2x2Plugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    // The op has no attributes: nothing to serialize into the engine.
    nvinfer1::PluginFieldCollection mSerialized{0, nullptr};
};

class MaxUnpool2x2PluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    MaxUnpool2x2PluginCreator();
    ~MaxUnpool2x2PluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{0, nullptr};
};

} // namespace edgeseg

extern "C"
{
    //! loadLibrary() entry: TensorRT's logger finder (passed before getCreators). Kept, and asked
    //! for the logger at each message, on the thread that logs (ILoggerFinder's contract).
    EDGESEG_PLUGIN_API void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
    //! loadLibrary() entry: the creators of this library (V3 creators, TensorRT 10.0+).
    EDGESEG_PLUGIN_API nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept;
    //! Explicit registration into getPluginRegistry() under `libNamespace` (nullptr = ""); idempotent.
    //! `logger` (an nvinfer1::ILogger*, may be nullptr) takes precedence over the logger finder.
    EDGESEG_PLUGIN_API bool initEdgesegPlugins(void* logger, char const* libNamespace) noexcept;
}

#endif // EDGESEG_UNPOOL_PLUGIN_H
