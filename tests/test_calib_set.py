"""Calibration-set manifests: selection, hashes, verification and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from _calib_models import HW, write_images
from edgeseg.calib.calib_set import (
    CalibSetOptions,
    ClassCoverage,
    Preprocess,
    class_balanced_order,
    load_calib_set,
    make_calib_set,
    mask_fractions,
)
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import CalibrationError, DataError

PRE = Preprocess(HW)


def test_random_manifest_hashes_and_determinism(tmp_path: Path) -> None:
    images = write_images(tmp_path / "plain", 12)  # plain image folder, no masks
    path, m1 = make_calib_set(images, PRE, tmp_path / "a.json", CalibSetOptions(num=5, seed=3))
    _, m2 = make_calib_set(images, PRE, tmp_path / "b.json", CalibSetOptions(num=5, seed=3))
    _, m3 = make_calib_set(images, PRE, tmp_path / "c.json", CalibSetOptions(num=5, seed=4))
    assert path == tmp_path / "a.json"
    assert m1.set_sha256 == m2.set_sha256 != m3.set_sha256
    assert len(m1.images) == 5 and m1.class_coverage is None and m1.strategy == "random"
    on_disk = json.loads(path.read_text())
    assert on_disk["preprocess"]["input_hw"] == list(HW) and on_disk == m1.to_json()
    cset = load_calib_set(tmp_path / "a.json")
    assert len(cset.images) == 5 and all(p.is_file() for p in cset.images)
    assert cset.set_sha256 == m1.set_sha256


def test_class_balanced_covers_rare_class(tmp_path: Path) -> None:
    data = write_images(tmp_path / "ds", 40, masks=True)  # class 3 in 4 of 40 images
    _, m = make_calib_set(data, PRE, tmp_path / "s.json", CalibSetOptions(num=8, strategy="class-balanced",
                                                                           split="all"))
    assert m.class_coverage is not None and m.class_coverage["rare"] == ClassCoverage(4, 4)
    _, r = make_calib_set(data, PRE, tmp_path / "r.json",
                          CalibSetOptions(num=8, strategy="random", split="all"))
    names = {e.path for e in r.images}
    assert sum(f"im{i:03d}.png" in " ".join(names) for i in (3, 13, 23, 33)) < 4


def test_greedy_order_diminishing_returns() -> None:
    # images 0, 1, 2 hold class 2; image 3 holds the most of class 1; 4..9 a little class 1.
    f = np.zeros((10, 3))
    f[:] = [0.95, 0.05, 0.0]
    f[0] = [0.4, 0.0, 0.6]
    f[1] = [0.45, 0.0, 0.55]
    f[2] = [0.5, 0.0, 0.5]
    f[3] = [0.9, 0.1, 0.0]
    order = class_balanced_order(f, 2, seed=0)
    # undamped scores rank image 1 (3.9) above image 3 (3.5); the 1/(1+n) damping gives class 1
    # its image before class 2 gets a second one
    assert order == [0, 3]


def test_mask_fractions_skip_ignore() -> None:
    m = np.array([[0, 1], [11, 11]], np.uint8)
    f = mask_fractions([m], 12, ignore_index=11)
    assert f[0, 0] == pytest.approx(0.5) and f[0, 11] == 0


def test_changed_and_missing_files_are_named(tmp_path: Path) -> None:
    images = write_images(tmp_path / "plain", 6)
    make_calib_set(images, PRE, tmp_path / "s.json", CalibSetOptions(num=6))
    victim = images / "im002.png"
    img = cv2.imread(str(victim))
    img[0, 0] = 255 - img[0, 0]
    cv2.imwrite(str(victim), img)
    with pytest.raises(DataError, match=r"changed since the manifest.*im002\.png"):
        load_calib_set(tmp_path / "s.json")
    (images / "im004.png").unlink()
    with pytest.raises(DataError, match=r"missing.*im004\.png"):
        load_calib_set(tmp_path / "s.json")


def test_edited_manifest_and_relocated_root(tmp_path: Path) -> None:
    images = write_images(tmp_path / "plain", 6)
    make_calib_set(images, PRE, tmp_path / "s.json", CalibSetOptions(num=4))
    moved = tmp_path / "moved"
    images.rename(moved)
    assert len(load_calib_set(tmp_path / "s.json", root=moved).images) == 4
    m = json.loads((tmp_path / "s.json").read_text())
    m["preprocess"]["mean"] = [0.5, 0.5, 0.5]
    (tmp_path / "s.json").write_text(json.dumps(m))
    with pytest.raises(CalibrationError, match="was edited"):
        load_calib_set(tmp_path / "s.json", root=moved)


def test_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        make_calib_set(empty, PRE, tmp_path / "e.json", CalibSetOptions(num=1))
    images = write_images(tmp_path / "plain", 3)
    with pytest.raises(CalibrationError, match="only 3 images"):
        make_calib_set(images, PRE, tmp_path / "x.json", CalibSetOptions(num=10))
    with pytest.raises(CalibrationError, match="needs masks"):
        make_calib_set(images, PRE, tmp_path / "x.json", CalibSetOptions(num=2, strategy="class-balanced"))
    (images / "im001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="im001.png"):
        make_calib_set(images, PRE, tmp_path / "x.json", CalibSetOptions(num=3))
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "e.json").exists()
    with pytest.raises(CalibrationError, match="no image files"):  # generated scenes: nothing to hash
        make_calib_set("synthetic", PRE, tmp_path / "syn.json", CalibSetOptions(num=2))
    assert not (tmp_path / "syn.json").exists()
    with pytest.raises(CalibrationError, match="not an edgeseg calibration set"):
        (tmp_path / "junk.json").write_text("{}")
        load_calib_set(tmp_path / "junk.json")


def test_cli_calib_set(tmp_path: Path) -> None:
    data = write_images(tmp_path / "ds", 20, masks=True)
    out = tmp_path / "set.json"
    r = CliRunner().invoke(app, ["calib-set", str(data), "--num", "6", "--strategy", "class-balanced",
                                 "--split", "all", "--input", "16x16", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "rare" in r.output and json.loads(out.read_text())["strategy"] == "class-balanced"
    r = CliRunner().invoke(app, ["calib-set", str(data), "--num", "6", "-o", str(out)])
    assert r.exit_code == 2 and "--model" in r.output


def test_camvid_class_balanced_beats_random(camvid_dir: Path, tmp_path: Path) -> None:
    pre = Preprocess((360, 480))
    _, bal = make_calib_set(camvid_dir, pre, tmp_path / "b.json",
                            CalibSetOptions(num=30, strategy="class-balanced"))
    _, rnd = make_calib_set(camvid_dir, pre, tmp_path / "r.json", CalibSetOptions(num=30, strategy="random"))
    assert rnd.class_coverage is None
    cov = bal.class_coverage
    assert cov is not None
    assert set(cov) == {"Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                        "Pedestrian", "Bicyclist"}
    # the rarest classes appear in (nearly) every chosen image once balanced; random draws miss them
    for rare in ("Bicyclist", "Pedestrian"):
        share_all = cov[rare].all_images / 367
        assert cov[rare].chosen_images / 30 > share_all


def test_cli_calib_set_data_option_and_default_strategy(tmp_path: Path) -> None:
    """--data and the older positional read the same set; both at once is one clear line; the
    default strategy is class-balanced, falling back to random (said, recorded) without masks."""
    data = write_images(tmp_path / "ds", 20, masks=True)
    common = ["--num", "6", "--split", "all", "--input", "16x16"]
    by_option, by_arg = tmp_path / "a.json", tmp_path / "b.json"
    r = CliRunner().invoke(app, ["calib-set", "--data", str(data), *common, "-o", str(by_option)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["calib-set", str(data), *common, "-o", str(by_arg)])
    assert r.exit_code == 0, r.output
    a, b = json.loads(by_option.read_text()), json.loads(by_arg.read_text())
    assert a["strategy"] == "class-balanced" and a["class_coverage"] and a["images"] == b["images"]
    r = CliRunner().invoke(app, ["calib-set", str(data), "--data", str(data), *common, "-o",
                                 str(tmp_path / "c.json")])
    assert r.exit_code == 2 and "given twice" in r.output and not (tmp_path / "c.json").exists()
    r = CliRunner().invoke(app, ["calib-set", *common, "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 2 and "--data DATA" in r.output

    plain = write_images(tmp_path / "plain", 8)
    r = CliRunner().invoke(app, ["calib-set", "--data", str(plain), "--num", "4", "--input", "16x16",
                                 "-o", str(tmp_path / "p.json")])
    assert r.exit_code == 0, r.output
    assert "no masks" in r.output and json.loads((tmp_path / "p.json").read_text())["strategy"] == "random"
    r = CliRunner().invoke(app, ["calib-set", "--data", str(plain), "--num", "4", "--input", "16x16",
                                 "--strategy", "class-balanced", "-o", str(tmp_path / "q.json")])
    assert r.exit_code == 2 and "needs masks" in r.output


def test_manifest_record_reads_older_files(tmp_path: Path) -> None:
    """A manifest without split/seed/strategy (optional in the schema) still loads; a malformed
    class_coverage is one CalibrationError naming the field."""
    images = write_images(tmp_path / "plain", 4)
    path, m = make_calib_set(images, PRE, tmp_path / "s.json", CalibSetOptions(num=4))
    d = json.loads(path.read_text())
    for key in ("split", "seed", "strategy"):
        del d[key]
    path.write_text(json.dumps(d))
    cset = load_calib_set(path)
    assert cset.strategy == "?" and cset.set_sha256 == m.set_sha256
    d["class_coverage"] = {"road": 3}
    path.write_text(json.dumps(d))
    with pytest.raises(CalibrationError, match="class_coverage"):
        load_calib_set(path)


def test_cli_choices_come_from_the_core(tmp_path: Path) -> None:
    """--strategy takes the Literal's values and refuses others before any work."""
    data = write_images(tmp_path / "ds", 4)
    r = CliRunner().invoke(app, ["calib-set", str(data), "--strategy", "balanced", "--input", "16x16",
                                 "-o", str(tmp_path / "s.json")])
    assert r.exit_code == 2 and "random" in r.output and "class-balanced" in r.output
    assert not (tmp_path / "s.json").exists()
