"""ENet (Paszke et al. 2016): the paper's parameter count, shapes, input-size rules, and export in
both unpool modes with argmax agreement 100 % between PyTorch and onnxruntime."""

from __future__ import annotations

import pytest

from edgeseg.errors import ConfigError

torch = pytest.importorskip("torch")
from edgeseg.models.blocks import param_count  # noqa: E402
from edgeseg.models.registry import build_model, check_input_hw, get_spec  # noqa: E402


def test_enet_parameters_match_paper():
    n = param_count(build_model("enet", num_classes=11))
    assert n == 376_706
    assert abs(n - 0.37e6) / 0.37e6 < 0.02  # paper, Table 3: 0.37 M


def test_enet_shapes_and_unpool_indices():
    torch.manual_seed(0)
    model = build_model("enet", num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 128)).shape == (2, 5, 96, 128)
    assert get_spec("enet").has_unpool
    one = build_model("enet", num_classes=2, in_channels=1).eval()
    with torch.no_grad():
        assert one(torch.randn(1, 1, 32, 48)).shape == (1, 2, 32, 48)


def test_enet_input_rules():
    check_input_hw("enet", (360, 480))
    with pytest.raises(ConfigError, match=r"not divisible by 8 for enet; use height 360 or 368"):
        check_input_hw("enet", (361, 480))
    with pytest.raises(ConfigError, match="1..15 input channels"):
        build_model("enet", num_classes=2, in_channels=16)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["native", "plugin"])
def test_enet_export_agreement(tmp_path, mode):
    from edgeseg.export.onnx_export import ExportOptions, export_onnx
    from test_export import frames_spec, make_checkpoint

    ckpt = make_checkpoint(tmp_path, "enet")
    _, card = export_onnx(ckpt, tmp_path / f"enet.{mode}.onnx", ExportOptions(
        unpool=mode, data=frames_spec(), verify_frames=10, random_inputs=2, threads=1))
    assert card.unpool_mode == mode
    for r in card.extra["export"]["verification"]:
        assert r["argmax_agreement"] == 1.0, r
        assert r["max_abs_diff"] <= 1e-4, r
    assert all(v["ok"] for v in card.extra["export"]["tensorrt_ops"].values())
