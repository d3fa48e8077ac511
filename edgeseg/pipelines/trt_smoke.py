"""``edgeseg trt-smoke``: once per Jetson/GPU, check that the whole TensorRT path works there.

Plain sequential steps: TensorRT found -> plugin built -> a plugin-unpool ONNX (exported here from
a checkpoint, or given with ``--onnx`` when the board has no torch) -> INT8 Q/DQ (calibrate) and
FP16 ONNX (convert) -> an FP16 and an INT8 engine, each compared with onnxruntime on the CPU.
Each step records PASS with what it made, FAIL with the error's one line, or, when a step it
needs failed, ``not run``; the smoke never stops at the first failure, so one run shows every
problem (docs/jetson.md). The CLI prints :class:`SmokeResult` as a table and exits 1 unless every
step passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgeseg.card import Precision
from edgeseg.errors import EdgesegError

CALIB_IMAGES = 32  # the minimum the entropy calibrator accepts; a smoke test, not a deployment
MIN_AGREEMENT = {"fp16": 99.0, "int8": 95.0}  # argmax agreement (%) with onnxruntime FP32
NOT_RUN = "not run: an earlier step failed"
T = TypeVar("T")


@dataclass(frozen=True)
class SmokeOptions:
    """What to smoke-test (``edgeseg trt-smoke`` takes its defaults from here).

    ``checkpoint`` None: an untrained segnet-basic (random weights, seed 0: numerics, not accuracy).
    ``onnx``: start from this plugin-unpool ONNX + card exported elsewhere (no torch needed); its
    ``.int8.onnx`` / ``.fp16.onnx`` siblings with cards are used when present. ``plugin`` None:
    build the plugin library in the work folder. ``data``: frames for calibration and comparison
    (``synthetic`` = generated scenes); ``frames`` are compared per engine."""

    checkpoint: Path | None = None
    onnx: Path | None = None
    plugin: Path | None = None
    data: str = "synthetic"
    frames: int = 8
    input_hw: tuple[int, int] = (96, 128)
    workdir: Path = Path("edgeseg-trt-smoke")


@dataclass(frozen=True)
class SmokeStep:
    """One step's outcome: ``ok`` False with ``detail`` = the error line (or :data:`NOT_RUN`)."""

    step: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class SmokeResult:
    """The steps in the order they ran (or would have run); ``ok`` when every one passed."""

    steps: tuple[SmokeStep, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)


class _Steps:
    """Runs and records the steps of one smoke test."""

    def __init__(self) -> None:
        self.done: list[SmokeStep] = []

    def run(self, step: str, fn: Callable[..., tuple[T, str]], *args: Any) -> T | None:
        """Run ``fn(*args)`` -> (value, detail) as ``step``; record it; return the value, or None on
        failure. When any argument is None (what an earlier step failed to make) ``fn`` is not
        called and the step is recorded as not run."""
        if any(a is None for a in args):
            self.done.append(SmokeStep(step, False, NOT_RUN))
            return None
        try:
            value, detail = fn(*args)
        except EdgesegError as e:
            self.done.append(SmokeStep(step, False, str(e)))
            return None
        except Exception as e:  # noqa: BLE001 - a smoke test reports every failure as a FAIL row
            self.done.append(SmokeStep(step, False, f"{type(e).__name__}: {e}"))
            return None
        self.done.append(SmokeStep(step, True, detail))
        return value


def trt_smoke(options: SmokeOptions = SmokeOptions()) -> SmokeResult:
    """Run every step in ``options.workdir`` (created); a failing step is recorded, never raised."""
    work = options.workdir
    work.mkdir(parents=True, exist_ok=True)
    r = _Steps()
    trt = r.run("TensorRT", _trt_info)
    # without TensorRT there is nothing to build the plugin against: no row, the engine rows say not run
    lib = options.plugin or (r.run("build plugin", _build_plugin, work) if trt else None)
    given = options.onnx is not None
    if options.onnx is not None:  # torch-free: the export ran on another machine
        onnx = r.run("export (plugin unpool)", _given_onnx, options.onnx)
    else:
        ckpt = options.checkpoint or r.run("checkpoint", _random_checkpoint, work / "ckpt", options.input_hw)
        onnx = r.run("export (plugin unpool)", _export, ckpt, work / "model.onnx", options.input_hw)
    # With --onnx, the INT8/FP16 files made next to it on the export machine are used when present:
    # a Jetson's onnxruntime (1.23.2, the newest aarch64/cp310 wheel) cannot take edgeseg's
    # precomputed calibration ranges (quantize_static gained calibration_cache_path later).
    q_onnx = r.run("INT8 Q/DQ (calibrate)", _int8_onnx, onnx, work, options.data, given)
    # TensorRT 11 builds FP16 only from an FP16 ONNX (strongly typed); 10.x accepts it as well.
    h_onnx = r.run("FP16 ONNX (convert)", _fp16_onnx, onnx, work, given)
    engines: tuple[tuple[Precision, Path | None], ...] = (("fp16", h_onnx), ("int8", q_onnx))
    for precision, src in engines:
        engine = r.run(f"build {precision} engine", _build_engine, src, work / f"model.{precision}.engine",
                       precision, lib, trt)
        r.run(f"{precision} engine vs onnxruntime", _agreement, engine, src, lib, options.data,
              options.frames, MIN_AGREEMENT[precision])
    return SmokeResult(tuple(r.done))


def _trt_info() -> tuple[Any, str]:
    from edgeseg.runtime.trt_common import device_info, require_tensorrt

    trt, dev = require_tensorrt(), device_info()
    return trt, f"TensorRT {trt.__version__} on {dev.name} (sm {dev.compute_capability})"


def _build_plugin(workdir: Path) -> tuple[Path, str]:
    from edgeseg.export.plugin_build import build_plugin

    path = build_plugin(workdir / "plugin")
    return path, str(path)


def _random_checkpoint(folder: Path, hw: tuple[int, int]) -> tuple[Path, str]:
    """An untrained segnet-basic (random weights, seed 0) for checking numerics, not accuracy."""
    import torch

    from edgeseg.card import ModelCard
    from edgeseg.data.synthetic import SyntheticScenes
    from edgeseg.models.checkpoint import save_checkpoint
    from edgeseg.models.registry import build_model

    torch.manual_seed(0)
    info = SyntheticScenes.info
    model = build_model("segnet-basic", num_classes=len(info.class_names))
    card = ModelCard("segnet-basic", {"num_classes": len(info.class_names)}, info.class_names,
                     info.class_colors, hw)
    path, _ = save_checkpoint(model.eval(), card, folder)
    return path, f"{path} (segnet-basic, random weights)"


def _export(ckpt: Path, out: Path, hw: tuple[int, int]) -> tuple[Path, str]:
    from edgeseg.export.onnx_export import ExportOptions, export_onnx

    path, card = export_onnx(ckpt, out, ExportOptions(unpool="plugin", input_hw=(hw[0], hw[1])))
    return path, f"{path} ({card.unpool_mode} unpool)"


def _given_onnx(onnx: Path) -> tuple[Path, str]:
    """An ONNX exported elsewhere (e.g. by trt-smoke on a workstation): it must use the plugin unpool."""
    from edgeseg.card import read_card
    from edgeseg.errors import ConfigError

    card = read_card(onnx)
    if card.artifact != "onnx" or card.unpool_mode != "plugin":
        raise ConfigError(f"--onnx {onnx} is an {card.artifact} file with unpool mode {card.unpool_mode!r}; "
                          "trt-smoke checks the plugin, so it needs plugin unpool: run edgeseg trt-smoke on "
                          "a machine with torch and copy its model.onnx + model.onnx.json")
    return onnx, f"{onnx} (given, {card.unpool_mode} unpool)"


def sibling(onnx: Path, suffix: str, given: bool) -> tuple[Path, str] | None:
    """``model.int8.onnx`` / ``model.fp16.onnx`` next to a given ``model.onnx`` (with its card), if any."""
    from edgeseg.card import card_path

    path = onnx.with_suffix(suffix)
    if not given or not path.is_file() or not card_path(path).is_file():
        return None
    return path, f"{path} (given)"


def _int8_onnx(onnx: Path, workdir: Path, data: str, given: bool) -> tuple[Path, str]:
    """The given ``.int8.onnx`` sibling, else calibrate ``onnx`` on ``CALIB_IMAGES`` frames of ``data``."""
    found = sibling(onnx, ".int8.onnx", given)
    if found is not None:
        return found
    from edgeseg.calib.calib_set import CalibSetOptions, Preprocess, make_calib_set
    from edgeseg.calib.quantize import calibrate
    from edgeseg.card import read_card

    card = read_card(onnx)
    if data == "synthetic":  # calibration sets list image files: write some synthetic frames
        data = str(_synthetic_frames(workdir / "calib-frames", card.input_hw, CALIB_IMAGES))
    manifest, _ = make_calib_set(data, Preprocess.from_card(card), workdir / "calib.json",
                                 CalibSetOptions(num=CALIB_IMAGES, strategy="random"))
    path, _ = calibrate(onnx, manifest, workdir / "model.int8.onnx")
    return path, str(path)


def _fp16_onnx(onnx: Path, workdir: Path, given: bool) -> tuple[Path, str]:
    """The given ``.fp16.onnx`` sibling, else ``onnx`` converted to FP16."""
    found = sibling(onnx, ".fp16.onnx", given)
    if found is not None:
        return found
    from edgeseg.calib.fp16 import convert_fp16

    path, _ = convert_fp16(onnx, workdir / "model.fp16.onnx")
    return path, str(path)


def _synthetic_frames(folder: Path, hw: tuple[int, int], num: int) -> Path:
    """``num`` PNG frames of the synthetic scene generator (seed 1, not the compared frames)."""
    import cv2

    from edgeseg.data.synthetic import SyntheticScenes

    folder.mkdir(parents=True, exist_ok=True)
    scenes = SyntheticScenes(hw, seed=1)
    for t in range(num):
        cv2.imwrite(str(folder / f"frame_{t:03d}.png"), scenes.frame(t).image_bgr)
    return folder


def _build_engine(onnx: Path, engine: Path, precision: Precision, plugin: Path,
                  _trt: Any) -> tuple[Path, str]:
    from edgeseg.export.trt_build import BuildOptions, build_engine

    return build_engine(onnx, engine, BuildOptions(precision=precision, plugin=plugin))[0], str(engine)


def _agreement(engine: Path, onnx: Path, plugin: Path, data: str, frames: int,
               min_pct: float) -> tuple[float, str]:
    """Argmax agreement (%) and max |logit difference| of the engine vs onnxruntime (CPU) on frames;
    EngineError below ``min_pct``."""
    import numpy as np

    from edgeseg.data import open_dataset
    from edgeseg.errors import EngineError
    from edgeseg.preprocess import preprocess
    from edgeseg.runtime.backends import open_backend

    ds = open_dataset(data, split="val", **({"num": frames} if data == "synthetic" else {}))
    same = total = 0
    worst = 0.0
    with open_backend(engine, plugin=plugin) as trt_b, open_backend(onnx) as ort_b:
        for i in range(min(frames, len(ds))):
            x = preprocess(ds[i].image_bgr, trt_b.card)
            a, b = trt_b.infer(x), ort_b.infer(x)
            same += int((a.argmax(1) == b.argmax(1)).sum())
            total += a.shape[0] * a.shape[2] * a.shape[3]
            worst = max(worst, float(np.abs(a - b).max()))
    pct = 100.0 * same / max(total, 1)
    detail = f"argmax agreement {pct:.3f}% (min {min_pct}%), max |diff| {worst:.4g}, {total} pixels"
    if pct < min_pct:
        raise EngineError(detail)
    return pct, detail
