"""The Python API of the runtime: ``m = edgeseg.load("model.int8.onnx"); labels = m.predict(frame)``.

A :class:`Segmenter` wraps one backend (:func:`edgeseg.runtime.backends.open_backend`, chosen by
the file's suffix) and the card's preprocessing, so a caller hands it images and gets label maps:

* ``predict(image)`` -> uint8 (H, W) labels at the image's own size (``size="input"``: at the
  network input size);
* ``predict_batch(images)`` -> one label map per image, the images run through the backend in
  batches of ``batch_size`` (one call per image when the file's batch is fixed);
* ``logits(image)`` -> float32 (K, h, w) at the network input size;
* ``card`` (the :class:`~edgeseg.card.ModelCard`: classes, colours, input size, preprocessing),
  ``class_names``, ``input_hw``, ``describe()``; ``close()`` or ``with edgeseg.load(...) as m:``.

Images are numpy arrays as OpenCV gives them: uint8 (H, W, 3) in BGR order (``rgb=True`` for RGB
arrays from PIL or imageio), (H, W) grey or (H, W, 4) with alpha, which are made 3-channel as the
calibration and eval paths do; a str or Path is read with ``cv2.imread``. Labels follow
``np.argmax`` over the classes (ties to the lowest class id; a one-channel binary head gives 1
where its logit is positive), the same as ``edgeseg stream`` and ``edgeseg eval``.

torch-free for ``.onnx`` and ``.engine`` files; only a ``.safetensors`` checkpoint imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import cv2
import numpy as np
from edgeseg.runtime.backends import Backend, open_backend
from edgeseg.runtime.stages import ArgmaxLabels, Preprocessor

from edgeseg.card import ModelCard
from edgeseg.errors import BackendError, ConfigError, DataError

Image = np.ndarray | str | Path


def load(path: str | Path, **options: Any) -> Segmenter:
    """Open an edgeseg artifact (``.onnx``, ``.engine`` or ``.safetensors`` with its card).

    ``options`` go to the backend the file's suffix selects (``runtime="openvino"`` for another
    runtime), checked against its options dataclass in :mod:`edgeseg.runtime.backends.base`:
    ``.onnx`` takes ``threads`` (None = all cores), ``provider`` (``"cpu"``, ``"cuda"``,
    ``"tensorrt"``) and ``spinning``; ``.engine`` takes ``plugin`` (plugin library path) and
    ``device`` (GPU index); ``.safetensors`` takes ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``,
    ``"cuda:N"``) and ``threads``. An option the backend does not take is a
    :class:`~edgeseg.errors.BackendOptionError` (a ConfigError) naming the valid ones, raised
    before anything is loaded.
    """
    from edgeseg.workspace import DEPLOYED, resolve

    path = resolve(path, *DEPLOYED)  # a run folder: its most deployed file, as `edgeseg stream` picks
    return Segmenter(open_backend(path, **options))


class Segmenter:
    """A loaded model that maps images to label maps (see the module docstring for the contract)."""

    def __init__(self, backend: Backend) -> None:
        self._backend: Backend | None = backend
        self.card: ModelCard = backend.card
        self._pre = Preprocessor(self.card)
        self._argmax = ArgmaxLabels()

    # ------------------------------------------------------------------ facts
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    @property
    def input_hw(self) -> tuple[int, int]:
        """(height, width) of the network input; images of any size are resized to it."""
        return self.card.input_hw

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise BackendError("this model was closed; load it again with edgeseg.load(path)")
        return self._backend

    def describe(self) -> dict[str, Any]:
        """What it runs on: backend name, device, provider/precision, library versions, threads."""
        return self.backend.describe()

    # ------------------------------------------------------------------ inference
    def logits(self, image: Image, *, rgb: bool = False) -> np.ndarray:
        """float32 (K, h, w) logits of one image at the network input size (h, w) = input_hw."""
        return self.backend.infer(self._pre(_as_bgr(image, rgb)))[0]

    def predict(self, image: Image, *, rgb: bool = False,
                size: Literal["image", "input"] = "image") -> np.ndarray:
        """Labels of one image: uint8 (H, W) at the image's size (``size="input"``: input_hw).

        Labels are computed at the network's input size and resized with nearest neighbour.
        """
        bgr = _as_bgr(image, rgb)
        logits = self.backend.infer(self._pre(bgr))
        return self._labels(logits, bgr.shape[:2], size)

    def predict_batch(self, images: Iterable[Image], *, rgb: bool = False,
                      size: Literal["image", "input"] = "image", batch_size: int = 8) -> list[np.ndarray]:
        """Labels of several images (any sizes), one uint8 (H, W) map per image, in order.

        Images go through the backend ``batch_size`` at a time (one at a time when the file's
        batch is fixed to 1); the result equals calling :meth:`predict` on each image.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}; expected at least 1")
        fixed = _fixed_batch(self.backend)
        step = fixed if fixed is not None else batch_size
        frames = [_as_bgr(im, rgb) for im in images]
        out: list[np.ndarray] = []
        for start in range(0, len(frames), step):
            chunk = frames[start:start + step]
            logits = self.backend.infer(np.concatenate([self._pre(f) for f in chunk]))
            out += [self._labels(logits[i:i + 1], f.shape[:2], size) for i, f in enumerate(chunk)]
        return out

    def _labels(self, logits_1khw: np.ndarray, image_hw: tuple[int, ...], size: str) -> np.ndarray:
        if size not in ("image", "input"):
            raise ConfigError(f"size={size!r}; expected 'image' (labels at the image's size) or "
                              "'input' (at the network input size)")
        labels = self._argmax(logits_1khw).copy()  # ArgmaxLabels reuses its buffer
        h, w = image_hw[:2]
        if size == "image" and labels.shape != (h, w):
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return labels

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the session / device memory; later calls raise BackendError."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else self._backend.name
        h, w = self.card.input_hw
        return (f"Segmenter({self.card.architecture}, {self.card.artifact} {self.card.precision}, "
                f"{h}x{w}, {self.card.num_classes} classes, {state})")


def _fixed_batch(backend: Backend) -> int | None:
    """The batch an onnxruntime session's input is fixed to (None: dynamic, or not ONNX)."""
    session = getattr(backend, "session", None)
    if session is None:
        return None
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


def _as_bgr(image: Image, rgb: bool) -> np.ndarray:
    """Any accepted image form -> uint8 (H, W, 3) BGR; DataError naming what was wrong."""
    if isinstance(image, str | Path):
        read = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if read is None:
            raise DataError(f"cannot read image {image}; expected an image file OpenCV decodes "
                            "(PNG, JPEG, BMP, TIFF...)")
        return read
    if not isinstance(image, np.ndarray):
        raise DataError(f"image is a {type(image).__name__}; expected a numpy array (H, W, 3) or a "
                        "path (convert PIL images with np.asarray(img) and pass rgb=True)")
    if image.dtype != np.uint8:
        raise DataError(f"image has dtype {image.dtype}; expected uint8 pixels 0..255 (convert with "
                        "np.clip(x * 255, 0, 255).astype(np.uint8) if it is float in 0..1)")
    if image.size == 0:
        raise DataError(f"image has shape {image.shape}; expected a non-empty image")
    image = np.ascontiguousarray(image)  # OpenCV needs contiguous rows (e.g. after frame[:, ::-1])
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if rgb else image
    raise DataError(f"image has shape {image.shape}; expected (H, W, 3) colour, (H, W, 4) with alpha "
                    "or (H, W) grey; for a batch use predict_batch(list_of_images)")

