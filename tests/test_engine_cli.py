"""build-engine / build-plugin / TrtBackend without TensorRT: bad input, messages, plans, trtexec text.

Small ONNX files are made with onnx.helper (a conv; with Q/DQ; with the unpool plugin node; FP16;
dynamic batch), each with a model card, so everything up to the point where TensorRT would run is
exercised for real. The run on TensorRT itself is the `trt`-marked smoke test at the end.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from edgeseg.export.trt_build import (
    BuildOptions,
    inspect_onnx,
    plan_build,
    trtexec_command,
    write_engine,
)
from edgeseg.runtime.trt_common import (
    DeviceInfo,
    check_engine_card,
    check_plugin_library,
    plugin_sidecar,
    require_tensorrt,
)
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from edgeseg.card import ModelCard, card_path, write_card
from edgeseg.cli.main import app
from edgeseg.errors import CalibrationError, ConfigError, EngineError
from edgeseg.io import sha256_file
from edgeseg.unpool import OP_DOMAIN, OP_NAME

runner = CliRunner()
HW = (8, 8)


def _card(**kw: object) -> ModelCard:
    base = dict(architecture="segnet-basic", arch_args={"num_classes": 2}, class_names=("bg", "fg"),
                class_colors=((0, 0, 0), (255, 255, 255)), input_hw=HW, artifact="onnx", unpool_mode="none")
    base.update(kw)
    return ModelCard(**base)  # type: ignore[arg-type]


def make_onnx(path: Path, *, batch: int | str = 1, qdq: bool = False, plugin: bool = False,
              fp16: bool = False) -> Path:
    """conv(3->2) [+ Q/DQ on its input] [+ unpool plugin node] [FP16 weights]; input 'input'."""
    dt, np_dt = (TensorProto.FLOAT16, np.float16) if fp16 else (TensorProto.FLOAT, np.float32)
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np_dt), "w")
    nodes, inits, conv_in = [], [w], "input"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"]),
                  helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])]
        conv_in = "dq"
    nodes.append(helper.make_node("Conv", [conv_in, "w"], ["conv" if plugin else "logits"]))
    if plugin:
        nodes += [helper.make_node("MaxPool", ["conv"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
                  helper.make_node(OP_NAME, ["conv", "pooled"], ["logits"], domain=OP_DOMAIN,
                                   plugin_version="1", plugin_namespace="")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", dt, [batch, 3, *HW])],
                              [helper.make_tensor_value_info("logits", dt, [batch, 2, *HW])], inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(OP_DOMAIN, 1)] if plugin else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    write_card(path, _card(unpool_mode="plugin" if plugin else "none"))
    return path


@pytest.fixture()
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import tensorrt` fail even where it is installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


def test_build_engine_without_tensorrt_says_how_to_install(tmp_path: Path, no_tensorrt: None) -> None:
    model = make_onnx(tmp_path / "m.onnx")
    out = tmp_path / "m.fp16.engine"
    result = runner.invoke(app, ["build-engine", str(model), "-o", str(out)])
    assert result.exit_code == 2, result.output
    msg = result.output
    assert "TensorRT is not installed" in msg and "JetPack 6" in msg and "pip install tensorrt" in msg
    assert "Traceback" not in msg
    assert not out.exists() and not card_path(out).exists()


def test_stub_only_tensorrt_module_is_not_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # what stubs import as
    with pytest.raises(EngineError, match="not TensorRT"):
        require_tensorrt()


def test_int8_without_qdq_points_to_calibrate(tmp_path: Path, no_tensorrt: None) -> None:
    model = make_onnx(tmp_path / "m.onnx")
    result = runner.invoke(app, ["build-engine", str(model), "--precision", "int8", "-o",
                                 str(tmp_path / "m.int8.engine")])
    assert result.exit_code == 2
    assert "Q/DQ" in result.output and "edgeseg calibrate" in result.output
    assert not (tmp_path / "m.int8.engine").exists()


def test_qdq_detection(tmp_path: Path) -> None:
    assert inspect_onnx(make_onnx(tmp_path / "q.onnx", qdq=True)).has_qdq
    facts = inspect_onnx(make_onnx(tmp_path / "f.onnx"))
    assert not facts.has_qdq and not facts.float16 and facts.input_shape == (1, 3, *HW)
    assert inspect_onnx(make_onnx(tmp_path / "h.onnx", fp16=True)).float16
    assert inspect_onnx(make_onnx(tmp_path / "p.onnx", plugin=True)).plugin_nodes == 1
    assert inspect_onnx(make_onnx(tmp_path / "d.onnx", batch="N")).dynamic_batch


def test_dla_refuses_dynamic_shapes_and_fp32(tmp_path: Path) -> None:
    facts = inspect_onnx(make_onnx(tmp_path / "d.onnx", batch="N"))
    with pytest.raises(EngineError, match="DLA engines need static shapes"):
        plan_build(facts, BuildOptions(dla_core=0, max_batch=4), 10)
    plan = plan_build(facts, BuildOptions(dla_core=0, min_batch=2, max_batch=2), 10)
    assert "GPU_FALLBACK" in plan.flags and plan.profile[0] == plan.profile[2] == (2, 3, *HW)
    with pytest.raises(EngineError, match="FP16 or INT8"):
        plan_build(facts, BuildOptions(precision="fp32", dla_core=0), 10)


def test_dla_dynamic_via_cli(tmp_path: Path, no_tensorrt: None) -> None:
    model = make_onnx(tmp_path / "d.onnx", batch="N")
    result = runner.invoke(app, ["build-engine", str(model), "--dla-core", "0", "--max-batch", "8", "-o",
                                 str(tmp_path / "d.engine")])
    assert result.exit_code == 2 and "static shapes" in result.output


def test_precision_rules_10_vs_11(tmp_path: Path) -> None:
    fp32 = inspect_onnx(make_onnx(tmp_path / "a.onnx"))
    qdq = inspect_onnx(make_onnx(tmp_path / "q.onnx", qdq=True))
    half = inspect_onnx(make_onnx(tmp_path / "h.onnx", fp16=True))
    p10 = plan_build(fp32, BuildOptions(precision="fp16"), 10)
    assert not p10.strongly_typed and p10.flags == ("FP16",)
    assert plan_build(qdq, BuildOptions(precision="int8"), 10).flags == ("INT8", "FP16")
    with pytest.raises(EngineError, match="strongly typed"):
        plan_build(fp32, BuildOptions(precision="fp16"), 11)
    for facts, precision in ((qdq, "int8"), (half, "fp16"), (fp32, "fp32")):
        p11 = plan_build(facts, BuildOptions(precision=precision), 11)
        assert p11.strongly_typed and p11.flags == ()  # TensorRT 11 has no FP16/INT8 builder flags
    assert plan_build(half, BuildOptions(precision="fp16"), 10).strongly_typed
    with pytest.raises(EngineError, match="computes in FP16"):
        plan_build(half, BuildOptions(precision="fp32"), 10)
    with pytest.raises(CalibrationError):
        plan_build(fp32, BuildOptions(precision="int8"), 11)


def test_batch_options_checked(tmp_path: Path) -> None:
    static = inspect_onnx(make_onnx(tmp_path / "s.onnx"))
    with pytest.raises(EngineError, match="--dynamic-batch"):
        plan_build(static, BuildOptions(max_batch=4), 10)
    dyn = inspect_onnx(make_onnx(tmp_path / "d.onnx", batch="N"))
    with pytest.raises(ConfigError, match="min"):
        plan_build(dyn, BuildOptions(min_batch=4, max_batch=2), 10)
    assert plan_build(dyn, BuildOptions(), 10).profile == ((1, 3, *HW),) * 3
    with pytest.raises(ConfigError, match="workspace"):
        plan_build(dyn, BuildOptions(workspace_mb=0), 10)


def test_print_trtexec_without_tensorrt(tmp_path: Path, no_tensorrt: None) -> None:
    model = make_onnx(tmp_path / "d.onnx", batch="N", plugin=True)
    out = tmp_path / "d.fp16.engine"
    result = runner.invoke(app, ["build-engine", str(model), "-o", str(out), "--min-batch", "1",
                                 "--opt-batch", "2", "--max-batch", "4", "--workspace", "512",
                                 "--timing-cache", str(tmp_path / "t.cache"), "--print-trtexec"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("# TensorRT is not installed here")
    cmd = lines[-1]
    assert cmd.startswith("trtexec ") and f"--onnx={model}" in cmd and f"--saveEngine={out}" in cmd
    for part in ("--fp16", "--memPoolSize=workspace:512M", "--minShapes=input:1x3x8x8",
                 "--optShapes=input:2x3x8x8", "--maxShapes=input:4x3x8x8", "--staticPlugins=",
                 "libedgeseg_plugins.so", f"--timingCacheFile={tmp_path / 't.cache'}", "--skipInference"):
        assert part in cmd, part
    assert "--int8" not in cmd and "--stronglyTyped" not in cmd and not out.exists()


def test_trtexec_text_for_11_and_dla(tmp_path: Path) -> None:
    facts = inspect_onnx(make_onnx(tmp_path / "q.onnx", qdq=True))
    opts = BuildOptions(precision="int8", dla_core=1)
    cmd10 = trtexec_command(tmp_path / "q.onnx", tmp_path / "q.engine", facts, plan_build(facts, opts, 10),
                            opts, None)
    assert "--int8 --fp16" in cmd10 and "--useDLACore=1 --allowGPUFallback" in cmd10
    assert "--minShapes" not in cmd10 and "--staticPlugins" not in cmd10
    cmd11 = trtexec_command(tmp_path / "q.onnx", tmp_path / "q.engine", facts, plan_build(facts, opts, 11),
                            opts, None)
    assert "--stronglyTyped" in cmd11 and "--int8" not in cmd11 and "--fp16" not in cmd11


def test_engine_output_must_end_in_engine(tmp_path: Path, no_tensorrt: None) -> None:
    model = make_onnx(tmp_path / "m.onnx")
    result = runner.invoke(app, ["build-engine", str(model), "-o", str(tmp_path / "m.plan")])
    assert result.exit_code == 2 and ".engine" in result.output


def test_missing_onnx_and_missing_card(tmp_path: Path, no_tensorrt: None) -> None:
    missing = str(tmp_path / "none.onnx")
    result = runner.invoke(app, ["build-engine", missing, "-o", str(tmp_path / "a.engine")])
    assert result.exit_code == 2 and "does not exist" in result.output
    model = make_onnx(tmp_path / "m.onnx")
    card_path(model).unlink()
    result = runner.invoke(app, ["build-engine", str(model), "-o", str(tmp_path / "a.engine")])
    assert result.exit_code == 2 and "card" in result.output


def test_write_engine_leaves_nothing_when_the_card_fails(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed card write keeps the older engine + card; a failed card rename after the plan's
    leaves neither (never an older card without its engine, never a plan without a card)."""
    import os

    import edgeseg.io as eio
    from edgeseg.card import card_path, read_card

    out = tmp_path / "m.fp16.engine"
    write_engine(out, b"old plan", _card(artifact="engine"))
    old_card = card_path(out).read_bytes()
    real_write_text, real_replace = Path.write_text, os.replace

    def full_disk(self: Path, *a: object, **k: object) -> int:
        if self.name.startswith(f".{card_path(out).name}."):
            raise OSError("disk full")
        return real_write_text(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        write_engine(out, b"new plan", _card(artifact="engine"))
    assert out.read_bytes() == b"old plan" and card_path(out).read_bytes() == old_card
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, card_path(out).name])
    monkeypatch.undo()

    def card_rename_fails(src: object, dst: object) -> None:
        if str(dst) == str(card_path(out)):
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(eio.os, "replace", card_rename_fails)
    with pytest.raises(OSError):
        write_engine(out, b"new plan", _card(artifact="engine"))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_engine(out, b"plan", _card(artifact="engine"))
    assert read_card(out).file_sha256 is not None and out.read_bytes() == b"plan"


def test_engine_card_mismatch_names_rebuild_command(tmp_path: Path) -> None:
    card = _card(artifact="engine", precision="fp16", extra={
        "tensorrt_version": "10.3.0.30", "compute_capability": "8.7",
        "build_command": "edgeseg build-engine m.onnx --precision fp16 -o m.fp16.engine"})
    here = DeviceInfo("NVIDIA H100", "9.0")
    with pytest.raises(EngineError) as e:
        check_engine_card(card, tmp_path / "m.fp16.engine", "10.13.0.35", here)
    msg = str(e.value)
    assert "10.3.0.30" in msg and "10.13.0.35" in msg and "8.7" in msg and "9.0" in msg
    assert "edgeseg build-engine m.onnx --precision fp16 -o m.fp16.engine" in msg
    check_engine_card(card, tmp_path / "m.fp16.engine", "10.3.0.30", DeviceInfo("Orin", "8.7"))


def test_plugin_library_missing_or_for_another_tensorrt(tmp_path: Path) -> None:
    lib = tmp_path / "libedgeseg_plugins.so"
    with pytest.raises(EngineError, match="edgeseg build-plugin"):
        check_plugin_library(lib, "10.3.0")
    lib.write_bytes(b"\x7fELF...libnvinfer.so.11\x00...")
    with pytest.raises(EngineError, match=r"libnvinfer\.so\.11.*10\.3\.0.*build-plugin"):
        check_plugin_library(lib, "10.3.0")
    lib.write_bytes(b"\x7fELF...no TensorRT here\x00...")
    with pytest.raises(EngineError, match="does not link libnvinfer"):
        check_plugin_library(lib, "10.3.0")
    lib.write_bytes(b"\x7fELF...libnvinfer.so.10\x00...")
    with pytest.raises(EngineError, match="no sidecar"):  # found by edgeseg itself: hash needed
        check_plugin_library(lib, "10.3.0", from_user=False)
    sha = sha256_file(lib)
    plugin_sidecar(lib).write_text(f'{{"tensorrt_version": "10.13.0.35", "sha256": "{sha}"}}')
    with pytest.raises(EngineError, match="built for TensorRT 10.13"):
        check_plugin_library(lib, "10.3.0")
    assert check_plugin_library(lib, "10.13.0.35", from_user=False) == sha
    lib.write_bytes(b"\x7fELF...libnvinfer.so.10\x00...changed")
    with pytest.raises(EngineError, match="does not match the SHA-256"):
        check_plugin_library(lib, "10.13.0.35")


def test_build_plugin_without_headers(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build-plugin", "--trt-include", str(tmp_path), "--trt-lib", str(tmp_path),
                                 "--cuda-arch", "87"])
    assert result.exit_code == 2, result.output
    assert "JetPack 6" in result.output and "--trt-include" in result.output and "tar" in result.output


def test_parse_trt_version_both_header_styles() -> None:
    from edgeseg.export.plugin_build import parse_trt_version

    old = "#define NV_TENSORRT_MAJOR 10\n#define NV_TENSORRT_MINOR 3\n#define NV_TENSORRT_PATCH 0\n" \
          "#define NV_TENSORRT_BUILD 26\n"
    new = "".join(f"#define TRT_{k}_ENTERPRISE {v}\n#define NV_TENSORRT_{k} TRT_{k}_ENTERPRISE\n"
                  for k, v in (("MAJOR", 11), ("MINOR", 4), ("PATCH", 0), ("BUILD", 106)))
    assert parse_trt_version(old) == "10.3.0.26"
    assert parse_trt_version(new) == "11.4.0.106"
    with pytest.raises(EngineError):
        parse_trt_version("#define SOMETHING 1\n")


def test_oom_message(tmp_path: Path) -> None:
    from edgeseg.export.trt_engine import _build_failure

    log = ["Requested amount of GPU memory (4294967296 bytes) could not be allocated"]
    err = _build_failure("10.3.0", log, BuildOptions(workspace_mb=4096))
    assert "ran out of GPU memory" in str(err) and "--workspace (now 4096 MB)" in str(err)
    assert "ran out" not in str(_build_failure("10.3.0", ["some other failure"], BuildOptions()))


def test_trt_backend_without_tensorrt(tmp_path: Path, no_tensorrt: None) -> None:
    from edgeseg.runtime.backends import open_backend

    engine = tmp_path / "m.fp16.engine"
    engine.write_bytes(b"not a real plan")
    write_card(engine, _card(artifact="engine", precision="fp16"))
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        open_backend(engine)


def test_runtime_imports_without_torch_and_tensorrt() -> None:
    import subprocess

    code = ("import sys; sys.modules['torch'] = None; sys.modules['tensorrt'] = None; "
            "import edgeseg.runtime.backends.trt, edgeseg.export.trt_build, edgeseg.cli.engine")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.slow
def test_trt_smoke_on_this_machine(tmp_path: Path) -> None:
    """Where TensorRT and a GPU exist: plugin, export, FP16 + INT8 engines vs onnxruntime all pass."""
    result = runner.invoke(app, ["trt-smoke", "--workdir", str(tmp_path / "smoke")])
    print(result.output)
    assert result.exit_code == 0, result.output


def test_unsupported_ops_are_named_with_the_tensorrt_version(tmp_path: Path) -> None:
    """What build-engine adds to a parse failure: the static op check for this TensorRT version."""
    from edgeseg.export.trt_engine import _opcheck_hint

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])
    nodes = [helper.make_node("MaxPool", ["input"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxUnpool", ["p", "i"], ["logits"], kernel_shape=[2, 2], strides=[2, 2])]
    path = tmp_path / "unpool.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [out]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))
    cases = (("10.3.0.30", "TensorRT 10.3"), ("10.13.0.35", "TensorRT 10.3"), ("11.4.0.106", "11"))
    for version, label in cases:
        hint = _opcheck_hint(path, version)
        assert "MaxUnpool" in hint and "MaxPool" in hint and label in hint, (version, hint)
    assert _opcheck_hint(make_onnx(tmp_path / "ok.onnx"), "10.3.0.30") == ""


def test_missing_output_folder_refused_before_building(tmp_path: Path, no_tensorrt: None) -> None:
    model = make_onnx(tmp_path / "m.onnx")
    result = runner.invoke(app, ["build-engine", str(model), "-o", str(tmp_path / "nope" / "m.engine")])
    assert result.exit_code == 2 and "does not exist" in result.output and "TensorRT" not in result.output


def test_build_engine_precision_is_one_of_the_cards(tmp_path: Path, no_tensorrt: None) -> None:
    """--precision takes the card's Precision values (declared once) and refuses others up front."""
    model = make_onnx(tmp_path / "m.onnx")
    result = runner.invoke(app, ["build-engine", str(model), "--precision", "fp64", "-o",
                                 str(tmp_path / "m.engine")])
    assert result.exit_code == 2 and all(p in result.output for p in ("fp32", "fp16", "int8"))
    assert not (tmp_path / "m.engine").exists()
