"""Dataset readers: layouts, dataset descriptions, bad input, and the real CamVid / DSB2018 copies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg.data import DatasetInfo, Sample, open_dataset
from edgeseg.data import datasets as ds_mod
from edgeseg.data.known import CAMVID, DSB2018, palette
from edgeseg.errors import ConfigError, DataError

HEX = "0123456789abcdef" * 4  # 64 hex digits, like a DSB2018 image id


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _image(h: int = 8, w: int = 10, v: int = 100) -> np.ndarray:
    return np.full((h, w, 3), v, dtype=np.uint8)


def _mask(values: list[int], h: int = 8, w: int = 10) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    m.ravel()[: len(values)] = values
    return m


def _list_dataset(root: Path, masks: dict[str, np.ndarray], split: str = "train") -> Path:
    lines = []
    for stem, m in masks.items():
        _write(root / "img" / f"{stem}.png", _image(*m.shape))
        _write(root / "ann" / f"{stem}.png", m)
        lines.append(f"img/{stem}.png ann/{stem}.png")
    (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def _folder_dataset(root: Path, masks: dict[str, np.ndarray]) -> Path:
    for stem, m in masks.items():
        _write(root / "images" / f"{stem}.png", _image(*m.shape))
        _write(root / "masks" / f"{stem}.png", m)
    return root


# --- layouts -------------------------------------------------------------------------------------

def test_list_file_folder_generic_info_with_ignore(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "roads", {"a": _mask([0, 1, 2]), "b": _mask([2, 255])})
    ds = open_dataset(root, "train")
    assert len(ds) == 2
    assert ds.info.class_names == ("class0", "class1", "class2") and ds.info.ignore_index == 255
    s = ds[1]
    assert isinstance(s, Sample) and s.name == "b"
    assert s.image_bgr.shape == (8, 10, 3) and s.image_bgr.dtype == np.uint8
    assert s.mask.dtype == np.uint8 and sorted(np.unique(s.mask)) == [0, 2, 255]
    root_scan_colour = _list_dataset(tmp_path / "c", {"a": np.dstack([_mask([1]), _mask([2]), _mask([3])])})
    with pytest.raises(DataError, match="colour image"):
        open_dataset(root_scan_colour)  # the generic description scans masks at open
    assert [x.name for x in ds] == ["a", "b"] and ds[-1].name == "b"
    with pytest.raises(IndexError):
        ds[2]


def test_generic_description_is_the_same_for_all_splits(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"a": _mask([0, 1, 2])}, split="train")
    _list_dataset(root, {"b": _mask([0, 1])}, split="val")
    assert open_dataset(root, "val").info == open_dataset(root, "train").info
    assert open_dataset(root, "val").info.num_classes == 3
    assert open_dataset(root / "val.txt").info.num_classes == 2  # a list file alone: its own masks


def test_list_file_path_and_comments(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"a": _mask([0, 1])})
    (root / "mine.txt").write_text("# header\n\nimg/a.png ann/a.png  # first\n")
    ds = open_dataset(root / "mine.txt")
    assert len(ds) == 1 and ds[0].mask.max() == 1


def test_images_masks_folder_binary_255_becomes_1(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "cells", {f"s{i}": _mask([255] * 5) for i in range(30)})
    ds = open_dataset(root, "all")
    assert ds.info.class_names == ("background", "foreground") and len(ds) == 30
    assert sorted(np.unique(ds[0].mask)) == [0, 1]
    (root / "README.txt").write_text("notes, not a list file\n")
    train, val = open_dataset(root, "train"), open_dataset(root, "val")
    assert len(train) + len(val) == 30 and not set(train.names) & set(val.names)


def test_dsb_recognised_by_image_ids(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "whatever", {HEX: _mask([255, 255]), HEX[::-1]: _mask([0])})
    ds = open_dataset(root, "all")
    assert ds.info == DSB2018
    assert sorted(np.unique(ds[0].mask).tolist()) in ([0], [0, 1])


def test_camvid_recognised_by_frame_names(tmp_path: Path) -> None:
    stems = {"0001TP_006690": _mask([0, 10, 11]), "Seq05VD_f00030": _mask([3])}
    root = _list_dataset(tmp_path / "copy", stems)
    ds = open_dataset(root)
    assert ds.info == CAMVID and ds.info.ignore_index == 11
    assert sorted(np.unique(ds[0].mask)) == [0, 10, 11]


def test_classes_json_wins_and_maps_values(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "d", {HEX: _mask([0, 128, 200, 99])})
    (root / "classes.json").write_text(json.dumps({
        "name": "mine", "class_names": ["bg", "a", "b"], "mask_values": [0, 128, 200], "ignore_index": 99}))
    ds = open_dataset(root, "all")
    assert ds.info.name == "mine" and ds.info.class_colors == palette(3)
    assert sorted(np.unique(ds[0].mask)) == [0, 1, 2, 99]


def test_image_folder_without_masks(tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / "frames" / f"f{i}.jpg", _image())
    (tmp_path / "frames" / "notes.md").write_text("not an image")
    ds = open_dataset(tmp_path / "frames")
    assert len(ds) == 3 and ds[0].mask is None and ds[0].image_bgr.shape == (8, 10, 3)


def test_open_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder_dataset(tmp_path / "d", {HEX: _mask([255])})

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("open_dataset decoded an image")

    monkeypatch.setattr(ds_mod.cv2, "imread", boom)
    assert len(open_dataset(root, "all")) == 1


def test_dataset_info_checks() -> None:
    with pytest.raises(DataError, match="colours"):
        DatasetInfo("x", ("a", "b"), ((0, 0, 0),))
    with pytest.raises(DataError, match="also a class"):
        DatasetInfo("x", ("a", "b"), palette(2), ignore_index=1)
    assert CAMVID.to_dict()["class_colors"][3] == [128, 64, 128]
    assert DatasetInfo.from_dict(json.loads(json.dumps(CAMVID.to_dict()))) == CAMVID


def test_data_readers_import_without_torch_or_albumentations() -> None:
    code = ("import sys; sys.modules['torch'] = None; sys.modules['albumentations'] = None; "
            "import edgeseg.data, edgeseg.data.synthetic, edgeseg.data.augment")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- bad input -----------------------------------------------------------------------------------

def test_list_file_names_missing_files(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"a": _mask([0])})
    (root / "train.txt").write_text("img/a.png ann/a.png\nimg/gone.png ann/gone.png\n")
    with pytest.raises(DataError, match=r"gone\.png \(line 2\)"):
        open_dataset(root)


def test_folder_names_images_without_masks_and_masks_without_images(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "d", {"a": _mask([0])})
    _write(root / "images" / "lonely.png", _image())
    with pytest.raises(DataError, match="have no mask.*lonely"):
        open_dataset(root, "all")
    (root / "images" / "lonely.png").unlink()
    _write(root / "images" / "a.jpg", _image())
    with pytest.raises(DataError, match="share the stem 'a'"):
        open_dataset(root, "all")
    (root / "images" / "a.jpg").unlink()
    _write(root / "masks" / "orphan.png", _mask([0]))
    with pytest.raises(DataError, match="have no image.*orphan"):
        open_dataset(root, "all")


def test_mask_values_outside_classes_named(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"ok": _mask([0, 1, 2, 255]), "bad": _mask([0, 7, 9, 255])})
    (root / "classes.json").write_text(json.dumps({"class_names": ["a", "b", "c"], "ignore_index": 255}))
    ds = open_dataset(root)
    assert ds[0].mask.max() == 255  # the ignore index is allowed
    with pytest.raises(DataError, match=r"bad\.png has value\(s\) \[7, 9\]"):
        ds[1]


def test_unreadable_image(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"a": _mask([0])})
    (root / "img" / "a.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"cannot read image .*a\.png"):
        open_dataset(root)[0]


def test_size_mismatch_and_colour_mask(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"a": _mask([0]), "b": _mask([0])})
    _write(root / "ann" / "a.png", _mask([1], h=4, w=4))
    _write(root / "ann" / "b.png", np.dstack([_mask([1]), _mask([2]), _mask([3])]))
    (root / "classes.json").write_text(json.dumps({"class_names": ["a", "b", "c", "d"]}))
    ds = open_dataset(root)  # classes.json: no mask scan at open, errors come on access
    with pytest.raises(DataError, match="4x4 but image"):
        ds[0]
    with pytest.raises(DataError, match="colour image"):
        ds[1]


def test_empty_datasets(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        open_dataset(tmp_path / "empty")
    (tmp_path / "train.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match="empty"):
        open_dataset(tmp_path / "train.txt")


def test_unknown_split_and_bad_spec(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"a": _mask([0])})
    with pytest.raises(DataError, match="split 'tarin'.*did you mean 'train'.*available splits: train"):
        open_dataset(root, "tarin")
    folder = _folder_dataset(tmp_path / "f", {"a": _mask([0])})
    with pytest.raises(DataError, match="unknown split 'test'"):
        open_dataset(folder, "test")
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(ConfigError, match="only applies to the synthetic"):
        open_dataset(root, hw=(8, 8))


def test_bad_classes_json(tmp_path: Path) -> None:
    root = _list_dataset(tmp_path / "d", {"a": _mask([0])})
    (root / "classes.json").write_text(json.dumps({"class_names": ["a"], "colours": [[1, 2, 3]]}))
    with pytest.raises(DataError, match="unknown key 'colours'"):
        open_dataset(root)
    (root / "classes.json").write_text(json.dumps({"class_names": ["a", "b"], "mask_values": [0]}))
    with pytest.raises(DataError, match="mask_values"):
        open_dataset(root)
    (root / "classes.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        open_dataset(root)


# --- real data -----------------------------------------------------------------------------------

def test_camvid_real(camvid_dir: Path) -> None:
    train, val = open_dataset(camvid_dir, "train"), open_dataset(camvid_dir, "val")
    assert (len(train), len(val)) == (367, 101)
    assert train.info == CAMVID and train.info.num_classes == 11
    s = train[0]
    assert s.image_bgr.shape == (360, 480, 3) and s.image_bgr.dtype == np.uint8
    assert s.mask.shape == (360, 480) and s.mask.dtype == np.uint8
    seen = set()
    for i in range(0, len(val), 10):
        seen |= set(np.unique(val[i].mask).tolist())
    assert seen <= set(range(12)) and {0, 3, 11} <= seen


def test_dsb_real(dsb_dir: Path) -> None:
    train, val = open_dataset(dsb_dir, "train"), open_dataset(dsb_dir, "val")
    assert (len(train), len(val)) == (500, 64)
    assert train.info == DSB2018 and not set(train.names) & set(val.names)
    for i in range(0, len(val), 8):
        s = val[i]
        assert s.image_bgr.ndim == 3 and s.image_bgr.shape[2] == 3 and s.image_bgr.dtype == np.uint8
        assert s.mask.shape == s.image_bgr.shape[:2] and s.mask.dtype == np.uint8
        assert set(np.unique(s.mask).tolist()) <= {0, 1} and s.mask.any()
