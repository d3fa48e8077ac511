"""Which file each bench backend runs for a MODEL argument, and why a backend is skipped.

MODEL is any artifact of one model family, or a folder (``model.safetensors``,
``best/model.safetensors`` (a training run), ``last/model.safetensors`` or ``model.onnx`` inside).
The family is the files sharing its stem, named as edgeseg writes them::

    S.safetensors          torch, torch-cuda
    S.onnx                 ort, ort-cuda, ov, ov-f32, ov-gpu, ov-npu   (FP32)
    S.int8.onnx            ort-int8, ov-int8        (edgeseg calibrate)
    S.fp16.onnx            ort-fp16, ov-fp16
    S.<fp32|fp16|int8>.engine   trt-fp32 / trt-fp16 / trt-int8   (built on the target GPU)

**Prepared on the fly** (only when the checkpoint is in the family and torch is installed): an
FP32 ONNX missing at the requested input size is exported with ``edgeseg export`` defaults
(native unpool, opset 17, dynamic batch) into the work folder; a missing FP16 ONNX is converted
from it (``edgeseg convert-fp16``: FP32 inputs/outputs); an INT8 ONNX missing is
calibrated from that ONNX when ``--calib DATA`` names calibration images (a dataset folder, or
``synthetic`` for frames of the built-in generator: fine for speed, not for accuracy), with
min/max ranges and onnxruntime's full Q/DQ placement (the one its CPU integer kernels run).
Engines are never built here: TensorRT engines belong to the GPU they run on
(``edgeseg build-engine`` there). Everything else is skipped with the reason and the fix.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeseg.runtime.bench import BackendSpec

from edgeseg.card import ModelCard, read_card
from edgeseg.errors import EdgesegError, ModelError
from edgeseg.io import sha256_file

Log = Callable[[str], None]
_PRECISION_INFIX = (".int8", ".fp16", ".fp32")
CALIB_IMAGES = 16


@dataclass(frozen=True)
class Resolved:
    """The file a backend runs (``path``), or why it cannot run (``skip``). ``note``: how the
    file came to be (``given``, ``found next to MODEL``, ``exported by bench``...)."""

    path: Path | None
    skip: str | None = None
    note: str = ""


def family_of(model: Path) -> tuple[Path, str]:
    """(folder, stem) of the family of ``model``; ModelError when it is none of the forms."""
    if model.is_dir():
        for rel in ("model.safetensors", "best/model.safetensors", "last/model.safetensors", "model.onnx"):
            if (model / rel).is_file():
                return family_of(model / rel)
        raise ModelError(f"{model} holds no model.safetensors, best/ or last/model.safetensors or "
                         "model.onnx; pass a checkpoint, an ONNX file or an engine")
    if not model.is_file():
        raise ModelError(f"model {model} does not exist; pass a checkpoint (.safetensors), an ONNX file "
                         "or a TensorRT engine")
    name = model.name
    for suffix in (".safetensors", ".onnx", ".engine"):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            for infix in _PRECISION_INFIX:
                stem = stem.removesuffix(infix)
            return model.parent, stem
    raise ModelError(f"cannot bench {name}: unknown model file type; expected .safetensors, .onnx or "
                     ".engine (with its model card next to it)")


def unavailable(spec: BackendSpec) -> str | None:
    """Why ``spec`` cannot run on this machine at all (None when it can)."""
    if spec.runtime == "torch":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'edgeseg[train]')"
        if spec.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                return f"torch {torch.__version__} sees no CUDA GPU here"
    if spec.runtime == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        import onnxruntime as ort

        if spec.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return (f"onnxruntime {ort.__version__} has no CUDAExecutionProvider here (providers: "
                    f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu on a CUDA host")
    if spec.runtime == "openvino":
        return _openvino_unavailable(spec)
    if spec.runtime == "tensorrt":
        from edgeseg.export.trt_common import require_tensorrt

        try:
            require_tensorrt()
        except EdgesegError as e:
            return str(e).split(";")[0]
        if importlib.util.find_spec("edgeseg.runtime.backends.trt") is None:
            return "this edgeseg has no TensorRT backend module"
    return None


def _openvino_unavailable(spec: BackendSpec) -> str | None:
    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed (pip install 'edgeseg[openvino]')"
    import openvino

    devices = list(openvino.Core().available_devices)
    if spec.device.upper() not in {d.split(".")[0] for d in devices}:
        return (f"OpenVINO {openvino.get_version()} has no {spec.device.upper()} device here (devices: "
                f"{', '.join(devices) or 'none'}); it needs an Intel {spec.device.upper()} and its driver")
    return None


class ArtifactResolver:
    """Finds (or prepares, see the module docstring) the file of each (model, backend, input)."""

    def __init__(self, work_dir: Path, calib: str | None = None, log: Log | None = None) -> None:
        self.work_dir = work_dir
        self.calib = calib
        self.log = log or (lambda _m: None)
        self._failed: dict[Path, str] = {}

    def resolve(self, model: Path, spec: BackendSpec, hw: tuple[int, int] | None) -> Resolved:
        folder, stem = family_of(model)
        if spec.artifact == "checkpoint":
            ckpt = folder / f"{stem}.safetensors"
            if not ckpt.is_file():
                if _imported(model):
                    return Resolved(None, f"{spec.name} runs edgeseg checkpoints; {model.name} is an "
                                          "imported model (architecture external) with no checkpoint")
                return Resolved(None, f"{spec.name} runs checkpoints; no {stem}.safetensors next to "
                                      f"{model.name}")
            return Resolved(ckpt, note="given" if ckpt == model else "found next to MODEL")
        if spec.artifact == "engine":
            engine = folder / f"{stem}.{spec.precision}.engine"
            if not engine.is_file():
                return Resolved(None, f"no {engine.name} next to {model.name}; build it on the target GPU "
                                      f"with edgeseg build-engine --precision {spec.precision}")
            return Resolved(engine, note="found next to MODEL")
        if spec.precision == "int8":
            return self._int8(model, folder, stem, hw)
        if spec.precision == "fp16":
            return self._fp16(model, folder, stem, hw)
        return self._fp32(model, folder, stem, hw)

    def _fp16(self, model: Path, folder: Path, stem: str, hw: tuple[int, int] | None) -> Resolved:
        onnx16 = folder / f"{stem}.fp16.onnx"
        if onnx16.is_file() and _fits(onnx16, hw):
            return Resolved(onnx16, note="given" if onnx16 == model else "found next to MODEL")
        base = self._fp32(model, folder, stem, hw)
        if base.path is None:
            return Resolved(None, f"FP16 needs the FP32 ONNX first: {base.skip}")
        return self._prepare(base.path, hw, "fp16")

    def _fp32(self, model: Path, folder: Path, stem: str, hw: tuple[int, int] | None) -> Resolved:
        onnx32 = folder / f"{stem}.onnx"
        if onnx32.is_file() and _fits(onnx32, hw):
            return Resolved(onnx32, note="given" if onnx32 == model else "found next to MODEL")
        ckpt = folder / f"{stem}.safetensors"
        where = f"{onnx32.name} is missing" if not onnx32.is_file() else \
            f"{onnx32.name} is fixed at {_hw_text(read_card(onnx32).input_hw)}"
        if not ckpt.is_file():
            return Resolved(None, f"{where} and there is no checkpoint to export from; export one with "
                                  f"edgeseg export CHECKPOINT --input {_hw_text(hw) if hw else 'HxW'}")
        if importlib.util.find_spec("torch") is None:
            return Resolved(None, f"{where}; exporting {ckpt.name} needs torch, which is not installed "
                                  "(pip install 'edgeseg[train]') — or pass the ONNX file")
        return self._prepare(ckpt, hw, "fp32")

    def _int8(self, model: Path, folder: Path, stem: str, hw: tuple[int, int] | None) -> Resolved:
        onnx8 = folder / f"{stem}.int8.onnx"
        if onnx8.is_file() and _fits(onnx8, hw):
            return Resolved(onnx8, note="given" if onnx8 == model else "found next to MODEL")
        if self.calib is None:
            return Resolved(None, f"no {stem}.int8.onnx at this input size next to {model.name}; create it "
                                  "with edgeseg calibrate, or pass --calib DATA (or --calib synthetic) to "
                                  "calibrate one here")
        base = self._fp32(model, folder, stem, hw)
        if base.path is None:
            return Resolved(None, f"INT8 needs the FP32 ONNX first: {base.skip}")
        return self._prepare(base.path, hw, "int8")

    def _prepare(self, source: Path, hw: tuple[int, int] | None, precision: str) -> Resolved:
        """Export (fp32, source = checkpoint) or calibrate (int8, source = FP32 ONNX), cached."""
        card = read_card(source)
        hw = hw or card.input_hw
        # one folder per source content (checkpoint or FP32 ONNX); one file per input size
        sha = (card.file_sha256 or sha256_file(source))[:10]
        folder = self.work_dir / f"{card.architecture}-{card.artifact}-{sha}"
        out = folder / (f"model.{_hw_text(hw)}.onnx" if precision == "fp32" else
                        f"{source.name.removesuffix('.onnx')}.{precision}.onnx")
        if out in self._failed:
            return Resolved(None, self._failed[out])
        note = {"fp32": "exported by bench (native unpool, opset 17)",
                "fp16": "converted by bench (edgeseg convert-fp16, FP32 I/O)",
                "int8": f"calibrated by bench on {self.calib} ({CALIB_IMAGES} images, minmax, full Q/DQ)"}[
                    precision]
        if out.is_file() and _card_ok(out, source):
            return Resolved(out, note=note + ", cached")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            if precision == "fp32":
                self.log(f"exporting {source} at {_hw_text(hw)} -> {out}")
                from edgeseg.export.onnx_export import ExportOptions, export_onnx

                export_onnx(source, out, ExportOptions(unpool="native", input_hw=hw, dynamic_batch=True,
                                                       random_inputs=1))
            elif precision == "fp16":
                self.log(f"converting {source.name} to FP16 -> {out}")
                from edgeseg.calib.fp16 import convert_fp16

                convert_fp16(source, out)
            else:
                self.log(f"calibrating {source.name} on {self.calib} -> {out}")
                self._calibrate(source, out, card)
        except EdgesegError as e:
            step = {"fp32": "export", "fp16": "FP16 conversion", "int8": "calibration"}[precision]
            self._failed[out] = f"{step} failed: {e}"
            return Resolved(None, self._failed[out])
        return Resolved(out, note=note)

    def _calibrate(self, onnx32: Path, out: Path, card: ModelCard) -> None:
        from edgeseg.calib.calib_set import Preprocess, make_calib_set
        from edgeseg.calib.quantize import QuantConfig, calibrate

        data = self.calib
        assert data is not None  # checked by _int8
        if data == "synthetic":
            data = str(write_synthetic_images(out.parent / "calib-synthetic", card.input_hw))
        set_path = out.parent / f"{out.name}.calib-set.json"
        make_calib_set(data, set_path, num=CALIB_IMAGES, preprocess=Preprocess.from_card(card),
                       strategy="random", split="train")
        calibrate(onnx32, set_path, out, QuantConfig(method="minmax", placement="full",
                                                     cache_dir=out.parent / "ranges"))


def write_synthetic_images(folder: Path, hw: tuple[int, int]) -> Path:
    """``CALIB_IMAGES`` PNG frames of the synthetic generator (seed 7) in ``folder``."""
    import cv2

    from edgeseg.data.synthetic import SyntheticScenes

    folder.mkdir(parents=True, exist_ok=True)
    scenes = SyntheticScenes(hw, 7)
    for t in range(CALIB_IMAGES):
        path = folder / f"frame{t:03d}.png"
        if not path.is_file():
            cv2.imwrite(str(path), scenes.frame(t * 5).image_bgr)
    return folder


def _hw_text(hw: tuple[int, int] | None) -> str:
    return "model size" if hw is None else f"{hw[0]}x{hw[1]}"


def _imported(model: Path) -> bool:
    try:
        return model.is_file() and read_card(model, verify_hash=False).architecture == "external"
    except EdgesegError:
        return False


def _fits(path: Path, hw: tuple[int, int] | None) -> bool:
    return hw is None or tuple(read_card(path).input_hw) == tuple(hw)


def _card_ok(out: Path, source: Path) -> bool:
    """A prepared file is reused only when its card says it was made from this very source."""
    try:
        return read_card(out).parent_sha256 == read_card(source).file_sha256 or \
            read_card(out).parent_sha256 == sha256_file(source)
    except EdgesegError:
        return False
