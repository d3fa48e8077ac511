"""The synthetic scene generator: exact masks, determinism, motion, small objects, dataset splits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeseg.data import open_dataset
from edgeseg.data.synthetic import DOT, SYNTHETIC_INFO, SyntheticScenes
from edgeseg.errors import ConfigError, DataError

HW = (120, 160)


def test_frame_shapes_and_classes() -> None:
    scene = SyntheticScenes(HW, seed=3)
    seen: set[int] = set()
    for t in range(0, 200, 20):
        s = scene.frame(t)
        assert s.image_bgr.shape == (*HW, 3) and s.image_bgr.dtype == np.uint8
        assert s.mask.shape == HW and s.mask.dtype == np.uint8
        seen |= set(np.unique(s.mask).tolist())
    assert seen == set(range(SYNTHETIC_INFO.num_classes))
    assert scene.info.class_names == ("background", "disk", "rectangle", "triangle", "dot")


def test_mask_is_exactly_what_the_shapes_painted() -> None:
    scene = SyntheticScenes((360, 480), seed=1)
    painted = scene.frame(7)
    scene._shapes = []  # same background and grain, no shapes
    empty = scene.frame(7)
    changed = np.any(painted.image_bgr != empty.image_bgr, axis=2)
    np.testing.assert_array_equal(changed, painted.mask != 0)


def test_deterministic_per_seed_and_t() -> None:
    a, b = SyntheticScenes(HW, seed=5), SyntheticScenes(HW, seed=5)
    later = a.frame(40)
    first = b.frame(3)
    np.testing.assert_array_equal(b.frame(40).image_bgr, later.image_bgr)
    np.testing.assert_array_equal(a.frame(3).mask, first.mask)
    assert not np.array_equal(SyntheticScenes(HW, seed=6).frame(3).image_bgr, first.image_bgr)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_objects_move_a_little_per_frame_and_wrap() -> None:
    scene = SyntheticScenes((360, 480), seed=2)
    m0, m1, m60 = (scene.frame(t).mask != 0 for t in (0, 1, 60))
    assert not np.array_equal(m0, m1)
    assert _iou(m0, m1) > 0.8 > _iou(m0, m60)
    assert (scene.frame(10**6).mask != 0).sum() > 0.01 * m0.size  # objects re-enter after leaving


def test_small_objects_are_small() -> None:
    s = SyntheticScenes((360, 480), seed=4).frame(0)
    n, _, stats, _ = cv2.connectedComponentsWithStats((s.mask == DOT).astype(np.uint8))
    areas = stats[1:, cv2.CC_STAT_AREA]
    assert n > 3 and areas.max() < 100  # a few pixels across at 360x480


def test_synthetic_dataset_splits_and_options() -> None:
    train = open_dataset("synthetic", "train", hw=HW, num=4, seed=1)
    val = open_dataset("synthetic", "val", hw=HW, num=4, seed=1)
    assert len(train) == 4 and train.info == SYNTHETIC_INFO
    np.testing.assert_array_equal(train[2].image_bgr, open_dataset("synthetic", "train", hw=HW, num=4,
                                                                   seed=1)[2].image_bgr)
    assert not np.array_equal(train[0].image_bgr, val[0].image_bgr)
    assert not np.array_equal(train[0].image_bgr, train[1].image_bgr)
    assert [s.mask.shape for s in train] == [HW] * 4
    with pytest.raises(IndexError):
        train[4]
    with pytest.raises(DataError, match="unknown split 'vall'.*did you mean 'val'"):
        open_dataset("synthetic", "vall")
    with pytest.raises(ConfigError, match="unknown synthetic dataset option 'sed'.*did you mean 'seed'"):
        open_dataset("synthetic", sed=1)
    with pytest.raises(ConfigError, match="too small"):
        open_dataset("synthetic", hw=(8, 8))
    with pytest.raises(ConfigError, match="at least 1"):
        open_dataset("synthetic", num=0)
