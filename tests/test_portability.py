"""Portability tier: every ONNX artifact edgeseg writes, loaded and run by the stock third-party tools
users rely on (onnxruntime, OpenVINO, OpenCV DNN, Polygraphy's onnxruntime runner), with argmax
agreement against the PyTorch checkpoint. Plugin-mode files must be refused by every stock tool and
run in edgeseg's own onnxruntime backend.

lite-unet covers Resize (the FP16 scales OpenCV needs as FP32 constants), res-segnet the unpool
(native ops vs the custom plugin node). Random-init models (BatchNorm warmed on noise) on synthetic
frames: near-tied logits make these agreements a strict test of the arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _portability import EXPECTED_REFUSED, TOOLS, check_file, make_artifacts

torch = pytest.importorskip("torch")
pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'edgeseg[openvino]')")
pytest.importorskip("polygraphy", reason="polygraphy is not installed (pip install 'edgeseg[dev]')")

HW = (32, 48)
# least argmax agreement with the PyTorch checkpoint, per artifact (measured: 1.0 for FP32/FP16 in
# every tool; INT8 0.99-1.0 in onnxruntime / Polygraphy / OpenCV)
MIN_AGREEMENT = {"fp32-native": 0.999, "fp16": 0.99, "int8": 0.95, "int8-full": 0.95}
# OpenVINO's INT8 kernels on this AVX2 CPU (no VNNI) depart from the Q/DQ arithmetic that
# onnxruntime and OpenCV follow (first conv already ~6 % mean relative difference): this random-init
# res-segnet measured 0.85 (both placements), the DSB2018-trained one 0.96-0.97 (docs/portability.md).
MIN_AGREEMENT_OV_INT8 = 0.75


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeseg.pipelines.bench_artifacts import write_synthetic_images

    return write_synthetic_images(tmp_path_factory.mktemp("frames"), HW)


def _artifacts_and_reference(name: str, root: Path, frames: Path) -> tuple[dict[str, Path], np.ndarray,
                                                                             np.ndarray]:
    import cv2
    from test_export import make_checkpoint

    from edgeseg.models.checkpoint import load_checkpoint
    from edgeseg.preprocess import preprocess

    torch.set_num_threads(1)
    ckpt = make_checkpoint(root, name, HW)
    artifacts = make_artifacts(ckpt, root / "onnx", HW, str(frames))
    model, card = load_checkpoint(ckpt)
    x = np.concatenate([preprocess(cv2.imread(str(p)), card) for p in sorted(frames.glob("*.png"))[:2]])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).argmax(1).numpy()
    return artifacts, x, ref


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lite-unet", "res-segnet"])
def test_every_artifact_in_every_tool(tmp_path: Path, frames: Path, name: str) -> None:
    artifacts, x, ref = _artifacts_and_reference(name, tmp_path, frames)
    assert set(artifacts) >= {"fp32-native", "fp16", "int8", "int8-full"}
    assert ("fp32-plugin" in artifacts) == (name == "res-segnet")
    for kind, path in artifacts.items():
        results = {r.tool: r for r in check_file(path, x, ref)}
        assert set(results) == set(TOOLS)
        for tool, r in results.items():
            where = f"{name} {kind} in {tool}: {r.error}"
            if kind in EXPECTED_REFUSED:  # the custom node: no stock tool can run it
                assert not r.runs, where
                continue
            assert r.loads and r.runs, where
            least = MIN_AGREEMENT_OV_INT8 if tool == "openvino" and kind.startswith("int8") else \
                MIN_AGREEMENT[kind]
            assert r.agreement is not None and r.agreement >= least, f"{where} agreement {r.agreement}"
    if "fp32-plugin" in artifacts:  # ... and edgeseg's own onnxruntime backend runs it
        from edgeseg.runtime.backends import open_backend

        got = np.concatenate([open_backend(artifacts["fp32-plugin"]).infer(f[None]) for f in x])
        assert np.mean(got.argmax(1) == ref) >= 0.999
