"""The files ``edgeseg bench`` makes when a model family lacks them, and the model facts that need torch.

Bench runs the files of a MODEL's family (:mod:`edgeseg.runtime.bench.files`). This resolver also
**prepares** missing ones into the work folder, cached by source content and input size:

* an FP32 ONNX missing at the requested input size is exported from the family's checkpoint
  (needs torch) with ``edgeseg export`` defaults (native unpool, opset 17, dynamic batch);
* a missing FP16 ONNX is converted from it (``edgeseg convert-fp16``: FP32 inputs/outputs);
* a missing INT8 ONNX is calibrated from it when ``--calib DATA`` names calibration images (a
  dataset folder, or ``synthetic`` for frames of the built-in generator: fine for speed, not for
  accuracy), with min/max ranges and onnxruntime's full Q/DQ placement (the one its CPU integer
  kernels run).

Engines are never built here: TensorRT engines belong to the GPU they run on (``edgeseg
build-engine`` there). With torch, input sizes are checked against the architecture and the
parameters/GFLOPs come from the checkpoint profile. This module sits in the pipelines layer
because it chains export, calib and the runtime (docs/design.md, layers).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgeseg.card import ModelCard, Precision, read_card
from edgeseg.errors import EdgesegError
from edgeseg.io import sha256_file
from edgeseg.runtime.bench.files import ArtifactResolver, Log, Resolved, family_file, family_of, hw_text
from edgeseg.runtime.bench.row import ModelFacts

CALIB_IMAGES = 16
EXTERNAL = "external"  # card architecture of ``edgeseg import`` files (edgeseg.export.onnx_import)


class PreparingResolver(ArtifactResolver):
    """An :class:`ArtifactResolver` that exports / converts / calibrates missing files into
    ``work_dir`` (see the module docstring) and knows the torch-side model facts."""

    def __init__(self, work_dir: Path, calib: str | None = None, log: Log | None = None) -> None:
        super().__init__(calib, log)
        self.work_dir = work_dir
        self._failed: dict[Path, str] = {}

    def input_problem(self, card: ModelCard, hw: tuple[int, int]) -> str | None:
        """Why ``hw`` is not a valid input size for the card's architecture (None when it is, or
        when torch is absent: the registry needs it, and ONNX files/engines are fixed-size anyway)."""
        if importlib.util.find_spec("torch") is None or card.architecture == EXTERNAL:
            return None  # an imported file runs at its card's size only (checked when resolved)
        from edgeseg.models.registry import check_input_hw

        try:
            check_input_hw(card.architecture, hw)
        except EdgesegError as e:
            return str(e)
        return None

    def model_facts(self, model: Path, card: ModelCard, hw: tuple[int, int]) -> ModelFacts:
        """The checkpoint profile when torch is here, else the ONNX count of the runtime resolver."""
        folder, stem = family_of(model)
        if family_file(folder, stem, "checkpoint", "fp32").is_file() and \
                importlib.util.find_spec("torch") is not None:
            try:
                from edgeseg.models.profile import profile_model

                args = {k: v for k, v in card.arch_args.items() if k != "num_classes"}
                p = profile_model(card.architecture, input_hw=hw, num_classes=card.num_classes, **args)
                return ModelFacts(p.params, "checkpoint profile (trainable)", round(p.gflops, 4),
                                  "checkpoint profile (FlopCounterMode)")
            except Exception:  # noqa: BLE001 - the facts are optional; the ONNX count is the fallback
                pass
        return super().model_facts(model, card, hw)

    def prepare(self, source: Path, hw: tuple[int, int] | None, precision: Precision) -> Resolved:
        """Export (fp32, source = checkpoint) or calibrate (int8, source = FP32 ONNX), cached."""
        card = read_card(source)
        hw = hw or card.input_hw
        # one folder per source content (checkpoint or FP32 ONNX); one file per input size
        sha = (card.file_sha256 or sha256_file(source))[:10]
        folder = self.work_dir / f"{card.architecture}-{card.artifact}-{sha}"
        out = folder / f"model.{hw_text(hw)}.onnx" if precision == "fp32" else \
            family_file(folder, source.name.removesuffix(".onnx"), "onnx", precision)
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
                self.log(f"exporting {source} at {hw_text(hw)} -> {out}")
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
        from edgeseg.calib.calib_set import CalibSetOptions, Preprocess, make_calib_set
        from edgeseg.calib.quantize import CalibrateOptions, calibrate

        data = self.calib
        assert data is not None  # checked by _int8
        if data == "synthetic":
            data = str(write_synthetic_images(out.parent / "calib-synthetic", card.input_hw))
        set_path = out.parent / f"{out.name}.calib-set.json"
        make_calib_set(data, Preprocess.from_card(card), set_path,
                       CalibSetOptions(num=CALIB_IMAGES, strategy="random", split="train"))
        calibrate(onnx32, set_path, out, CalibrateOptions(method="minmax", placement="full",
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


def _card_ok(out: Path, source: Path) -> bool:
    """A prepared file is reused only when its card says it was made from this very source."""
    try:
        return read_card(out).parent_sha256 == read_card(source).file_sha256 or \
            read_card(out).parent_sha256 == sha256_file(source)
    except EdgesegError:
        return False
