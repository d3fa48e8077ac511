"""``edgeseg doctor``: what this machine has for edgeseg, what is missing, and the fix for each.

Two halves (torch-free; nothing heavy is imported at module load):

* :func:`gather` reads the machine into :class:`Facts` — plain data. Every file path goes through
  ``Host.root`` and every command through ``Host.run``, so a recorded board (its
  ``/etc/nv_tegra_release``, ``/proc/device-tree/model``, ``nvpmodel -q`` output, ...) can stand in
  for the machine: :func:`recorded_facts` loads one from a folder (see tests/data/jetson/).
* :func:`diagnose` turns Facts into :class:`Check` rows (ok / warn / fail / info, what was found,
  the fix). It is pure, so every rule is tested on recorded boards.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.opencv_info import (
    OpenCvBuild,
    OpenCvInstall,
    VenvInfo,
    gstreamer_fix,
    parse_build_info,
)

# L4T release -> JetPack release (NVIDIA's JetPack 6 release notes); other R36 releases show as R36.x.
JETPACK_OF_L4T = {"36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
                  "36.5.0": "6.2.2"}
MIN_TENSORRT_MAJOR = 10  # the plugin is IPluginV3 (TensorRT 10.0+); JetPack 6.0 ships TensorRT 8.6
MIN_FREE_GB = 5.0  # engine builds, calibration sets and recorded video need a few GB

# argv -> (returncode, stdout) or None when there is no such program
Runner = Callable[[list[str]], "tuple[int, str] | None"]


def run_command(argv: list[str], timeout_s: float = 20.0) -> tuple[int, str] | None:
    """Run ``argv`` and return (returncode, stdout + stderr); None when the program does not exist."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.returncode, out.stdout + out.stderr


@dataclass(frozen=True)
class Host:
    """Where :func:`gather` looks: ``root`` prefixes every absolute file path (``/`` = this machine),
    ``run`` executes commands (``nvpmodel -q``, ``gst-inspect-1.0``, ``nvcc --version``)."""

    root: Path = Path("/")
    run: Runner = run_command

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> str | None:
        try:
            return self.path(absolute).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None


@dataclass(frozen=True)
class PluginFacts:
    """The edgeseg plugin library where ``edgeseg build-plugin`` puts it for this TensorRT."""

    path: str
    exists: bool
    linked_major: int | None = None  # from its DT_NEEDED libnvinfer.so.N
    built_for: str | None = None  # TensorRT version its sidecar records
    others: tuple[str, ...] = ()  # builds for other TensorRT versions / CPUs found next to it


@dataclass(frozen=True)
class Facts:
    """Everything :func:`diagnose` judges. None means "not found here"."""

    machine: str
    python: str
    executable: str
    venv: VenvInfo
    edgeseg: str
    torch: str | None
    onnxruntime: str | None
    ort_providers: tuple[str, ...]
    tensorrt: str | None
    tensorrt_error: str | None
    plugin: PluginFacts | None
    cuda_driver: str | None
    cuda_runtime: str | None
    gpus: tuple[tuple[str, str], ...]  # (name, compute capability)
    l4t: str | None  # first line of /etc/nv_tegra_release
    jetson_model: str | None  # /proc/device-tree/model
    nvpmodel: str | None  # `nvpmodel -q` output; None = no nvpmodel
    opencv: OpenCvInstall | None
    system_opencv: OpenCvInstall | None
    argus: bool  # GStreamer has nvarguscamerasrc
    cameras: tuple[str, ...]
    disk_free_gb: float | None
    disk_path: str = "."
    notes: tuple[str, ...] = field(default_factory=tuple)


# ---- gathering (impure) ------------------------------------------------------------------------

def _module_version(name: str) -> tuple[str | None, str | None]:
    """(version, None) when ``import name`` works, else (None, the error)."""
    import importlib

    try:
        module = importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - a broken install must be reported, not crash the doctor
        return None, f"{type(e).__name__}: {e}"
    return str(getattr(module, "__version__", "?")), None


def parse_l4t(line: str | None) -> str | None:
    """'36.4.0' from '# R36 (release), REVISION: 4.0, GCID: ...'; None when not that format."""
    found = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)", line or "")
    return f"{found.group(1)}.{found.group(2)}.{found.group(3)}" if found else None


def jetpack_of(l4t: str | None) -> str | None:
    """JetPack release for an L4T release ('36.4.0' -> '6.1'); 'R36.x' ones not listed -> '6.x'."""
    if l4t is None:
        return None
    return JETPACK_OF_L4T.get(l4t, "6.x" if l4t.startswith("36.") else None)


def _cuda_runtime(host: Host) -> str | None:
    text = host.read("/usr/local/cuda/version.json")
    if text:
        try:
            return str(json.loads(text)["cuda"]["version"])
        except (ValueError, KeyError, TypeError):
            pass
    nvcc = str(host.path("/usr/local/cuda/bin/nvcc"))
    out = host.run([nvcc if Path(nvcc).is_file() else "nvcc", "--version"])
    found = re.search(r"release (\d+\.\d+)", out[1]) if out else None
    return found.group(1) if found else None


def _cuda_driver() -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """Driver API version and GPUs ('12.6', (('Orin', '8.7'),)); the calls live in trt_common."""
    from edgeseg.runtime.trt_common import cuda_driver, device_info

    driver, count = cuda_driver()
    return driver, tuple((d.name, d.compute_capability) for d in map(device_info, range(count)))


def plugin_facts(tensorrt_version: str) -> PluginFacts:
    """Where build-plugin puts the library for ``tensorrt_version`` and what that library says."""
    from edgeseg.runtime.trt_common import (
        PLUGIN_LIB_NAME,
        default_plugin_dir,
        linked_tensorrt_major,
        plugin_sidecar,
    )

    lib = default_plugin_dir(tensorrt_version) / PLUGIN_LIB_NAME
    others = tuple(str(p) for p in sorted(lib.parent.parent.glob(f"*/{PLUGIN_LIB_NAME}")) if p != lib)
    if not lib.is_file():
        return PluginFacts(str(lib), False, others=others)
    built_for = None
    side = plugin_sidecar(lib)
    if side.is_file():
        try:
            recorded = json.loads(side.read_text(encoding="utf-8")).get("tensorrt_version")
            built_for = str(recorded) if recorded else None
        except ValueError:
            built_for = None
    return PluginFacts(str(lib), True, linked_tensorrt_major(lib), built_for, others)


def _cameras(host: Host) -> tuple[str, ...]:
    from edgeseg.runtime.camera_uri import video_devices

    return tuple(f"/dev/{p.name}" for p in video_devices(host.path("/dev")))


def gather(host: Host | None = None) -> Facts:
    """Read this machine (through ``host``) into Facts. Takes a few seconds (system Python probe)."""
    from edgeseg.runtime.camera_uri import ARGUS_ELEMENT

    from edgeseg.opencv_info import current_opencv, system_opencv, venv_info
    from edgeseg.version import __version__

    host = host or Host()
    ort, _ = _module_version("onnxruntime")
    providers: tuple[str, ...] = ()
    if ort:
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    trt, trt_error = _module_version("tensorrt")
    if trt == "?":  # a folder of type stubs imports as an empty namespace package
        trt, trt_error = None, "the 'tensorrt' module here has no __version__ (type stubs only?)"
    driver, gpus = _cuda_driver()
    model = host.read("/proc/device-tree/model")
    release = host.read("/etc/nv_tegra_release")
    nvp = host.run(["nvpmodel", "-q"])
    gst = host.run(["gst-inspect-1.0", ARGUS_ELEMENT])
    try:
        free = shutil.disk_usage(".").free / 1e9
    except OSError:
        free = None
    return Facts(
        machine=platform.machine(), python=sys.version.split()[0], executable=sys.executable,
        venv=venv_info(), edgeseg=__version__, torch=_torch_version(), onnxruntime=ort,
        ort_providers=providers, tensorrt=trt, tensorrt_error=trt_error,
        plugin=plugin_facts(trt) if trt else None, cuda_driver=driver, cuda_runtime=_cuda_runtime(host),
        gpus=gpus, l4t=release.splitlines()[0].strip() if release else None,
        jetson_model=model.strip("\x00\n ") if model else None, nvpmodel=nvp[1] if nvp else None,
        opencv=current_opencv(), system_opencv=system_opencv(str(host.path("/usr/bin/python3"))),
        argus=bool(gst and gst[0] == 0), cameras=_cameras(host), disk_free_gb=free,
        disk_path=str(Path.cwd()),
    )


def _torch_version() -> str | None:
    """torch's version without importing it (importing torch takes seconds and is not needed)."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


# ---- recorded boards ---------------------------------------------------------------------------

def _install(data: dict[str, Any] | None, folder: Path) -> OpenCvInstall | None:
    """An OpenCV from python.json: ``build_info`` names a recorded getBuildInformation() text, or
    ``video_io`` states the fields (version, gstreamer, v4l2, ffmpeg) where no text was recorded."""
    if data is None:
        return None
    if "build_info" in data:
        build = parse_build_info((folder / data["build_info"]).read_text(encoding="utf-8"))
    else:
        io = data["video_io"]
        build = OpenCvBuild(io.get("version"), io.get("gstreamer"), io.get("v4l2"), io.get("ffmpeg"))
    return OpenCvInstall(data["python"], data["file"], data.get("pip_dist"), build, data.get("numpy"))


def recorded_facts(folder: Path) -> Facts:
    """Facts of a recorded board: ``folder`` is its root (etc/nv_tegra_release, proc/device-tree/model,
    dev/video*), ``commands/<program>.txt`` hold command outputs, and ``python.json`` the Python-side
    facts (TensorRT, onnxruntime, OpenCV as a recorded getBuildInformation() file, ...)."""

    def run(argv: list[str]) -> tuple[int, str] | None:
        recorded = folder / "commands" / f"{Path(argv[0]).name}.txt"
        return (0, recorded.read_text(encoding="utf-8")) if recorded.is_file() else None

    host = Host(folder, run)
    py = json.loads((folder / "python.json").read_text(encoding="utf-8"))
    model = host.read("/proc/device-tree/model")
    release = host.read("/etc/nv_tegra_release")
    nvp = run(["nvpmodel", "-q"])
    plugin = py.get("plugin")
    return Facts(
        machine=py["machine"], python=py["python"], executable=py["executable"],
        venv=VenvInfo(**py["venv"]), edgeseg=py.get("edgeseg", "0.1.0"), torch=py.get("torch"),
        onnxruntime=py.get("onnxruntime"), ort_providers=tuple(py.get("ort_providers", ())),
        tensorrt=py.get("tensorrt"), tensorrt_error=py.get("tensorrt_error"),
        plugin=PluginFacts(**{**plugin, "others": tuple(plugin.get("others", ()))}) if plugin else None,
        cuda_driver=py.get("cuda_driver"), cuda_runtime=py.get("cuda_runtime") or _cuda_runtime(host),
        gpus=tuple(tuple(g) for g in py.get("gpus", ())),  # type: ignore[misc]
        l4t=release.splitlines()[0].strip() if release else None,
        jetson_model=model.strip("\x00\n ") if model else None, nvpmodel=nvp[1] if nvp else None,
        opencv=_install(py.get("opencv"), folder), system_opencv=_install(py.get("system_opencv"), folder),
        argus=bool(py.get("argus")), cameras=_cameras(host), disk_free_gb=py.get("disk_free_gb"),
        disk_path=py.get("disk_path", "/"), notes=tuple(py.get("notes", ())),
    )


# ---- judging (pure) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One row: ``status`` is ok, warn (works, but not as it should), fail (a part of edgeseg cannot
    run here) or info (optional, nothing to fix)."""

    name: str
    status: str
    found: str
    fix: str = ""


def _python_checks(f: Facts, jetson: bool) -> list[Check]:
    rows = [Check("edgeseg", "ok", f"{f.edgeseg} ({f.executable})")]
    venv = ("venv with system site-packages" if f.venv.is_venv and f.venv.system_site_packages
            else "venv without system site-packages" if f.venv.is_venv else "no venv")
    if jetson and f.venv.is_venv and not f.venv.system_site_packages:
        rows.append(Check("Python", "fail", f"{f.python}, {venv}",
                          "JetPack's TensorRT and OpenCV live in the system site-packages: sed -i "
                          "'s/^include-system-site-packages *= *false/include-system-site-packages = true/' "
                          f"{Path(f.venv.prefix) / 'pyvenv.cfg'}"))
    elif jetson and not f.python.startswith("3.10."):
        rows.append(Check("Python", "warn", f"{f.python}, {venv}",
                          "JetPack 6's TensorRT and OpenCV bindings are for Python 3.10: make the venv with "
                          "/usr/bin/python3 -m venv --system-site-packages .venv"))
    else:
        rows.append(Check("Python", "ok", f"{f.python}, {venv}"))
    rows.append(Check("torch", "info", f.torch or "not installed",
                      "" if f.torch else "optional: only train/export (and trt-smoke's export step) need it"))
    if f.onnxruntime is None:
        rows.append(Check("onnxruntime", "fail", "not importable",
                          f"{f.executable} -m pip install onnxruntime"))
    else:
        rows.append(Check("onnxruntime", "ok", f"{f.onnxruntime} ({', '.join(f.ort_providers) or 'none'})"))
    return rows


def _tensorrt_checks(f: Facts, jetson: bool) -> list[Check]:
    if f.tensorrt is None:
        fix = ("sudo apt install python3-libnvinfer python3-libnvinfer-dev (JetPack 6.1+), in a venv with "
               "--system-site-packages" if jetson else
               f"{f.executable} -m pip install tensorrt (x86_64; on a Jetson it comes with JetPack)")
        why = f" ({f.tensorrt_error})" if f.tensorrt_error and "No module" not in f.tensorrt_error else ""
        return [Check("TensorRT", "fail" if f.gpus or jetson else "info", f"not importable{why}",
                      fix if f.gpus or jetson else "needed only for .engine files (NVIDIA GPU or Jetson)")]
    major = int(f.tensorrt.split(".")[0])
    if major < MIN_TENSORRT_MAJOR:
        fix = ("upgrade to JetPack 6.1 or newer (L4T R36.4: TensorRT 10.3)" if jetson
               else "install TensorRT 10.x or 11.x")
        # No plugin row: build-plugin cannot succeed before TensorRT is upgraded.
        return [Check("TensorRT", "fail", f.tensorrt, f"the edgeseg plugin (IPluginV3) needs TensorRT "
                      f">= {MIN_TENSORRT_MAJOR}.0; {fix}")]
    return [Check("TensorRT", "ok", f.tensorrt), _plugin_check(f.plugin, f.tensorrt)]


def _plugin_check(p: PluginFacts | None, trt: str) -> Check:
    if p is None:
        return Check("edgeseg plugin", "warn", "unknown", "edgeseg build-plugin")
    if not p.exists:
        elsewhere = f"; builds for other TensorRT versions: {', '.join(p.others)}" if p.others else ""
        return Check("edgeseg plugin", "warn", f"not built for TensorRT {trt} ({p.path}){elsewhere}",
                     "edgeseg build-plugin")
    major = int(trt.split(".")[0])
    if p.linked_major is not None and p.linked_major != major:
        return Check("edgeseg plugin", "fail", f"{p.path} links libnvinfer.so.{p.linked_major}, TensorRT "
                     f"here is {trt}", "rebuild it for this TensorRT: edgeseg build-plugin")
    if p.built_for and p.built_for.split(".")[:2] != trt.split(".")[:2]:
        return Check("edgeseg plugin", "fail", f"{p.path} was built for TensorRT {p.built_for}, here "
                     f"{trt}", "rebuild it for this TensorRT: edgeseg build-plugin")
    return Check("edgeseg plugin", "ok", f"{p.path} (TensorRT {p.built_for or trt})")


def _cuda_checks(f: Facts, jetson: bool) -> list[Check]:
    rows = []
    if f.cuda_driver is None:
        rows.append(Check("CUDA driver", "fail" if jetson else "info", "none (no libcuda.so.1)",
                          "reflash/repair JetPack (nvidia-l4t-cuda)" if jetson
                          else "needed only for .engine files and --provider cuda (an NVIDIA GPU)"))
    else:
        rows.append(Check("CUDA driver", "ok", f.cuda_driver))
    rows.append(Check("CUDA runtime", "ok" if f.cuda_runtime else "info", f.cuda_runtime or "not found",
                      "" if f.cuda_runtime else ("sudo apt install nvidia-cuda (needed to build the plugin)"
                                                 if jetson else "needed only to build the plugin (nvcc)")))
    if f.gpus:
        rows.append(Check("GPU", "ok", "; ".join(f"{n} (compute capability {cc})" for n, cc in f.gpus)))
    elif f.cuda_driver is not None:
        rows.append(Check("GPU", "fail", "the driver sees no GPU",
                          "check nvidia-smi (tegrastats on a Jetson) and CUDA_VISIBLE_DEVICES"))
    return rows


def _jetson_checks(f: Facts) -> list[Check]:
    l4t = parse_l4t(f.l4t)
    jp = jetpack_of(l4t)
    rows = [Check("Jetson", "ok", f.jetson_model or "unknown model")]
    if l4t is None:
        rows.append(Check("L4T / JetPack", "warn", f.l4t or "no /etc/nv_tegra_release",
                          "JetPack 6 expected (L4T R36); flash it with SDK Manager"))
    elif not l4t.startswith("36."):
        rows.append(Check("L4T / JetPack", "fail", f"L4T R{l4t}", "edgeseg needs JetPack 6.1+ (L4T R36.4, "
                          "TensorRT 10.3); flash it with SDK Manager"))
    elif tuple(int(x) for x in l4t.split(".")[:2]) < (36, 4):
        rows.append(Check("L4T / JetPack", "warn", f"L4T R{l4t} = JetPack {jp}", "JetPack 6.0 ships "
                          "TensorRT 8.6; engines with the edgeseg plugin need JetPack 6.1+ (L4T R36.4)"))
    else:
        rows.append(Check("L4T / JetPack", "ok", f"L4T R{l4t} = JetPack {jp}"))
    if f.nvpmodel is None:
        rows.append(Check("power mode", "warn", "nvpmodel not found", "sudo apt install nvidia-l4t-nvpmodel"))
    else:
        found = re.search(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)", f.nvpmodel)
        mode = f"{found.group(1)} (mode {found.group(2)})" if found else f.nvpmodel.strip().splitlines()[0]
        top = bool(found and found.group(1).upper().startswith("MAXN"))
        rows.append(Check("power mode", "ok" if top else "info", mode,
                          "" if top else "for benchmarks use the fastest mode (MAXN or MAXN_SUPER): its "
                          "ID is in /etc/nvpmodel.conf (POWER_MODEL ID=N NAME=...); sudo nvpmodel -m N"))
    return rows


def _opencv_checks(f: Facts, jetson: bool) -> list[Check]:
    cv = f.opencv
    if cv is None:
        return [Check("OpenCV", "fail", "not importable", gstreamer_fix(None, f.system_opencv, f.venv,
                                                                        f.executable))]
    b: OpenCvBuild = cv.build
    origin = f"pip {cv.pip_dist}" if cv.pip_dist else "system/other build"
    io = ", ".join(f"{k} {'?' if raw is None else 'yes' if yes else 'NO'}" for k, raw, yes in
                   (("GStreamer", b.gstreamer, b.has_gstreamer), ("V4L2", b.v4l2, b.has_v4l2),
                    ("FFmpeg", b.ffmpeg, b.has_ffmpeg)))
    found = f"{b.version} ({origin}; {io})"
    if b.has_gstreamer:
        return [Check("OpenCV", "ok", found)]
    fix = gstreamer_fix(cv, f.system_opencv, f.venv, f.executable)
    shadowing = f.system_opencv is not None and f.system_opencv.build.has_gstreamer
    # On a Jetson GStreamer is how CSI cameras work: fail. Elsewhere a better OpenCV is only a warning.
    status = "fail" if jetson else "warn" if shadowing else "info"
    other = "GStreamer pipelines and csi:// need an OpenCV with GStreamer; files, cameras and URLs work"
    return [Check("OpenCV", status, found, other if status == "info" else fix)]


def _camera_checks(f: Facts, jetson: bool) -> list[Check]:
    rows = []
    if f.cameras:
        rows.append(Check("cameras", "ok", ", ".join(f.cameras)))
    else:
        rows.append(Check("cameras", "info", "no /dev/video*",
                          "connect a USB or CSI camera (ls /dev/video* lists them); files, URLs and "
                          "--source synthetic work without one"))
    if jetson:
        rows.append(Check("CSI (nvarguscamerasrc)", "ok" if f.argus else "warn",
                          "available" if f.argus else "not found",
                          "" if f.argus else "sudo apt install nvidia-l4t-gstreamer"))
    return rows


def diagnose(f: Facts) -> list[Check]:
    """Every check, in the order ``edgeseg doctor`` prints them."""
    jetson = f.l4t is not None or bool(f.jetson_model and "jetson" in f.jetson_model.lower())
    rows = [*_python_checks(f, jetson), *_tensorrt_checks(f, jetson), *_cuda_checks(f, jetson)]
    if jetson:
        rows += _jetson_checks(f)
    rows += [*_opencv_checks(f, jetson), *_camera_checks(f, jetson)]
    if f.disk_free_gb is not None:
        low = f.disk_free_gb < MIN_FREE_GB
        fix = f"free at least {MIN_FREE_GB:g} GB (engines, calibration sets, videos)" if low else ""
        rows.append(Check("free disk", "warn" if low else "ok", f"{f.disk_free_gb:.1f} GB at {f.disk_path}",
                          fix))
    return rows


def facts_dict(f: Facts) -> dict[str, Any]:
    """Facts as JSON-ready data (OpenCV build texts reduced to their parsed fields)."""
    return json.loads(json.dumps(asdict(f), default=str))


def summary(rows: list[Check]) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in ("ok", "warn", "fail", "info")}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def as_markdown(rows: list[Check], title: str) -> str:
    lines = [f"### {title}", "", "| check | status | found | fix |", "|---|---|---|---|"]
    for r in rows:
        cells = [c.replace("|", "\\|") for c in (r.name, r.status, r.found, r.fix)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", summary(rows), ""])

