"""The TensorRT builder calls behind :func:`edgeseg.export.trt_build.build_engine` (10.x and 11.x).

Only documented API that exists in both TensorRT 10.3 and 11.4 is used, except the names in
:data:`TRT10_ONLY_NAMES`, which TensorRT 11 removed and which are reached only when
``plan.strongly_typed`` is False (TensorRT 10.x, weakly typed builds). tests/test_trt_static.py
checks every TensorRT name of this module in its class, against the 10.3.0 and 11.1 binding sources
(scripts/check_trt_api.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.export.trt_plan import BuildOptions, BuildPlan, OnnxFacts
from edgeseg.runtime.trt_common import (
    DeviceInfo,
    collecting_logger,
    device_info,
    dims_list,
    load_plugin_library,
    resolve_plugin,
)
from rich.console import Console

from edgeseg.errors import EngineError

if TYPE_CHECKING:
    import tensorrt as trt

# Lower-cased fragments of TensorRT's error messages when the build ran out of GPU memory.
OOM_MARKERS = ("out of memory", "outofmemory", "cudaerrormemoryallocation", "requested amount of gpu memory",
               "insufficient memory", "failed to allocate")
# Removed in TensorRT 11 (strongly typed only); used only for weakly typed 10.x builds.
TRT10_ONLY_NAMES = ("BuilderFlag.FP16", "BuilderFlag.INT8")


@dataclass(frozen=True)
class BuildResult:
    """A serialized plan and what it was built for."""

    plan: bytes
    timing_cache: bytes | None
    tensorrt_version: str
    device: DeviceInfo
    plugin_sha256: str | None
    shapes: dict[str, Any]
    plugin_path: Path | None = None


def _builder_flag(name: str) -> Any:
    """``trt.BuilderFlag`` member for a plan flag name (FP16/INT8 exist only in TensorRT 10.x)."""
    import tensorrt as trt

    if name == "FP16":
        return trt.BuilderFlag.FP16
    if name == "INT8":
        return trt.BuilderFlag.INT8
    if name == "GPU_FALLBACK":
        return trt.BuilderFlag.GPU_FALLBACK
    raise ValueError(f"unknown builder flag {name}")


def _load_plugin(version: str, facts: OnnxFacts, opts: BuildOptions) -> tuple[Path | None, str | None]:
    """Load the plugin library before parsing when the graph has plugin nodes (else nothing)."""
    if not facts.plugin_nodes:
        if opts.plugin is not None:
            print(f"note: {opts.plugin} not loaded: this ONNX file has no plugin nodes", file=sys.stderr)
        return None, None
    lib = resolve_plugin(opts.plugin, version)
    return lib, load_plugin_library(lib, from_user=opts.plugin is not None)


def _parse(builder: trt.Builder, onnx: Path, plan: BuildPlan, logger: Any) -> tuple[Any, Any]:
    """(network, parser); the parser must outlive the network's weights until the build."""
    import tensorrt as trt

    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(onnx)):
        return network, parser
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    for err in errors:  # in full: code, description, node and operator, parser source location
        print(f"[ONNX parser] {err.code()} at node {err.node()} {err.node_name()!r} ({err.node_operator()}): "
              f"{err.desc()} [{err.file()}:{err.line()} {err.func()}]", file=sys.stderr)
    ops = sorted({str(err.node_operator()) for err in errors if err.node_operator()})
    raise EngineError(
        f"TensorRT {trt.__version__} cannot parse {onnx.name}: "
        f"{'unsupported op(s) ' + ', '.join(ops) if ops else 'see the parser errors above'}"
        f"{_opcheck_hint(onnx, trt.__version__)}; re-export with edgeseg export (--unpool native needs "
        "no plugin) or build the plugin with edgeseg build-plugin")


def _opcheck_hint(onnx: Path, version: str) -> str:
    """The static op check's verdict for this TensorRT version, when it knows the version."""
    from edgeseg.export.opcheck import check_file

    from edgeseg.errors import EdgesegError

    try:
        results = check_file(onnx, version)
    except EdgesegError:  # a version the op list does not name: use its family's list
        try:
            results = check_file(onnx, "11" if int(version.split(".")[0]) >= 11 else "10.3")
        except EdgesegError:
            return ""
    return "".join(f" ({r.summary()})" for r in results if not r.ok)


def _config(builder: trt.Builder, facts: OnnxFacts, plan: BuildPlan, opts: BuildOptions) -> Any:
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, opts.workspace_mb << 20)
    for name in plan.flags:
        config.set_flag(_builder_flag(name))
    if opts.dla_core is not None:
        if opts.dla_core >= builder.num_DLA_cores:
            raise EngineError(f"--dla-core {opts.dla_core}: this GPU has {builder.num_DLA_cores} DLA core(s) "
                              "(Jetson AGX/NX Orin: 0 and 1; Orin Nano: none); drop --dla-core")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
    if facts.dynamic_batch:
        profile = builder.create_optimization_profile()
        profile.set_shape(facts.input_name, *(trt.Dims(list(shape)) for shape in plan.profile))
        config.add_optimization_profile(profile)
    if opts.timing_cache is not None:
        data = opts.timing_cache.read_bytes() if opts.timing_cache.is_file() else b""
        if not config.set_timing_cache(config.create_timing_cache(data), False):
            raise EngineError(f"timing cache {opts.timing_cache} does not fit this GPU/TensorRT; delete it "
                              "or pass another --timing-cache file")
    return config


def _build_failure(version: str, errors: list[str], opts: BuildOptions) -> EngineError:
    text = " | ".join(errors[-3:]) or "no error message from TensorRT"
    if any(marker in e.lower() for e in errors for marker in OOM_MARKERS):
        return EngineError(f"TensorRT {version} ran out of GPU memory while building ({text}); "
                           f"lower --workspace (now {opts.workspace_mb} MB) or --max-batch, close other GPU "
                           "programs (on Jetson the GPU shares the system RAM) and retry")
    return EngineError(f"TensorRT {version} failed to build the engine ({text}); rerun with "
                       "--verbose for the full builder log")


def _shapes(network: trt.INetworkDefinition, facts: OnnxFacts, plan: BuildPlan) -> dict[str, Any]:
    lo, opt, hi = (list(s) for s in plan.profile)
    outputs = {}
    for i in range(network.num_outputs):
        tensor = network.get_output(i)
        outputs[tensor.name] = dims_list(tensor.shape)
    return {"inputs": {facts.input_name: {"min": lo, "opt": opt, "max": hi}}, "outputs": outputs}


def build(onnx: Path, facts: OnnxFacts, plan: BuildPlan, opts: BuildOptions,
          verbose: bool = False) -> BuildResult:
    """Parse ``onnx`` (plugin loaded first) and build a serialized plan for GPU 0."""
    import tensorrt as trt

    device = device_info()
    plugin_path, plugin_sha = _load_plugin(trt.__version__, facts, opts)
    logger = collecting_logger(verbose)
    builder = trt.Builder(logger)
    network, _parser = _parse(builder, onnx, plan, logger)
    config = _config(builder, facts, plan, opts)
    console = Console(stderr=True)
    with console.status(f"building {opts.precision} engine on {device.name} (TensorRT {trt.__version__}); "
                        "autotuning takes minutes on Jetson"):
        try:
            serialized = builder.build_serialized_network(network, config)
        except MemoryError:
            serialized = None
            logger.errors.append("out of memory (host)")
    if serialized is None:
        raise _build_failure(trt.__version__, logger.errors, opts)
    cache = bytes(config.get_timing_cache().serialize()) if opts.timing_cache is not None else None
    return BuildResult(bytes(serialized), cache, trt.__version__, device, plugin_sha,
                       _shapes(network, facts, plan), plugin_path)
