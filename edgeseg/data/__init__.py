"""Datasets, augmentation and the synthetic scene generator (readers are torch-free).

``open_dataset(spec, split)`` -> a dataset with ``.info`` (:class:`DatasetInfo`), ``len()`` and
``[i]`` -> :class:`Sample`. Augmentation lives in :mod:`edgeseg.data.augment` (albumentations,
``[train]`` extra), the scene generator in :mod:`edgeseg.data.synthetic`.
"""

from edgeseg.data.datasets import SegDataset, open_dataset
from edgeseg.data.known import DatasetInfo
from edgeseg.data.sample import Dataset, Sample

__all__ = ["Dataset", "DatasetInfo", "Sample", "SegDataset", "open_dataset"]
