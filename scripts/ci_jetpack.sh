#!/usr/bin/env bash
# JetPack-like CI check (issue 13), on an x86 Debian 12 host, as root, after scripts/setup.sh.
#
# 1. pip's resolver for the runtime dependencies as a Jetson sees them (aarch64, CPython 3.10,
#    glibc 2.35 = JetPack 6 / Ubuntu 22.04), binary wheels only: a dependency without an
#    aarch64/cp310 wheel fails here.
# 2. A JetPack-like venv: Debian's python3-opencv (4.6, built with GStreamer) + GStreamer plugins for
#    the system Python, `venv --system-site-packages`, edgeseg's runtime installed the Jetson way
#    (the aarch64 requirement set: no pip OpenCV, numpy < 2) with onnxruntime 1.23.2 (the newest a
#    Jetson gets, i.e. the oldest edgeseg must support), then:
#    - a real GStreamer source (videotestsrc ! videoconvert ! appsink) through `edgeseg stream`
#      with --save and --report, checked (frames, report, video);
#    - csi:// on a machine without nvarguscamerasrc: the one-line refusal;
#    - `edgeseg doctor`;
#    - the runtime tests (torch-free) against onnxruntime 1.23.2.
# 3. Python 3.10 (JetPack 6's), when this host has it under pyenv: the runtime's quick tests there.
#
# Outputs (figures for docs/jetson.md) go to build/ci-jetpack/. About 2-4 minutes with warm caches.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=build/ci-jetpack
mkdir -p "$OUT"
ORT_JETSON=1.23.2
REQ_ARGS=(--machine aarch64)
step() { printf '\n== %s ==\n' "$*"; }

step "1. runtime dependencies for aarch64 / CPython 3.10 (binary wheels only)"
.venv/bin/python scripts/jetson_requirements.py "${REQ_ARGS[@]}" --python 3.10 >"$OUT/requirements-aarch64-cp310.txt"
platforms=(--platform manylinux2014_aarch64)
for minor in $(seq 17 35); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }  # this host's pip.conf
.venv/bin/python -m pip install --dry-run --ignore-installed --quiet --no-warn-conflicts \
  --report "$OUT/resolve-aarch64-cp310.json" "${platforms[@]}" --python-version 3.10 \
  --implementation cp --abi cp310 --only-binary=:all: -r "$OUT/requirements-aarch64-cp310.txt" 2>&1 | quiet_pip
.venv/bin/python - "$OUT/resolve-aarch64-cp310.json" "$ORT_JETSON" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
rows = [(i["metadata"]["name"], i["metadata"]["version"], i["download_info"]["url"].rsplit("/", 1)[-1])
        for i in report["install"]]
bad = [r for r in rows if not r[2].endswith(".whl")]
for name, version, wheel in sorted(rows, key=lambda r: r[0].lower()):
    print(f"  {name:24s} {version:12s} {wheel}")
ort = dict((n.lower(), v) for n, v, _ in rows).get("onnxruntime")
assert not bad, f"not binary wheels: {bad}"
assert ort == sys.argv[2], f"a Jetson now resolves onnxruntime {ort}; update ORT_JETSON in scripts/ci_jetpack.sh"
print(f"resolved {len(rows)} distributions, all binary wheels for aarch64/cp310 (onnxruntime {ort})")
EOF

step "2. JetPack-like system packages (python3-opencv with GStreamer, GStreamer plugins)"
APT_PKGS=(python3-opencv python3-venv gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-tools)
if ! dpkg -s "${APT_PKGS[@]}" >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}"
fi
JV="$OUT/venv"
[ -x "$JV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$JV"
"$JV/bin/python" -m pip install -q --upgrade pip 2>&1 | quiet_pip
.venv/bin/python scripts/jetson_requirements.py "${REQ_ARGS[@]}" \
  --python "$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" >"$OUT/requirements-jetpack-like.txt"
echo "onnxruntime==$ORT_JETSON" >"$OUT/constraints.txt"
"$JV/bin/python" -m pip install -q -c "$OUT/constraints.txt" -r "$OUT/requirements-jetpack-like.txt" pytest \
  2>&1 | quiet_pip
# edgeseg itself without dependencies: its x86 dependency set would add pip's OpenCV.
"$JV/bin/python" -m pip install -q --no-deps -e . 2>&1 | quiet_pip
"$JV/bin/python" - <<'EOF'
import cv2, numpy, onnxruntime
from edgeseg.opencv_info import current_opencv
cv = current_opencv()
assert cv is not None and cv.pip_dist is None, f"a pip OpenCV is installed: {cv}"
assert cv.build.has_gstreamer, "the system OpenCV has no GStreamer"
print(f"cv2 {cv2.__version__} from {cv2.__file__} (GStreamer {cv.build.gstreamer}); numpy {numpy.__version__}; "
      f"onnxruntime {onnxruntime.__version__}")
EOF

step "GStreamer source through edgeseg stream (--save, --report)"
rm -f "$OUT/stream.mp4" "$OUT/stream-report.json" "$OUT/stream-report.md"
PIPELINE="videotestsrc is-live=true num-buffers=300 pattern=ball ! video/x-raw,width=480,height=360,framerate=30/1 ! videoconvert ! video/x-raw,format=BGR ! appsink"
FRAMES=90
"$JV/bin/edgeseg" stream edgeseg/assets/demo-lite-unet.onnx --source "$PIPELINE" --max-frames "$FRAMES" \
  --headless --save "$OUT/stream.mp4" --report "$OUT/stream-report.json" | tee "$OUT/stream.txt"
"$JV/bin/python" - "$OUT" "$FRAMES" <<'EOF'
import json, sys
import cv2
out, frames = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{out}/stream-report.json"))
video = cv2.VideoCapture(f"{out}/stream.mp4")
written = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
ok, first = video.read()
assert r["frames"] == frames, r["frames"]
assert r["source"].get("live") is True and "videotestsrc" in json.dumps(r["source"]), r["source"]
assert ok and first.shape == (360, 480, 3) and written == frames, (ok, written)
assert open(f"{out}/stream-report.md").read().strip()
print(f"GStreamer source: {r['frames']} frames streamed at {r['fps']:.1f} FPS end to end, "
      f"{r['dropped']} dropped by the newest-frame policy; video {written} frames 480x360; "
      f"report {out}/stream-report.json + .md; p50 latency {r['latency_ms'].get('p50')} ms")
EOF

step "csi:// on a machine without nvarguscamerasrc: one line, exit 2"
set +e
msg=$("$JV/bin/edgeseg" stream edgeseg/assets/demo-lite-unet.onnx --source csi://0 --headless --quiet 2>&1)
rc=$?
set -e
echo "$msg"
[ "$rc" -eq 2 ] && [ "$(printf '%s\n' "$msg" | wc -l)" -eq 1 ] && [[ "$msg" == *nvarguscamerasrc* ]]

step "edgeseg doctor (JetPack-like venv)"
COLUMNS=150 "$JV/bin/edgeseg" doctor -o "$OUT/doctor-jetpack-like.json" || true

step "runtime tests against onnxruntime $ORT_JETSON (system OpenCV $("$JV/bin/python" -c 'import cv2; print(cv2.__version__)'))"
"$JV/bin/python" -m pytest -q -p no:cacheprovider tests/test_sources.py tests/test_camera_uri.py \
  tests/test_doctor.py tests/test_runtime_notorch.py tests/test_report.py tests/test_trt_backend.py \
  tests/test_tegrastats.py tests/test_opencv_compat.py

step "3. Python 3.10 (JetPack 6's Python) with onnxruntime $ORT_JETSON"
PY310=$(ls -d /root/.pyenv/versions/3.10.*/bin/python3 2>/dev/null | tail -1 || true)
if [ -z "$PY310" ]; then
  echo "skipped: no CPython 3.10 on this host (pyenv)"
  exit 0
fi
V10="$OUT/venv310"
[ -x "$V10/bin/python" ] || "$PY310" -m venv "$V10"
# x86 has no system OpenCV for 3.10: the x86 requirement set (pip OpenCV), numpy capped like a Jetson.
.venv/bin/python scripts/jetson_requirements.py --machine x86_64 --python 3.10 >"$OUT/requirements-cp310.txt"
printf 'onnxruntime==%s\nnumpy<2\n' "$ORT_JETSON" >"$OUT/constraints310.txt"
"$V10/bin/python" -m pip install -q -c "$OUT/constraints310.txt" -r "$OUT/requirements-cp310.txt" pytest \
  2>&1 | quiet_pip
"$V10/bin/python" -m pip install -q --no-deps -e . 2>&1 | quiet_pip
"$V10/bin/python" -m pytest -q -p no:cacheprovider tests/test_runtime_notorch.py tests/test_camera_uri.py \
  tests/test_doctor.py tests/test_report.py
