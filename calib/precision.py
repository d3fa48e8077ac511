"""Precision report: the same validation set through FP32, FP16 and INT8 ONNX files, side by side.

``edgeseg precision-report model.onnx model.fp16.onnx model.int8.onnx --data DATA -o report``
writes ``report.json`` + ``report.md``: mIoU and per-class IoU of every file, the drop in points
against the FP32 file, and the **argmax disagreement rate** of every file against FP32 (share of
non-ignored pixels whose predicted class differs) — the cost of each precision, measured before a
Jetson is involved.

Every file runs through the runtime's backend for its suffix (``.onnx``: onnxruntime on the CPU,
plugin-mode files included; ``.engine``: TensorRT on a GPU, so engines can be compared with the
ONNX files on the target) on each image in turn; scoring follows ``edgeseg eval`` exactly
(:mod:`edgeseg.runtime.evaluate`: model input size, masks resized with nearest neighbour). The files must
share classes, input size and preprocessing (checked from their cards).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg.card import ModelCard, require_logits
from edgeseg.errors import CalibrationError, DataError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_SPLIT = "val"  # the split precision-report scores (edgeseg precision-report --split)


@dataclass(frozen=True)
class PrecisionResult:
    """Metrics per label (e.g. "FP32", "INT8 (entropy)"), disagreement vs the FP32 file."""

    labels: tuple[str, ...]
    paths: tuple[str, ...]
    cards: tuple[ModelCard, ...]
    metrics: dict[str, Any]
    disagreement: dict[str, float]
    reference: str
    data: str
    split: str
    images: int

    def change_points(self, label: str) -> float:
        """mIoU of ``label`` minus mIoU of the reference, in percentage points (negative = worse): the
        same sign as the per-class Δ columns."""
        return 100.0 * (self.metrics[label].miou - self.metrics[self.reference].miou)

    def change_text(self, label: str) -> str:
        """:meth:`change_points` as the tables print it ('+0.00', '-0.07')."""
        from edgeseg.report import fmt_delta

        return fmt_delta(self.metrics[label].miou, self.metrics[self.reference].miou)

    def to_dict(self) -> dict[str, Any]:
        ref = self.cards[self.labels.index(self.reference)]
        return {
            "data": self.data, "split": self.split, "images": self.images, "reference": self.reference,
            "architecture": ref.architecture, "input_hw": list(ref.input_hw),
            "resolution": "model input size; masks resized with nearest neighbour",
            "models": [{"label": lab, "path": p, "precision": c.precision, "unpool_mode": c.unpool_mode,
                        "file_sha256": c.file_sha256, "parent_sha256": c.parent_sha256,
                        "method": c.extra.get("method"), "miou": self.metrics[lab].miou,
                        "miou_change_points": self.change_points(lab),
                        "argmax_disagreement_vs_reference": self.disagreement[lab]}
                       for lab, p, c in zip(self.labels, self.paths, self.cards, strict=True)],
            "metrics": {lab: self.metrics[lab].to_dict(ref.class_names) for lab in self.labels},
        }


def label_for(card: ModelCard, path: Path, taken: set[str]) -> str:
    """"FP32", "FP16", "INT8 (entropy)"; the file name is added when two labels would clash."""
    label = card.precision.upper()
    if card.precision == "int8" and card.extra.get("method"):
        label += f" ({card.extra['method']})"
    return label if label not in taken else f"{label} [{path.name}]"


def _check_compatible(cards: list[ModelCard], paths: list[Path]) -> int:
    """Index of the FP32 reference; CalibrationError when the cards disagree."""
    ref = cards[0]
    for c, p in zip(cards[1:], paths[1:], strict=True):
        for field in ("class_names", "input_hw", "mean", "std", "channel_order", "ignore_index"):
            if getattr(c, field) != getattr(ref, field):
                raise CalibrationError(f"{p} has {field}={getattr(c, field)} but {paths[0]} has "
                                       f"{getattr(ref, field)}; compare files made from one FP32 model")
    fp32 = [i for i, c in enumerate(cards) if c.precision == "fp32"]
    if not fp32:
        raise CalibrationError("no FP32 file among the models; pass the FP32 ONNX first as the reference")
    return fp32[0]


def _labels(out: np.ndarray) -> np.ndarray:
    """(1,K,H,W) logits -> argmax; (1,H,W) labels from an argmax inside the graph as they are."""
    import numpy as np

    return out[0] if out.ndim == 3 else np.argmax(out[0], axis=0)


def _score_images(backends: list[Any], dataset: Any, ref: int, count: int, on_image: Any
                  ) -> tuple[list[Any], np.ndarray, int]:
    """(confusion meters, differing-pixel counts vs ``ref``, non-ignored pixels) over ``count`` images."""
    import numpy as np

    from edgeseg.metrics import ConfusionMeter
    from edgeseg.preprocess import preprocess, resize_mask

    card = backends[ref].card
    meters = [ConfusionMeter(b.card.num_classes, b.card.ignore_index) for b in backends]
    differ, valid = np.zeros(len(backends)), 0
    for i in range(count):
        sample = dataset[i]
        if sample.mask is None:
            raise DataError(f"image {sample.name} has no mask; the precision report needs 'image mask' "
                            "pairs (a labelled split)")
        mask = resize_mask(sample.mask, card.input_hw)
        x = preprocess(sample.image_bgr, card)
        preds = [_labels(b.infer(x)) for b in backends]
        keep = np.ones(mask.shape, bool) if card.ignore_index is None else mask != card.ignore_index
        for k, pred in enumerate(preds):
            meters[k].update(pred, mask)
            differ[k] += np.count_nonzero((pred != preds[ref]) & keep)
        valid += int(keep.sum())
        if on_image is not None:
            on_image(i + 1, count)
    return meters, differ, valid


def precision_report(models: list[str | Path], data: str | Path, split: str = DEFAULT_SPLIT, *,
                     threads: int | None = None, num: int | None = None,
                     on_image: Any = None) -> PrecisionResult:
    """Score every model on ``data``/``split`` (first ``num`` images if given) with disagreement.

    ``on_image(i, total)`` is called after each image (progress).
    """
    from edgeseg.runtime.backends import open_backend
    from edgeseg.runtime.evaluate import open_eval_data

    if len(models) < 2:
        raise CalibrationError(f"precision-report compares files; got {len(models)}, expected the FP32 ONNX "
                               "and at least one of its FP16/INT8 versions")
    paths = [Path(m) for m in models]
    with contextlib.ExitStack() as opened:  # closes every backend opened so far, also when one fails
        # engines (TensorRT) take no thread count; .onnx and checkpoints do
        backends = [opened.enter_context(open_backend(p) if p.suffix == ".engine" else
                                         open_backend(p, threads=threads)) for p in paths]
        cards = [b.card for b in backends]
        for c, p in zip(cards, paths, strict=True):
            require_logits(c, p, "precision-report", labels_ok=True)  # disagreement needs labels only
        ref = _check_compatible(cards, paths)
        dataset = open_eval_data(data, split, cards[ref])
        count = len(dataset) if num is None else min(num, len(dataset))
        meters, differ, valid = _score_images(backends, dataset, ref, count, on_image)
    labels: list[str] = []
    for c, p in zip(cards, paths, strict=True):
        labels.append(label_for(c, p, set(labels)))
    metrics = {lab: m.compute() for lab, m in zip(labels, meters, strict=True)}
    disagreement = {lab: float(differ[k] / max(valid, 1)) for k, lab in enumerate(labels)}
    return PrecisionResult(tuple(labels), tuple(map(str, paths)), tuple(cards), metrics, disagreement,
                           labels[ref], str(data), split, count)


def report_markdown(result: PrecisionResult) -> str:
    """Summary table (mIoU, drop, disagreement) + per-class IoU side by side."""
    from edgeseg.report import comparison_markdown

    ref_card = result.cards[result.labels.index(result.reference)]
    lines = [f"# Precision report: {ref_card.display_name} on {result.data} ({result.split}, "
             f"{result.images} images, {ref_card.input_hw[0]}x{ref_card.input_hw[1]})", "",
             "| file | precision | mIoU (%) | Δ mIoU vs FP32 (points) | argmax disagreement vs FP32 (%) |",
             "|---|---|---:|---:|---:|"]
    for lab, path in zip(result.labels, result.paths, strict=True):
        lines.append(f"| {Path(path).name} | {lab} | {100 * result.metrics[lab].miou:.2f} | "
                     f"{result.change_text(lab)} | {100 * result.disagreement[lab]:.3f} |")
    lines += ["", comparison_markdown(result.metrics, ref_card.class_names, reference=result.reference)]
    return "\n".join(lines)


def write_precision_report(result: PrecisionResult, stem: str | Path) -> tuple[Path, Path]:
    from edgeseg.report import write_report

    return write_report(Path(stem), result.to_dict(), report_markdown(result))
