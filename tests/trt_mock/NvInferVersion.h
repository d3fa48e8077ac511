// Test double (see NvInferRuntime.h here): the version macros of a TensorRT 10.3 install. Up to 10.9
// NVIDIA's NvInferVersion.h defines NV_TENSORRT_* as plain numbers (read in the 10.2, 10.4 and 10.9
// headers); the TRT_*_ENTERPRISE indirection appears from 10.11 on (tests/test_engine_cli.py covers
// that form for plugin_build's parser).
#pragma once
#define NV_TENSORRT_MAJOR 10
#define NV_TENSORRT_MINOR 3
#define NV_TENSORRT_PATCH 0
#define NV_TENSORRT_BUILD 26
