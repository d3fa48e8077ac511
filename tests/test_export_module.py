"""Your own nn.Module through ``edgeseg export --module`` / ``edgeseg.export.export_module``: every
2x2/stride-2 MaxUnpool2d / F.max_unpool2d goes through edgeseg's unpool (native ops or the plugin
node; argmax 100 % equal to PyTorch), weights come from safetensors, bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from edgeseg.card import read_card
from edgeseg.cli.main import app
from edgeseg.errors import ExportError
from edgeseg.io import sha256_file

torch = pytest.importorskip("torch")
from foreign_models import UserSegNet, warmed  # noqa: E402

HW = (32, 48)


@pytest.mark.parametrize("mode", ["native", "plugin"])
def test_export_module_routes_every_unpool(tmp_path, mode):
    from edgeseg.export import ExportOptions, ModelFacts, ModuleExportOptions, export_module

    from edgeseg.unpool import OP_NAME

    torch.set_num_threads(1)
    model = warmed(UserSegNet(3), HW)
    opts = ModuleExportOptions(export=ExportOptions(input_hw=HW, unpool=mode, threads=1),
                               facts=ModelFacts(classes=["a", "b", "c"]))
    path, card = export_module(model, tmp_path / "user.onnx", opts)
    assert card.architecture == "external" and card.unpool_mode == mode
    assert card.extra["export"]["unpool_layers"] == 2
    for r in card.extra["export"]["verification"]:
        assert r["argmax_agreement"] == 1.0 and r["max_abs_diff"] <= 1e-4, r
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert "MaxUnpool" not in ops and ops.count(OP_NAME) == (2 if mode == "plugin" else 0)
    assert all(len([o for o in n.output if o]) == 1 for n in graph.node if n.op_type == "MaxPool")
    assert all(v["ok"] for v in card.extra["export"]["tensorrt_ops"].values())
    assert read_card(path) == card


def cli(*args: str):
    return CliRunner().invoke(app, ["export", *args, "--threads", "1"])


@pytest.mark.slow
def test_cli_module_with_safetensors_weights(tmp_path):
    from edgeseg.runtime.backends import open_backend
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    model = warmed(UserSegNet(3, width=4), HW, seed=3)
    weights = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(weights))
    out = tmp_path / "user.onnx"
    result = cli("--module", "foreign_models:build_user_segnet", "--module-arg", "width=4",
                 "--weights", str(weights), "--input", "32x48", "--classes", "3", "--target", "onnxruntime",
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    card = read_card(out)
    assert card.unpool_mode == "native" and card.parent_sha256 == sha256_file(weights)
    assert card.extra["module"]["module_args"] == {"width": 4}
    x = np.random.default_rng(0).standard_normal((1, 3, *HW)).astype(np.float32)
    backend = open_backend(out, threads=1)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))["out"].numpy()
    assert np.abs(backend.infer(x) - ref).max() < 1e-4  # the given weights, not the factory's init


@pytest.mark.parametrize(("args", "message"), [
    (["--module", "foreign_models:build_user_segnet", "--module-arg", "unpool_kernel=3"],
     r"layer 'unpool' unpools with kernel_size=\(3, 3\).*change the layer to MaxUnpool2d\(2, 2\)"),
    (["--module", "no_such_pkg.models:build"], "module 'no_such_pkg.models' does not import"),
    (["--module", "foreign_models:not_a_module"], "returned str, not a torch.nn.Module"),
    (["--module", "foreign_models:build_user_segnet", "--weights", "w.pt"], "does not fit the model"),
    (["--module", "foreign_models:build_user_segnet", "--weights", "code.pt"],
     "cannot be read as a state dict"),
    (["--module", "foreign_models:build_user_segnet", "--module-arg", "width"], "is not key=value"),
])
def test_cli_module_bad_input(tmp_path, monkeypatch, args, message):
    import pickle
    import re

    monkeypatch.chdir(tmp_path)
    torch.save({"enc1.0.weight": torch.zeros(1)}, "w.pt")
    Path("code.pt").write_bytes(pickle.dumps(Path("x")))  # a pickled object: weights_only refuses it
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli(*args, "--input", "32x48", "--classes", "3", "-o", "x.onnx")
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(message, " ".join(result.output.split())), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unpool_with_foreign_indices_is_refused(tmp_path):
    from edgeseg.export import ExportOptions, ModelFacts, ModuleExportOptions, export_module

    class Shuffled(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p, idx = torch.nn.functional.max_pool2d(x, 2, 2, return_indices=True)
            return torch.nn.functional.max_unpool2d(p, idx.clone(), 2, 2)

    with pytest.raises(ExportError, match="did not come straight from a max pooling"):
        export_module(Shuffled(), tmp_path / "s.onnx",
                      ModuleExportOptions(export=ExportOptions(input_hw=(8, 8)), facts=ModelFacts(classes=3)))
    assert not (tmp_path / "s.onnx").exists()
