"""What every dataset yields (:class:`Sample`) and offers (:class:`Dataset`): the file readers of
``datasets.py`` and the generator of ``synthetic.py`` both build on it (neither imports the other
for it). numpy only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgeseg.data.known import DatasetInfo


@dataclass(frozen=True)
class Sample:
    """One example: ``image_bgr`` HxWx3 uint8 (OpenCV order), ``mask`` HxW uint8 label ids
    (the ignore index may occur) or None, ``name`` the image's stem."""

    image_bgr: np.ndarray
    mask: np.ndarray | None
    name: str


class Dataset(Protocol):
    """What every dataset offers (readers here and the synthetic generator)."""

    info: DatasetInfo

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Sample: ...
