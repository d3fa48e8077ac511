"""Dataset descriptions: class names, display colours and ignore index (torch-free).

A :class:`DatasetInfo` travels with the data into the model card. It is chosen, in this order:

1. ``classes.json`` in the dataset folder (explicit always wins), format::

       {
         "name": "roads",                          # optional, default: the folder name
         "class_names": ["background", "car"],     # required, class id i = position i
         "class_colors": [[0, 0, 0], [255, 0, 0]], # optional RGB triples, default: a palette
         "ignore_index": 255,                      # optional, default null (no ignored label)
         "mask_values": [0, 255]                   # optional: pixel value that stores class i
       }

   ``mask_values`` serves masks that store labels as other values than 0..K-1 (0/255 binary
   masks); without it class i is stored as value i. The ignore index is stored as itself.
2. A built-in description when the folder is recognised (:data:`KNOWN`): CamVid (SegNet split)
   by its frame names, DSB2018 by its 64-hex-digit image ids.
3. A generic description from the label values found in the masks (see ``generic_info``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from edgeseg.errors import DataError, did_you_mean

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class DatasetInfo:
    """What the labels of a dataset mean.

    ``class_names[i]`` and ``class_colors[i]`` (RGB) describe label id ``i``; ``ignore_index`` is
    the label value excluded from losses and metrics (None when the dataset has none). It may lie
    outside ``0..num_classes-1`` (CamVid: 11 for 11 classes).
    """

    name: str
    class_names: tuple[str, ...]
    class_colors: tuple[RGB, ...]
    ignore_index: int | None = None

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.class_colors):
            raise DataError(
                f"dataset {self.name!r} has {len(self.class_names)} class names but "
                f"{len(self.class_colors)} colours; give one RGB colour per class"
            )
        for c in self.class_colors:
            if len(c) != 3 or not all(0 <= int(v) <= 255 for v in c):
                raise DataError(f"dataset {self.name!r}: colour {list(c)} is not an RGB triple 0..255")
        if self.ignore_index is not None and not 0 <= self.ignore_index <= 255:
            raise DataError(f"dataset {self.name!r}: ignore_index {self.ignore_index} is not in 0..255 "
                            "(masks are uint8)")
        if self.ignore_index is not None and self.ignore_index < self.num_classes:
            raise DataError(f"dataset {self.name!r}: ignore_index {self.ignore_index} is also a class "
                            f"id (0..{self.num_classes - 1}); use a value >= {self.num_classes}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "class_names": list(self.class_names),
                "class_colors": [list(c) for c in self.class_colors], "ignore_index": self.ignore_index}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        """Inverse of :meth:`to_dict`; also accepts a model card dict (``name`` optional)."""
        return cls(name=str(d.get("name", "dataset")), class_names=tuple(str(n) for n in d["class_names"]),
                   class_colors=tuple(_rgb(c) for c in d["class_colors"]),
                   ignore_index=None if d.get("ignore_index") is None else int(d["ignore_index"]))


def palette(n: int) -> tuple[RGB, ...]:
    """``n`` distinct RGB colours (the PASCAL VOC bit-interleaved palette; 0 is black)."""
    colors = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


CAMVID = DatasetInfo(
    name="camvid",
    class_names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                 "Car", "Pedestrian", "Bicyclist"),
    class_colors=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                  (0, 128, 192)),
    ignore_index=11,
)
# void/"Unlabelled" (label 11) is drawn black, as in the SegNet tutorial.
def _rgb(values: Any) -> RGB:
    """``values`` as a tuple of ints, typed as RGB: DatasetInfo.__post_init__ checks the length."""
    return cast(RGB, tuple(int(v) for v in values))


CAMVID_VOID_COLOR: RGB = (0, 0, 0)

DSB2018 = DatasetInfo(
    name="dsb2018",
    class_names=("background", "nucleus"),
    class_colors=((0, 0, 0), (255, 255, 0)),
    ignore_index=None,
)
DSB2018_MASK_VALUES = (0, 255)

_CAMVID_FRAME = re.compile(r"^(0001TP|0006R0|0016E5|Seq05VD)_f?\d+$")
_DSB_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class KnownDataset:
    """A built-in description and how to recognise its folder from the image stems it holds."""

    info: DatasetInfo
    mask_values: tuple[int, ...] | None
    matches: Callable[[Sequence[str]], bool]


def _all_match(pattern: re.Pattern[str]) -> Callable[[Sequence[str]], bool]:
    return lambda stems: bool(stems) and all(pattern.match(s) for s in stems[:50])


KNOWN: tuple[KnownDataset, ...] = (
    KnownDataset(CAMVID, None, _all_match(_CAMVID_FRAME)),
    KnownDataset(DSB2018, DSB2018_MASK_VALUES, _all_match(_DSB_ID)),
)


def recognise(stems: Sequence[str]) -> KnownDataset | None:
    """The built-in dataset whose image names these are, or None."""
    for known in KNOWN:
        if known.matches(stems):
            return known
    return None


_CLASSES_KEYS = ("name", "class_names", "class_colors", "ignore_index", "mask_values")


def read_classes_json(path: Path, default_name: str) -> tuple[DatasetInfo, tuple[int, ...] | None]:
    """Parse a ``classes.json`` (format in the module docstring) -> (info, mask_values or None)."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e}); fix it or delete it to use the defaults") from e
    if not isinstance(d, dict) or "class_names" not in d:
        raise DataError(f"{path} needs an object with a 'class_names' list; see edgeseg.data.known")
    unknown = sorted(set(d) - set(_CLASSES_KEYS))
    if unknown:
        raise DataError(f"{path}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], _CLASSES_KEYS)}; "
                        f"valid keys: {', '.join(_CLASSES_KEYS)}")
    names = tuple(str(n) for n in d["class_names"])
    if not names:
        raise DataError(f"{path}: 'class_names' is empty; list one name per class id")
    colors = d.get("class_colors") or palette(len(names))
    try:
        info = DatasetInfo(name=str(d.get("name") or default_name), class_names=names,
                           class_colors=tuple(_rgb(c) for c in colors),
                           ignore_index=None if d.get("ignore_index") is None else int(d["ignore_index"]))
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    values = d.get("mask_values")
    if values is not None:
        values = tuple(int(v) for v in values)
        in_range = all(0 <= v <= 255 for v in values)
        if len(values) != len(names) or len(set(values)) != len(values) or not in_range:
            raise DataError(f"{path}: 'mask_values' must list {len(names)} distinct values 0..255, "
                            f"one per class; got {list(values)}")
        if info.ignore_index is not None and info.ignore_index in values:
            raise DataError(f"{path}: ignore_index {info.ignore_index} is also in 'mask_values'")
    return info, values


def generic_info(name: str, values: set[int]) -> tuple[DatasetInfo, tuple[int, ...] | None]:
    """A description from the label values found in the masks -> (info, mask_values or None).

    Values within {0, 255}: binary (background, foreground), 255 stores class 1. Otherwise
    255 (if present) is the ignore index and the classes are 0..max(other values).
    """
    if values <= {0, 255}:
        return DatasetInfo(name, ("background", "foreground"), palette(2)[:1] + ((255, 255, 255),)), (0, 255)
    ignore = 255 if 255 in values else None
    k = max(values - {255}) + 1
    return DatasetInfo(name, tuple(f"class{i}" for i in range(k)), palette(k), ignore), None
