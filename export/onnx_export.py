"""Checkpoint -> verified ONNX file + model card (``edgeseg export``).

Pipeline (each step a short function; nothing touches the output path until all pass)::

    load checkpoint -> torch.onnx.export (TorchScript exporter, unpool mode native|plugin)
    [native, opset >= 13: exported as plugin nodes, each rewritten into standard ops by
     edgeseg.unpool.onnx_graph.plugin_to_native: SpaceToDepth -> ArgMax -> one-hot * y -> DepthToSpace]
    -> onnxsim -> onnx.checker (full) + strict shape inference
    -> verification: PyTorch (training-mode unpool with real indices) vs onnxruntime
    -> TensorRT op check (10.3, 11.x) -> atomic write of model.onnx + model.onnx.json

Exporter: ``torch.onnx.export(..., dynamo=False)``; the reasons are in
:mod:`edgeseg.unpool.torch_op`. Models without unpool export the same way
(card ``unpool_mode="none"``).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from edgeseg.export.onnx_file import check_output_path, write_onnx
from edgeseg.export.onnx_verify import Verification, verify
from edgeseg.export.options import MAX_OPSET, ExportOptions

from edgeseg.card import ModelCard
from edgeseg.errors import ExportError, ModelError
from edgeseg.io import sha256_file
from edgeseg.models.blocks import param_count
from edgeseg.unpool import OP_DOMAIN, OP_DOMAIN_VERSION
from edgeseg.unpool.onnx_graph import NATIVE_MIN_OPSET, plugin_to_native

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportRecord:
    """What an export did and measured: the card's ``extra["export"]`` (same keys as ever).

    ``verification``: one row per input source (PyTorch vs onnxruntime); ``tensorrt_ops``: the op
    check per TensorRT version (``label``, ``ok``, ``problems``); ``forced_despite``: the failed
    verification lines written anyway (``force``); ``unpool_layers``: unpools routed in a module
    export (None for checkpoints)."""

    opset: int
    dynamic_batch: bool
    simplified: bool
    input_name: str
    output_name: str
    exporter: str
    verification: tuple[Verification, ...]
    tensorrt_ops: dict[str, Any]
    forced_despite: tuple[str, ...]
    unpool_layers: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["verification"] = [v.to_json() for v in self.verification]
        d["forced_despite"] = list(self.forced_despite)
        if self.unpool_layers is None:
            del d["unpool_layers"]
        return d

    @classmethod
    def from_json(cls, d: Any) -> ExportRecord:
        """The record from a card's ``extra["export"]``; ModelError when a key is missing."""
        try:
            return cls(opset=int(d["opset"]), dynamic_batch=bool(d["dynamic_batch"]),
                       simplified=bool(d["simplified"]), input_name=str(d["input_name"]),
                       output_name=str(d["output_name"]), exporter=str(d["exporter"]),
                       verification=tuple(Verification.from_json(r) for r in d["verification"]),
                       tensorrt_ops=dict(d["tensorrt_ops"]), forced_despite=tuple(d["forced_despite"]),
                       unpool_layers=d.get("unpool_layers"))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"the card's export record is malformed ({type(e).__name__}: {e}); "
                             "re-export the model") from None

    @classmethod
    def of(cls, card: ModelCard) -> ExportRecord:
        """The export record of an exported file's card."""
        if "export" not in card.extra:
            raise ModelError("the card has no export record (extra.export); it was not written by "
                             "edgeseg export: re-export the model")
        return cls.from_json(card.extra["export"])


def export_onnx(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str],
    options: ExportOptions = ExportOptions(), *, log: Log | None = None,
) -> tuple[Path, ModelCard]:
    """Export ``checkpoint`` to ``out`` (+ card ``out.json``); returns (path, ONNX card).

    The card's ``extra["export"]`` is an :class:`ExportRecord` (verification results, TensorRT op
    check). Raises ExportError/ConfigError/ModelError with one line; on any failure nothing is
    written.
    """
    opts = options
    log = log or (lambda _msg: None)
    out = Path(out)
    check_output_path(out)
    if opts.data is not None:  # fail fast on a bad dataset (opening decodes nothing)
        from edgeseg.data import open_dataset

        open_dataset(opts.data, opts.data_split)
    model, ckpt_card, card = load_for_export(checkpoint, opts)
    hw, mode = card.input_hw, card.unpool_mode
    in_ch = int(card.arch_args.get("in_channels", 3))
    log(f"exporting {card.architecture} {hw[0]}x{hw[1]}, unpool {mode}, opset {opts.opset}")
    onnx_model = torch_to_onnx(model, (1, in_ch, *hw), mode, opts)
    if opts.simplify:
        log("simplifying with onnxsim")
        onnx_model = simplify(onnx_model)
    onnx_model = check_graph(onnx_model)
    data = onnx_model.SerializeToString()
    log("verifying against PyTorch (onnxruntime, CPU)")
    results = verify(model, data, card, opts)
    forced = _enforce(results, opts)
    if opts.argmax or opts.frame_hw is not None:  # verified as logits above; checked again inside
        from edgeseg.export.deploy_graph import make_deployable
        from edgeseg.export.options import DeployOptions

        onnx_model, card = make_deployable(onnx_model, card, DeployOptions(argmax=opts.argmax,
                                                                           frame_hw=opts.frame_hw))
        data = onnx_model.SerializeToString()
    record = _record(opts, results, onnx_model, forced)
    # params: the PyTorch model's trainable parameters, inherited by the FP16/INT8 files and engines, so
    # every artifact of one model reports one count (ONNX initializers differ: BatchNorm folded, Q/DQ scales)
    card = card.replace(extra={**ckpt_card.extra, **card.extra, "export": record.to_json(),
                               "params": param_count(model)})
    return write_onnx(out, data, card)


def load_for_export(
    checkpoint: str | os.PathLike[str], opts: ExportOptions
) -> tuple[Any, ModelCard, ModelCard]:
    """Load the checkpoint; return (model, checkpoint card, ONNX card without hash/extra).

    The ONNX card: unpool mode ``opts.unpool_mode`` (``none`` for models without unpool), the input
    size (``opts.input_hw`` or the checkpoint's, checked against the model's stride) and
    ``parent_sha256`` = the checkpoint's SHA-256.
    """
    from edgeseg.models.checkpoint import load_checkpoint, resolve_checkpoint
    from edgeseg.models.registry import check_input_hw, get_spec

    model, ckpt_card = load_checkpoint(checkpoint)
    if opts.threads is not None:
        import torch

        torch.set_num_threads(opts.threads)
    mode = opts.unpool_mode if get_spec(ckpt_card.architecture).has_unpool else "none"
    hw = opts.input_hw or ckpt_card.input_hw
    check_input_hw(ckpt_card.architecture, hw)
    card = ckpt_card.replace(
        artifact="onnx", unpool_mode=mode, input_hw=hw, precision="fp32", file_sha256=None,
        parent_sha256=ckpt_card.file_sha256 or sha256_file(resolve_checkpoint(checkpoint)),
    )
    return model, ckpt_card, card


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Silence fd 1 while torch's exporter runs: on failure it dumps the whole TorchScript graph.

    Process-wide (it is a file descriptor): other threads' stdout is muted for that time too.
    """
    import sys

    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all (daemon): nothing to silence
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def torch_to_onnx(model: Any, shape_nchw: tuple[int, ...], mode: str, opts: ExportOptions) -> Any:
    """Run the TorchScript exporter in ``mode`` ("native" | "plugin" | "none"); return ModelProto.

    ``native`` at opset >= 13 is exported with plugin nodes, each rewritten by ``plugin_to_native``
    (one SpaceToDepth/DepthToSpace pair instead of the 6-D transposes torch's reshape/permute gives;
    res-segnet 10 % faster in onnxruntime, docs/export.md); below opset 13 torch's own export of
    ``native_unpool`` is kept.
    """
    import onnx
    import torch

    from edgeseg.unpool.torch_op import unpool_mode

    dyn = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if opts.dynamic_batch else None
    rewrite = mode == "native" and opts.opset >= NATIVE_MIN_OPSET
    if rewrite:
        mode = "plugin"  # then each plugin node -> the SpaceToDepth/DepthToSpace native form (below)
    custom = {OP_DOMAIN: OP_DOMAIN_VERSION} if mode == "plugin" else None
    buf = io.BytesIO()
    try:
        with unpool_mode("native" if mode == "none" else mode), torch.no_grad(), \
                warnings.catch_warnings(), _quiet_stdout():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                # the TorchScript exporter (dynamo=False) writes to file objects; f is typed as a path
                model, (torch.zeros(shape_nchw),), buf, dynamo=False,  # type: ignore[arg-type]
                opset_version=opts.opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=dyn,
                do_constant_folding=True, custom_opsets=custom,
            )
    except Exception as e:  # torch raises OnnxExporterError/SymbolicValueError/RuntimeError
        raise ExportError(_explain_export_failure(e, opts.opset)) from None
    model = onnx.load_from_string(buf.getvalue())
    return plugin_to_native(model) if rewrite else model


def _explain_export_failure(e: Exception, opset: int) -> str:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    if "Unsupported" in first or "opset" in first.lower():
        return (f"torch cannot export this model at opset {opset} ({first}); re-run with a "
                f"higher --opset (default {ExportOptions.opset}, max {MAX_OPSET})")
    return f"torch.onnx.export failed ({type(e).__name__}: {first}); check the model and --opset"


def simplify(model: Any) -> Any:
    """onnxsim; the custom unpool node is kept as is (onnxsim leaves unknown-domain ops alone)."""
    import onnxsim

    try:
        with warnings.catch_warnings(), _quiet_stdout():
            warnings.simplefilter("ignore")
            simplified, ok = onnxsim.simplify(model, check_n=0)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ExportError(f"onnxsim failed ({type(e).__name__}: {first}); re-run with "
                          "--no-simplify") from None
    if not ok:
        raise ExportError("onnxsim could not validate the simplified graph; re-run with --no-simplify")
    return simplified


def check_graph(model: Any) -> Any:
    """onnx.checker (full) + strict shape inference; returns the model with inferred shapes."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ExportError(f"the exported graph fails the ONNX checker ({first}); nothing was "
                          "written — try --no-simplify or another --opset, else report a bug") from None
    inferred.producer_name = "edgeseg"
    return inferred


def _enforce(results: list[Verification], opts: ExportOptions) -> tuple[str, ...]:
    """Raise unless every source reaches ``min_agreement``; with ``force`` return the failures."""
    failures = tuple(line for r in results if (line := r.failure(opts.min_agreement)) is not None)
    if failures and not opts.force:
        raise ExportError(f"verification failed ({'; '.join(failures)}); the ONNX graph does not "
                          "reproduce the PyTorch model — nothing written (pass --force to write it "
                          "anyway)")
    return failures


def _record(opts: ExportOptions, results: list[Verification], onnx_model: Any, forced: tuple[str, ...],
            unpool_layers: int | None = None) -> ExportRecord:
    """The export record of the graph about to be written, with its TensorRT op check."""
    import onnx
    import torch
    from edgeseg.export.opcheck import check_ops, trt_versions

    trt = {v: check_ops(onnx_model, v) for v in trt_versions()}
    return ExportRecord(
        opset=opts.opset, dynamic_batch=opts.dynamic_batch, simplified=opts.simplify,
        input_name=onnx_model.graph.input[0].name, output_name=onnx_model.graph.output[0].name,
        exporter=f"torch {torch.__version__} torch.onnx.export(dynamo=False), onnx {onnx.__version__}",
        verification=tuple(results),
        tensorrt_ops={v: {"label": c.label, "ok": c.ok, "problems": [asdict(p) for p in c.problems]}
                      for v, c in trt.items()},
        forced_despite=forced, unpool_layers=unpool_layers)
