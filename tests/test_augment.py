"""Joint image + mask augmentation: output size, label sets, padding, alignment, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.data.augment import AugmentConfig, eval_transform, train_transform
from edgeseg.errors import ConfigError

pytest.importorskip("albumentations")


def _blocks(h: int, w: int, labels: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A mask of vertical label stripes and an image whose blue channel encodes the label."""
    rng = np.random.default_rng(0)
    mask = np.array(labels, dtype=np.uint8)[(np.arange(w) * len(labels)) // w][None].repeat(h, 0)
    mask[rng.random((h, w)) < 0.05] = labels[0]  # isolated pixels: interpolation would blend them
    image = np.dstack([mask * 20, np.full_like(mask, 90), np.full_like(mask, 160)]).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("in_hw", [(60, 80), (300, 500), (90, 120)])
def test_train_output_size_and_label_set(in_hw: tuple[int, int]) -> None:
    labels = (0, 3, 7, 10)
    image, mask = _blocks(*in_hw, labels)
    tf = train_transform((90, 120), ignore_index=11, seed=0)
    for _ in range(10):
        out_img, out_mask = tf(image, mask)
        assert out_img.shape == (90, 120, 3) and out_img.dtype == np.uint8
        assert out_mask.shape == (90, 120) and out_mask.dtype == np.uint8
        assert set(np.unique(out_mask).tolist()) <= set(labels) | {11}


def test_padding_fills_masks_with_ignore_index_or_background() -> None:
    image, mask = _blocks(40, 40, (1, 2))
    small = AugmentConfig(scale=(0.5, 0.5))
    _, padded = train_transform((40, 40), ignore_index=255, config=small, seed=1)(image, mask)
    assert (padded == 255).sum() == 40 * 40 - 20 * 20
    _, padded0 = train_transform((40, 40), config=small, seed=1)(image, mask)
    assert set(np.unique(padded0).tolist()) == {0, 1, 2}


def test_image_and_mask_stay_aligned_in_bgr_order() -> None:
    image, mask = _blocks(48, 64, (0, 2, 5, 9))
    cfg = AugmentConfig(scale=(1.0, 1.0), hflip=1.0, vflip=1.0, jitter_p=0.0)
    out_img, out_mask = train_transform((48, 64), config=cfg, seed=0)(image, mask)
    np.testing.assert_array_equal(out_mask, mask[::-1, ::-1])
    np.testing.assert_array_equal(out_img[..., 0], out_mask * 20)  # blue channel still first
    assert (out_img[..., 2] == 160).all()


def test_seeded_transforms_repeat_and_jitter_changes_colours() -> None:
    image, mask = _blocks(48, 64, (0, 1))
    a = train_transform((48, 64), seed=7)
    b = train_transform((48, 64), seed=7)
    for _ in range(3):
        (ia, ma), (ib, mb) = a(image, mask), b(image, mask)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ma, mb)
    cfg = AugmentConfig(scale=(1.0, 1.0), hflip=0.0, jitter_p=1.0)
    jittered, _ = train_transform((48, 64), config=cfg, seed=3)(image, mask)
    assert not np.array_equal(jittered, image)
    only_image, none_mask = a(image, None)
    assert only_image.shape == (48, 64, 3) and none_mask is None


def test_eval_transform_resizes_masks_with_nearest() -> None:
    image, mask = _blocks(100, 130, (0, 4, 8))
    out_img, out_mask = eval_transform((50, 64))(image, mask)
    assert out_img.shape == (50, 64, 3) and out_mask.shape == (50, 64)
    assert set(np.unique(out_mask).tolist()) <= {0, 4, 8}
    same_img, same_mask = eval_transform((100, 130))(image, mask)
    assert same_img is image and same_mask is mask


def test_bad_augment_settings() -> None:
    with pytest.raises(ConfigError, match="scale"):
        AugmentConfig(scale=(1.5, 0.5))
    with pytest.raises(ConfigError, match="probability"):
        AugmentConfig(hflip=2.0)
    with pytest.raises(ConfigError, match="height, width"):
        eval_transform((10,))
