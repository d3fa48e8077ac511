"""The backend registry: one entry per runtime, options checked against its dataclass, `with` closes."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
from edgeseg.runtime.backends import (
    BACKENDS,
    RUNTIMES,
    SUFFIXES,
    OrtOptions,
    TorchOptions,
    TrtOptions,
    backend_options,
    open_backend,
)
from tinyseg import write_tiny_onnx
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.errors import BackendError, BackendOptionError, ConfigError


@pytest.mark.parametrize("entry", BACKENDS, ids=lambda e: e.runtime)
def test_entry_names_a_class_taking_its_options(entry) -> None:
    cls = entry.backend_class()
    assert cls.name == entry.runtime
    params = list(inspect.signature(cls.__init__).parameters.values())
    assert [p.name for p in params] == ["self", "path", "options"]
    hints = typing.get_type_hints(cls.__init__)
    assert hints["options"] is entry.options and params[2].default == entry.options()
    assert dataclasses.is_dataclass(entry.options) and entry.options.__dataclass_params__.frozen  # type: ignore[attr-defined]
    for method in ("infer", "describe", "close", "__enter__", "__exit__"):
        assert callable(getattr(cls, method)), method


def test_one_default_runtime_per_suffix() -> None:
    for suffix in {e.suffix for e in BACKENDS}:
        assert [e.runtime for e in BACKENDS if e.suffix == suffix and e.default] == [SUFFIXES[suffix].runtime]
    assert list(RUNTIMES) == [e.runtime for e in BACKENDS]


def test_keyword_options_become_the_dataclass() -> None:
    assert backend_options("m.onnx", threads=2, provider="cuda") == OrtOptions(threads=2, provider="cuda")
    # command-line strings are converted for int / Path fields; None means "not given"
    trt = backend_options("m.engine", device="1", plugin="lib.so", threads=None)
    assert trt == TrtOptions(Path("lib.so"), 1)
    assert backend_options("m.safetensors") == TorchOptions()


@pytest.mark.parametrize(("path", "runtime", "given", "words"), [
    # a command's flags (given as None when not typed) are the only alternatives named
    ("m.engine", None, {"threads": 2, "plugin": None, "device": None},
     r"--threads does not apply to \.engine models \(tensorrt takes --plugin, --device\); --threads applies "
     r"to \.onnx files \(onnxruntime, openvino\) and \.safetensors files \(torch\): drop --threads"),
    ("m.engine", None, {"threads": 2, "plugin": None},
     r"--threads does not apply to \.engine models \(tensorrt takes --plugin\); --threads applies"),
    ("m.engine", None, {"threads": 2}, r"--threads does not apply to \.engine models; --threads applies"),
    ("m.onnx", None, {"inference_precision": "f32"},
     r"applies to \.onnx files \(openvino\): add --runtime openvino"),
    ("m.onnx", "openvino", {"provider": "cpu"}, r"\(onnxruntime\): leave --runtime out or drop --provider"),
    ("m.onnx", None, {"thread": 2}, r"onnxruntime takes no option 'thread' \(did you mean 'threads'\?\); "
                                    r"valid options: threads, provider, spinning"),
    ("m.engine", None, {"device": "cuda"}, r"--device 'cuda' is not valid for tensorrt; expected an integer, "
                                           r"e\.g\. --device 0"),
    ("m.onnx", "openvino", {"inference_precision": "f17"},
     r"did you mean 'f16'.*one of auto, f32, bf16, f16"),
])
def test_a_wrong_option_is_one_line(path: str, runtime: str | None, given: dict, words: str) -> None:
    with pytest.raises(BackendOptionError, match=words) as err:
        backend_options(path, runtime, **given)
    assert isinstance(err.value, BackendError) and isinstance(err.value, ConfigError)
    assert "\n" not in str(err.value)


def test_open_backend_checks_options_before_loading(tmp_path: Path) -> None:
    missing = tmp_path / "absent.onnx"  # never read: the option is refused first
    with pytest.raises(BackendOptionError, match="--plugin does not apply"):
        open_backend(missing, plugin="lib.so")
    with pytest.raises(BackendOptionError, match="takes TrtOptions, not OrtOptions"):
        open_backend(tmp_path / "m.engine", options=OrtOptions())
    with pytest.raises(BackendOptionError, match="not both"):
        open_backend(missing, options=OrtOptions(), threads=1)


def test_backend_is_a_context_manager(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(24, 32))
    with pytest.raises(BackendOptionError, match="not a runtime name"):
        open_backend(model, OrtOptions(threads=1))  # type: ignore[arg-type]
    with open_backend(model, options=OrtOptions(threads=1)) as backend:
        assert backend.infer(np.zeros((1, 3, 24, 32), np.float32)).shape[:2] == (1, 5)
    assert not hasattr(backend, "session")  # closed on leaving the block
    backend.close()  # idempotent
    with pytest.raises(RuntimeError), open_backend(model, threads=1) as failing:
        raise RuntimeError("boom")
    assert not hasattr(failing, "session")  # closed when the block raised too


def test_missing_library_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(BackendError, match=r"cannot run model\.safetensors on torch: torch is not installed; "
                                           r"pip install 'edgeseg\[train\]'"):
        open_backend(tmp_path / "model.safetensors")
    monkeypatch.setitem(sys.modules, "openvino", None)
    model = write_tiny_onnx(tmp_path, input_hw=(24, 32))
    with pytest.raises(BackendError, match=r"openvino is not installed; pip install 'edgeseg\[openvino\]'"):
        open_backend(model, "openvino")


def test_cli_refuses_misplaced_options_in_one_line(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    runner = CliRunner()
    for args in (["eval", str(engine), "--data", "synthetic", "--threads", "2"],
                 ["stream", str(engine), "--source", "synthetic", "--threads", "2"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert r.output.strip().splitlines() == [r.output.strip()]
        assert "--threads does not apply to .engine models" in r.output

