"""Segmentation metrics in numpy (torch-free: shared by training, eval and the runtime).

Everything derives from one confusion matrix ``cm`` of shape (K, K), int64, **rows = target class,
columns = predicted class**, counted over the pixels whose target is not ``ignore_index``.
Per class c: TP = cm[c, c], FN = row sum - TP, FP = column sum - TP.

Metrics (the union of both seeds: SegNet-style IoU / global / class-average accuracy of seed 000,
Dice / precision / recall / F1 of seed 003):

- ``iou``       TP / (TP + FP + FN)
- ``dice``      2 TP / (2 TP + FP + FN)  (the Dice coefficient; per class identical to ``f1``)
- ``precision`` TP / (TP + FP)
- ``recall``    TP / (TP + FN)   (``acc`` is the same number: SegNet's per-class accuracy)
- ``f1``        2 TP / (2 TP + FP + FN) = harmonic mean of precision and recall where both exist
- ``global_acc`` = trace / total, ``class_avg_acc`` = mean of ``acc``, ``miou`` = mean of ``iou``.

**Undefined values are NaN, never 0, and every mean skips them** (``nanmean``):

- a class absent from both target and prediction has NaN for every per-class metric
  (0/0: there is nothing to score), so it neither helps nor hurts ``miou`` or the other means;
- a class with no target pixels has NaN recall/acc (nothing to recall), so ``class_avg_acc`` is the
  mean over classes present in the target, as in SegNet; if it was predicted, its IoU, Dice and F1
  are 0 and its precision is 0;
- a class that is in the target but never predicted has NaN precision (nothing was predicted) and
  0 recall, IoU, Dice and F1.
A mean over no defined value is NaN (e.g. an empty meter). ``to_dict`` writes NaN as ``null`` so
the JSON stays standard. Over a whole dataset, where every class occurs, none of this matters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseg.errors import ConfigError, DataError

PER_CLASS_FIELDS = ("iou", "dice", "precision", "recall", "f1", "acc")


def _check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}; pass e.g. 11")


def _out_of_range(values: np.ndarray, num_classes: int) -> list[int]:
    """Distinct values of an integer array outside [0, num_classes) (at most 10, sorted)."""
    if values.size == 0:
        return []
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi < num_classes:
        return []
    bad = np.unique(values[(values < 0) | (values >= num_classes)])
    return [int(v) for v in bad[:10]]


def _as_labels(arr: Any, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "iub":
        raise DataError(
            f"{what} must hold integer class ids, got dtype {a.dtype}; "
            "pass label maps (argmax of the logits), not scores"
        )
    return a


def confusion_matrix(
    pred: Any, target: Any, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """(K, K) int64 confusion matrix, rows = target, columns = prediction.

    ``pred`` and ``target`` are integer arrays of the same shape (any shape: HW, NHW, ...).
    Pixels whose target equals ``ignore_index`` are not counted (whatever was predicted there).
    Raises DataError if shapes differ or if a counted value lies outside [0, K).
    """
    _check_num_classes(num_classes)
    pred, target = _as_labels(pred, "prediction"), _as_labels(target, "target")
    if pred.shape != target.shape:
        raise DataError(
            f"prediction shape {pred.shape} does not match target shape {target.shape}; "
            "resize the prediction to the mask size (nearest) before scoring"
        )
    pred = pred.reshape(-1).astype(np.int64, copy=False)
    target = target.reshape(-1).astype(np.int64, copy=False)
    if ignore_index is not None:
        keep = target != ignore_index
        if not keep.all():
            pred, target = pred[keep], target[keep]
    for values, what in ((target, "target"), (pred, "prediction")):
        bad = _out_of_range(values, num_classes)
        if bad:
            hint = f" and not ignore_index {ignore_index}" if ignore_index is not None else ""
            raise DataError(
                f"{what} has values {bad} outside the class range 0..{num_classes - 1}{hint}; "
                "fix the masks or pass the right num_classes / ignore_index"
            )
    flat = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise as float64, NaN where den == 0."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(a: np.ndarray) -> float:
    """Mean of the non-NaN entries; NaN (no warning) if there are none."""
    finite = a[~np.isnan(a)]
    return float(finite.mean()) if finite.size else math.nan


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU of a (K, K) confusion matrix (rows = target): the same value as
    ``SegMetrics.from_confusion(cm).miou`` (classes never seen nor predicted are left out), without
    the other metrics -- cheap enough for every streamed frame."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    seen = union > 0
    return float((tp[seen] / union[seen]).mean()) if seen.any() else math.nan


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@dataclass(frozen=True, eq=False)
class SegMetrics:
    """Metrics of one confusion matrix; per-class arrays have shape (K,), float64, NaN = undefined.

    Build with :meth:`from_confusion`. See the module docstring for the NaN rules.
    """

    confusion: np.ndarray
    iou: np.ndarray
    dice: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    acc: np.ndarray
    support: np.ndarray  # target pixels per class (int64)
    miou: float
    global_acc: float
    class_avg_acc: float
    mean_dice: float
    mean_precision: float
    mean_recall: float
    mean_f1: float

    @classmethod
    def from_confusion(cls, cm: Any) -> SegMetrics:
        """Compute every metric from a (K, K) confusion matrix (rows = target)."""
        cm = np.asarray(cm)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.dtype.kind not in "iu":
            raise ConfigError(f"confusion matrix must be a square integer array, got {cm.shape} {cm.dtype}")
        cm = cm.astype(np.int64)
        tp = np.diag(cm)
        support = cm.sum(axis=1)
        predicted = cm.sum(axis=0)
        fn, fp = support - tp, predicted - tp
        iou = _ratio(tp, tp + fp + fn)
        dice = _ratio(2 * tp, 2 * tp + fp + fn)
        precision = _ratio(tp, predicted)
        recall = _ratio(tp, support)
        total = cm.sum()
        return cls(
            confusion=cm, iou=iou, dice=dice, precision=precision, recall=recall,
            f1=dice.copy(), acc=recall.copy(), support=support,
            miou=_nanmean(iou),
            global_acc=float(tp.sum() / total) if total else math.nan,
            class_avg_acc=_nanmean(recall), mean_dice=_nanmean(dice),
            mean_precision=_nanmean(precision), mean_recall=_nanmean(recall), mean_f1=_nanmean(dice),
        )

    @property
    def num_classes(self) -> int:
        return int(self.confusion.shape[0])

    @property
    def pixels(self) -> int:
        """Number of scored (non-ignored) pixels."""
        return int(self.confusion.sum())

    def summary(self) -> dict[str, float]:
        """The scalar metrics (NaN kept as float NaN)."""
        return {
            "miou": self.miou, "global_acc": self.global_acc, "class_avg_acc": self.class_avg_acc,
            "mean_dice": self.mean_dice, "mean_precision": self.mean_precision,
            "mean_recall": self.mean_recall, "mean_f1": self.mean_f1,
        }

    def class_row(self, c: int) -> dict[str, float]:
        """Per-class metrics of class ``c`` (NaN kept)."""
        return {f: float(getattr(self, f)[c]) for f in PER_CLASS_FIELDS}

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready dict: scalars, per-class metrics keyed by class name, confusion matrix.

        NaN becomes ``None`` (JSON null). ``class_names`` defaults to "0", "1", ...
        """
        names = _names(class_names, self.num_classes)
        per_class = {}
        for c, name in enumerate(names):
            row: dict[str, Any] = {k: _json_float(v) for k, v in self.class_row(c).items()}
            row["support"] = int(self.support[c])
            per_class[name] = row
        return {
            "num_classes": self.num_classes,
            "pixels": self.pixels,
            **{k: _json_float(v) for k, v in self.summary().items()},
            "per_class": per_class,
            "confusion": self.confusion.tolist(),
        }


def _names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(c) for c in range(num_classes)]
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ConfigError(
            f"got {len(names)} class names for {num_classes} classes; pass one name per class"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"class names must be unique, got {names}")
    return names


class ConfusionMeter:
    """Accumulates a confusion matrix over batches / frames; ``compute()`` gives SegMetrics."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        _check_num_classes(num_classes)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: Any, target: Any) -> np.ndarray:
        """Add one prediction/target pair (same shape, integer ids); returns its own matrix."""
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.matrix += cm
        return cm

    def reset(self) -> None:
        self.matrix[:] = 0

    def compute(self) -> SegMetrics:
        return SegMetrics.from_confusion(self.matrix.copy())


def median_frequency_weights(
    label_maps: Iterable[Any],
    num_classes: int,
    ignore_index: int | None = None,
    *,
    median_includes_ignore: bool = False,
) -> np.ndarray:
    """Median-frequency balancing class weights (Eigen & Fergus 2015, used by SegNet), shape (K,).

    freq(c) = pixels of class c / total pixels of the images in which c is present (all pixels
    of those images, ignored ones included); weight(c) = median_c(freq) / freq(c).
    Classes that never occur get weight 0.0 (they have no pixels to weight) and are left out of
    the median. ``median_includes_ignore=True`` also puts the ignore label's frequency into the
    median, as the SegNet authors did for CamVid (12 labels incl. void): that only rescales all
    weights by one constant, which a weighted mean cross-entropy cancels anyway.
    Raises DataError on labels outside [0, K) that are not ``ignore_index`` or if no class occurs.
    """
    _check_num_classes(num_classes)
    extra = ignore_index is not None and median_includes_ignore
    width = num_classes + 1 if extra else num_classes
    counts = np.zeros(width, dtype=np.int64)
    image_pixels = np.zeros(width, dtype=np.int64)
    for i, lab in enumerate(label_maps):
        hist = _label_histogram(_as_labels(lab, f"label map {i}"), num_classes, ignore_index, i)
        if extra:
            hist = np.append(hist, int(np.count_nonzero(np.asarray(lab) == ignore_index)))
        counts += hist
        image_pixels[hist > 0] += np.asarray(lab).size
    present = counts > 0
    if not present[:num_classes].any():
        raise DataError("no pixel of any class found in the label maps; check the masks and ignore_index")
    freq = _ratio(counts, image_pixels)
    median = float(np.median(freq[present]))
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present[:num_classes]] = median / freq[:num_classes][present[:num_classes]]
    return weights


def _label_histogram(lab: np.ndarray, num_classes: int, ignore_index: int | None, i: int) -> np.ndarray:
    """Pixel count per class of one label map (ignore_index dropped); DataError on bad values."""
    flat = lab.reshape(-1)
    if flat.dtype.kind == "b" or (flat.dtype.kind == "u" and flat.dtype.itemsize <= 2):
        hist = np.bincount(flat, minlength=num_classes)  # fast path for uint8/uint16 masks
    else:
        flat = flat.astype(np.int64)
        if flat.size and flat.min() < 0:
            neg = flat[flat < 0]
            if ignore_index is None or (neg != ignore_index).any():
                raise DataError(
                    f"label map {i} has negative values {sorted(set(neg.tolist()))[:10]}; "
                    "labels must be class ids 0..K-1 or ignore_index"
                )
            flat = flat[flat >= 0]
        hist = np.bincount(flat, minlength=num_classes)
    if ignore_index is not None and 0 <= ignore_index < hist.size:
        hist[ignore_index] = 0
    bad = [int(v) for v in np.nonzero(hist[num_classes:])[0] + num_classes]
    if bad:
        raise DataError(
            f"label map {i} has values {bad[:10]} outside the class range 0..{num_classes - 1}"
            f"{'' if ignore_index is None else f' and not ignore_index {ignore_index}'}; "
            "fix the masks or pass the right num_classes / ignore_index"
        )
    return hist[:num_classes].astype(np.int64)
