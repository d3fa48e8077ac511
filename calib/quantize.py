"""INT8 explicit quantization (Q/DQ ONNX) for TensorRT, calibrated with onnxruntime on the CPU.

``edgeseg calibrate model.onnx --set set.json [--method minmax|entropy|percentile]
-o model.int8.onnx`` (docs/design.md §6):

* QuantizeLinear/DequantizeLinear pairs (``QuantFormat.QDQ``), int8, **symmetric with
  zero-point 0** for weights (``WeightSymmetric``) and activations (``ActivationSymmetric``);
  weights **per output channel** (``per_channel=True``), activations per tensor; **bias left in
  FP32** (``QuantizeBias=False``: TensorRT folds bias itself).
* Q/DQ placement (``placement``): ``tensorrt`` (default) puts Q/DQ only on the inputs of the
  weighted layers (Conv, ConvTranspose, Gemm, MatMul), the placement TensorRT recommends — it
  fuses conv + bias + ReLU and propagates the quantization through pooling itself. ``full`` is
  onnxruntime's own placement (inputs and outputs of every quantizable op), which the onnxruntime
  CPU kernels need to run integer convolutions; use it to measure INT8 speed on a CPU.
* The unpool stays in float: the plugin node is not a quantizable op, the native unpool
  subgraph (found from its ArgMax) is excluded, and both read the float tensors behind any Q/DQ
  (quantizing x would create ties in the first-max window choice and move decoder values).

Plugin-mode files contain the custom unpool node, which onnxruntime's calibrator cannot run (it
builds its own session without custom ops). Calibration therefore runs on the *native-equivalent*
graph (:func:`edgeseg.unpool.onnx_graph.plugin_to_native`), which is bit-exact with the plugin and keeps
every boundary tensor name, so each range transfers by name to the plugin graph; the quantized
file keeps the plugin node. Native-mode files are calibrated as they are.

Ranges are cached as JSON under ``cache_dir`` keyed by the model file's SHA-256, the set's
SHA-256, the method and its parameters, and the onnxruntime version (STYLE.md §7).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from edgeseg.calib.calib_set import CalibSet, Preprocess, load_calib_set

from edgeseg.card import ModelCard, read_card, require_logits, write_card
from edgeseg.errors import CalibrationError
from edgeseg.io import atomic_path, load_onnx, sha256_json, write_json_atomic

if TYPE_CHECKING:  # numpy is imported where used: the CLI reads this module's defaults
    import numpy as np

# Activation range methods (onnxruntime's calibrators) and Q/DQ placements (module docstring).
Method = Literal["entropy", "minmax", "percentile"]
Placement = Literal["tensorrt", "full"]
METHODS: tuple[str, ...] = get_args(Method)
PLACEMENTS: tuple[str, ...] = get_args(Placement)
# Fewest images per method: histogram methods estimate the tails of each activation's
# distribution, which a handful of images cannot; min/max needs fewer but still several scenes.
MIN_IMAGES = {"minmax": 8, "entropy": 32, "percentile": 32}
CACHE_VERSION = 1
_CHUNK_BYTES = 512 << 20  # activations held per calibrator pass (the calibrator keeps all of a pass)


@dataclass(frozen=True)
class CalibrateOptions:
    """How to calibrate (``edgeseg calibrate`` takes its defaults from here).

    ``percentile`` is used by the percentile method only; ``cache_dir`` None is
    :func:`default_cache_dir`; ``root`` relocates the set's images (the dataset moved since the
    manifest was written); ``keep_float`` names nodes left out of INT8."""

    method: Method = "minmax"  # the method docs/precision.md measured best on every model
    placement: Placement = "tensorrt"
    percentile: float = 99.999
    num_bins: int = 2048
    cache_dir: Path | None = None
    root: Path | None = None
    keep_float: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"unknown calibration method {self.method!r}; expected one of "
                                   f"{', '.join(METHODS)}")
        if self.placement not in PLACEMENTS:
            raise CalibrationError(f"unknown Q/DQ placement {self.placement!r}; expected one of "
                                   f"{', '.join(PLACEMENTS)}")
        if not 90.0 < self.percentile <= 100.0:
            raise CalibrationError(f"percentile {self.percentile} is out of range; expected (90, 100], "
                                   "e.g. 99.99")

    def params(self) -> dict[str, Any]:
        """The parameters that change the ranges (part of the cache key)."""
        p: dict[str, Any] = {"method": self.method}
        if self.method != "minmax":
            p["num_bins"] = self.num_bins
        if self.method == "percentile":
            p["percentile"] = self.percentile
        return p


def default_cache_dir() -> Path:
    """``$EDGESEG_CACHE/calibration`` or ``~/.cache/edgeseg/calibration``."""
    base = os.environ.get("EDGESEG_CACHE") or Path.home() / ".cache" / "edgeseg"
    return Path(base) / "calibration"


def _ort_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


class _Reader:
    """onnxruntime CalibrationDataReader over a slice of a calibration set (batch of one)."""

    def __init__(self, cset: CalibSet, card: ModelCard, input_name: str, paths: list[Path],
                 advance: Any) -> None:
        self._it = iter(paths)
        self._card = cset.preprocess.as_card(card)
        self._input = input_name
        self._advance = advance

    def get_next(self) -> dict[str, np.ndarray] | None:
        from edgeseg.data.datasets import read_image
        from edgeseg.preprocess import preprocess

        path = next(self._it, None)
        if path is None:
            return None
        self._advance()
        return {self._input: preprocess(read_image(path), self._card)}


def check_inputs(model: Any, card: ModelCard, cset: CalibSet, cfg: CalibrateOptions) -> str:
    """Refuse mismatches before any work; return the model's input name."""
    if card.precision != "fp32" or card.artifact != "onnx":
        raise CalibrationError(f"calibration needs an FP32 ONNX model; this card says {card.artifact} "
                               f"{card.precision}; calibrate the FP32 file from edgeseg export")
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]  # old IRs list weights too
    if len(inputs) != 1:
        raise CalibrationError(f"model has {len(inputs)} inputs; expected one image input")
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3:
        raise CalibrationError(f"model input {inp.name!r} has shape {dims}; edgeseg calibrates "
                               "3-channel image models (N,3,H,W); re-export with in_channels=3")
    if dims[0] not in (None, 1):
        raise CalibrationError(f"model input batch is fixed at {dims[0]}; export with batch 1 or a "
                               "dynamic batch (edgeseg export --dynamic-batch)")
    want = Preprocess.from_card(card)
    if cset.preprocess != want:
        have = cset.preprocess
        diffs = [f"{k} {getattr(have, k)} vs {getattr(want, k)}" for k in
                 ("input_hw", "mean", "std", "channel_order") if getattr(have, k) != getattr(want, k)]
        raise CalibrationError(f"calibration set preprocessing differs from the model card's "
                               f"({'; '.join(diffs)}); re-create the set with "
                               "edgeseg calib-set --model MODEL")
    need = MIN_IMAGES[cfg.method]
    if len(cset.images) < need:
        raise CalibrationError(f"calibration set has {len(cset.images)} images but method {cfg.method!r} "
                               f"needs at least {need}; re-create it with edgeseg calib-set --num {need} "
                               "(300 recommended)")
    return inp.name


def _cache_key(model_sha: str, cset: CalibSet, cfg: CalibrateOptions) -> dict[str, Any]:
    import onnxruntime

    return {"version": CACHE_VERSION, "model_sha256": model_sha, "set_sha256": cset.set_sha256,
            **cfg.params(), "onnxruntime": onnxruntime.__version__}


def cache_file(model_sha: str, cset: CalibSet, cfg: CalibrateOptions) -> Path:
    key = _cache_key(model_sha, cset, cfg)
    base = cfg.cache_dir or default_cache_dir()
    return base / f"{model_sha[:12]}-{cset.set_sha256[:12]}-{cfg.method}-{sha256_json(key)[:12]}.json"


def read_cached_ranges(path: Path, key: dict[str, Any]) -> dict[str, tuple[float, float]] | None:
    """Ranges from ``path`` if it exists and its key matches exactly; None otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("key") != key:
        return None
    return {k: (float(v[0]), float(v[1])) for k, v in data["ranges"].items()}


def chunk_size(model: Any) -> int:
    """Images per calibrator pass so that one pass holds about ``_CHUNK_BYTES`` of activations."""
    import numpy as np
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    total = 0
    for vi in (*inferred.graph.value_info, *inferred.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        total += 4 * int(np.prod(dims)) if dims else 0
    return int(max(1, min(16, _CHUNK_BYTES // max(total, 1))))


def compute_ranges(calib_model: Any, cset: CalibSet, card: ModelCard, input_name: str,
                   cfg: CalibrateOptions) -> dict[str, tuple[float, float]]:
    """Run onnxruntime's calibrator over the set (in memory-bounded chunks, rich progress)."""
    import numpy as np
    import onnx
    from onnxruntime.quantization.calibrate import create_calibrator
    from rich.progress import Progress

    extra: dict[str, Any] = {"symmetric": True}
    if cfg.method != "minmax":
        extra["num_bins"] = cfg.num_bins
    if cfg.method == "entropy":
        extra["num_quantized_bins"] = 128
    if cfg.method == "percentile":
        extra["percentile"] = cfg.percentile
    with tempfile.TemporaryDirectory(prefix="edgeseg-calib-") as tmp:
        src = Path(tmp) / "calib.onnx"
        onnx.save(calib_model, src)
        calibrator = create_calibrator(src, None, augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                       calibrate_method=_ort_method(cfg.method), extra_options=extra)
        images, chunk = list(cset.images), chunk_size(calib_model)
        with Progress(transient=True) as progress:
            task = progress.add_task(f"calibrating ({cfg.method})", total=len(images))
            for start in range(0, len(images), chunk):
                reader = _Reader(cset, card, input_name, images[start:start + chunk],
                                 lambda: progress.advance(task))
                with contextlib.redirect_stdout(io.StringIO()):  # the collector prints per call
                    calibrator.collect_data(reader)
        with contextlib.redirect_stdout(io.StringIO()):
            data = calibrator.compute_data()
    return {name: (float(np.asarray(td.range_value[0]).min()), float(np.asarray(td.range_value[1]).max()))
            for name, td in data.data.items()}


def ranges_for(model_path: Path, calib_model: Any, cset: CalibSet, card: ModelCard, input_name: str,
               cfg: CalibrateOptions) -> tuple[dict[str, tuple[float, float]], bool]:
    """(ranges, cache_hit): from the cache when the key matches, else computed and cached."""
    model_sha = card.file_sha256 or ""
    key = _cache_key(model_sha, cset, cfg)
    path = cache_file(model_sha, cset, cfg)
    cached = read_cached_ranges(path, key)
    if cached is not None:
        return cached, True
    ranges = compute_ranges(calib_model, cset, card, input_name, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "model": str(model_path),
                             "ranges": {k: [lo, hi] for k, (lo, hi) in sorted(ranges.items())}})
    return ranges, False


def with_unpool_ranges(model: Any, ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Set each unpool output's range to its y input's range (plus 0).

    The unpool output holds exactly the values of y and zeros (3 of every 4 elements). A histogram
    method sees a distribution dominated by those zeros and picks a far too small threshold
    (measured on the test model: entropy clipped 24.0 to 1.3); the y range is the exact answer.
    """
    from edgeseg.unpool.onnx_graph import unpool_boundaries

    out = dict(ranges)
    for _x, y, u in unpool_boundaries(model):
        if y in ranges and u:
            lo, hi = ranges[y]
            out[u] = (min(lo, 0.0), max(hi, 0.0))
    return out


@contextlib.contextmanager
def _ort_cache(ranges: dict[str, tuple[float, float]], method: str) -> Iterator[Path]:
    """The ranges written in onnxruntime's own calibration-cache format (a temporary file)."""
    try:
        from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data
    except ImportError:  # older onnxruntime, e.g. 1.23.2, the newest a Jetson (aarch64/cp310) gets
        import onnxruntime

        raise CalibrationError(
            f"onnxruntime {onnxruntime.__version__} cannot take precomputed calibration ranges "
            "(no save_tensors_data); calibrate where onnxruntime is newer (1.32 is tested, e.g. the "
            "workstation) and copy model.int8.onnx with its .json to this machine") from None
    import numpy as np

    data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.items()}
    with tempfile.TemporaryDirectory(prefix="edgeseg-ranges-") as tmp:
        path = Path(tmp) / "ranges.json"
        save_tensors_data(TensorsData(_ort_method(method), data), path)
        yield path


def calibrate(model_path: Path, set_path: Path, out: Path,
              options: CalibrateOptions = CalibrateOptions()) -> tuple[Path, ModelCard]:
    """FP32 ONNX (+ card) and a calibration set -> ``out`` Q/DQ INT8 ONNX + card; returns both.

    Nothing is written unless every step succeeds (the model and its card are written last,
    atomically). Raises CalibrationError / DataError / ModelError with the fix.
    """
    import onnx
    from edgeseg.calib.qdq import check_qdq, insert_qdq

    from edgeseg.unpool.onnx_graph import plugin_to_native, unpool_mode_of

    model_path, out = Path(model_path), Path(out)
    if out.resolve() == model_path.resolve() or out.suffix != ".onnx":
        raise CalibrationError(f"output {out} must be a new .onnx file (e.g. model.int8.onnx), not the input")
    card = read_card(model_path)
    require_logits(card, model_path, "calibrate")
    model = load_onnx(model_path)
    cset = load_calib_set(set_path, root=options.root)
    input_name = check_inputs(model, card, cset, options)
    mode = unpool_mode_of(model)
    calib_model = plugin_to_native(model) if mode == "plugin" else model
    ranges, hit = ranges_for(model_path, calib_model, cset, card, input_name, options)
    ranges = with_unpool_ranges(model, ranges)
    with _ort_cache(ranges, options.method) as ranges_file:
        qmodel = insert_qdq(model, calib_model, ranges_file, _ort_method(options.method), options.placement,
                            options.keep_float)
    counts = check_qdq(qmodel)
    extra = {**card.extra, "calibration_set_sha256": cset.set_sha256, "method": options.method,
             "calibration": {**options.params(), "images": len(cset.images), "strategy": cset.strategy,
                             "placement": options.placement, "cache_hit": hit,
                             "keep_float": list(options.keep_float), **counts}}
    new_card = card.replace(precision="int8", parent_sha256=card.file_sha256, extra=extra)
    with atomic_path(out, need_bytes=qmodel.ByteSize()) as tmp:  # card written inside: both or neither
        onnx.save(qmodel, str(tmp))
        write_card(out, new_card, hashed=tmp)
    return out, read_card(out)
