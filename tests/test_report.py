"""edgeseg.report: atomic JSON + Markdown, per-class and comparison tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from edgeseg.errors import ConfigError
from edgeseg.metrics import SegMetrics
from edgeseg.report import (
    comparison_markdown,
    comparison_table,
    metrics_markdown,
    metrics_table,
    to_jsonable,
    write_report,
)

# 3 classes: IoU 2/3, 1/3, 1/2 (see test_metrics.py); class "d" absent everywhere
CM = np.array([[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
NAMES = ["sky", "road", "car|truck", "d"]


def _render(table: object) -> str:
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_write_report_pair_with_nan_as_null(tmp_path: Path) -> None:
    m = SegMetrics.from_confusion(CM)
    data = {"metrics": m.to_dict(NAMES), "x": np.float32(np.nan), "n": np.int64(3), "p": tmp_path}
    j, md = write_report(tmp_path / "eval.fp16", data, "# hi")
    assert j == tmp_path / "eval.fp16.json" and md == tmp_path / "eval.fp16.md"
    back = json.loads(j.read_text())
    assert back["x"] is None and back["n"] == 3 and back["p"] == str(tmp_path)
    assert back["metrics"]["per_class"]["d"]["iou"] is None
    assert md.read_text() == "# hi\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.fp16.json", "eval.fp16.md"]


def test_write_report_leaves_nothing_on_failure(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("old")
    with pytest.raises(TypeError):
        write_report(tmp_path / "r", {"bad": object()}, "md")
    assert (tmp_path / "r.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_to_jsonable() -> None:
    out = to_jsonable({"a": (1, np.array([1.5, np.inf])), 2: np.bool_(True)})
    assert out == {"a": [1, [1.5, None]], "2": True}


def test_metrics_markdown_values() -> None:
    text = metrics_markdown(SegMetrics.from_confusion(CM), NAMES, title="CamVid val")
    assert text.startswith("## CamVid val\n")
    assert "| mIoU | 50.00 |" in text
    assert "| global acc | 66.67 |" in text
    # class row: IoU, Dice, Precision, Recall, F1, Acc, pixels
    assert "| sky | 66.67 | 80.00 | 100.00 | 66.67 | 80.00 | 66.67 | 3 |" in text
    assert "| car\\|truck | 50.00 |" in text  # pipe escaped
    assert "| d | n/a | n/a | n/a | n/a | n/a | n/a | 0 |" in text


def test_metrics_table_renders() -> None:
    out = _render(metrics_table(SegMetrics.from_confusion(CM), NAMES, title="val"))
    assert "sky" in out and "66.67" in out and "n/a" in out
    assert "mIoU 50.00 %" in out


def _named() -> dict[str, SegMetrics]:
    fp32 = SegMetrics.from_confusion(CM)
    int8 = SegMetrics.from_confusion(np.array([[3, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]))
    return {"FP32": fp32, "FP16": fp32, "INT8": int8}


def test_comparison_markdown_with_deltas() -> None:
    text = comparison_markdown(_named(), NAMES, reference="FP32")
    lines = text.splitlines()
    assert lines[0] == "## IoU per class (%)"
    assert lines[2] == "| class | FP32 | FP16 | INT8 | Δ FP16 vs FP32 | Δ INT8 vs FP32 |"
    # INT8: sky 3 / 3 = 100 %; road TP 1, FP 0 (no sky pixel predicted as road), FN 1 -> 1/2
    assert "| sky | 66.67 | 66.67 | 100.00 | +0.00 | +33.33 |" in lines
    assert "| road | 33.33 | 33.33 | 50.00 | +0.00 | +16.67 |" in lines
    assert "| d | n/a | n/a | n/a | n/a | n/a |" in lines
    assert "| mIoU | 50.00 | 50.00 | 66.67 | +0.00 | +16.67 |" in lines  # (1 + 1/2 + 1/2) / 3
    assert lines[-1].startswith("| global acc | 66.67 |")
    plain = comparison_markdown(_named(), NAMES, metric="dice")
    assert "Δ" not in plain and "| mean Dice |" in plain


def test_comparison_table_renders() -> None:
    out = _render(comparison_table(_named(), NAMES, reference="FP32", title="precision"))
    assert "INT8" in out and "+33.33" in out and "mIoU" in out


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "miou"}, "unknown metric"),
        ({"reference": "FP64"}, "reference 'FP64'"),
    ],
)
def test_comparison_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        comparison_markdown(_named(), NAMES, **kwargs)


def test_comparison_rejects_mismatched_classes() -> None:
    other = SegMetrics.from_confusion(np.eye(3, dtype=np.int64))
    with pytest.raises(ConfigError, match="different class counts"):
        comparison_markdown({"a": SegMetrics.from_confusion(CM), "b": other})
    with pytest.raises(ConfigError, match="2 class names for 4 classes"):
        metrics_markdown(SegMetrics.from_confusion(CM), ["a", "b"])
    with pytest.raises(ConfigError, match="nothing to compare"):
        comparison_markdown({})
    assert math.isnan(SegMetrics.from_confusion(CM).iou[3])
