"""Training: ``TrainConfig`` and ``TrainSummary`` (torch-free records); the loop that imports torch
is :func:`edgeseg.train.loop.train`.

This package module imports nothing that imports it back (``loop`` and ``start`` import
``edgeseg.train.dist``/``state``, so re-exporting ``train`` here would close a cycle).
"""

from __future__ import annotations

from edgeseg.train.config import TrainConfig
from edgeseg.train.history import TrainSummary

__all__ = ["TrainConfig", "TrainSummary"]
