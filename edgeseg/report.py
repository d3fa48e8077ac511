"""Result reports (torch-free): JSON + Markdown written atomically, and rich tables for the terminal.

- :func:`write_report` writes ``<stem>.json`` and ``<stem>.md`` together: both are written to
  temporary files first and renamed only when both are complete.
- :func:`metrics_markdown` / :func:`metrics_table`: one model's summary and per-class table.
- :func:`comparison_markdown` / :func:`comparison_table`: several models or precisions side by
  side (columns = e.g. FP32 / FP16 / INT8, rows = classes + mean + global accuracy), optionally with
  difference columns against a reference column (in percentage points).

Metric values are shown in percent with two decimals; undefined values (NaN, see
:mod:`edgeseg.metrics`) are shown as "n/a" and written to JSON as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from edgeseg.errors import ConfigError
from edgeseg.io import atomic_path
from edgeseg.metrics import PER_CLASS_FIELDS, SegMetrics

NA = "n/a"
_FIELD_TITLES = {"iou": "IoU", "dice": "Dice", "precision": "Precision", "recall": "Recall",
                 "f1": "F1", "acc": "Acc"}
_MEAN_TITLES = {"iou": "mIoU", "dice": "mean Dice", "precision": "mean Precision",
                "recall": "mean Recall", "f1": "mean F1", "acc": "class avg acc"}
_SUMMARY_TITLES = (("miou", "mIoU"), ("global_acc", "global acc"), ("class_avg_acc", "class avg acc"),
                   ("mean_dice", "mean Dice"), ("mean_precision", "mean Precision"),
                   ("mean_recall", "mean Recall"), ("mean_f1", "mean F1"))


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays, Paths and tuples to JSON types; NaN/inf -> None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, SegMetrics):
        return obj.to_dict()
    return obj


def write_report(stem: str | Path, data: Mapping[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (``data``, NaN as null) and ``<stem>.md``; return both paths.

    ``stem`` keeps any dots of its name (``out/model.fp16`` -> ``out/model.fp16.json``). Nothing is
    replaced unless both files were written completely.
    """
    stem = Path(stem)
    json_path = stem.with_name(stem.name + ".json")
    md_path = stem.with_name(stem.name + ".md")
    text = json.dumps(to_jsonable(dict(data)), indent=2, allow_nan=False) + "\n"
    if not markdown.endswith("\n"):
        markdown += "\n"
    with atomic_path(json_path) as tmp_json, atomic_path(md_path) as tmp_md:
        tmp_json.write_text(text, encoding="utf-8")
        tmp_md.write_text(markdown, encoding="utf-8")
    return json_path, md_path


def fmt_pct(value: float) -> str:
    """0.4771 -> '47.71'; NaN -> 'n/a'."""
    return NA if value is None or math.isnan(value) else f"{100.0 * value:.2f}"


def fmt_delta(value: float, reference: float) -> str:
    """``value - reference`` in percentage points with a sign: '+0.12', '-1.30' (a change that rounds
    to zero is '+0.00', never '-0.00'); 'n/a' if either is NaN."""
    if math.isnan(value) or math.isnan(reference):
        return NA
    return f"{round(100.0 * (value - reference), 2) + 0.0:+.2f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1) -> str:
    aligns = [":---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _check_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(c) for c in range(num_classes)]
    if len(class_names) != num_classes:
        raise ConfigError(f"got {len(class_names)} class names for {num_classes} classes; pass one per class")
    return [str(n) for n in class_names]


def _summary_rows(m: SegMetrics) -> list[list[str]]:
    values = m.summary()
    return [[title, fmt_pct(values[key])] for key, title in _SUMMARY_TITLES]


def _class_rows(m: SegMetrics, names: Sequence[str]) -> list[list[str]]:
    return [[name] + [fmt_pct(v) for v in m.class_row(c).values()] + [str(int(m.support[c]))]
            for c, name in enumerate(names)]


def _class_header() -> list[str]:
    return ["class"] + [f"{_FIELD_TITLES[f]} %" for f in PER_CLASS_FIELDS] + ["pixels"]


def metrics_markdown(metrics: SegMetrics, class_names: Sequence[str] | None = None,
                     title: str = "Segmentation metrics") -> str:
    """Markdown: a title, the summary (mIoU, accuracies, mean Dice/P/R/F1) and a per-class table."""
    names = _check_names(class_names, metrics.num_classes)
    parts = [
        f"## {title}", "",
        f"{metrics.pixels} pixels scored; values in %; n/a = class absent from target and prediction "
        "(or no target / no predicted pixels for recall / precision), excluded from means.", "",
        _md_table(["metric", "value %"], _summary_rows(metrics)), "",
        _md_table(_class_header(), _class_rows(metrics, names)), "",
    ]
    return "\n".join(parts)


def metrics_table(metrics: SegMetrics, class_names: Sequence[str] | None = None,
                  title: str = "Segmentation metrics") -> Table:
    """Rich table: one row per class plus a final row of means / global accuracy in the caption."""
    names = _check_names(class_names, metrics.num_classes)
    table = Table(title=title, caption=_caption(metrics))
    for i, head in enumerate(_class_header()):
        table.add_column(head, justify="left" if i == 0 else "right")
    for row in _class_rows(metrics, names):
        table.add_row(*row)
    means = [fmt_pct(getattr(metrics, k)) for k in
             ("miou", "mean_dice", "mean_precision", "mean_recall", "mean_f1", "class_avg_acc")]
    table.add_section()
    table.add_row("mean", *means, str(metrics.pixels), style="bold")
    return table


def _caption(m: SegMetrics) -> str:
    return (f"mIoU {fmt_pct(m.miou)} %  global acc {fmt_pct(m.global_acc)} %  "
            f"class avg acc {fmt_pct(m.class_avg_acc)} %  mean Dice {fmt_pct(m.mean_dice)} %")


def _comparison_rows(named: Mapping[str, SegMetrics], class_names: Sequence[str] | None,
                     metric: str, reference: str | None) -> tuple[list[str], list[list[str]]]:
    """Header and rows shared by the Markdown and rich comparison tables."""
    if not named:
        raise ConfigError("nothing to compare: pass at least one named SegMetrics")
    if metric not in PER_CLASS_FIELDS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(PER_CLASS_FIELDS)}")
    sizes = {m.num_classes for m in named.values()}
    if len(sizes) != 1:
        raise ConfigError(f"cannot compare metrics with different class counts {sorted(sizes)}")
    if reference is not None and reference not in named:
        raise ConfigError(f"reference {reference!r} is not one of the compared columns {list(named)}")
    names = _check_names(class_names, sizes.pop())
    others = [k for k in named if k != reference] if reference is not None else []
    header = ["class", *named, *(f"Δ {k} vs {reference}" for k in others)]

    def row(label: str, get: Any) -> list[str]:
        vals = {k: get(m) for k, m in named.items()}
        cells = [fmt_pct(vals[k]) for k in named]
        deltas = [fmt_delta(vals[k], vals[reference]) for k in others if reference is not None]
        return [label, *cells, *deltas]

    rows = [row(n, lambda m, c=c: float(getattr(m, metric)[c])) for c, n in enumerate(names)]
    mean_key = {"iou": "miou", "dice": "mean_dice", "precision": "mean_precision",
                "recall": "mean_recall", "f1": "mean_f1", "acc": "class_avg_acc"}[metric]
    rows.append(row(_MEAN_TITLES[metric], lambda m: getattr(m, mean_key)))
    rows.append(row("global acc", lambda m: m.global_acc))
    return header, rows


def comparison_markdown(named_metrics: Mapping[str, SegMetrics], class_names: Sequence[str] | None = None,
                        *, metric: str = "iou", reference: str | None = None,
                        title: str | None = None) -> str:
    """Markdown table: one column per name (e.g. FP32, FP16, INT8), rows = classes + mean + global
    accuracy, values of ``metric`` in %. With ``reference`` (e.g. "FP32") adds Δ columns in
    percentage points for every other column."""
    header, rows = _comparison_rows(named_metrics, class_names, metric, reference)
    title = title or f"{_FIELD_TITLES[metric]} per class (%)"
    return "\n".join([f"## {title}", "", _md_table(header, rows), ""])


def comparison_table(named_metrics: Mapping[str, SegMetrics], class_names: Sequence[str] | None = None,
                     *, metric: str = "iou", reference: str | None = None,
                     title: str | None = None) -> Table:
    """Rich equivalent of :func:`comparison_markdown`; the last two rows (mean, global acc) bold."""
    header, rows = _comparison_rows(named_metrics, class_names, metric, reference)
    table = Table(title=title or f"{_FIELD_TITLES[metric]} per class (%)")
    for i, head in enumerate(header):
        table.add_column(head, justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        last_class = i == len(rows) - 3
        table.add_row(*row, style="bold" if i >= len(rows) - 2 else None, end_section=last_class)
    return table
