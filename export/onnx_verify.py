"""Export verification: the PyTorch model vs the ONNX graph in onnxruntime, on the same inputs.

PyTorch runs in its default (``train``) unpool mode, i.e. ``F.max_pool2d`` indices +
``F.max_unpool2d`` — the model as trained — so the check covers the unpool rewrite as well as
the rest of the export. Inputs: seeded random tensors and, optionally, real images from a dataset
preprocessed exactly as the runtime does (:func:`edgeseg.preprocess.preprocess`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.export.options import ExportOptions

from edgeseg.card import ModelCard
from edgeseg.errors import ConfigError, ModelError


@dataclass(frozen=True)
class Verification:
    """Agreement on one input source. ``argmax_agreement``: fraction (0..1) of output pixels whose
    arg-max class is the same; ``max_abs_diff`` / ``mean_abs_diff``: over all logits."""

    source: str
    frames: int
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    finite: bool

    def to_json(self) -> dict[str, Any]:
        """The card's ``extra["export"]["verification"]`` row (the field names are the keys)."""
        return asdict(self)

    @classmethod
    def from_json(cls, row: Any) -> Verification:
        """One row as written by :meth:`to_json` (by any edgeseg version: the keys never changed)."""
        try:
            return cls(source=str(row["source"]), frames=int(row["frames"]),
                       max_abs_diff=float(row["max_abs_diff"]), mean_abs_diff=float(row["mean_abs_diff"]),
                       argmax_agreement=float(row["argmax_agreement"]), finite=bool(row["finite"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"the card's export verification row {row!r} is malformed ({e}); "
                             "re-export the model") from None

    def failure(self, min_agreement: float) -> str | None:
        """The line saying why this source fails ``min_agreement`` (or is not finite), else None."""
        if self.argmax_agreement >= min_agreement and self.finite:
            return None
        return (f"{self.source}: argmax agreement {100 * self.argmax_agreement:.3f}% < "
                f"{100 * min_agreement:.3f}%, max abs diff {self.max_abs_diff:.3g}")


def random_inputs(card: ModelCard, count: int, batch: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` seeded standard-normal nchw float32 inputs of the card's size."""
    rng = np.random.default_rng(seed)
    ch = int(card.arch_args.get("in_channels", 3))
    for _ in range(count):
        yield rng.standard_normal((batch, ch, *card.input_hw)).astype(np.float32)


def data_inputs(card: ModelCard, spec: str, split: str, count: int) -> Iterator[np.ndarray]:
    """Up to ``count`` frames spread over the dataset, preprocessed to 1x3xHxW with the card."""
    from edgeseg.data import open_dataset
    from edgeseg.preprocess import preprocess

    if int(card.arch_args.get("in_channels", 3)) != 3:
        raise ConfigError(f"--data needs a 3-channel model; {card.architecture} takes "
                          f"{card.arch_args['in_channels']} channels (verify with random inputs only)")
    ds = open_dataset(spec, split)
    n = len(ds)
    picks = sorted({int(round(i)) for i in np.linspace(0, n - 1, min(count, n))})
    for i in picks:
        yield preprocess(ds[i].image_bgr, card)


def compare(model: Any, session: Any, inputs: Iterator[np.ndarray], source: str) -> Verification:
    """Run both on every input; aggregate max/mean abs logit difference and argmax agreement."""
    import torch

    frames, same, pixels, max_diff, sum_diff, values, finite = 0, 0, 0, 0.0, 0.0, 0, True
    name = session.get_inputs()[0].name
    for x in inputs:
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {name: x})[0]
        if got.shape != ref.shape:
            raise ConfigError(f"ONNX output shape {got.shape} differs from PyTorch {ref.shape}")
        diff = np.abs(got.astype(np.float64) - ref)
        finite = finite and bool(np.isfinite(got).all())
        max_diff = max(max_diff, float(np.nanmax(diff)))
        sum_diff += float(np.nansum(diff))
        values += diff.size
        same += int((got.argmax(1) == ref.argmax(1)).sum())
        pixels += ref.shape[0] * ref.shape[2] * ref.shape[3]
        frames += x.shape[0]
    return Verification(source, frames, max_diff, sum_diff / max(values, 1),
                        same / max(pixels, 1), finite)


def verify(model: Any, onnx_bytes: bytes, card: ModelCard, opts: ExportOptions) -> list[Verification]:
    """Random inputs (always) and ``opts.data`` frames (when given); one result per source."""
    import onnxruntime as ort

    from edgeseg.unpool.ort_op import session_options

    session = ort.InferenceSession(onnx_bytes, session_options(opts.threads),
                                   providers=["CPUExecutionProvider"])
    batch = 2 if opts.dynamic_batch else 1
    results = [compare(model, session, random_inputs(card, opts.random_inputs, batch), "random")]
    if opts.data:
        frames = data_inputs(card, opts.data, opts.data_split, opts.verify_frames)
        label = f"{Path(str(opts.data)).name or opts.data} ({opts.data_split})"
        results.append(compare(model, session, frames, label))
    return results
