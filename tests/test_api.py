"""The Python API: ``edgeseg.load(path).predict(frame)`` on the shipped demo model (a real trained
lite-unet) and on tiny ONNX files; lazy and torch-free import; bad input is one typed error."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeseg.runtime.api import Segmenter
from tinyseg import reference_logits, write_tiny_onnx

import edgeseg
from edgeseg.data.synthetic import SyntheticScenes
from edgeseg.errors import BackendError, ConfigError, DataError, ModelError
from edgeseg.metrics import ConfusionMeter
from edgeseg.preprocess import preprocess, resize_mask

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "edgeseg" / "assets" / "demo-lite-unet.onnx"


@pytest.fixture(scope="module")
def demo() -> Iterator[Segmenter]:
    m = edgeseg.load(DEMO, threads=1)
    yield m
    m.close()


def test_predict_matches_eval_path_and_scores_real_frames(demo) -> None:
    scenes = SyntheticScenes((360, 480), seed=7)
    meter = ConfusionMeter(demo.card.num_classes, demo.card.ignore_index)
    for t in (0, 5, 10):
        frame, mask = scenes.frame(t).image_bgr, scenes.frame(t).mask
        labels = demo.predict(frame)
        assert labels.shape == (360, 480) and labels.dtype == np.uint8
        # The eval path: numpy preprocess, np.argmax, labels resized with nearest neighbour.
        logits = demo.backend.infer(preprocess(frame, demo.card))
        ref = resize_mask(logits[0].argmax(axis=0).astype(np.uint8), (360, 480))
        assert (labels == ref).mean() > 0.9999
        meter.update(demo.predict(frame, size="input"), resize_mask(mask, demo.input_hw))
    # The shipped model reaches 73 % mIoU on its validation scenes; far above chance here too.
    assert meter.compute().miou > 0.5


def test_predict_batch_equals_predict_per_image(demo) -> None:
    scenes = SyntheticScenes((240, 320), seed=3)
    frames = [scenes.frame(t).image_bgr for t in range(3)]
    frames.append(cv2.resize(scenes.frame(9).image_bgr, (200, 150)))
    batch = demo.predict_batch(frames, batch_size=3)
    assert [b.shape for b in batch] == [(240, 320)] * 3 + [(150, 200)]
    for f, b in zip(frames, batch, strict=True):
        assert (demo.predict(f) == b).mean() > 0.9999
    stacked = demo.predict_batch(np.stack(frames[:3]), size="input")  # (N, H, W, 3) array
    assert [s.shape for s in stacked] == [demo.input_hw] * 3


def test_logits_card_and_describe(demo) -> None:
    frame = SyntheticScenes((96, 128), seed=1).frame(0).image_bgr
    logits = demo.logits(frame)
    assert logits.shape == (demo.card.num_classes, *demo.input_hw) and logits.dtype == np.float32
    assert demo.class_names == demo.card.class_names and demo.card.artifact == "onnx"
    assert demo.describe()["name"] == "onnxruntime" and demo.describe()["threads"] == 1
    assert "lite-unet" in repr(demo)


def test_image_forms(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path, input_hw=(48, 64), num_classes=5)
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    with edgeseg.load(model) as m:
        labels = m.predict(bgr, size="input")
        expected = reference_logits(preprocess(bgr, m.card), 5)[0].argmax(axis=0)
        assert (labels == expected).mean() > 0.999
        assert np.array_equal(m.predict(bgr[:, :, ::-1], rgb=True), m.predict(bgr))
        bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        assert np.array_equal(m.predict(bgra), m.predict(bgr))
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        assert np.array_equal(m.predict(grey), m.predict(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)))
        cv2.imwrite(str(tmp_path / "frame.png"), bgr)
        assert np.array_equal(m.predict(tmp_path / "frame.png"), m.predict(bgr))
        assert np.array_equal(m.predict(bgr[:, ::-1]), m.predict(np.ascontiguousarray(bgr[:, ::-1])))
        # Fixed batch 1: predict_batch falls back to one call per image.
        assert len(m.predict_batch([bgr] * 3, batch_size=4)) == 3


@pytest.mark.parametrize("bad, words", [
    (np.zeros((8, 8, 3), np.float32), "dtype float32"),
    (np.zeros((2, 8, 8, 3), np.uint8), "predict_batch"),
    (np.zeros((0, 8, 3), np.uint8), "non-empty"),
    ([[1, 2], [3, 4]], "numpy array"),
    ("no-such-image.png", "cannot read image"),
])
def test_bad_images_are_one_data_error(tmp_path: Path, bad: object, words: str) -> None:
    with edgeseg.load(write_tiny_onnx(tmp_path)) as m, pytest.raises(DataError, match=words):
        m.predict(bad)  # type: ignore[arg-type]


def test_bad_load_calls(tmp_path: Path) -> None:
    model = write_tiny_onnx(tmp_path)
    with pytest.raises(ConfigError, match=r"no option 'thread'.*'threads'.*valid options: threads"):
        edgeseg.load(model, thread=2)
    (tmp_path / "run").mkdir()
    write_tiny_onnx(tmp_path / "run", name="model.onnx")
    with edgeseg.load(tmp_path / "run") as m:  # a folder holding a model family: its most deployed file
        assert m.card.architecture
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="folder without a model"):
        edgeseg.load(tmp_path / "empty")
    with pytest.raises(BackendError, match="unknown model file type"):
        edgeseg.load(tmp_path / "model.pt")
    bare = write_tiny_onnx(tmp_path, name="bare.onnx", card=False)
    with pytest.raises(ModelError, match="card .* is missing"):
        edgeseg.load(bare)
    m = edgeseg.load(model)
    with m:
        pass
    with pytest.raises(BackendError, match="closed"):
        m.predict(np.zeros((8, 8, 3), np.uint8))
    m.close()  # a second close is harmless
    with edgeseg.load(model) as m2, pytest.raises(ConfigError, match="batch_size=0"):
        m2.predict_batch([np.zeros((8, 8, 3), np.uint8)], batch_size=0)


LAZY = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import edgeseg
heavy = [m for m in ("edgeseg.runtime.api", "onnxruntime", "cv2", "numpy") if m in sys.modules]
assert not heavy, f"import edgeseg pulled in {heavy}"
import numpy as np
with edgeseg.load(sys.argv[1]) as m:
    labels = m.predict(np.zeros((50, 70, 3), np.uint8))
assert labels.shape == (50, 70), labels.shape
print("LAZY OK")
"""


def test_import_is_light_and_runtime_torch_free() -> None:
    out = subprocess.run([sys.executable, "-c", LAZY, str(DEMO)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0 and "LAZY OK" in out.stdout, out.stdout + out.stderr


def test_checkpoint_runs_through_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from edgeseg.card import ModelCard
    from edgeseg.data.synthetic import SYNTHETIC_INFO as info
    from edgeseg.models.checkpoint import save_checkpoint
    from edgeseg.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("lite-unet", num_classes=len(info.class_names)).eval()
    card = ModelCard("lite-unet", {"num_classes": len(info.class_names)}, info.class_names, info.class_colors,
                     (32, 32), info.ignore_index)
    path = save_checkpoint(model, card, tmp_path)[0]
    frame = SyntheticScenes((40, 56), seed=2).frame(0).image_bgr
    with edgeseg.load(path, device="cpu", threads=1) as m:
        assert m.describe()["name"] == "torch"
        labels = m.predict(frame, size="input")
        with torch.no_grad():
            ref = model(torch.from_numpy(preprocess(frame, m.card)))[0].argmax(0).numpy()
    assert (labels == ref).mean() > 0.999
