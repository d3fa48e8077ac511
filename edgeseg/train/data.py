"""Torch side of the data: samples from ``edgeseg.data`` -> augmented, normalized tensors.

Determinism (what makes ``--resume`` exact and the worker count irrelevant): the order of an
epoch is a permutation drawn from ``(seed, epoch)`` and every sample's augmentation is seeded
from ``(seed, epoch, position)``; the sampler yields ``(index, sample_seed)`` pairs, so resuming at
step k of an epoch simply starts the sampler at position ``k * batch``.

Data parallel (``rank`` of ``world`` processes): the epoch's order is the same on every rank and
each global batch of ``batch`` positions is cut into ``world`` contiguous pieces of
``batch / world``; rank r takes piece r. The union of the ranks' batches of a step is therefore
the single-process batch of that step, with the same per-sample augmentation seeds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from edgeseg.card import ModelCard
from edgeseg.data.augment import Transform
from edgeseg.errors import DataError
from edgeseg.preprocess import normalize_hwc, resize_mask, to_input_hwc
from edgeseg.train.config import TrainConfig


def seeded_call(transform: Transform, seed: int, image: np.ndarray, mask: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``transform`` with all its randomness fixed by ``seed``.

    The edgeseg albumentations wrapper keeps its own generators (``set_seed``); plain callables
    get Python's and numpy's global generators seeded too.
    """
    setter = getattr(transform, "set_seed", None) or getattr(transform, "set_random_seed", None)
    if callable(setter):
        setter(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    return transform(image, mask)


class TorchSegDataset(Dataset):
    """(image float32 3xHxW normalized like ``edgeseg.preprocess``, mask int64 HxW) pairs.

    ``dataset``: an ``edgeseg.data`` dataset; ``transform``: joint (image_bgr, mask) transform
    whose output is ``card.input_hw`` (or None: resize only). Items are addressed by
    ``(index, seed)`` pairs (see :class:`EpochSampler`) or plain indices (seed 0).
    """

    def __init__(self, dataset: Any, card: ModelCard, transform: Transform | None) -> None:
        self.dataset = dataset
        self.card = card
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        sample = self.dataset[index]
        if sample.mask is None:
            raise DataError(f"image {sample.name} has no mask; training and evaluation need a mask "
                            "for every image (use a list file of 'image mask' pairs)")
        image, mask = sample.image_bgr, sample.mask
        if self.transform is not None:
            image, moved = seeded_call(self.transform, seed, image, mask)
            if moved is None:
                raise DataError(f"the training transform dropped the mask of image {sample.name}; a joint "
                                "transform must return the mask it is given")
            mask = moved
        x = normalize_hwc(to_input_hwc(image, self.card), self.card)[0]
        y = resize_mask(mask, self.card.input_hw).astype(np.int64)
        return torch.from_numpy(x), torch.from_numpy(y)


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed)`` for one epoch's permutation, from position ``start`` on.

    With ``world`` > 1 only the positions of rank ``rank``: within every global batch of
    ``batch`` positions, the ``rank``-th run of ``batch // world``; ``stop`` ends the epoch early
    (training drops the incomplete last global batch).
    """

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True, *,
                 rank: int = 0, world: int = 1, batch: int = 1, stop: int | None = None) -> None:
        self.n, self.seed, self.epoch, self.start, self.shuffle = n, seed, epoch, start, shuffle
        self.rank, self.world, self.batch = rank, world, batch
        self.stop = n if stop is None else min(stop, n)

    def order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def _mine(self, pos: int) -> bool:
        return self.world == 1 or (pos % self.batch) // (self.batch // self.world) == self.rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = (self.seed * 1_000_003 + self.epoch) * 10_000_019
        order = self.order()
        for pos in range(self.start, self.stop):
            if self._mine(pos):
                yield int(order[pos]), int((base + pos) % (2**31 - 1))

    def __len__(self) -> int:
        return sum(1 for pos in range(self.start, self.stop) if self._mine(pos))


def make_loader(ds: TorchSegDataset, cfg: TrainConfig, *, epoch: int, start_step: int, train: bool,
                rank: int = 0, world: int = 1) -> DataLoader:
    """A loader for one epoch (this rank's share of it); training drops the last incomplete batch
    (BatchNorm). ``cfg.batch`` is the global batch; each of ``world`` ranks loads a ``1/world`` share."""
    stop = (len(ds) // cfg.batch) * cfg.batch if train else None
    sampler = EpochSampler(len(ds), cfg.seed, epoch, start_step * cfg.batch if train else 0,
                           shuffle=train, rank=rank, world=world, batch=cfg.batch, stop=stop)
    # Its own generator: the loader's worker base seed must not draw from the global RNG, which
    # belongs to the model (dropout) and is saved/restored with the training state.
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    return DataLoader(ds, batch_size=cfg.batch // world, sampler=sampler, drop_last=train,
                      num_workers=cfg.workers, pin_memory=torch.cuda.is_available(),
                      persistent_workers=False, generator=generator)


def steps_per_epoch(n: int, batch: int, source: str) -> int:
    """Full batches per epoch; DataError if the training set is smaller than one batch."""
    if n < batch:
        raise DataError(f"training set {source} has {n} image(s), fewer than --batch {batch}; "
                        f"use --batch {max(1, n)} or more data")
    return n // batch
