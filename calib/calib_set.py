"""Calibration sets: a manifest of images chosen from a dataset, with hashes and preprocessing.

``edgeseg calib-set --data DATA --num 300 [--strategy class-balanced|random] -o set.json`` writes::

    {"format": "edgeseg-calib-set", "version": 1, "root": "/abs/data", "split": "train",
     "strategy": "class-balanced", "seed": 0,
     "preprocess": {"input_hw": [H, W], "mean": [...], "std": [...], "channel_order": "RGB",
                    "resize": "linear"},
     "images": [{"path": "train/x.png", "sha256": "..."}, ...],   # paths relative to root
     "class_coverage": {...} | null, "set_sha256": "..."}

``set_sha256`` hashes the preprocessing and the ordered image hashes (not the paths: moving the
dataset keeps the hash). It keys every calibration cache. :func:`load_calib_set` re-hashes every
image and names the files that changed.

Images of another size than the model input are **resized** to ``input_hw`` with bilinear
interpolation, exactly as the runtime does with camera frames (:mod:`edgeseg.preprocess`); grey
and RGBA files are decoded to 3-channel colour like every edgeseg reader. Calibration therefore
sees what deployment sees.

Class-balanced selection (masks needed; without masks ``random`` is the only strategy):

1. For every candidate image, count the pixels of each class (mask downsampled by nearest
   neighbour to at most 128 px on its long side; the ignore index is skipped) and turn the counts
   into fractions ``f[i, c]``.
2. Each class gets a rarity weight ``w[c] = 1 / p[c]`` where ``p[c]`` is its pixel share over all
   candidates (clipped to 1e-4), so a class with 1 % of the pixels weighs 100x a dominant one.
3. Greedy: repeatedly take the image with the largest
   ``score(i) = sum_c f[i, c] * w[c] / (1 + n[c])`` where ``n[c]`` counts the already chosen
   images that contain class ``c`` (share > 0.1 %). The division gives diminishing returns, so
   once a rare class is covered by a few images the next pick goes to another under-covered class
   instead of piling up images of the same rare object. Ties are broken by a seeded random order.

The manifest records, per class, how many chosen images contain it, next to how many of all
candidates do (``class_coverage``), so the effect is visible.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from edgeseg.card import IMAGENET_MEAN, IMAGENET_STD, ChannelOrder, ModelCard
from edgeseg.errors import CalibrationError, DataError
from edgeseg.io import sha256_file, sha256_json, write_json_atomic

if TYPE_CHECKING:  # numpy and OpenCV are imported where used: the CLI reads this module's defaults
    import numpy as np

FORMAT = "edgeseg-calib-set"
VERSION = 1
Strategy = Literal["random", "class-balanced"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
_PRESENT = 1e-3
_MASK_SIDE = 128


@dataclass(frozen=True)
class Preprocess:
    """What calibration feeds the network: resize to ``input_hw`` (H, W), channel order, mean/std
    on pixel values scaled to [0, 1]. Same contract as the model card's fields."""

    input_hw: tuple[int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: ChannelOrder = "RGB"

    @classmethod
    def from_card(cls, card: ModelCard) -> Preprocess:
        h, w = card.input_hw
        # a card is checked on construction: its channel_order is one of CHANNEL_ORDERS
        return cls((h, w), tuple(card.mean), tuple(card.std), cast(ChannelOrder, card.channel_order))

    def to_json(self) -> dict[str, Any]:
        return {"input_hw": list(self.input_hw), "mean": list(self.mean), "std": list(self.std),
                "channel_order": self.channel_order, "resize": "linear"}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Preprocess:
        """From a manifest's ``preprocess`` object, already checked by ``ManifestSchema``."""
        return cls((int(d["input_hw"][0]), int(d["input_hw"][1])), tuple(float(v) for v in d["mean"]),
                   tuple(float(v) for v in d["std"]), cast(ChannelOrder, str(d["channel_order"])))

    def as_card(self, card: ModelCard) -> ModelCard:
        """``card`` with this preprocessing (used to run edgeseg.preprocess with it)."""
        return card.replace(input_hw=self.input_hw, mean=self.mean, std=self.std,
                            channel_order=self.channel_order)


@dataclass(frozen=True)
class CalibSetOptions:
    """How to choose the images (``edgeseg calib-set`` takes its defaults from here).

    ``strategy`` None: ``class-balanced`` where the data has masks, else ``random`` (so a plain
    image folder works; the manifest records the strategy used). An explicit ``class-balanced``
    on data without masks is refused."""

    num: int = 300
    strategy: Strategy | None = None
    split: str = "train"
    seed: int = 0


@dataclass(frozen=True)
class ManifestImage:
    """One chosen image: ``path`` relative to the manifest's root, the SHA-256 of its bytes."""

    path: str
    sha256: str


@dataclass(frozen=True)
class ClassCoverage:
    """Of one class: how many chosen images contain it, next to how many candidate images do."""

    chosen_images: int
    all_images: int


@dataclass(frozen=True)
class CalibSetManifest:
    """A calibration set's manifest, as written to (and read from) its JSON file.

    A calibration set is not a model artifact, so the calib-set stage returns this record instead
    of a model card. JSON keys are the module docstring's; ``split``, ``seed`` and ``strategy`` may
    be absent in files of older versions (None / ``"?"``)."""

    root: str
    split: str | None
    strategy: str
    seed: int | None
    preprocess: Preprocess
    images: tuple[ManifestImage, ...]
    class_coverage: dict[str, ClassCoverage] | None
    set_sha256: str

    def to_json(self) -> dict[str, Any]:
        coverage = None if self.class_coverage is None else {
            name: {"chosen_images": c.chosen_images, "all_images": c.all_images}
            for name, c in self.class_coverage.items()}
        return {"format": FORMAT, "version": VERSION, "root": self.root, "split": self.split,
                "strategy": self.strategy, "seed": self.seed, "preprocess": self.preprocess.to_json(),
                "images": [{"path": e.path, "sha256": e.sha256} for e in self.images],
                "class_coverage": coverage, "set_sha256": self.set_sha256}

    @classmethod
    def from_json(cls, d: dict[str, Any], source: Path) -> CalibSetManifest:
        """From a manifest already checked by ``ManifestSchema`` (``source`` names it in errors)."""
        return cls(d["root"], d.get("split"), d.get("strategy", "?"), d.get("seed"),
                   Preprocess.from_json(d["preprocess"]),
                   tuple(ManifestImage(e["path"], e["sha256"]) for e in d["images"]),
                   _coverage_from_json(d.get("class_coverage"), source), d["set_sha256"])


def _coverage_from_json(value: Any, source: Path) -> dict[str, ClassCoverage] | None:
    if value is None:
        return None
    try:
        return {str(k): ClassCoverage(int(v["chosen_images"]), int(v["all_images"]))
                for k, v in value.items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        raise CalibrationError(f"calibration set {source}: class_coverage is not a map of class name -> "
                               "{chosen_images, all_images}; re-create the set with edgeseg calib-set"
                               ) from None


@dataclass(frozen=True)
class CalibSet:
    """A loaded, verified calibration set: absolute image paths in manifest order."""

    root: Path
    preprocess: Preprocess
    images: tuple[Path, ...]
    sha256s: tuple[str, ...]
    set_sha256: str
    strategy: str


def set_hash(preprocess: Preprocess, sha256s: list[str] | tuple[str, ...]) -> str:
    """The set's identity: preprocessing + ordered image content hashes (paths excluded)."""
    return sha256_json({"preprocess": preprocess.to_json(), "images": list(sha256s)})


def mask_fractions(masks: list[np.ndarray], num_values: int, ignore_index: int | None) -> np.ndarray:
    """(N, num_values) float64 pixel fractions per image; ignore pixels excluded."""
    import cv2
    import numpy as np

    f = np.zeros((len(masks), num_values), dtype=np.float64)
    for i, m in enumerate(masks):
        scale = _MASK_SIDE / max(m.shape[:2])
        if scale < 1:
            m = cv2.resize(m, (max(1, round(m.shape[1] * scale)), max(1, round(m.shape[0] * scale))),
                           interpolation=cv2.INTER_NEAREST)
        counts = np.bincount(m.ravel(), minlength=256)[:num_values].astype(np.float64)
        if ignore_index is not None and ignore_index < num_values:
            counts[ignore_index] = 0
        f[i] = counts / max(counts.sum(), 1.0)
    return f


def class_balanced_order(fractions: np.ndarray, num: int, seed: int) -> list[int]:
    """Greedy rare-class-first selection of ``num`` row indices (algorithm in module docstring)."""
    import numpy as np

    n = fractions.shape[0]
    share = fractions.sum(axis=0) / max(n, 1)
    weights = np.where(share > 0, 1.0 / np.clip(share, 1e-4, None), 0.0)
    present = fractions > _PRESENT
    jitter = np.random.default_rng(seed).random(n) * 1e-9
    covered = np.zeros(fractions.shape[1])
    chosen: list[int] = []
    free = np.ones(n, dtype=bool)
    for _ in range(num):
        score = (fractions * (weights / (1.0 + covered))).sum(axis=1) + jitter
        score[~free] = -np.inf
        i = int(np.argmax(score))
        chosen.append(i)
        free[i] = False
        covered += present[i]
    return chosen


def _coverage(fractions: np.ndarray, chosen: list[int], names: tuple[str, ...]) -> dict[str, ClassCoverage]:
    present = fractions > _PRESENT
    return {name: ClassCoverage(int(present[chosen, c].sum()), int(present[:, c].sum()))
            for c, name in enumerate(names)}


def _select(ds: Any, num: int, strategy: Strategy,
            seed: int) -> tuple[list[int], dict[str, ClassCoverage] | None]:
    import numpy as np

    n = len(ds)
    if strategy == "random":
        return sorted(np.random.default_rng(seed).choice(n, size=num, replace=False).tolist()), None
    if not ds.has_masks:
        raise CalibrationError(f"--strategy class-balanced needs masks but {ds.source} has none; "
                               "use --strategy random or point --data at a dataset with masks")
    info = ds.info
    masks = [ds.load_mask(mask) for _, mask in ds.pairs]
    fractions = mask_fractions(masks, info.num_classes, info.ignore_index)
    chosen = class_balanced_order(fractions, num, seed)
    return chosen, _coverage(fractions, chosen, tuple(info.class_names))


def make_calib_set(data: str | Path, preprocess: Preprocess, out: Path,
                   options: CalibSetOptions = CalibSetOptions()) -> tuple[Path, CalibSetManifest]:
    """Choose ``options.num`` images of ``data`` (any spec :func:`edgeseg.data.open_dataset` reads,
    or a plain image folder), hash them and write the manifest to ``out`` atomically.

    Returns ``(out, manifest)``. Raises CalibrationError / DataError with the fix; nothing is
    written then."""
    from edgeseg.data import open_dataset
    from edgeseg.data.datasets import SegDataset

    strategy, num, split = options.strategy, options.num, options.split
    if strategy is not None and strategy not in STRATEGIES:
        raise CalibrationError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if num < 1:
        raise CalibrationError(f"--num {num} is too small; expected at least 1 image")
    ds = open_dataset(str(data), split=split)
    if not isinstance(ds, SegDataset):  # the synthetic generator has no image files to hash
        raise CalibrationError(f"{data} has no image files to record in a calibration set; pass a "
                               "dataset folder, a .txt list file or an image folder")
    if num > len(ds):
        raise CalibrationError(f"{data} has only {len(ds)} images (split {split!r}) but --num {num} was "
                               f"asked; pass --num {len(ds)} or fewer, or add images")
    used: Strategy = strategy or ("class-balanced" if ds.has_masks else "random")
    chosen, coverage = _select(ds, num, used, options.seed)
    paths = [Path(ds.pairs[i][0]).resolve() for i in chosen]
    for p in paths:
        _check_image(p)
    root = Path(_common_root(paths))
    hashes = [sha256_file(p) for p in paths]
    images = tuple(ManifestImage(str(p.relative_to(root)), h) for p, h in zip(paths, hashes, strict=True))
    manifest = CalibSetManifest(str(root), split, used, options.seed, preprocess, images, coverage,
                                set_hash(preprocess, hashes))
    write_json_atomic(out, manifest.to_json())
    return Path(out), manifest


def _common_root(paths: list[Path]) -> str:
    return os.path.commonpath([str(p.parent) for p in paths])


def _check_image(path: Path) -> None:
    """Refuse files OpenCV cannot decode (named), so the manifest never lists unusable images."""
    import cv2

    if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
        raise DataError(f"cannot read image {path}: not a decodable image; remove it from the dataset "
                        "or replace it, then re-run edgeseg calib-set")


def load_calib_set(path: str | Path, *, root: str | Path | None = None, verify: bool = True) -> CalibSet:
    """Read a manifest; with ``verify`` re-hash every image and name missing/changed files.

    ``root`` relocates the images (the dataset moved). Raises CalibrationError / DataError.
    """
    path = Path(path)
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CalibrationError(f"cannot read calibration set {path} ({e}); expected a JSON manifest "
                               "written by edgeseg calib-set") from e
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CalibrationError(f"{path} is not an edgeseg calibration set (format {FORMAT!r}); create "
                               "one with edgeseg calib-set")
    from edgeseg.schema import ManifestSchema, validate

    v = validate(ManifestSchema, m, f"calibration set {path}", CalibrationError,
                 "re-create it with edgeseg calib-set")
    manifest = CalibSetManifest.from_json(v.model_dump(), path)
    pre = manifest.preprocess
    base = Path(root) if root is not None else Path(manifest.root)
    images = tuple(_inside_root(path, base, e.path) for e in manifest.images)
    hashes = tuple(e.sha256 for e in manifest.images)
    if set_hash(pre, hashes) != manifest.set_sha256:
        raise CalibrationError(f"calibration set {path} was edited: its set_sha256 does not match its "
                               "contents; re-create it with edgeseg calib-set")
    if verify:
        _verify_files(path, images, hashes)
    return CalibSet(base, pre, images, hashes, manifest.set_sha256, manifest.strategy)


def _inside_root(manifest: Path, root: Path, rel: str) -> Path:
    """``root / rel``, refused unless it stays inside ``root`` (no absolute paths, no ``..`` out,
    no symlink out): a manifest names images of its dataset, nothing else on the machine."""
    p = root / rel
    try:
        p.resolve().relative_to(root.resolve())
    except ValueError:
        raise CalibrationError(f"calibration set {manifest}: image path {rel!r} leaves the dataset root "
                               f"{root}; image paths must be relative and inside it; re-create the set "
                               "with edgeseg calib-set") from None
    return p


def _verify_files(manifest: Path, images: tuple[Path, ...], hashes: tuple[str, ...]) -> None:
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise DataError(f"calibration set {manifest}: {len(missing)} image(s) missing, e.g. "
                        f"{', '.join(missing[:3])}; restore them, pass --root if the dataset moved, "
                        "or re-create the set with edgeseg calib-set")
    changed = [str(p) for p, h in zip(images, hashes, strict=True) if sha256_file(p) != h]
    if changed:
        raise DataError(f"calibration set {manifest}: {len(changed)} image(s) changed since the manifest "
                        f"was written (SHA-256 mismatch): {', '.join(changed[:3])}"
                        f"{' ...' if len(changed) > 3 else ''}; restore them or re-create the set "
                        "with edgeseg calib-set")
