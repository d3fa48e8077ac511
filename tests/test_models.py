"""The five seed models: shapes, forward+backward, parameter figures, unpool modes, bad input."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgeseg.errors import ConfigError  # noqa: E402
from edgeseg.models import build_model, check_input_hw, get_spec, model_names  # noqa: E402
from edgeseg.models.blocks import param_count  # noqa: E402
from edgeseg.unpool.torch_op import unpool_mode  # noqa: E402

VARIANTS = [
    ("segnet", {}),
    ("segnet-basic", {}),
    ("res-segnet", {}),
    ("unet", {}),
    ("lite-unet", {}),
    ("lite-unet", {"encoder": "resnet34"}),
    ("lite-unet", {"deep_skip": False}),
    ("lite-unet", {"encoder": "resnet34", "deep_skip": False}),
    ("enet", {}),
]


def test_all_five_registered():
    assert model_names() == ["enet", "lite-unet", "res-segnet", "segnet", "segnet-basic", "unet"]


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS)
def test_forward_backward_cpu(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, **kwargs).train()
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 5, 64, 64)
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), "every parameter takes part in the forward"
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_in_channels_respected():
    model = build_model("res-segnet", num_classes=2, in_channels=1)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_segnet_basic_matches_paper_param_count():
    # SegNet paper, Table 1: SegNet-Basic has 1.425 M parameters (CamVid, 11 classes).
    n = param_count(build_model("segnet-basic", num_classes=11))
    assert abs(n - 1.425e6) / 1.425e6 < 0.05, n


def test_lite_unet_decoder_matches_eq2():
    """Conv weights of each deep-skip decoder level equal seed 003 Eq. 2 (b = 8, j_r = 3, B = 5)."""
    model = build_model("lite-unet", num_classes=2)
    b, jr, big_b = 8, 3, 5
    for u in range(1, big_b):
        level = model.decoder.levels[u - 1]
        weights = sum(m.weight.numel() for m in level.modules() if isinstance(m, torch.nn.Conv2d))
        eq2 = (sum(2 ** (j - u) for j in range(u, big_b)) + big_b - u + 4) * 2 ** (2 * u - 2)
        assert weights == eq2 * b * b * jr * jr, u
        n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in level.modules())
        assert n_convs == big_b - u + 3  # "B-u+3 convolutional operations"


def test_deep_skip_off_is_smaller_plain_skip():
    deep = build_model("lite-unet", num_classes=2)
    plain = build_model("lite-unet", num_classes=2, deep_skip=False)
    assert all(len(level.pis) == 2 for level in plain.decoder.levels)
    assert param_count(plain) < param_count(deep)


@pytest.mark.parametrize("name", ["segnet", "segnet-basic", "res-segnet", "enet"])
def test_native_unpool_forward_equals_train_forward(name):
    torch.manual_seed(1)
    model = build_model(name, num_classes=4).eval()
    x = torch.randn(1, 3, 48, 40)
    x[..., :8, :8] = 0.5  # constant patch: ties inside pooling windows
    with torch.no_grad():
        ref = model(x)
        with unpool_mode("native"):
            native = model(x)
    assert torch.equal(ref, native)


@pytest.mark.parametrize("name", ["segnet", "segnet-basic", "res-segnet"])
def test_index_unpool_models_take_odd_sizes(name):
    model = build_model(name, num_classes=3).eval()
    check_input_hw(name, (45, 37))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 37)).shape == (1, 3, 45, 37)


def test_unknown_model_lists_and_suggests():
    with pytest.raises(ConfigError, match=r"did you mean .segnet.*valid models: enet, lite-unet"):
        build_model("segnett", num_classes=2)


def test_unknown_builder_argument():
    with pytest.raises(ConfigError, match=r"no argument 'encodr'.*did you mean 'encoder'"):
        build_model("lite-unet", num_classes=2, encodr="vgg")


def test_missing_class_count():
    with pytest.raises(ConfigError, match="needs num_classes"):
        build_model("segnet")


def test_bad_choice_values():
    with pytest.raises(ConfigError, match="resnet34"):
        build_model("lite-unet", num_classes=2, encoder="resnet50")
    with pytest.raises(ConfigError, match="width"):
        build_model("unet", num_classes=2, width=3)


@pytest.mark.parametrize("classes", [0, -3, True, 2.0])
def test_non_positive_classes(classes):
    with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
        build_model("unet", num_classes=classes)


def test_input_multiple_names_working_sizes():
    assert get_spec("unet").multiple == 16
    with pytest.raises(ConfigError, match=r"360x480 is not divisible by 16.*352 or 368"):
        check_input_hw("unet", (360, 480))
    check_input_hw("unet", (352, 480))
    with pytest.raises(ConfigError, match="at least 32"):
        check_input_hw("segnet", (16, 480))
