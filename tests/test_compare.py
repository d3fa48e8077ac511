"""edgeseg compare: bench JSONs written by real ``edgeseg bench`` runs (a tiny ONNX model, torch-free)
side by side; files of other versions, schemas or formats are refused with one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tinyseg import tiny_card, write_tiny_onnx
from typer.testing import CliRunner

from edgeseg.card import write_card
from edgeseg.cli.main import app

runner = CliRunner()


def _model(folder: Path) -> Path:
    """A tiny 1x1-conv ONNX (5 synthetic classes, dynamic batch). With torch installed, bench checks
    the input size against the card's registered architecture; the conv takes any size, so the
    card names lite-unet only to pick a rule 48x64 passes (multiples of 16)."""
    model = write_tiny_onnx(folder, input_hw=(48, 64), num_classes=5, dynamic_batch=True, card=False)
    write_card(model, tiny_card((48, 64), 5).replace(architecture="lite-unet"))
    return model


def _bench(tmp: Path, model: Path, stem: str, threads: int, data: bool = True) -> Path:
    args = ["bench", str(model), "--backends", "ort", "--batch", "1,2", "--iters", "3", "--warmup", "1",
            "--threads", str(threads), "--out", str(tmp / stem)]
    args += ["--data", "synthetic", "--data-num", "2"] if data else []
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return tmp / f"{stem}.json"


@pytest.fixture(scope="module")
def benches(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three bench results of this machine (1, 2 and 1 threads), as three 'machines'."""
    tmp = tmp_path_factory.mktemp("benches")
    model = _model(tmp)
    return [_bench(tmp, model, "bench-a", 1), _bench(tmp, model, "bench-b", 2), _bench(tmp, model, "c", 1)]


def _error_line(result) -> str:  # noqa: ANN001 - click's Result
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.slow  # three real bench runs in the fixture (~20 s on the loaded 2-core host)
def test_compare_three_machines(benches: list[Path], tmp_path: Path) -> None:
    stem = tmp_path / "fleet"
    result = runner.invoke(app, ["compare", *map(str, benches), "-o", str(stem)])
    assert result.exit_code == 0, result.output
    data = json.loads(stem.with_suffix(".json").read_text())
    assert data["format"] == "edgeseg-compare" and data["reference"] == "a"
    assert [m["label"] for m in data["machines"]] == ["a", "b", "c"]
    assert [m["threads"] for m in data["machines"]] == [1, 2, 1]
    rows = data["rows"]
    assert len(rows) == 6  # 3 machines x 1 backend x 2 batches
    assert [(r["batch"], r["machine"]) for r in rows] == [(b, m) for b in (1, 2) for m in "abc"]
    sources = [json.loads(p.read_text()) for p in benches]
    for r in rows:
        src = next(s for s, m in zip(sources, "abc", strict=True) if m == r["machine"])
        row = next(x for x in src["rows"] if x["batch"] == r["batch"])
        assert r["p50_ms"] == row["latency_ms"]["p50"] and r["miou"] == row["miou"] is not None
        ref = next(x for x in rows if x["machine"] == "a" and x["batch"] == r["batch"])
        assert r["vs_ref"] == pytest.approx(ref["p50_ms"] / r["p50_ms"], rel=1e-2)
    assert all(r["model"] == "lite-unet" and r["status"] == "ok" for r in rows)
    md = stem.with_suffix(".md").read_text()
    assert "| machine | file |" in md and "vs a" in md and md.count("| lite-unet |") == 6
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in result.output


def test_labels_and_bars_without_miou(tmp_path: Path) -> None:
    model = _model(tmp_path)
    files = [_bench(tmp_path, model, "x", 1, data=False), _bench(tmp_path, model, "y", 1, data=False)]
    stem = tmp_path / "out" / "cmp"
    result = runner.invoke(app, ["compare", *map(str, files), "--labels", "orin,x86", "--out", str(stem)])
    assert result.exit_code == 0, result.output
    data = json.loads(stem.with_suffix(".json").read_text())
    assert {r["machine"] for r in data["rows"]} == {"orin", "x86"} and data["reference"] == "orin"
    assert all(r["miou"] is None for r in data["rows"])
    assert stem.with_suffix(".png").is_file()  # latency bars


def _edit(src: Path, dst: Path, **changes: object) -> Path:
    data = json.loads(src.read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    dst.write_text(json.dumps(data))
    return dst


@pytest.mark.slow
def test_bad_input_is_one_line(benches: list[Path], tmp_path: Path) -> None:
    a, b, _ = map(str, benches)

    def err(*args: str | Path) -> str:
        return _error_line(runner.invoke(app, ["compare", *map(str, args), "-o", str(tmp_path / "cmp")]))

    line = err(a, _edit(benches[1], tmp_path / "v.json", edgeseg_version="9.9.9"))
    assert "different edgeseg versions" in line and "v.json: 9.9.9" in line
    assert "schema 2" in err(a, _edit(benches[1], tmp_path / "s.json", schema=2))
    legacy = _edit(benches[1], tmp_path / "old.json", format=None, schema=None, edgeseg_version=None)
    assert "without a format/schema record" in err(a, legacy)
    (tmp_path / "bad.json").write_text("{not json")
    assert "is not valid JSON" in err(a, tmp_path / "bad.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "edgeseg-compare", "rows": []}))
    assert "not an edgeseg bench result" in err(a, other)
    damaged = _edit(benches[1], tmp_path / "d.json", rows=[{"model": "m"}])
    assert re.search(r"row 0 lacks architecture", err(a, damaged))
    assert "does not exist" in err(a, tmp_path / "no.json")
    assert "at least two" in err(a)
    assert "--labels has 1 names" in err(a, b, "--labels", "x")
    assert "labelled 'p'" in err(a, b, "--labels", "p,p")
    assert "empty name" in err(a, b, "--labels", "p,")
    clash = _error_line(runner.invoke(app, ["compare", a, b, "-o", a.removesuffix(".json")]))
    assert "is one of the bench files" in clash
    assert json.loads(Path(a).read_text())["format"] == "edgeseg-bench"  # the input is intact
