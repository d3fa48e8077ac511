"""``edgeseg import``: foreign ONNX files in the forms other toolkits write (plain torch.onnx.export,
dynamic H/W, low-resolution logits, uint8 NHWC input, labels output, an aux output, NHWC logits)
run in edgeseg's onnxruntime backend with the same argmax as the foreign model itself; the card;
bad input (one line, nothing written); the whole path on DSB2018 at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from edgeseg.card import card_path, read_card
from edgeseg.cli.main import app
from edgeseg.io import sha256_file

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from foreign_models import TinySeg, Wrapped, export, warmed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HW = (32, 48)
FORMS = ["plain", "dynamic", "lowres", "uint8_nhwc", "labels", "aux", "nhwc_out"]


def foreign(form: str, folder: Path, classes: int = 3,
            hw: tuple[int, int] = HW) -> tuple[Path, torch.nn.Module]:
    """(ONNX written by plain torch.onnx.export, the torch module it came from)."""
    net = warmed(TinySeg(classes, stride=2, upsample=form != "lowres"), hw)
    x = torch.zeros(1, 3, *hw)
    model: torch.nn.Module = net
    kwargs: dict = {}
    if form == "dynamic":
        kwargs = {"dynamic_hw": True}
    elif form == "uint8_nhwc":
        model, x = Wrapped(net, uint8_nhwc=True).eval(), torch.zeros(1, *hw, 3, dtype=torch.uint8)
    elif form == "labels":
        model = Wrapped(net, labels=True).eval()
    elif form == "aux":
        model, kwargs = Wrapped(net, aux=True).eval(), {"outputs": ("out", "aux")}
    elif form == "nhwc_out":
        model = Wrapped(net, nhwc_out=True).eval()
    return export(model, folder / f"{form}.onnx", x, **kwargs), model


def reference_labels(form: str, model: torch.nn.Module, image_rgb: np.ndarray,
                     x_nchw: np.ndarray) -> np.ndarray:
    """The foreign model's own answer (H, W): its argmax at the input size."""
    with torch.no_grad():
        if form == "uint8_nhwc":
            y = model(torch.from_numpy(image_rgb[None].copy()))
        else:
            y = model(torch.from_numpy(x_nchw))
        if form == "labels":
            return y[0].numpy()
        if form == "aux":
            y = y[0]
        if form == "nhwc_out":
            y = y.permute(0, 3, 1, 2)
        if form == "lowres":
            y = F.interpolate(y, size=HW, mode="bilinear", align_corners=False)
        return y[0].argmax(0).numpy()


@pytest.mark.parametrize("form", FORMS)
def test_imported_file_runs_like_the_foreign_model(tmp_path, form):
    from edgeseg.export.onnx_import import ImportRecord, import_onnx
    from edgeseg.export.options import ImportOptions, ModelFacts
    from edgeseg.runtime.backends import open_backend

    from edgeseg.preprocess import preprocess, to_input_hwc

    src, model = foreign(form, tmp_path)
    before = src.read_bytes()
    path, card = import_onnx(src, options=ImportOptions(input_hw=HW if form == "dynamic" else None,
                                                         facts=ModelFacts(classes="sky,road,car")))
    adapted = ImportRecord.of(card).adapter
    assert list(adapted) == card.extra["import"]["adapter"]  # the typed record keeps the JSON keys
    assert src.read_bytes() == before  # the foreign file is never changed
    if form == "plain":
        assert path == src and not adapted and card.parent_sha256 is None
    else:
        assert path == src.with_name(f"{form}.edgeseg.onnx") and adapted
        assert card.parent_sha256 == sha256_file(src)
    assert card.architecture == "external" and card.arch_args == {"name": form}
    assert card.class_names == ("sky", "road", "car") and card.input_hw == HW
    assert card.extra["import"]["source_sha256"] == sha256_file(src)
    assert read_card(path) == card  # hash of the very file
    rng = np.random.default_rng(1)
    backend = open_backend(path, threads=1)
    same = []
    for _ in range(3):
        frame = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)  # BGR, resized by preprocess
        x = preprocess(frame, card)
        logits = backend.infer(x)
        assert logits.shape == (1, 3, *HW) and logits.dtype == np.float32
        ref = reference_labels(form, model, to_input_hwc(frame, card), x)
        same.append(float((logits[0].argmax(0) == ref).mean()))
    backend.close()
    assert min(same) == 1.0, same


def test_import_options_are_recorded(tmp_path):
    from edgeseg.export.onnx_import import ImportRecord, import_onnx
    from edgeseg.export.options import ImportOptions, ModelFacts

    src, _ = foreign("plain", tmp_path)
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"class_names": ["a", "b", "c"], "ignore_index": 255}))
    out = tmp_path / "copy" / "m.onnx"
    out.parent.mkdir()
    opts = ImportOptions(facts=ModelFacts(classes=str(classes), mean=(123.675, 116.28, 103.53),
                                          std=(58.395, 57.12, 57.375), scale=1.0, bgr=True, name="mine"))
    path, c = import_onnx(src, out, opts)
    assert path == out and out.read_bytes() == src.read_bytes() and not card_path(src).exists()
    assert c.channel_order == "BGR" and c.ignore_index == 255 and c.arch_args == {"name": "mine"}
    assert np.allclose(c.mean, (0.485, 0.456, 0.406)) and np.allclose(c.std, (0.229, 0.224, 0.225))
    assert ImportRecord.of(c).assumed == () and c.extra["import"]["assumed"] == []
    assert ImportRecord.of(c).to_json() == c.extra["import"]  # the typed record keeps the JSON
    pre = c.extra["import"]["preprocessing"]
    assert pre["scale"] == 1.0 and pre["mean"] == [123.675, 116.28, 103.53]


def test_gflops_counted_behind_a_computed_resize(tmp_path):
    """A conv after F.interpolate(size=x.shape[-2:]) (sizes from Shape ops): counted at the card's
    size once import fixed the dynamic H/W, equal to torch's FLOP counter."""
    from edgeseg.export.onnx_import import import_onnx
    from edgeseg.export.options import ImportOptions, ModelFacts
    from edgeseg.runtime.bench import onnx_gflops
    from torch.utils.flop_counter import FlopCounterMode

    net = warmed(TinySeg(3, stride=2, refine=True), HW)
    src = export(net, tmp_path / "r.onnx", torch.zeros(1, 3, *HW), dynamic_hw=True)
    assert onnx_gflops(src) is None  # dynamic H/W: not countable as exported
    path, _ = import_onnx(src, options=ImportOptions(input_hw=HW, facts=ModelFacts(classes="3")))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, *HW))
    assert onnx_gflops(path) == pytest.approx(counter.get_total_flops() / 1e9, abs=1e-4)


def cli(*args: str):
    return CliRunner().invoke(app, ["import", *args])


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _graph(inputs: list, outputs: list, nodes: list) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def bad_models(folder: Path) -> dict[str, Path]:
    def vi(name: str, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    two = _graph([vi("a", [1, 3, 8, 8]), vi("b", [1, 3, 8, 8])], [vi("o", [1, 3, 8, 8])],
                 [helper.make_node("Add", ["a", "b"], ["o"])])
    flat = _graph([vi("x", [1, 3, 8, 8])], [vi("o", [1, 3, 1, 1])],
                  [helper.make_node("GlobalAveragePool", ["x"], ["o"])])
    square = _graph([vi("x", [1, 3, 8, 3])], [vi("o", [1, 3, 8, 3])],
                    [helper.make_node("Relu", ["x"], ["o"])])
    paths = {}
    for name, m in (("two", two), ("flat", flat), ("square", square)):
        paths[name] = folder / f"{name}.onnx"
        onnx.save(m, paths[name])
    return paths


@pytest.mark.parametrize(("case", "args", "message"), [
    ("two", [], "has 2 inputs .*exactly one image input"),
    ("flat", ["--classes", "3"], "no output with spatial dims"),
    ("square", ["--classes", "3"], "cannot tell NCHW from NHWC; pass --layout nchw or --layout nhwc"),
    ("plain", ["--classes", "a,b"], "outputs 3 channels but --classes gives 2 classes; give 3"),
    ("plain", [], "pass --classes a,b,c, --classes N, --classes classes.json, or --data"),
    ("dynamic", ["--classes", "3"], "dynamic height/width .* --input HxW"),
    ("plain", ["--classes", "3", "--input", "64x64"], "fixed at 32x48 .*pass --input 32x48"),
    ("uint8_nhwc", ["--classes", "3", "--mean", "1,2,3"], "uint8 pixels .*drop --mean"),
    ("plain", ["--classes", "3", "-o", "plain.txt"], "must end in .onnx"),
])
def test_bad_input_one_line_nothing_written(tmp_path, monkeypatch, case, args, message):
    import re

    monkeypatch.chdir(tmp_path)
    paths = bad_models(tmp_path)
    path = paths.get(case) or foreign(case, tmp_path)[0]
    before = _files(tmp_path)
    result = cli(str(path), *args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(message, " ".join(result.output.split())), result.output
    assert _files(tmp_path) == before


def test_edgeseg_export_needs_no_import(tmp_path):
    from tinyseg import write_tiny_onnx

    model = write_tiny_onnx(tmp_path, input_hw=(16, 16))
    result = cli(str(model), "--classes", "2")
    assert result.exit_code == 2 and "needs no import" in result.output


def test_import_runs_without_torch(tmp_path):
    src, _ = foreign("uint8_nhwc", tmp_path)
    script = ("import sys; sys.modules['torch'] = None\n"
              "from edgeseg.cli.main import app\n"
              "try:\n    app(['import', sys.argv[1], '--classes', '3'], prog_name='edgeseg')\n"
              "except SystemExit as e:\n    assert not e.code, e.code\n"
              "assert sys.modules['torch'] is None\nprint('TORCH-FREE OK')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script, str(src)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and "TORCH-FREE OK" in out.stdout, out.stdout + out.stderr
    assert read_card(src.with_name("uint8_nhwc.edgeseg.onnx")).architecture == "external"


@pytest.mark.slow
def test_whole_path_on_dsb2018_tiny(dsb_dir, tmp_path, monkeypatch):
    """A plain torch module exported by plain torch.onnx.export (dynamic H/W), then only edgeseg
    commands: import -> calib-set -> calibrate -> convert-fp16 -> precision-report -> stream -> bench
    (the figure run of docs/own-model.md at 32x32)."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    net = warmed(TinySeg(2, stride=2), (32, 32))
    export(net, tmp_path / "nuclei.onnx", torch.zeros(1, 3, 32, 32), dynamic_hw=True)
    data = str(dsb_dir)
    model = "nuclei.edgeseg.onnx"
    steps = [
        ["import", "nuclei.onnx", "--input", "32x32", "--data", data],
        ["calib-set", data, "--model", model, "--num", "8", "-o", "calib.json"],
        ["calibrate", model, "--set", "calib.json", "--method", "minmax", "-o", "nuclei.edgeseg.int8.onnx"],
        ["convert-fp16", model, "-o", "nuclei.edgeseg.fp16.onnx"],
        ["precision-report", model, "nuclei.edgeseg.fp16.onnx", "nuclei.edgeseg.int8.onnx", "--data", data,
         "--num", "6", "--threads", "1", "-o", "precision"],
        ["stream", model, "--source", str(dsb_dir / "images"), "--masks", str(dsb_dir / "masks"),
         "--max-frames", "4", "--threads", "1", "--headless", "--quiet", "--report", "stream.json"],
        ["bench", model, "--backends", "torch,ort,ort-fp16,ort-int8", "--data", data, "--data-num", "4",
         "--iters", "3", "--warmup", "1", "--threads", "1", "--out", "bench"],
    ]
    for args in steps:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args[0], result.output)
    card = read_card(tmp_path / model)
    assert card.class_names == ("background", "nucleus") and card.input_hw == (32, 32)
    precision = json.loads((tmp_path / "precision.json").read_text())
    assert [m["label"] for m in precision["models"]] == ["FP32", "FP16", "INT8 (minmax)"]
    assert precision["images"] == 6 and all(0.0 <= m["miou"] <= 1.0 for m in precision["models"])
    assert precision["models"][1]["argmax_disagreement_vs_reference"] < 0.01  # FP16 ~ FP32
    stream = json.loads((tmp_path / "stream.json").read_text())
    assert stream["frames"] == 4 and stream["metrics"]["frames"] == 4
    rows = {r["backend"]: r for r in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    assert rows["torch"]["status"] == "skipped" and "imported model" in rows["torch"]["reason"]
    for name in ("ort", "ort-fp16", "ort-int8"):
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["gflops"] > 0 and rows[name]["params"] > 0 and rows[name]["miou"] is not None
    assert rows["ort"]["architecture"] == "nuclei (external)"
