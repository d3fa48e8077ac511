"""Segmentation dataset readers (numpy + OpenCV only; the runtime and eval use them without torch).

``open_dataset(spec, split)`` understands:

* a folder with ``{split}.txt`` list files (CamVid/SegNet style): one ``image mask`` pair per line,
  paths relative to the list file's folder (absolute paths also work); ``#`` starts a comment.
  Lines with only an image path give samples without masks.
* a ``.txt`` list file itself (``split`` is then not used).
* a folder with ``images/`` and ``masks/`` matched by file stem (DSB2018 style). Without list
  files the split is derived from the stem: ``val`` holds the stems whose SHA-1 is 0 mod 10,
  ``train`` the rest, ``all`` everything (stable when files are added).
* a folder of images without masks (``Sample.mask`` is None; calibration, streaming); ``split``
  is not used.
* ``"synthetic"``: the built-in scene generator (options ``hw``, ``num``, ``seed``).

Nothing is decoded when a dataset is opened: images and masks load on ``ds[i]``. Masks are
returned as uint8 label ids (stored values mapped through the dataset description); values that
are neither a class nor the ignore index raise :class:`~edgeseg.errors.DataError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeseg.data.known import DatasetInfo, generic_info, read_classes_json, recognise
from edgeseg.data.sample import Dataset, Sample
from edgeseg.errors import ConfigError, DataError, did_you_mean

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_SPLITS = ("train", "val", "all")
Pair = tuple[Path, "Path | None"]


def _short_list(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (and {len(items) - n} more)" if len(items) > n else "")


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to BGR uint8 HxWx3 (grey expanded, alpha dropped)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}: missing or not a decodable image; "
                        f"expected one of {', '.join(IMAGE_SUFFIXES)}; replace or remove it")
    return image


def read_label_file(path: Path) -> np.ndarray:
    """Decode a mask file to its stored uint8 values, HxW (no value mapping)."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(f"cannot read mask {path}: missing or not a decodable image; "
                        "expected a single-channel PNG of label ids; replace or remove it")
    if mask.ndim == 3:
        if mask.shape[2] >= 3 and not (np.array_equal(mask[..., 0], mask[..., 1])
                                       and np.array_equal(mask[..., 0], mask[..., 2])):
            raise DataError(f"mask {path} is a colour image; expected single-channel label ids "
                            "(convert colour-coded masks to class ids first)")
        mask = mask[..., 0]
    if mask.dtype != np.uint8:
        if mask.dtype.kind not in "iu" or mask.max(initial=0) > 255 or mask.min(initial=0) < 0:
            raise DataError(f"mask {path} has {mask.dtype} values up to {mask.max()}; expected "
                            "uint8 label ids 0..255")
        mask = mask.astype(np.uint8)
    return np.ascontiguousarray(mask)


class SegDataset:
    """Lazily loaded (image, mask) pairs with their :class:`DatasetInfo`.

    ``pairs[i]`` is (image path, mask path or None). ``mask_values`` (or None for identity) gives
    the stored pixel value of each class id.
    """

    def __init__(self, pairs: Sequence[Pair], info: DatasetInfo, *, source: str,
                 mask_values: Sequence[int] | None = None) -> None:
        if not pairs:
            raise DataError(f"dataset {source} is empty: no image files found; expected images "
                            f"({', '.join(IMAGE_SUFFIXES)}) or list lines; check the path and split")
        self.pairs = list(pairs)
        self.info = info
        self.source = source
        self._lut, self._valid = _label_tables(info, mask_values)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    @property
    def names(self) -> list[str]:
        return [p[0].stem for p in self.pairs]

    @property
    def has_masks(self) -> bool:
        return self.pairs[0][1] is not None

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)}")
        image_path, mask_path = self.pairs[i]
        image = read_image(image_path)
        mask = None if mask_path is None else self.load_mask(mask_path)
        if mask is not None and mask.shape != image.shape[:2]:
            raise DataError(f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} but image "
                            f"{image_path} is {image.shape[0]}x{image.shape[1]}; they must match")
        return Sample(image, mask, image_path.stem)

    def load_mask(self, path: Path) -> np.ndarray:
        """Read a mask and map stored values to label ids; refuse values outside the classes."""
        stored = read_label_file(path)
        counts = np.bincount(stored.ravel(), minlength=256)
        bad = np.flatnonzero((counts > 0) & ~self._valid)
        if bad.size:
            ok = np.flatnonzero(self._valid).tolist()
            raise DataError(
                f"mask {path} has value(s) {bad.tolist()} outside the {self.info.num_classes} classes of "
                f"{self.info.name!r} (allowed stored values {_ranges(ok)}); fix the mask or describe "
                "the classes in classes.json")
        return stored if self._lut is None else cv2.LUT(stored, self._lut)

    def check(self) -> None:
        """Decode every sample (raises the first DataError); for ``edgeseg`` data checks."""
        for i in range(len(self)):
            self[i]


def _ranges(values: list[int]) -> str:
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


def _label_tables(info: DatasetInfo, mask_values: Sequence[int] | None
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """(value->label lookup table or None for identity, boolean table of allowed stored values)."""
    valid = np.zeros(256, dtype=bool)
    stored = list(mask_values) if mask_values is not None else list(range(info.num_classes))
    valid[stored] = True
    if info.ignore_index is not None:
        valid[info.ignore_index] = True
    if mask_values is None:
        return None, valid
    lut = np.zeros(256, dtype=np.uint8)
    lut[stored] = np.arange(len(stored), dtype=np.uint8)
    if info.ignore_index is not None:
        lut[info.ignore_index] = info.ignore_index
    return lut, valid


def _resolve(base: Path, rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else base / p


def read_list_file(path: Path) -> list[Pair]:
    """Parse ``image [mask]`` lines; every named file must exist (missing ones are all named)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read list file {path} ({e}); expected text lines 'image mask'") from e
    pairs: list[Pair] = []
    missing: list[str] = []
    widths = set()
    for n, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise DataError(f"{path} line {n} has {len(fields)} fields; expected 'image mask' or "
                            "'image' (paths with spaces are not supported)")
        widths.add(len(fields))
        files = [_resolve(path.parent, f) for f in fields]
        missing += [f"{f} (line {n})" for f in files if not f.is_file()]
        pairs.append((files[0], files[1] if len(files) == 2 else None))
    if len(widths) > 1:
        raise DataError(f"{path} mixes lines with and without masks; give every line 'image mask'")
    if missing:
        raise DataError(f"{path}: {len(missing)} listed file(s) do not exist: {_short_list(missing)}; "
                        "fix the paths (relative to the list file's folder) or remove the lines")
    return pairs


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def match_folders(images_dir: Path, masks_dir: Path) -> list[Pair]:
    """Pair ``images/X.*`` with ``masks/X.*`` by stem; every image needs a mask and vice versa."""
    images, masks = _by_stem(images_dir), _by_stem(masks_dir)
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        raise DataError(f"{len(no_mask)} image(s) in {images_dir} have no mask in {masks_dir}: "
                        f"{_short_list(no_mask)}; expected a mask with the same file stem for each")
    if no_image:
        raise DataError(f"{len(no_image)} mask(s) in {masks_dir} have no image in {images_dir}: "
                        f"{_short_list(no_image)}; add the images or remove the masks")
    return [(images[s], masks[s]) for s in sorted(images)]


def stem_split(stem: str) -> str:
    """'val' for about 1 in 10 stems (by SHA-1), else 'train'; stable as files come and go."""
    return "val" if int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16) % 10 == 0 else "train"


def _looks_like_list(path: Path) -> bool:
    """True if the first entry of a .txt names an existing file (README.txt and notes are not splits)."""
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if fields:
                    return len(fields) <= 2 and _resolve(path.parent, fields[0]).is_file()
    except (OSError, UnicodeDecodeError):
        return False
    return False


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for p in list_images(folder):
        if p.stem in files:
            raise DataError(f"{files[p.stem].name} and {p.name} in {folder} share the stem {p.stem!r}; "
                            "masks are matched by stem, so keep one file per stem")
        files[p.stem] = p
    return files


def _folder_pairs(root: Path, split: str) -> list[Pair]:
    """Pairs of a dataset folder for ``split`` (see module docstring for the layouts)."""
    list_file = root / f"{split}.txt"
    if list_file.is_file():
        return read_list_file(list_file)
    lists = sorted(p.stem for p in root.glob("*.txt") if _looks_like_list(p))
    if lists:
        raise DataError(f"split {split!r} not found in {root}: no {split}.txt{did_you_mean(split, lists)}; "
                        f"available splits: {', '.join(lists)}")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        if split not in FOLDER_SPLITS:
            raise DataError(f"unknown split {split!r} for {root}{did_you_mean(split, FOLDER_SPLITS)}; "
                            f"without list files the splits are {', '.join(FOLDER_SPLITS)}")
        pairs = match_folders(root / "images", root / "masks")
        return pairs if split == "all" else [p for p in pairs if stem_split(p[0].stem) == split]
    folder = root / "images" if (root / "images").is_dir() else root
    return [(p, None) for p in list_images(folder)]


def _scan_values(pairs: Sequence[Pair]) -> set[int]:
    counts = np.zeros(256, dtype=np.int64)
    for _, mask_path in pairs:
        if mask_path is not None:
            counts += np.bincount(read_label_file(mask_path).ravel(), minlength=256)
    return set(np.flatnonzero(counts).tolist())


def _all_split_pairs(root: Path, pairs: Sequence[Pair]) -> list[Pair]:
    """Pairs of every split of a dataset folder, so that all splits get one generic description."""
    lists = [p for p in sorted(root.glob("*.txt")) if _looks_like_list(p)]
    if lists:
        return [pair for p in lists for pair in read_list_file(p)]
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return match_folders(root / "images", root / "masks")
    return list(pairs)


def describe(root: Path, pairs: Sequence[Pair], *, whole_folder: bool = True
             ) -> tuple[DatasetInfo, tuple[int, ...] | None]:
    """The dataset description: classes.json, else a built-in match, else generic from the masks.

    The generic description scans the masks of every split of the folder (``whole_folder``) or
    only ``pairs``: this decodes every mask once, so add a classes.json to skip it.
    """
    name = root.name or "dataset"
    if (root / "classes.json").is_file():
        return read_classes_json(root / "classes.json", name)
    known = recognise([p[0].stem for p in pairs])
    if known is not None:
        return known.info, known.mask_values
    if not pairs or pairs[0][1] is None:
        return DatasetInfo(name, (), ()), None
    return generic_info(name, _scan_values(_all_split_pairs(root, pairs) if whole_folder else pairs))


def open_dataset(spec: str | os.PathLike[str], split: str = "train", **opts: Any) -> Dataset:
    """Open a dataset (see module docstring for ``spec``); fast: nothing is decoded here.

    ``opts`` only apply to ``"synthetic"`` (``hw=(H, W)``, ``num=N``, ``seed=S``).
    """
    if str(spec) == "synthetic":
        from edgeseg.data.synthetic import SyntheticDataset

        return SyntheticDataset.from_options(split, **opts)
    if opts:
        key = sorted(opts)[0]
        raise ConfigError(f"option {key!r} only applies to the synthetic dataset; remove it for {spec}")
    path = Path(spec)
    if path.is_file() and path.suffix == ".txt":
        pairs = read_list_file(path)
        root = path.parent
    elif path.is_dir():
        pairs = _folder_pairs(path, split)
        root = path
    elif path.exists():
        raise DataError(f"dataset {path} is neither a folder nor a .txt list file; pass a dataset "
                        "folder, a list file or 'synthetic'")
    else:
        raise DataError(f"dataset {path} does not exist; pass a dataset folder, a .txt list file "
                        "or 'synthetic'")
    source = f"{path} (split {split})" if path.is_dir() else str(path)
    if not pairs:
        raise DataError(f"dataset {source} is empty: no image files or list lines found; check the "
                        f"path and split (image types: {', '.join(IMAGE_SUFFIXES)})")
    info, mask_values = describe(root, pairs, whole_folder=path.is_dir())
    return SegDataset(pairs, info, source=source, mask_values=mask_values)
