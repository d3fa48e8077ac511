"""edgeseg.losses: values on hand-checkable cases, gradients, ignore_index, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeseg.errors import ConfigError, DataError  # noqa: E402
from edgeseg.losses import build_loss, loss_args, loss_names  # noqa: E402

LN3 = math.log(3.0)


def _binary_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Two pixels, K=2: pixel a has p(1)=3/4 and target 1, pixel b has p(1)=1/4 and target 0 ...
    plus pixel c with p(1)=3/4 and target 0 (a mistake). Logit differences are +-ln 3."""
    logits = torch.tensor([[0.0, LN3], [LN3, 0.0], [0.0, LN3]]).T.reshape(1, 2, 1, 3)
    target = torch.tensor([[[1, 0, 0]]])
    return logits, target


def test_names() -> None:
    assert loss_names() == ["balanced-ce", "bce-dice", "ce", "dice", "weighted-ce"]


def test_ce_value() -> None:
    logits, target = _binary_case()
    loss = build_loss("ce", num_classes=2)(logits, target)
    expected = (-math.log(3 / 4) - math.log(3 / 4) - math.log(1 / 4)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    uniform = build_loss("ce", num_classes=5)(torch.zeros(2, 5, 3, 4), torch.randint(0, 5, (2, 3, 4)))
    assert uniform.item() == pytest.approx(math.log(5), rel=1e-6)


def test_ce_matches_torch_with_ignore() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    target = torch.randint(0, 5, (2, 5, 6), generator=g)  # 4 = ignore
    ours = build_loss("ce", num_classes=4, ignore_index=4)(logits, target)
    ref = torch.nn.functional.cross_entropy(logits, target, ignore_index=4)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    w = [0.5, 2.0, 1.0, 3.0]
    ours_w = build_loss("weighted-ce", num_classes=4, ignore_index=4, class_weights=w)(logits, target)
    ref_w = torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=4)
    assert ours_w.item() == pytest.approx(ref_w.item(), rel=1e-6)


def test_weighted_ce_hand_value_and_median_frequency() -> None:
    logits, target = _binary_case()
    loss = build_loss("weighted-ce", num_classes=2, class_weights=[1.0, 3.0])(logits, target)
    # weights: a (t=1) 3, b (t=0) 1, c (t=0) 1
    expected = (3 * -math.log(3 / 4) + -math.log(3 / 4) + -math.log(1 / 4)) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    masks = [np.array([[0, 0], [0, 1]], np.uint8), np.array([[0, 2], [2, 2]], np.uint8)]
    mf = build_loss("weighted-ce", num_classes=3, label_maps=masks)
    assert mf.config["class_weights"] == pytest.approx([1.0, 2.0, 2 / 3], abs=1e-6)


def test_balanced_ce_value() -> None:
    logits, target = _binary_case()
    beta = 0.8
    loss = build_loss("balanced-ce", num_classes=2, beta=beta)(logits, target)
    # Eq. 2: a positive (beta), b and c negative (1 - beta); mean over 3 pixels
    expected = (beta * -math.log(3 / 4) + (1 - beta) * (-math.log(3 / 4) - math.log(1 / 4))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # beta = 1/2 is half the plain CE
    half = build_loss("balanced-ce", num_classes=2, beta=0.5)(logits, target)
    ce = build_loss("ce", num_classes=2)(logits, target)
    assert half.item() == pytest.approx(ce.item() / 2, rel=1e-6)


def test_balanced_ce_binary_equals_sigmoid_form() -> None:
    """K=2 softmax reading equals the paper's binary Eq. 1-2 written with a sigmoid."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 4, 4, generator=g)
    target = torch.randint(0, 2, (2, 4, 4), generator=g)
    beta = 0.3
    p = torch.sigmoid(logits[:, 1] - logits[:, 0])
    pt = torch.where(target == 1, p, 1 - p)
    bt = torch.where(target == 1, torch.tensor(beta), torch.tensor(1 - beta))
    expected = (-bt * torch.log(pt)).mean()
    got = build_loss("balanced-ce", num_classes=2, beta=beta)(logits, target)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_dice_value() -> None:
    logits, target = _binary_case()
    # p(1) = .75 .25 .75; t1 = 1 0 0.  class 1: inter .75, sum t^2 = 1, sum p^2 = .5625+.0625+.5625
    # class 0: p(0) = .25 .75 .25, t0 = 0 1 1: inter 1.0, sum t^2 = 2, sum p^2 = .0625+.5625+.0625
    d1 = 2 * 0.75 / (1 + 1.1875)
    d0 = 2 * 1.0 / (2 + 0.6875)
    loss = build_loss("dice", num_classes=2, smooth=0.0)(logits, target)
    assert loss.item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-6)
    weighted = build_loss("dice", num_classes=2, smooth=0.0, class_weights=[1, 3])(logits, target)
    assert weighted.item() == pytest.approx(1 - (0.25 * d0 + 0.75 * d1), rel=1e-6)
    smoothed = build_loss("dice", num_classes=2, smooth=1.0)(logits, target)
    s1, s0 = (1.5 + 1) / (2.1875 + 1), (2.0 + 1) / (2.6875 + 1)
    assert smoothed.item() == pytest.approx(1 - (s0 + s1) / 2, rel=1e-6)


def test_bce_dice_is_beta_bce_plus_dice() -> None:
    logits, target = _binary_case()
    kw = {"num_classes": 2, "smooth": 0.0}
    total = build_loss("bce-dice", alpha=0.6, beta=2.0, dice_weights=[1, 3], **kw)(logits, target)
    bce = build_loss("balanced-ce", num_classes=2, beta=0.6)(logits, target)
    dice = build_loss("dice", class_weights=[1, 3], **kw)(logits, target)
    assert total.item() == pytest.approx(2.0 * bce.item() + dice.item(), rel=1e-6)


def test_perfect_prediction_gives_small_loss() -> None:
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(2))
    logits = 50.0 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    for name in loss_names():
        kw = {"class_weights": [1, 1, 1]} if name == "weighted-ce" else {}
        assert build_loss(name, num_classes=3, **kw)(logits, target).item() < 1e-6, name


def _all_losses(k: int, ignore: int) -> dict[str, torch.nn.Module]:
    extra = {"weighted-ce": {"class_weights": [0.5 + i for i in range(k)]}}
    return {n: build_loss(n, num_classes=k, ignore_index=ignore, **extra.get(n, {})) for n in loss_names()}


@pytest.mark.parametrize("ignore", [255, 1])
def test_ignored_pixels_change_nothing(ignore: int) -> None:
    """Changing logits where the target is ignored changes neither the loss nor any gradient,
    and those pixels get exactly zero gradient (ignore 1 is inside the class range)."""
    g = torch.Generator().manual_seed(3)
    k = 4
    target = torch.randint(0, k, (2, 6, 7), generator=g)
    ignored = torch.rand(2, 6, 7, generator=g) < 0.3
    target[ignored] = ignore
    ignored = target == ignore
    base = torch.randn(2, k, 6, 7, generator=g)
    changed = base.clone()
    changed[ignored.unsqueeze(1).expand_as(changed)] = 1e4 * torch.randn(int(ignored.sum()) * k, generator=g)
    for name, loss_fn in _all_losses(k, ignore).items():
        results = []
        for logits in (base, changed):
            x = logits.clone().requires_grad_(True)
            loss = loss_fn(x, target)
            loss.backward()
            results.append((loss.detach(), x.grad))
        (l0, g0), (l1, g1) = results
        assert torch.equal(l0, l1), name
        assert torch.equal(g0, g1), name
        assert torch.all(g0[ignored.unsqueeze(1).expand_as(g0)] == 0), name
        assert g0.abs().sum() > 0, name


def test_all_ignored_gives_zero_not_nan() -> None:
    target = torch.full((1, 3, 3), 255)
    for name, loss_fn in _all_losses(3, 255).items():
        x = torch.randn(1, 3, 3, 3, requires_grad=True)
        loss = loss_fn(x, target)
        loss.backward()
        assert loss.item() == 0.0, name
        assert torch.all(x.grad == 0), name


def test_gradients_flow_and_training_step_reduces_loss() -> None:
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    for name, loss_fn in _all_losses(3, 255).items():
        logits = torch.randn(2, 3, 8, 8, generator=g, requires_grad=True)
        opt = torch.optim.SGD([logits], lr=1.0)
        first = loss_fn(logits, target)
        first.backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0, name
        opt.step()
        assert loss_fn(logits, target).item() < first.item(), name


def test_half_precision_logits() -> None:
    logits = torch.randn(1, 3, 4, 4).half()
    target = torch.randint(0, 3, (1, 4, 4))
    for name, loss_fn in _all_losses(3, 255).items():
        out = loss_fn(logits, target)
        assert out.dtype == torch.float32 and torch.isfinite(out), name


def test_unknown_name_and_argument() -> None:
    with pytest.raises(ConfigError, match=r"unknown loss 'bce_dice' \(did you mean 'bce-dice'\?\); valid"):
        build_loss("bce_dice", num_classes=2)
    with pytest.raises(ConfigError, match=r"no argument 'alpah' \(did you mean 'alpha'\?\).*beta"):
        build_loss("bce-dice", num_classes=2, alpah=0.5)
    with pytest.raises(ConfigError, match="no argument 'beta'"):
        build_loss("ce", num_classes=2, beta=0.5)
    assert loss_args("bce-dice") == ["alpha", "beta", "dice_weights", "smooth", "background_index"]


@pytest.mark.parametrize(
    ("name", "kw", "match"),
    [
        ("balanced-ce", {"beta": 1.5}, r"beta must be a number in \[0, 1\]"),
        ("bce-dice", {"alpha": -0.1}, "alpha"),
        ("bce-dice", {"beta": -1.0}, "beta"),
        ("bce-dice", {"background_index": 5}, "background_index"),
        ("dice", {"class_weights": [1, 2]}, "2 entries for 3 classes"),
        ("dice", {"class_weights": [0, 0, 0]}, "not all 0"),
        ("dice", {"smooth": -1}, "smooth"),
        ("weighted-ce", {}, "exactly one of"),
        ("weighted-ce", {"class_weights": [1, 1, float("nan")]}, "finite"),
    ],
)
def test_bad_arguments(name: str, kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_loss(name, num_classes=3, **kw)


def test_bad_targets_and_shapes() -> None:
    loss_fn = build_loss("ce", num_classes=3, ignore_index=255)
    msg = r"values \[7\] outside the class range 0..2 and not ignore_index 255"
    with pytest.raises(DataError, match=msg):
        loss_fn(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 7], [255, 1]]]))
    with pytest.raises(DataError, match="target shape"):
        loss_fn(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"logits must be \(N, 3, H, W\)"):
        loss_fn(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(DataError, match="integer class ids"):
        loss_fn(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ConfigError, match="num_classes"):
        build_loss("ce", num_classes=1)


@pytest.mark.gpu
def test_cuda_autocast_matches_cpu() -> None:
    """On a CUDA host: every loss under fp16 autocast equals its CPU float32 value (loose tolerance
    for the fp16 logits) and back-propagates finite gradients."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 16, 16, generator=g)
    target = torch.randint(0, 4, (2, 16, 16), generator=g)  # 3 = ignore
    for name, loss_fn in _all_losses(3, 3).items():
        cpu = loss_fn(logits.half().float(), target)
        x = logits.cuda().requires_grad_(True)
        with torch.autocast("cuda", dtype=torch.float16):
            gpu = loss_fn.cuda()(x.half(), target.cuda())
        gpu.backward()
        assert gpu.item() == pytest.approx(cpu.item(), rel=1e-3, abs=1e-4), name
        assert torch.isfinite(x.grad).all(), name
