"""Shared fixtures: real datasets (skip with a reason when absent) and hardware markers."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("EDGESEG_DATASETS", REPO.parent / "shared" / "datasets"))


def _dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"dataset {name} not found at {path} (set EDGESEG_DATASETS to its parent folder)")
    return path


@pytest.fixture(scope="session")
def camvid_dir() -> Path:
    """../shared/datasets/camvid (CamVid, SegNet split, 11 classes + void 11)."""
    return _dataset("camvid")


@pytest.fixture(scope="session")
def dsb_dir() -> Path:
    """../shared/datasets/dsb2018 (nuclei, binary masks 0/255)."""
    return _dataset("dsb2018")


def _has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_trt = importlib.util.find_spec("tensorrt") is not None
    has_gpu = None
    for item in items:
        if "trt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason="TensorRT is not installed on this machine"))
        if "gpu" in item.keywords:
            if has_gpu is None:
                has_gpu = _has_cuda()
            if not has_gpu:
                item.add_marker(pytest.mark.skip(reason="no CUDA GPU on this machine"))
