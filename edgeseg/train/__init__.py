"""Training: ``TrainConfig`` (torch-free) and ``train`` (imports torch when called)."""

from __future__ import annotations

from typing import Any

from edgeseg.train.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`edgeseg.train.loop.train`."""
    from edgeseg.train.loop import train as _train

    return _train(*args, **kwargs)
