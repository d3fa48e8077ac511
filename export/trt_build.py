"""ONNX -> TensorRT engine (``edgeseg build-engine``) for TensorRT 10.x (JetPack 6: 10.3) and 11.x.

Pipeline: inspect the ONNX (torch-free) -> :func:`plan_build` decides network typing, builder flags
and the shape profile (pure: testable without TensorRT, and the source of ``--print-trtexec``)
-> :func:`build_engine` loads the plugin library, parses, builds and writes the plan and its card
atomically. Precision rules (docs/design.md §6):

=========  ====================================  ===========================================
precision  TensorRT 10.x                         TensorRT 11.x (always strongly typed)
=========  ====================================  ===========================================
fp32       FP32 ONNX, no precision flags         FP32 ONNX
fp16       FP32 ONNX + FP16 flag, or FP16 ONNX   FP16 ONNX (I/O may stay FP32 via casts)
           (strongly typed)
int8       Q/DQ ONNX + INT8 and FP16 flags, or   Q/DQ ONNX
           Q/DQ FP16 ONNX (strongly typed)
=========  ====================================  ===========================================
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from edgeseg.export.trt_plan import ONNX_FLOAT16, QDQ_OPS, BuildOptions, BuildPlan, OnnxFacts, Shape

from edgeseg.card import PRECISIONS, ModelCard, card_path, read_card
from edgeseg.errors import CalibrationError, ConfigError, EngineError
from edgeseg.io import atomic_path, load_onnx, sha256_bytes, sha256_file
from edgeseg.unpool import OP_NAME


def inspect_onnx(path: Path) -> OnnxFacts:
    """Read an ONNX file's structure (no weights loaded beyond the file itself)."""

    if not path.is_file():
        raise EngineError(f"ONNX file {path} does not exist; export one with: edgeseg export")
    model = load_onnx(path, weights=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise EngineError(f"{path} has {len(inputs)} inputs; edgeseg engines take one image batch input")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    nodes = list(model.graph.node)
    float16 = any(i.data_type == ONNX_FLOAT16 for i in model.graph.initializer) or any(
        a.name == "to" and a.i == ONNX_FLOAT16 for n in nodes if n.op_type == "Cast" for a in n.attribute)
    return OnnxFacts(inputs[0].name, shape, any(n.op_type in QDQ_OPS for n in nodes), float16,
                     sum(n.op_type == OP_NAME for n in nodes))


def _check_options(opts: BuildOptions) -> None:
    if opts.precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {opts.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if opts.workspace_mb <= 0:
        raise ConfigError(f"--workspace {opts.workspace_mb} MB must be positive (e.g. 1024)")
    if opts.dla_core is not None and opts.dla_core < 0:
        raise ConfigError(f"--dla-core {opts.dla_core} must be 0 or 1 (Orin AGX/NX have two DLA cores)")


def _profile(facts: OnnxFacts, opts: BuildOptions) -> tuple[Shape, Shape, Shape]:
    rest = facts.input_shape[1:]
    if any(d < 0 for d in rest):
        raise EngineError(f"input {facts.input_name} has dynamic height/width {facts.input_shape}; "
                          "re-export with a fixed --input-hw (only the batch may be dynamic)")
    given = [b for b in (opts.min_batch, opts.opt_batch, opts.max_batch) if b is not None]
    if not facts.dynamic_batch:
        fixed = facts.input_shape[0]
        if any(b != fixed for b in given):
            raise EngineError(f"the ONNX file has a fixed batch of {fixed}; re-export it with "
                              "--dynamic-batch to build for other batch sizes")
        return (facts.input_shape,) * 3
    lo = opts.min_batch or 1
    opt = opts.opt_batch or lo
    hi = opts.max_batch or max(lo, opt)
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"batch sizes must satisfy 1 <= min ({lo}) <= opt ({opt}) <= max ({hi})")
    return ((lo, *rest), (opt, *rest), (hi, *rest))


def _precision_mode(facts: OnnxFacts, precision: str, major: int) -> tuple[bool, tuple[str, ...]]:
    """(strongly_typed, builder flags) for this file, precision and TensorRT major version."""
    if precision == "int8" and not facts.has_qdq:
        raise CalibrationError("INT8 needs an ONNX file with Q/DQ (QuantizeLinear/DequantizeLinear) nodes "
                               "and this one has none; make it with: edgeseg calibrate (then build that "
                               "file)")
    if facts.float16 and precision == "fp32":
        raise EngineError("this ONNX file computes in FP16; build it with --precision fp16 (or int8 if it "
                          "has Q/DQ)")
    if major >= 11 or facts.float16:
        if precision == "fp16" and not facts.float16:
            raise EngineError("TensorRT 11 networks are strongly typed, so FP16 needs an FP16 ONNX file; "
                              "make one with edgeseg calibrate (FP16 conversion) and build that file")
        return True, ()
    return False, {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]


def plan_build(facts: OnnxFacts, opts: BuildOptions, tensorrt_major: int) -> BuildPlan:
    """Decide typing, flags and profile; raises for every bad combination before TensorRT runs."""
    _check_options(opts)
    strongly, flags = _precision_mode(facts, opts.precision, tensorrt_major)
    profile = _profile(facts, opts)
    notes: list[str] = []
    if opts.dla_core is not None:
        if profile[0] != profile[2]:
            raise EngineError(f"DLA engines need static shapes but the batch ranges {profile[0][0]}.."
                              f"{profile[2][0]}; pass equal --min-batch/--max-batch or drop --dla-core")
        if opts.precision == "fp32":
            raise EngineError("DLA runs FP16 or INT8 only; use --precision fp16 or int8 with --dla-core")
        flags = (*flags, "GPU_FALLBACK")
        if facts.plugin_nodes:
            notes.append(f"{OP_NAME} plugin layers run on the GPU (DLA cannot run plugins)")
    return BuildPlan(tensorrt_major, strongly, flags, profile, tuple(notes))


def _dims(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def trtexec_command(onnx: Path, out: Path, facts: OnnxFacts, plan: BuildPlan, opts: BuildOptions,
                    plugin: Path | None) -> str:
    """The equivalent ``trtexec`` command line (builds the same plan; prints no card)."""
    args = ["trtexec", f"--onnx={onnx}", f"--saveEngine={out}",
            f"--memPoolSize=workspace:{opts.workspace_mb}M"]
    if plan.strongly_typed:
        args.append("--stronglyTyped")  # required on 10.x, default (no-op) on 11.x
    args += [f"--{flag.lower()}" for flag in plan.flags if flag in ("FP16", "INT8")]
    if plugin is not None:
        args.append(f"--staticPlugins={plugin}")
    if opts.timing_cache is not None:
        args.append(f"--timingCacheFile={opts.timing_cache}")
    if opts.dla_core is not None:
        args += [f"--useDLACore={opts.dla_core}", "--allowGPUFallback"]
    if facts.dynamic_batch:
        lo, opt, hi = plan.profile
        name = facts.input_name
        args += [f"--minShapes={name}:{_dims(lo)}", f"--optShapes={name}:{_dims(opt)}",
                 f"--maxShapes={name}:{_dims(hi)}"]
    args.append("--skipInference")
    return shlex.join(args)


def edgeseg_command(onnx: Path, out: Path, opts: BuildOptions) -> str:
    """The ``edgeseg build-engine`` command that rebuilds this engine (stored in the card)."""
    args = ["edgeseg", "build-engine", str(onnx), "--precision", opts.precision, "--workspace",
            str(opts.workspace_mb)]
    for flag, value in (("--plugin", opts.plugin), ("--timing-cache", opts.timing_cache),
                        ("--dla-core", opts.dla_core), ("--min-batch", opts.min_batch),
                        ("--opt-batch", opts.opt_batch), ("--max-batch", opts.max_batch)):
        if value is not None:
            args += [flag, str(value)]
    return shlex.join([*args, "-o", str(out)])


def check_output(out: Path) -> None:
    """Refuse a bad engine path before the (long) build rather than after it."""
    if out.suffix != ".engine":
        raise ConfigError(f"engine output {out} must end with .engine (the runtime picks the backend by "
                          "suffix), e.g. model.fp16.engine")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigError(f"output folder {folder} does not exist or is not writable; create it or choose "
                          "another -o path")


def trtexec_text(onnx: Path, out: Path, options: BuildOptions = BuildOptions()) -> str:
    """The trtexec command for this build, for the installed TensorRT or else for 10.x (JetPack 6),
    the latter after a ``#`` line saying so. Checks like :func:`build_engine`, builds nothing."""
    from edgeseg.runtime.trt_common import require_tensorrt, resolve_plugin, tensorrt_major

    check_output(out)
    try:
        version, note = require_tensorrt().__version__, ""
    except EngineError:
        version, note = "10.3", "# TensorRT is not installed here: command for TensorRT 10.x (JetPack 6)\n"
    facts = inspect_onnx(onnx)
    plan = plan_build(facts, options, tensorrt_major(version))
    plugin = resolve_plugin(options.plugin, version) if facts.plugin_nodes else None
    return note + trtexec_command(onnx, out, facts, plan, options, plugin)


def build_engine(onnx: Path, out: Path, options: BuildOptions = BuildOptions()) -> tuple[Path, ModelCard]:
    """Build ``onnx`` into the TensorRT plan ``out`` (+ card ``out.json``); return (path, card).

    Everything that can be refused is refused before the (long) build; on any failure nothing is
    written at ``out``. Raises EngineError / CalibrationError / ConfigError / ModelError.
    """
    from edgeseg.export import trt_engine
    from edgeseg.runtime import trt_common

    onnx, out = Path(onnx), Path(out)
    check_output(out)
    facts = inspect_onnx(onnx)
    onnx_card = read_card(onnx)
    plan_build(facts, options, 10)  # refuse bad input before needing TensorRT (11 only adds the FP16 rule)
    trt = trt_common.require_tensorrt()
    plan = plan_build(facts, options, trt_common.tensorrt_major(trt.__version__))
    result = trt_engine.build(onnx, facts, plan, options, verbose=options.verbose)
    card = engine_card(onnx_card, onnx, options, plan, result, edgeseg_command(onnx, out, options))
    write_engine(out, result.plan, card)
    if options.timing_cache is not None and result.timing_cache is not None:
        with atomic_path(options.timing_cache) as tmp:
            tmp.write_bytes(result.timing_cache)
    return out, read_card(out)


def write_engine(out: Path, plan: bytes, card: ModelCard) -> None:
    """Write the plan and its card; afterwards both are new, or (on failure) neither is half-written.

    Both go to temporary files first, so a failed write (disk full) leaves an older engine and its
    card untouched. Then the older card is removed, the plan renamed into place and the card after
    it; if that last rename fails the new plan is removed too. No card is ever left describing a
    plan that is not there, and no plan without its card.
    """
    card = card.replace(file_sha256=sha256_bytes(plan))
    side = card_path(out)
    committed = False
    try:
        with atomic_path(side) as tmp_card:
            tmp_card.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
            with atomic_path(out, need_bytes=len(plan)) as tmp_plan:
                tmp_plan.write_bytes(plan)
                side.unlink(missing_ok=True)  # the older card must not outlive the older plan
            committed = True
    except BaseException:
        if committed:
            out.unlink(missing_ok=True)
        raise


def engine_card(onnx_card: ModelCard, onnx: Path, opts: BuildOptions, plan: BuildPlan, result: Any,
                command: str) -> ModelCard:
    """The engine's card: the ONNX card plus what the plan was built for and from."""
    extra = {
        **onnx_card.extra,
        "tensorrt_version": result.tensorrt_version,
        "gpu_name": result.device.name,
        "compute_capability": result.device.compute_capability,
        "plugin_sha256": result.plugin_sha256,
        "plugin_path": str(result.plugin_path) if result.plugin_path else None,
        "onnx_sha256": sha256_file(onnx),
        "shapes": result.shapes,
        "build": {"workspace_mb": opts.workspace_mb, "strongly_typed": plan.strongly_typed,
                  "flags": list(plan.flags), "dla_core": opts.dla_core},
        "build_command": command,
    }
    return onnx_card.replace(artifact="engine", precision=opts.precision, file_sha256=None,
                             parent_sha256=extra["onnx_sha256"], extra=extra)
