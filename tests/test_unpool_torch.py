"""Training-mode unpool equals F.max_unpool2d; native mode equals it bit-exactly, ties included."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from edgeseg.unpool.reference import max_unpool2x2_ref  # noqa: E402
from edgeseg.unpool.torch_op import max_pool2x2, max_unpool2x2, unpool_mode  # noqa: E402


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 4, 7, 9), (3, 1, 2, 2)])
@pytest.mark.parametrize("ties", [False, True])
def test_modes_agree_with_max_unpool2d(shape, ties):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    if ties:
        x = torch.round(x)  # many equal values inside windows
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    y = torch.randn(pooled.shape, generator=g)
    ref = F.max_unpool2d(y, idx, 2, 2, output_size=x.shape[-2:])
    p2, i2 = max_pool2x2(x)
    assert torch.equal(p2, pooled)
    assert torch.equal(max_unpool2x2(y, x, i2), ref)
    with unpool_mode("native"):
        p3, i3 = max_pool2x2(x)
        assert i3 is None and torch.equal(p3, pooled)
        assert torch.equal(max_unpool2x2(y, x, None), ref)
    np.testing.assert_array_equal(max_unpool2x2_ref(x.numpy(), y.numpy()), ref.numpy())
