// Test double (see NvInferRuntime.h here): the version macros of a TensorRT 10.3 install, in the
// newer two-level style (NV_TENSORRT_MAJOR -> TRT_MAJOR_ENTERPRISE) that plugin_build parses.
#pragma once
#define TRT_MAJOR_ENTERPRISE 10
#define TRT_MINOR_ENTERPRISE 3
#define TRT_PATCH_ENTERPRISE 0
#define TRT_BUILD_ENTERPRISE 26
#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE
#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE
#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE
#define NV_TENSORRT_BUILD TRT_BUILD_ENTERPRISE
