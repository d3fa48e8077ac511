"""What the TensorRT builder and the TensorRT runtime backend share (torch-free; tensorrt lazy).

* :func:`require_tensorrt` — import ``tensorrt`` or fail with how to install it (Jetson / x86).
* :func:`device_info`, :func:`cuda_driver` — GPU name, compute capability, driver version and GPU
  count from the CUDA driver (ctypes, no pycuda); with TrtBackend's pycuda calls the only CUDA calls.
* :func:`load_plugin_library` — load ``libedgeseg_plugins.so`` into TensorRT's plugin registry once
  per process, refusing a missing library or one built for another TensorRT.
* :func:`collecting_logger` — the ``trt.ILogger`` both keep errors with (to classify failures).
* :func:`check_engine_card` — refuse an engine built for another TensorRT / GPU, with the
  rebuild command.

Engines and the plugin library stay standard files; what they were built for lives in sidecars
(the engine's model card, the plugin's ``<lib>.json``).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.card import ModelCard
from edgeseg.errors import EngineError
from edgeseg.io import sha256_file
from edgeseg.unpool import OP_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

PLUGIN_LIB_NAME = "libedgeseg_plugins.so"
KERNEL_LIB_NAME = "libedgeseg_unpool_kernel.so"

INSTALL_HINT = (
    "on a Jetson, TensorRT 10.3 comes with JetPack 6 (sudo apt install nvidia-jetpack, or "
    "python3-libnvinfer python3-libnvinfer-dev; use a venv with --system-site-packages); on x86_64 "
    "pip install tensorrt (pip fetches the libraries from NVIDIA's package index) or unpack the "
    "TensorRT tar from NVIDIA's developer site and pip install its python/tensorrt-*.whl"
)

_LOAD_LOCK = threading.Lock()
_LOADED: dict[str, str] = {}  # resolved library path -> its SHA-256
_HANDLES: list[ctypes.CDLL] = []  # keeps loaded libraries referenced


def require_tensorrt() -> Any:
    """The ``tensorrt`` module, or EngineError saying how to install it.

    A folder named ``tensorrt`` holding only type stubs imports as an empty namespace package, so
    the check is for the real module (``tensorrt.Builder``), not just for the import.
    """
    try:
        import tensorrt as trt
    except ImportError as e:
        raise EngineError(f"TensorRT is not installed ({e}); {INSTALL_HINT}") from None
    if not hasattr(trt, "Builder") or not hasattr(trt, "__version__"):
        raise EngineError("the 'tensorrt' module found here is not TensorRT (type stubs only?); "
                          f"{INSTALL_HINT}")
    return trt


def tensorrt_major(version: str) -> int:
    """10 for '10.3.0.30'."""
    return int(version.split(".")[0])


def dims_list(dims: Any) -> list[int]:
    """A ``trt.Dims`` as a list of ints (-1 = dynamic); Dims has len() and indexing."""
    return [int(dims[i]) for i in range(len(dims))]


def same_minor(a: str, b: str) -> bool:
    """True if two TensorRT versions share major.minor ('10.3.0.30' vs '10.3.0.26')."""
    return a.split(".")[:2] == b.split(".")[:2]


@dataclass(frozen=True)
class DeviceInfo:
    """One CUDA GPU: name and compute capability as 'major.minor' (Orin '8.7', H100 '9.0')."""

    name: str
    compute_capability: str


def device_info(index: int = 0) -> DeviceInfo:
    """Name and compute capability of GPU ``index`` via the CUDA driver API (libcuda, ctypes).

    Raises EngineError when there is no CUDA driver or no such GPU.
    """
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        raise EngineError("no CUDA driver (libcuda.so.1) on this machine; TensorRT needs an NVIDIA GPU "
                          "with its driver (on Jetson: JetPack)") from None
    dev = ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(dev), index) != 0:
        raise EngineError(f"CUDA GPU {index} is not available (cuInit/cuDeviceGet failed); check "
                          "nvidia-smi (tegrastats on Jetson) and CUDA_VISIBLE_DEVICES")
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, dev)
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
    return DeviceInfo(name.value.decode(errors="replace"), f"{major.value}.{minor.value}")


def cuda_driver() -> tuple[str | None, int]:
    """(driver API version 'major.minor', number of GPUs) from libcuda; (None, 0) without a driver."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None, 0
    version, count = ctypes.c_int(), ctypes.c_int()
    if cuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None, 0
    driver = f"{version.value // 1000}.{version.value % 1000 // 10}"  # 12060 -> '12.6'
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return driver, 0
    return driver, count.value


# ---- the plugin library -------------------------------------------------------------------------

def default_plugin_dir(tensorrt_version: str) -> Path:
    """Where ``edgeseg build-plugin`` puts the library for this TensorRT and CPU by default.

    ``$EDGESEG_PLUGIN_DIR`` (else ``~/.cache/edgeseg/plugins``) / ``trt<major.minor>-<machine>``.
    """
    root = Path(os.environ.get("EDGESEG_PLUGIN_DIR", "~/.cache/edgeseg/plugins")).expanduser()
    major_minor = ".".join(tensorrt_version.split(".")[:2])
    return root / f"trt{major_minor}-{platform.machine()}"


def plugin_sidecar(lib: Path) -> Path:
    """``libedgeseg_plugins.so`` -> ``libedgeseg_plugins.so.json`` (written by build-plugin)."""
    return lib.with_name(lib.name + ".json")


def linked_tensorrt_major(lib: Path) -> int | None:
    """Major version of the libnvinfer the library links against (its DT_NEEDED 'libnvinfer.so.N')."""
    found = re.search(rb"libnvinfer\.so\.(\d+)", lib.read_bytes())
    return int(found.group(1)) if found else None


def check_plugin_library(lib: Path, tensorrt_version: str, *, from_user: bool = True) -> str:
    """Refuse a library that is not a TensorRT plugin library for this TensorRT; return its SHA-256.

    Checked before anything is loaded (loading a library runs its constructors): it must exist,
    reference ``libnvinfer`` (a TensorRT plugin links it; a library without it is not one), link
    the major version here, and match the SHA-256 its ``build-plugin`` sidecar recorded. A
    library edgeseg found by itself (``from_user=False``, the default build folder) must have
    that sidecar; one the user named on the command line may come from elsewhere.
    """
    rebuild = "rebuild it here with: edgeseg build-plugin"
    if not lib.is_file():
        raise EngineError(f"plugin library {lib} does not exist; build it with: edgeseg build-plugin "
                          f"(or pass --plugin PATH to an existing {PLUGIN_LIB_NAME})")
    linked = linked_tensorrt_major(lib)
    if linked is None:
        raise EngineError(f"{lib} does not link libnvinfer, so it is not a TensorRT plugin library; "
                          f"not loaded; {rebuild}")
    if linked != tensorrt_major(tensorrt_version):
        raise EngineError(f"plugin library {lib} links libnvinfer.so.{linked} but TensorRT here is "
                          f"{tensorrt_version}; {rebuild}")
    sha = sha256_file(lib)
    side = plugin_sidecar(lib)
    if not side.is_file():
        if not from_user:
            raise EngineError(f"plugin library {lib} has no sidecar {side.name} (edgeseg build-plugin writes "
                              f"one), so its SHA-256 cannot be checked; not loaded; {rebuild}")
        return sha
    try:
        facts = json.loads(side.read_text(encoding="utf-8"))
        built_for, recorded = str(facts.get("tensorrt_version", "")), facts.get("sha256")
    except (OSError, ValueError, AttributeError):
        raise EngineError(f"plugin sidecar {side} is not the JSON edgeseg build-plugin writes; "
                          f"not loaded; {rebuild}") from None
    if recorded != sha:
        raise EngineError(f"plugin library {lib} does not match the SHA-256 in {side.name} (changed since "
                          f"edgeseg build-plugin wrote it); not loaded; {rebuild}")
    if built_for and not same_minor(built_for, tensorrt_version):
        raise EngineError(f"plugin library {lib} was built for TensorRT {built_for} but TensorRT "
                          f"here is {tensorrt_version}; {rebuild}")
    return sha


def resolve_plugin(plugin: str | os.PathLike[str] | None, tensorrt_version: str) -> Path:
    """The plugin library to use: ``plugin`` if given, else the default build location."""
    if plugin is not None:
        return Path(plugin).expanduser()
    return default_plugin_dir(tensorrt_version) / PLUGIN_LIB_NAME


def load_plugin_library(lib: str | os.PathLike[str], *, from_user: bool = True) -> str:
    """Load the edgeseg plugin library into TensorRT's plugin registry; return its SHA-256.

    The library registers its creator when it is loaded (a static registrar, like NVIDIA's Python
    samples that ``ctypes.CDLL`` a plugin library; trtexec --staticPlugins does the same), into
    the registry of the libnvinfer the ``tensorrt`` module already loaded. Once per process; the
    registry must then hold the creator the ONNX node names. ``from_user``: the path came from
    the user's command line (see :func:`check_plugin_library`); a path read from a file never
    reaches this function.
    """
    trt = require_tensorrt()
    path = Path(lib).expanduser().resolve()
    with _LOAD_LOCK:
        if str(path) in _LOADED:
            return _LOADED[str(path)]
        sha = check_plugin_library(path, trt.__version__, from_user=from_user)  # before any code runs
        try:
            _HANDLES.append(ctypes.CDLL(str(path)))
        except OSError as e:
            raise EngineError(f"cannot load plugin library {path} ({e}); rebuild it with: edgeseg "
                              "build-plugin") from None
        if trt.get_plugin_registry().get_creator(OP_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None:
            raise EngineError(f"{path} loaded but TensorRT {trt.__version__} has no {OP_NAME} plugin "
                              "registered; rebuild it with: edgeseg build-plugin")
        _LOADED[str(path)] = sha
        return sha


# ---- engine cards ------------------------------------------------------------------------------

def check_engine_card(card: ModelCard, engine: Path, tensorrt_version: str, device: DeviceInfo) -> None:
    """Refuse an engine whose card says it was built for another TensorRT version or GPU.

    TensorRT plans are tied to the exact TensorRT version and to the compute capability they were
    built on; the message carries the command that rebuilds the engine on this machine.
    """
    extra = card.extra
    built_trt = str(extra.get("tensorrt_version", ""))
    built_cc = str(extra.get("compute_capability", ""))
    problems = []
    if built_trt != tensorrt_version:
        problems.append(f"TensorRT {built_trt or '?'} (here {tensorrt_version})")
    if built_cc != device.compute_capability:
        problems.append(f"compute capability {built_cc or '?'} (here {device.compute_capability}, "
                        f"{device.name})")
    if problems:
        recorded = str(extra.get("build_command") or "")
        # The card is data: its command is only echoed when it is an edgeseg build-engine line.
        safe = recorded.startswith("edgeseg build-engine ") and recorded.isprintable()
        rebuild = recorded if safe else (
            f"edgeseg build-engine <model.onnx> --precision {card.precision} -o {engine}")
        raise EngineError(f"engine {engine} was built for {' and '.join(problems)}; rebuild it on this "
                          f"machine: {rebuild}")


def collecting_logger(verbose: bool) -> Any:
    """A ``trt.ILogger`` that keeps error messages (to classify failures) and echoes to stderr."""
    import tensorrt as trt

    severity = trt.ILogger.Severity
    errors = (severity.INTERNAL_ERROR, severity.ERROR)
    shown = (*errors, severity.WARNING)

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in errors:
                self.errors.append(msg)
            if verbose or severity in shown:
                print(f"[TensorRT] {msg}", file=sys.stderr)

    return _Logger()
