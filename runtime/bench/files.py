"""Which file each bench backend runs for a MODEL argument, and why a backend is skipped.

MODEL is any artifact of one model family, or a folder (``model.safetensors``,
``best/model.safetensors`` (a training run), ``last/model.safetensors`` or ``model.onnx`` inside).
The family is the files sharing its stem, named as edgeseg writes them (:func:`family_file`, the
one place this rule is written)::

    S.safetensors          torch, torch-cuda
    S.onnx                 ort, ort-cuda, ov, ov-f32, ov-gpu, ov-npu   (FP32)
    S.int8.onnx            ort-int8, ov-int8        (edgeseg calibrate)
    S.fp16.onnx            ort-fp16, ov-fp16
    S.<fp32|fp16|int8>.engine   trt-fp32 / trt-fp16 / trt-int8   (built on the target GPU)

:class:`ArtifactResolver` runs what it finds. Files it does not find are made by the pipeline's
resolver (:mod:`edgeseg.pipelines.bench_artifacts`: export, FP16 conversion, calibration), which
overrides :meth:`ArtifactResolver.prepare`; the runtime never imports export or calib.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg.runtime.bench.facts import onnx_gflops
from edgeseg.runtime.bench.row import ModelFacts
from edgeseg.runtime.bench.specs import ARTIFACT_OF_SUFFIX, BackendSpec

from edgeseg.card import Artifact, ModelCard, Precision, read_card
from edgeseg.errors import EdgesegError, ModelError

Log = Callable[[str], None]
_PRECISION_INFIX = (".int8", ".fp16", ".fp32")
_FOLDER_MODELS = ("model.safetensors", "best/model.safetensors", "last/model.safetensors", "model.onnx")


@dataclass(frozen=True)
class Resolved:
    """The file a backend runs (``path``), or why it cannot run (``skip``). ``note``: how the
    file came to be (``given``, ``found next to MODEL``, ``exported by bench``...)."""

    path: Path | None
    skip: str | None = None
    note: str = ""


def family_file(folder: Path, stem: str, artifact: Artifact, precision: Precision) -> Path:
    """The file of family ``folder/stem`` holding ``artifact`` at ``precision`` (see the table above)."""
    if artifact == "checkpoint":
        return folder / f"{stem}.safetensors"
    if artifact == "engine":
        return folder / f"{stem}.{precision}.engine"
    return folder / (f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx")


def family_of(model: Path) -> tuple[Path, str]:
    """(folder, stem) of the family of ``model``; ModelError when it is none of the forms."""
    if model.is_dir():
        for rel in _FOLDER_MODELS:
            if (model / rel).is_file():
                return family_of(model / rel)
        raise ModelError(f"{model} holds no model.safetensors, best/ or last/model.safetensors or "
                         "model.onnx; pass a checkpoint, an ONNX file or an engine")
    if not model.is_file():
        raise ModelError(f"model {model} does not exist; pass a checkpoint (.safetensors), an ONNX file "
                         "or a TensorRT engine")
    name = model.name
    for suffix in ARTIFACT_OF_SUFFIX:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            for infix in _PRECISION_INFIX:
                stem = stem.removesuffix(infix)
            return model.parent, stem
    raise ModelError(f"cannot bench {name}: unknown model file type; expected .safetensors, .onnx or "
                     ".engine (with its model card next to it)")


def card_file(model: Path) -> Path:
    """The file whose card describes ``model`` (a folder: its checkpoint, else its FP32 ONNX)."""
    if model.is_file():
        return model
    folder, stem = family_of(model)
    ckpt, onnx32 = family_file(folder, stem, "checkpoint", "fp32"), family_file(folder, stem, "onnx", "fp32")
    return ckpt if ckpt.is_file() else onnx32


class ArtifactResolver:
    """Finds the file of each (model, backend, input) in the model's family; a file it does not
    find is passed to :meth:`prepare` (here: skipped with the command that makes it)."""

    def __init__(self, calib: str | None = None, log: Log | None = None) -> None:
        self.calib = calib
        self.log = log or (lambda _m: None)

    def resolve(self, model: Path, spec: BackendSpec, hw: tuple[int, int] | None) -> Resolved:
        folder, stem = family_of(model)
        if spec.artifact == "checkpoint":
            ckpt = family_file(folder, stem, "checkpoint", spec.precision)
            if not ckpt.is_file():
                if _imported(model):
                    return Resolved(None, f"{spec.name} runs edgeseg checkpoints; {model.name} is an "
                                          "imported model (architecture external) with no checkpoint")
                return Resolved(None, f"{spec.name} runs checkpoints; no {ckpt.name} next to {model.name}")
            return Resolved(ckpt, note="given" if ckpt == model else "found next to MODEL")
        if spec.artifact == "engine":
            engine = family_file(folder, stem, "engine", spec.precision)
            if not engine.is_file():
                return Resolved(None, f"no {engine.name} next to {model.name}; build it on the target GPU "
                                      f"with edgeseg build-engine --precision {spec.precision}")
            return Resolved(engine, note="found next to MODEL")
        return self._onnx(model, folder, stem, spec.precision, hw)

    def _onnx(self, model: Path, folder: Path, stem: str, precision: Precision,
              hw: tuple[int, int] | None) -> Resolved:
        path = family_file(folder, stem, "onnx", precision)
        if path.is_file() and _fits(path, hw):
            return Resolved(path, note="given" if path == model else "found next to MODEL")
        if precision == "fp32":
            return self._fp32_missing(path, family_file(folder, stem, "checkpoint", "fp32"), hw)
        if precision == "int8" and self.calib is None:
            return Resolved(None, f"no {path.name} at this input size next to {model.name}; create it "
                                  "with edgeseg calibrate, or pass --calib DATA (or --calib synthetic) to "
                                  "calibrate one here")
        base = self._onnx(model, folder, stem, "fp32", hw)
        if base.path is None:
            return Resolved(None, f"{precision.upper()} needs the FP32 ONNX first: {base.skip}")
        return self.prepare(base.path, hw, precision)

    def _fp32_missing(self, onnx32: Path, ckpt: Path, hw: tuple[int, int] | None) -> Resolved:
        where = f"{onnx32.name} is missing" if not onnx32.is_file() else \
            f"{onnx32.name} is fixed at {hw_text(read_card(onnx32).input_hw)}"
        if not ckpt.is_file():
            return Resolved(None, f"{where} and there is no checkpoint to export from; export one with "
                                  f"edgeseg export CHECKPOINT --input {hw_text(hw) if hw else 'HxW'}")
        if importlib.util.find_spec("torch") is None:
            return Resolved(None, f"{where}; exporting {ckpt.name} needs torch, which is not installed "
                                  "(pip install 'edgeseg[train]') — or pass the ONNX file")
        return self.prepare(ckpt, hw, "fp32")

    def prepare(self, source: Path, hw: tuple[int, int] | None, precision: Precision) -> Resolved:
        """Make the ``precision`` ONNX of ``source`` (fp32: a checkpoint; else the FP32 ONNX)."""
        make = {"fp32": f"edgeseg export {source} --input {hw_text(hw)}",
                "fp16": f"edgeseg convert-fp16 {source}",
                "int8": f"edgeseg calibrate {source} --set SET.json"}[precision]
        return Resolved(None, f"no {precision.upper()} ONNX at this input size; make it with {make}")

    def input_problem(self, card: ModelCard, hw: tuple[int, int]) -> str | None:
        """Why ``hw`` is not a valid input size for the card's model (None: valid, or not known
        here; ONNX files and engines are fixed-size and checked when resolved)."""
        return None

    def model_facts(self, model: Path, card: ModelCard, hw: tuple[int, int]) -> ModelFacts:
        """Parameters and GFLOPs of the model at ``hw``, counted over its FP32 ONNX at that size."""
        from edgeseg.runtime.report import count_params

        folder, stem = family_of(model)
        onnx32 = family_file(folder, stem, "onnx", "fp32")
        if onnx32.is_file() and tuple(read_card(onnx32).input_hw) == tuple(hw):
            params, params_from = count_params(onnx32, read_card(onnx32).extra)
            gflops = onnx_gflops(onnx32)
            return ModelFacts(params, params_from, gflops, "unknown (shapes not inferable)" if gflops is None
                              else "ONNX count (Conv/Gemm MACs x 2)")
        return ModelFacts(None, "unknown (no checkpoint with torch, no FP32 ONNX at this size)", None,
                          "unknown")


def hw_text(hw: tuple[int, int] | None) -> str:
    return "model size" if hw is None else f"{hw[0]}x{hw[1]}"


def _imported(model: Path) -> bool:
    try:
        return model.is_file() and read_card(model, verify_hash=False).architecture == "external"
    except EdgesegError:
        return False


def _fits(path: Path, hw: tuple[int, int] | None) -> bool:
    return hw is None or tuple(read_card(path).input_hw) == tuple(hw)
