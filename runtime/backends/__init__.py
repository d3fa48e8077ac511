"""Inference backends behind one small interface, chosen from one table (docs/design.md §7).

:data:`BACKENDS` is the registry: one :class:`BackendEntry` per runtime, naming the file suffix it
runs, where its class lives, what it needs installed, its options dataclass (holding its defaults,
:mod:`edgeseg.runtime.backends.base`) and whether it is the suffix's default runtime.

``open_backend(path)`` runs a file on its suffix's default runtime; ``runtime=`` picks another one
for the same file type. Options are the entry's dataclass or keywords checked against its fields:
an option no runtime takes, or one for another runtime, is one :class:`BackendOptionError` line,
never a ``TypeError``. Backends are context managers. This package imports no runtime library
(numpy included); only the torch backend imports torch, and only when opened.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType, UnionType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgeseg.runtime.backends.base import (
    BackendOptions,
    OpenVinoOptions,
    OrtOptions,
    TorchOptions,
    TrtOptions,
)

from edgeseg.errors import BackendError, BackendOptionError, did_you_mean

if TYPE_CHECKING:
    import numpy as np

    from edgeseg.card import ModelCard

__all__ = ["BACKENDS", "RUNTIMES", "SUFFIXES", "Backend", "BackendEntry", "BackendOptions",
           "OpenVinoOptions", "OrtOptions", "TorchOptions", "TrtOptions", "backend_entry",
           "backend_options", "check_input", "open_backend"]


@dataclass(frozen=True)
class BackendEntry:
    """One runtime in the registry.

    ``needs``: the top-level modules it imports when a file is opened; ``install``: how to get them
    (the fix in the error when one is missing); ``default``: the runtime its suffix runs on when
    no ``runtime=`` is given (one per suffix)."""

    runtime: str
    suffix: str
    module: str
    cls: str
    needs: tuple[str, ...]
    install: str
    options: type[BackendOptions]
    default: bool

    @property
    def kind(self) -> str:
        """How messages name the files it runs: ``.onnx``, or ``.onnx --runtime openvino``."""
        return self.suffix if self.default else f"{self.suffix} --runtime {self.runtime}"

    def option_names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.options)]

    def backend_class(self) -> Callable[[Path, BackendOptions], Backend]:
        """The backend's class (its module imported now); it is called as ``cls(path, options)``."""
        module = importlib.import_module(self.module)
        cls: Callable[[Path, BackendOptions], Backend] = getattr(module, self.cls)
        return cls


_PKG = "edgeseg.runtime.backends"
BACKENDS: tuple[BackendEntry, ...] = (
    BackendEntry("onnxruntime", ".onnx", f"{_PKG}.ort", "OrtBackend", ("onnxruntime",),
                 "pip install 'onnxruntime>=1.18' (an edgeseg dependency)", OrtOptions, True),
    BackendEntry("openvino", ".onnx", f"{_PKG}.openvino", "OpenVinoBackend", ("openvino",),
                 "pip install 'edgeseg[openvino]' (or drop --runtime to use onnxruntime)", OpenVinoOptions,
                 False),
    BackendEntry("tensorrt", ".engine", f"{_PKG}.trt", "TrtBackend", ("tensorrt", "pycuda"),
                 "install TensorRT (JetPack on Jetson) and pip install pycuda (on Jetson: with CUDA on "
                 "PATH, e.g. export PATH=/usr/local/cuda/bin:$PATH)", TrtOptions, True),
    BackendEntry("torch", ".safetensors", f"{_PKG}.torch_backend", "TorchBackend", ("torch",),
                 "pip install 'edgeseg[train]', or export to ONNX first (edgeseg export)", TorchOptions,
                 True),
)
RUNTIMES: dict[str, BackendEntry] = {e.runtime: e for e in BACKENDS}
SUFFIXES: dict[str, BackendEntry] = {e.suffix: e for e in BACKENDS if e.default}


@runtime_checkable
class Backend(Protocol):
    """A loaded model that maps a normalized nchw float32 batch to logits; a context manager.

    ``card``: the artifact's model card (preprocessing, classes, input size).
    ``name``: short backend name, its registry runtime ("onnxruntime", "tensorrt", "torch", ...).
    ``with open_backend(path) as b:`` closes it on leaving the block; ``close()`` is idempotent.
    """

    card: ModelCard
    name: str

    def infer(self, batch_nchw: np.ndarray) -> np.ndarray:
        """float32 (N,3,H,W) normalized input -> float32 logits (N,K,H,W). Synchronous.

        Models made with ``edgeseg deploy`` (card ``output_kind="labels"``) return uint8 labels
        (N,H,W); with ``input_kind="bgr-uint8"`` they take uint8 (N,Hf,Wf,3) BGR frames."""
        ...

    def describe(self) -> dict[str, Any]:
        """What it runs on: device, provider/precision, library versions, threads."""
        ...

    def close(self) -> None:
        """Release device memory / sessions; a second call does nothing."""
        ...

    def __enter__(self) -> Backend:
        ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Calls ``close()``."""
        ...


def check_input(batch: np.ndarray, card: ModelCard, in_shape: tuple[int, ...]) -> None:
    """Raise BackendError unless ``batch`` is what the model takes: float (N,3,H,W) normalized, or
    for ``input_kind="bgr-uint8"`` models uint8 (N,Hf,Wf,3) BGR frames (never float)."""
    import numpy as np

    if card.input_kind == "bgr-uint8" and batch.dtype != np.uint8:
        h, w = in_shape[:2]
        raise BackendError(f"the model takes uint8 BGR frames of {h}x{w} (preprocessing inside the graph, "
                           f"made with --frame-size {h}x{w}) but got {batch.dtype} input; give it raw "
                           "frames, or use the file made without --frame-size for normalized input")
    if batch.ndim != 4 or batch.shape[1:] != in_shape:
        want = ", ".join(map(str, in_shape))
        made = "uint8 BGR frames" if card.input_kind == "bgr-uint8" else "edgeseg.preprocess produces"
        raise BackendError(f"input batch has shape {batch.shape}; expected (N, {want}) as {made} "
                           "for this card")


def backend_entry(path: str | Path, runtime: str | None = None) -> BackendEntry:
    """The registry entry that runs ``path``: its suffix's default, or ``runtime`` when given.

    Raises BackendError for an unknown suffix or runtime, or a runtime that does not run this
    file type (each listing the valid choices)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise BackendError(
            f"cannot run {path.name}: unknown model file type {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(SUFFIXES)} (a checkpoint, ONNX file or TensorRT engine)"
        )
    if runtime is None:
        return SUFFIXES[path.suffix]
    if not isinstance(runtime, str):
        raise BackendOptionError(f"runtime={runtime!r} is not a runtime name; use one of "
                                 f"{', '.join(RUNTIMES)} (options go in options=, e.g. "
                                 "open_backend(path, options=OrtOptions()))")
    if runtime not in RUNTIMES:
        hint = did_you_mean(runtime, list(RUNTIMES))
        raise BackendError(f"unknown runtime {runtime!r}{hint}; use one of {', '.join(RUNTIMES)}")
    entry = RUNTIMES[runtime]
    if entry.suffix != path.suffix:
        takes = [e.runtime for e in BACKENDS if e.suffix == path.suffix]
        raise BackendError(f"runtime {runtime} runs {entry.suffix} files, not {path.name}; use --runtime "
                           f"{' or '.join(takes)} (or leave --runtime out) for {path.suffix} files")
    return entry


def backend_options(path: str | Path, runtime: str | None = None, **given: Any) -> BackendOptions:
    """The options dataclass of the runtime that runs ``path``, from keyword options.

    ``None`` values count as not given (the default applies); a ``str`` is converted for an
    ``int`` or ``Path`` field (command-line values). Raises :class:`BackendOptionError` (one line)
    for an option that runtime does not take, naming its options and the runtimes that take it,
    and for a value of the wrong type."""
    return _make_options(backend_entry(path, runtime), given)


def _make_options(entry: BackendEntry, given: Mapping[str, Any]) -> BackendOptions:
    valid = entry.option_names()
    hints = typing.get_type_hints(entry.options)
    values: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name not in valid:
            raise _misplaced(entry, name, offered=given.keys())
        values[name] = _checked(entry, name, value, hints[name])
    return entry.options(**values)


def _misplaced(entry: BackendEntry, name: str, offered: Iterable[str] = ()) -> BackendOptionError:
    """The one-line error for option ``name``, which ``entry``'s runtime does not take. ``offered``:
    the options the caller can give (a command's flags); only those are named as alternatives, so
    every flag the message names exists on that command."""
    takers = [e for e in BACKENDS if name in e.option_names()]
    if not takers:
        everything = sorted({n for e in BACKENDS for n in e.option_names()})
        return BackendOptionError(
            f"{entry.runtime} takes no option {name!r}{did_you_mean(name, everything)}; valid options: "
            f"{', '.join(entry.option_names())} (every runtime's: {', '.join(everything)})")
    flag = "--" + name.replace("_", "-")
    by_suffix: dict[str, list[str]] = {}
    for e in takers:
        by_suffix.setdefault(e.suffix, []).append(e.runtime)
    where = " and ".join(f"{s} files ({', '.join(r)})" for s, r in by_suffix.items())
    same = [e for e in takers if e.suffix == entry.suffix]
    switch = "" if not same else ("leave --runtime out or " if same[0].default else
                                  f"add --runtime {same[0].runtime} or ")
    own = ", ".join("--" + n.replace("_", "-") for n in entry.option_names() if n in set(offered))
    takes = f" ({entry.runtime} takes {own})" if own else ""
    return BackendOptionError(f"{flag} does not apply to {entry.kind} models{takes}; "
                              f"{flag} applies to {where}: {switch}drop {flag}")


def _checked(entry: BackendEntry, name: str, value: Any, hint: Any) -> Any:
    """``value`` if it fits the field's type ``hint``; a str converted to int/Path where needed."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, UnionType) else (hint,)
    for t in allowed:
        if _fits(value, t):
            return value
    if isinstance(value, str) and Path in allowed:
        return Path(value)
    if isinstance(value, str) and int in allowed and value.strip().isdigit():
        return int(value)
    flag = "--" + name.replace("_", "-")
    choices = [str(c) for t in allowed if typing.get_origin(t) is typing.Literal for c in typing.get_args(t)]
    hint = did_you_mean(str(value), choices) if choices else ""
    default = getattr(entry.options, name)
    example = "" if default is None or isinstance(default, bool) else f", e.g. {flag} {default}"
    raise BackendOptionError(f"{flag} {value!r} is not valid for {entry.runtime}{hint}; expected "
                             f"{' or '.join(_describe(t) for t in allowed if t is not type(None))}{example}")



def _fits(value: Any, t: Any) -> bool:
    origin = typing.get_origin(t)
    if origin is typing.Literal:
        return value in typing.get_args(t)
    if origin is not None:  # Sequence[str]
        return isinstance(value, origin) and not isinstance(value, str) and all(
            isinstance(v, typing.get_args(t)[0]) for v in value)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def _describe(t: Any) -> str:
    if typing.get_origin(t) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(t)))
    names = {int: "an integer", str: "a string", bool: "true or false", Path: "a file path"}
    return names.get(t, "a list of names")


def open_backend(path: str | Path, runtime: str | None = None, options: BackendOptions | None = None,
                 **kwargs: Any) -> Backend:
    """Open ``path`` on ``runtime`` (None: the one its suffix names), ready to ``infer``.

    ``options``: the runtime's options dataclass (:class:`OrtOptions`, ...), or keyword options
    checked as :func:`backend_options` does (not both). Raises BackendError for an unknown suffix
    or runtime, a runtime that does not run this file type, or a library the runtime needs that is
    not installed; :class:`BackendOptionError` for a wrong option. Use it as a context manager.
    """
    path = Path(path)
    entry = backend_entry(path, runtime)
    if options is None:
        options = _make_options(entry, kwargs)
    elif kwargs:
        raise BackendOptionError(f"pass {entry.runtime}'s options either as {entry.options.__name__} or as "
                                 f"keywords ({', '.join(kwargs)}), not both")
    elif not isinstance(options, entry.options):
        raise BackendOptionError(f"{entry.runtime} takes {entry.options.__name__}, not "
                                 f"{type(options).__name__}; build it with {entry.options.__name__}(...)")
    try:
        return entry.backend_class()(path, options)
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        if missing not in entry.needs:
            raise  # a broken install of something else: not the message below
        raise BackendError(f"cannot run {path.name} on {entry.runtime}: {missing} is not installed; "
                           f"{entry.install}") from None
