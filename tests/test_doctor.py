"""edgeseg doctor on recorded boards and recorded cv2.getBuildInformation() texts (torch-free)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from edgeseg.runtime.doctor import (
    Host,
    PluginFacts,
    diagnose,
    gather,
    jetpack_of,
    parse_l4t,
    plugin_facts,
    recorded_facts,
)
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.opencv_info import OpenCvInstall, VenvInfo, gstreamer_fix, parse_build_info, venv_info

DATA = Path(__file__).resolve().parent / "data"
BOARDS = DATA / "jetson"
OPENCV = DATA / "opencv"


def _statuses(board: str) -> dict[str, str]:
    return {r.name: r.status for r in diagnose(recorded_facts(BOARDS / board))}


@pytest.mark.parametrize(("name", "version", "gst", "v4l2", "ffmpeg"), [
    ("pip-opencv-python-headless-5.1.0-x86_64.txt", "5.1.0", False, True, True),
    ("debian12-python3-opencv-4.6.0-x86_64.txt", "4.6.0", True, True, True),
    ("pip-opencv-python-4.8.0.76-aarch64-jetson-orin.txt", "4.8.0", False, True, True),
    ("jetpack5-system-opencv-4.5.4-aarch64.txt", "4.5.4", True, True, True),
])
def test_build_info_video_io(name: str, version: str, gst: bool, v4l2: bool, ffmpeg: bool) -> None:
    build = parse_build_info((OPENCV / name).read_text())
    got = (build.version, build.has_gstreamer, build.has_v4l2, build.has_ffmpeg)
    assert got == (version, gst, v4l2, ffmpeg)


def test_build_info_gstreamer_version_kept() -> None:
    assert parse_build_info((OPENCV / "jetpack5-system-opencv-4.5.4-aarch64.txt").read_text()).gstreamer == (
        "YES (1.16.2)")


@pytest.mark.parametrize(("board", "l4t", "jetpack", "model"), [
    ("orin-nano-jp60", "36.3.0", "6.0", "NVIDIA Jetson Orin Nano Developer Kit"),
    ("orin-nx-jp61", "36.4.0", "6.1", "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"),
    ("agx-orin-jp62", "36.4.3", "6.2", "NVIDIA Jetson AGX Orin Developer Kit"),
    ("orin-nano-super-jp62", "36.4.3", "6.2",
     "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"),
])
def test_board_release_and_model(board: str, l4t: str, jetpack: str, model: str) -> None:
    facts = recorded_facts(BOARDS / board)
    assert parse_l4t(facts.l4t) == l4t and jetpack_of(l4t) == jetpack
    assert facts.jetson_model == model  # the device-tree string's trailing NUL is dropped


def test_l4t_parse_rejects_other_text() -> None:
    assert parse_l4t("Ubuntu 22.04") is None and parse_l4t(None) is None
    assert jetpack_of("36.9.9") == "6.x" and jetpack_of("35.4.1") is None


def test_board_installed_right_is_all_ok() -> None:
    rows = diagnose(recorded_facts(BOARDS / "agx-orin-jp62"))
    assert {r.status for r in rows} <= {"ok", "info"}
    by_name = {r.name: r for r in rows}
    assert by_name["power mode"].found == "MAXN (mode 0)"
    assert by_name["cameras"].found == "/dev/video0, /dev/video1"
    assert by_name["GPU"].found == "Orin (compute capability 8.7)"


def test_jetpack60_tensorrt_too_old_for_the_plugin() -> None:
    rows = {r.name: r for r in diagnose(recorded_facts(BOARDS / "orin-nano-jp60"))}
    assert rows["TensorRT"].status == "fail" and "JetPack 6.1" in rows["TensorRT"].fix
    assert "edgeseg plugin" not in rows  # build-plugin cannot work before the upgrade
    assert rows["L4T / JetPack"].status == "warn"
    assert rows["power mode"].status == "info" and "nvpmodel -m" in rows["power mode"].fix


def test_pip_opencv_shadowing_and_plugin_for_other_tensorrt() -> None:
    rows = {r.name: r for r in diagnose(recorded_facts(BOARDS / "orin-nx-jp61"))}
    cv = rows["OpenCV"]
    assert cv.status == "fail" and "pip opencv-python; GStreamer NO" in cv.found
    assert cv.fix.endswith("/home/nvidia/edgeseg-venv/bin/python -m pip uninstall -y opencv-python")
    assert "numpy" not in cv.fix  # the venv's numpy 1.26 suits JetPack's numpy-1.x cv2
    plugin = rows["edgeseg plugin"]
    assert plugin.status == "fail" and "libnvinfer.so.8" in plugin.found and plugin.fix.endswith(
        "edgeseg build-plugin")
    assert rows["free disk"].status == "warn"


def test_plain_venv_on_jetson_gets_every_step() -> None:
    rows = {r.name: r for r in diagnose(recorded_facts(BOARDS / "orin-nano-super-jp62"))}
    assert rows["Python"].status == "fail" and "include-system-site-packages = true" in rows["Python"].fix
    assert rows["TensorRT"].status == "fail" and "python3-libnvinfer" in rows["TensorRT"].fix
    steps = rows["OpenCV"].fix.split(": ", 1)[1].split(" && ")
    assert steps[0].endswith("pip uninstall -y opencv-python")
    assert steps[1].endswith("pip install 'numpy>=1.24,<2'")  # the venv had numpy 2.2.6
    assert steps[2].startswith("sed -i") and steps[2].endswith("/home/nvidia/edgeseg-venv/pyvenv.cfg")
    assert rows["power mode"].found == "MAXN_SUPER (mode 2)"


def _cv(path: str, python: str, gst: bool, pip: str | None = None, numpy: str | None = None) -> OpenCvInstall:
    text = "General configuration for OpenCV 4.8.0 ===\n  Video I/O:\n    GStreamer:   " + (
        "YES (1.20.3)" if gst else "NO") + "\n"
    return OpenCvInstall(python, path, pip, parse_build_info(text), numpy)


def test_gstreamer_fix_cases() -> None:
    venv = VenvInfo("/v", True, True)
    system = _cv("/usr/lib/python3.10/dist-packages/cv2/x.so", "3.10.12", True, numpy="1.21.5")
    assert gstreamer_fix(_cv("/s/cv2", "3.10.12", True), system, venv) == ""
    pip = _cv("/v/lib/cv2/__init__.py", "3.10.12", False, "opencv-python-headless", "1.26.4")
    assert gstreamer_fix(pip, system, venv, "/v/bin/python").endswith(
        "use it: /v/bin/python -m pip uninstall -y opencv-python-headless")
    other_py = _cv("/v/lib/cv2/__init__.py", "3.12.1", False, "opencv-python-headless")
    assert "built for Python 3.10.12, not 3.12.1" in gstreamer_fix(other_py, system, venv)
    assert "sudo apt install nvidia-opencv" in gstreamer_fix(pip, None, venv)
    assert "no OpenCV is importable" in gstreamer_fix(None, None, venv)


def test_venv_info_reads_pyvenv_cfg(tmp_path: Path) -> None:
    assert venv_info(str(tmp_path)) == VenvInfo(str(tmp_path), False, True)
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\n")
    assert venv_info(str(tmp_path)).system_site_packages
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    assert not venv_info(str(tmp_path)).system_site_packages


def test_plugin_facts_from_the_library_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESEG_PLUGIN_DIR", str(tmp_path))
    missing = plugin_facts("10.3.0.30")
    assert not missing.exists and Path(missing.path).parent.name.startswith("trt10.3-")
    assert Path(missing.path).parent.parent == tmp_path
    old = tmp_path / "trt8.6-aarch64"
    old.mkdir()
    (old / "libedgeseg_plugins.so").write_bytes(b"\x7fELF....libnvinfer.so.8\x00....")
    assert plugin_facts("10.3.0.30").others == (str(old / "libedgeseg_plugins.so"),)
    lib = Path(plugin_facts("10.3.0.30").path)
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"\x7fELF....libnvinfer.so.8\x00....")  # copied from a JetPack 6.0 board
    lib.with_name(lib.name + ".json").write_text(json.dumps({"tensorrt_version": "8.6.2.3"}))
    facts = plugin_facts("10.3.0.30")
    assert (facts.exists, facts.linked_major, facts.built_for) == (True, 8, "8.6.2.3")


def test_plugin_built_for_other_minor_is_refused() -> None:
    base = recorded_facts(BOARDS / "agx-orin-jp62")
    stale = replace(base, plugin=PluginFacts("/p/libedgeseg_plugins.so", True, 10, "10.2.0.19"))
    row = {r.name: r for r in diagnose(stale)}["edgeseg plugin"]
    assert row.status == "fail" and "built for TensorRT 10.2.0.19" in row.found


def test_gather_reads_board_files_through_host() -> None:
    """gather() itself, pointed at a recorded board: files and commands come from the folder."""
    board = BOARDS / "orin-nx-jp61"

    def run(argv: list[str]) -> tuple[int, str] | None:
        recorded = board / "commands" / f"{Path(argv[0]).name}.txt"
        return (0, recorded.read_text()) if recorded.is_file() else None

    facts = gather(Host(board, run))
    assert parse_l4t(facts.l4t) == "36.4.0" and facts.cameras == ("/dev/video0",)
    assert facts.nvpmodel is not None and facts.nvpmodel.startswith("NV Power Mode: MAXN")
    assert facts.onnxruntime is not None and facts.opencv is not None  # this interpreter's own
    names = [r.name for r in diagnose(facts)]
    assert "L4T / JetPack" in names and "CSI (nvarguscamerasrc)" in names


def test_cli_doctor_board_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "doctor.json"
    result = CliRunner().invoke(app, ["doctor", "--board", str(BOARDS / "agx-orin-jp62"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {c["name"] for c in data["checks"]} >= {"TensorRT", "OpenCV", "L4T / JetPack", "power mode"}
    assert data["facts"]["tensorrt"] == "10.3.0.30"
    assert "| TensorRT | ok | 10.3.0.30 |" in out.with_suffix(".md").read_text()
    failing = CliRunner().invoke(app, ["doctor", "--board", str(BOARDS / "orin-nx-jp61")])
    assert failing.exit_code == 1


def test_cli_doctor_bad_input_is_one_line(tmp_path: Path) -> None:
    board = BOARDS / "agx-orin-jp62"
    for args, expect in ((["--board", str(tmp_path)], "not a recorded board folder"),
                         (["-o", str(tmp_path / "x.txt")], "must end in .json"),
                         (["-o", str(tmp_path / "no" / "x.json")], "does not exist"),
                         (["--board", str(board), "-o", str(board / "python.json")], "which is an input")):
        result = CliRunner().invoke(app, ["doctor", *args])
        assert result.exit_code == 2 and expect in result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
