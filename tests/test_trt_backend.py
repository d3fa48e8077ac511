"""TrtBackend's control flow against in-memory doubles of tensorrt and pycuda (no GPU here).

The doubles implement only what the backend calls (names checked against the real 10.3/11.4
bindings by tests/test_trt_static.py); "device memory" is host bytes and the fake engine computes
logits = [2x, -x] of the first input channel, so copies, bindings, dtype conversions, batch
re-binding and the checks around them are exercised for real. The fake stream is asynchronous
like a real one: copies and runs are queued and happen only when an event or the stream is
synchronized, reading the buffers (and bound addresses) as they are then, so a buffer reused too
early shows up as wrong numbers. Not a TensorRT test: the `trt` smoke test is.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeseg.runtime import trt_common
from edgeseg.runtime.trt_common import DeviceInfo

from edgeseg.card import ModelCard, read_card, write_card
from edgeseg.errors import BackendError, EngineError

HW = (4, 6)
VERSION = "10.3.0.30"


class _Mem:
    pool: dict[int, bytearray] = {}

    def __init__(self, nbytes: int) -> None:
        self.ptr = 0x1000 * (len(_Mem.pool) + 1)
        _Mem.pool[self.ptr] = bytearray(nbytes)
        self.freed = False

    def __int__(self) -> int:
        return self.ptr

    def free(self) -> None:
        self.freed = True


class _Stream:
    """A CUDA stream double: work is queued and runs in order when synchronized."""

    live: dict[int, _Stream] = {}

    def __init__(self) -> None:
        self.handle = 7
        self.ops: list[Any] = []
        self.done = 0  # ops run so far
        _Stream.live[self.handle] = self

    def run_until(self, n: int) -> None:
        while self.done < n:
            self.ops[self.done]()
            self.done += 1

    def synchronize(self) -> None:
        self.run_until(len(self.ops))


class _Event:
    def __init__(self, flags: int = 0) -> None:
        self.stream: _Stream | None = None
        self.mark = 0

    def record(self, stream: _Stream) -> _Event:
        self.stream, self.mark = stream, len(stream.ops)
        return self

    def synchronize(self) -> _Event:
        if self.stream is not None:
            self.stream.run_until(self.mark)
        return self

    def query(self) -> bool:
        return self.stream is None or self.stream.done >= self.mark


def fake_pycuda() -> types.ModuleType:
    drv = types.ModuleType("pycuda.driver")
    ctx = types.SimpleNamespace(push=lambda: None, pop=lambda: None, detach=lambda: None)
    drv.init = lambda: None  # type: ignore[attr-defined]
    drv.Device = lambda i: types.SimpleNamespace(retain_primary_context=lambda: ctx)  # type: ignore[attr-defined]
    drv.Stream = _Stream  # type: ignore[attr-defined]
    drv.Event = _Event  # type: ignore[attr-defined]
    drv.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)  # type: ignore[attr-defined]
    drv.mem_alloc = _Mem  # type: ignore[attr-defined]

    def htod(dst: _Mem, src: np.ndarray, stream: _Stream) -> None:  # reads src when it runs
        stream.ops.append(lambda: _Mem.pool[int(dst)].__setitem__(slice(None), src.tobytes()))

    def dtoh(dst: np.ndarray, src: _Mem, stream: _Stream) -> None:
        def op() -> None:
            dst[...] = np.frombuffer(bytes(_Mem.pool[int(src)]), dst.dtype).reshape(dst.shape)
        stream.ops.append(op)

    drv.memcpy_htod_async, drv.memcpy_dtoh_async = htod, dtoh  # type: ignore[attr-defined]
    return drv


def fake_tensorrt(batch: int, dtype: str) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = VERSION
    trt.Builder = object  # type: ignore[attr-defined]
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")  # type: ignore[attr-defined]
    trt.nptype = lambda t: {"float": np.float32, "half": np.float16}[t]  # type: ignore[attr-defined]

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=0, ERROR=1, WARNING=2)

        def __init__(self) -> None:
            pass

    class Context:
        def __init__(self) -> None:
            self.shapes = {"input": (batch, 3, *HW), "logits": (batch, 2, *HW)}
            self.addr: dict[str, int] = {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shapes = {"input": tuple(shape), "logits": (shape[0], 2, *shape[2:])}
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self.shapes[name]

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addr[name] = ptr
            return True

        def execute_async_v3(self, stream: int) -> bool:
            np_dt = trt.nptype(dtype)
            addr, shapes = dict(self.addr), dict(self.shapes)  # TensorRT reads them at enqueue time

            def run() -> None:
                x = np.frombuffer(bytes(_Mem.pool[addr["input"]]), np_dt).reshape(shapes["input"])
                y = np.concatenate([2 * x[:, :1], -x[:, :1]], axis=1).astype(np_dt)
                _Mem.pool[addr["logits"]][:] = y.tobytes()

            _Stream.live[stream].ops.append(run)
            return stream == 7

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i: int) -> str:
            return ("input", "logits")[i]

        def get_tensor_mode(self, name: str) -> str:
            return "in" if name == "input" else "out"

        def get_tensor_dtype(self, name: str) -> str:
            return dtype

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return (batch, 3, *HW) if name == "input" else (batch, 2, *HW)

        def get_tensor_profile_shape(self, name: str, profile: int) -> list[tuple[int, ...]]:
            return [(1, 3, *HW), (2, 3, *HW), (4, 3, *HW)]

        def create_execution_context(self) -> Context:
            return Context()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine | None:
            return Engine() if data == b"plan" else None

    trt.ILogger, trt.Runtime = ILogger, Runtime  # type: ignore[attr-defined]
    return trt


def make_engine(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "m.fp16.engine"
    path.write_bytes(extra.pop("data", b"plan"))
    card = ModelCard("segnet-basic", {"num_classes": 2}, ("a", "b"), ((0, 0, 0), (1, 1, 1)), HW,
                     artifact="engine", precision="fp16", unpool_mode=extra.pop("unpool_mode", "native"),
                     extra={"tensorrt_version": VERSION, "compute_capability": "8.7",
                            "build_command": "edgeseg build-engine m.onnx -o m.fp16.engine", **extra})
    write_card(path, card)
    return path


def install_fakes(monkeypatch: pytest.MonkeyPatch, trt: types.ModuleType) -> None:
    """Put ``trt`` (a fake tensorrt), a fake pycuda and a fake Orin GPU in place for this test."""
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = fake_pycuda()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", pycuda.driver)  # type: ignore[attr-defined]
    monkeypatch.setattr(trt_common, "device_info", lambda index=0: DeviceInfo("Orin (fake)", "8.7"))


@pytest.fixture()
def fakes(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(batch: int = 1, dtype: str = "float") -> None:
        install_fakes(monkeypatch, fake_tensorrt(batch, dtype))

    return install


@pytest.mark.parametrize("dtype", ["float", "half"])
def test_infer_copies_binds_and_converts(tmp_path: Path, fakes: Any, dtype: str) -> None:
    from edgeseg.runtime.backends.trt import TrtBackend

    fakes(batch=1, dtype=dtype)
    backend = TrtBackend(make_engine(tmp_path))
    x = np.random.default_rng(0).standard_normal((1, 3, *HW)).astype(np.float32)
    out = backend.infer(x)
    expected = np.concatenate([2 * x[:, :1], -x[:, :1]], axis=1)
    assert out.dtype == np.float32 and out.shape == (1, 2, *HW)
    tol = 0 if dtype == "float" else 1e-2
    np.testing.assert_allclose(out, expected, atol=tol)
    assert backend.describe()["batch_range"] == [1, 1] and backend.describe()["tensorrt"] == VERSION
    with pytest.raises(BackendError, match="outside the engine's range 1..1"):
        backend.infer(np.zeros((2, 3, *HW), np.float32))
    with pytest.raises(BackendError, match="expected"):
        backend.infer(np.zeros((1, 3, 5, 5), np.float32))
    backend.close()


def test_dynamic_batch_rebinds(tmp_path: Path, fakes: Any) -> None:
    from edgeseg.runtime.backends.trt import TrtBackend

    fakes(batch=-1)
    backend = TrtBackend(make_engine(tmp_path))
    assert backend.describe()["batch_range"] == [1, 4]
    for n in (1, 3, 3, 2):
        x = np.full((n, 3, *HW), float(n), np.float32)
        assert backend.infer(x)[:, 0].max() == 2 * n
    with pytest.raises(BackendError, match="1..4"):
        backend.infer(np.zeros((5, 3, *HW), np.float32))
    backend.close()


def test_refuses_engine_for_another_gpu(tmp_path: Path, fakes: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeseg.runtime.backends.trt import TrtBackend

    fakes()
    monkeypatch.setattr(trt_common, "device_info", lambda index=0: DeviceInfo("NVIDIA H100", "9.0"))
    expected = r"compute capability 8\.7 \(here 9\.0.*edgeseg build-engine m\.onnx"
    with pytest.raises(EngineError, match=expected):
        TrtBackend(make_engine(tmp_path))


def test_unreadable_plan_names_the_rebuild(tmp_path: Path, fakes: Any) -> None:
    from edgeseg.runtime.backends.trt import TrtBackend

    fakes()
    with pytest.raises(EngineError, match="cannot deserialize.*edgeseg build-engine m.onnx"):
        TrtBackend(make_engine(tmp_path, data=b"garbage"))


def test_plugin_engines_load_the_plugin_first(tmp_path: Path, fakes: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeseg.runtime.backends import TrtOptions
    from edgeseg.runtime.backends.trt import TrtBackend

    fakes()
    built_with = tmp_path / "libedgeseg_plugins.so"
    built_with.write_bytes(b"lib")
    loaded: list[tuple[Path, bool]] = []
    monkeypatch.setattr(trt_common, "load_plugin_library",
                        lambda lib, from_user: loaded.append((Path(lib), from_user)) or "ab" * 32)
    monkeypatch.setenv("EDGESEG_PLUGIN_DIR", str(tmp_path / "plugins"))
    engine = make_engine(tmp_path, unpool_mode="plugin", plugin_sha256="ab" * 32, plugin_path=str(built_with))
    backend = TrtBackend(engine)
    default = trt_common.default_plugin_dir(VERSION) / trt_common.PLUGIN_LIB_NAME
    # the card's plugin_path is never used: edgeseg's own build folder, marked as not user-given
    assert loaded == [(default, False)] and backend.plugin == default
    explicit = tmp_path / "other.so"
    TrtBackend(engine, TrtOptions(plugin=explicit))
    assert loaded[-1] == (explicit, True)


def test_failed_execute_waits_for_queued_copies(tmp_path: Path, fakes: Any) -> None:
    """execute_async_v3 returning False: the stream is synchronized before the error is raised, so
    the queued host-to-device copy is done before a later rebind may free its buffers."""
    from edgeseg.runtime.backends.trt import TrtBackend

    fakes(batch=-1)
    backend = TrtBackend(make_engine(tmp_path))
    own = backend._stream
    stream = _Stream()  # the fake context fails on any stream but 7
    _Stream.live[7] = own
    stream.handle = 8
    _Stream.live[8] = stream
    backend._stream = stream
    with pytest.raises(BackendError, match="TensorRT failed to run"):
        backend.infer(np.zeros((1, 3, *HW), np.float32))
    assert stream.ops and stream.done == len(stream.ops)  # the queued copies ran before the error
    backend._stream = own
    backend.close()


def test_submit_collect_keeps_frames_apart(tmp_path: Path, fakes: Any) -> None:
    """Two frames queued before either is collected (the streaming loop's overlap): each ticket
    returns its own frame's output; the third submit reuses the first slot only after its run."""
    from edgeseg.runtime.backends.trt import SLOTS, TrtBackend

    fakes(batch=1)
    backend = TrtBackend(make_engine(tmp_path))
    frames = [np.full((1, 3, *HW), float(i + 1), np.float32) for i in range(5)]
    tickets = [backend.submit(frames[0]), backend.submit(frames[1])]
    assert tickets == [0, 1] and SLOTS == 2 and not backend.done(0)
    assert backend.collect(tickets[0])[0, 0].max() == 2.0  # not frame 1's numbers
    tickets.append(backend.submit(frames[2]))  # slot 0 again, while frame 1 is still queued
    assert backend.collect(tickets[1])[0, 0].max() == 4.0
    assert backend.collect(tickets[2])[0, 0].max() == 6.0
    np.testing.assert_array_equal(backend.infer(frames[3])[:, 1], -frames[3][:, 0])
    backend.close()


def test_labels_engine_and_uint8_frames(tmp_path: Path, fakes: Any) -> None:
    """An engine from ``edgeseg deploy --frame-size``: float input is refused with the flag named."""
    from edgeseg.runtime.backends.trt import TrtBackend

    fakes(batch=1)
    path = make_engine(tmp_path)
    card = read_card(path).replace(input_kind="bgr-uint8", frame_hw=HW, file_sha256=None)
    write_card(path, card)
    backend = TrtBackend(path)
    with pytest.raises(BackendError, match="made with --frame-size 4x6.*without --frame-size"):
        backend.infer(np.zeros((1, *HW, 3), np.float32))
    backend.close()
