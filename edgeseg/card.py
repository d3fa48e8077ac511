"""The model card: one sidecar JSON that travels with every artifact (docs/design.md §4).

Sidecar naming (one function, :func:`card_path`, decides it):

* checkpoint ``model.safetensors`` -> ``model.json``
* every other artifact ``X`` (``model.onnx``, ``model.int8.onnx``, ``model.fp16.engine``)
  -> ``X.json`` (``model.onnx.json``, ``model.fp16.engine.json``)

so a checkpoint, its ONNX files and its engines can share one folder without clobbering cards.
The card module is torch-free: the runtime reads cards on a Jetson image.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, ModelError, did_you_mean
from edgeseg.io import sha256_file, write_json_atomic

# Each choice is declared once, in edgeseg.kinds (shared with the schema); re-exported from here.
from edgeseg.kinds import (  # noqa: F401
    ARTIFACTS,
    CHANNEL_ORDERS,
    INPUT_KINDS,
    OUTPUT_KINDS,
    PRECISIONS,
    UNPOOL_MODES,
    Artifact,
    ChannelOrder,
    InputKind,
    OutputKind,
    Precision,
    UnpoolMode,
)

SCHEMA_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to rebuild, preprocess, run and check a model artifact.

    ``input_hw`` is (height, width) of the network input; ``mean``/``std`` apply to pixel values
    scaled to [0, 1] in ``channel_order``. ``class_colors`` are RGB triples. ``ignore_index`` is
    the label value excluded from losses and metrics (None if the dataset has none).
    ``extra`` holds stage-specific facts: for engines ``tensorrt_version``, ``gpu_name``,
    ``compute_capability``, ``plugin_sha256``; for INT8 files ``calibration_set_sha256``, ``method``;
    for checkpoints training facts (epoch, best metric).

    ``output_kind``: ``logits`` = float (N, K, H, W); ``labels`` = class ids (N, H, W) from an
    ArgMax inside the graph (the runtime skips its host argmax). ``input_kind``: ``normalized`` =
    float32 (N, 3, H, W) as :func:`edgeseg.preprocess.preprocess` makes it; ``bgr-uint8`` = the
    camera frame as OpenCV gives it, uint8 (N, Hf, Wf, 3) BGR with ``frame_hw`` = (Hf, Wf); the
    graph resizes to ``input_hw``, reorders channels and normalizes itself.
    """

    architecture: str
    arch_args: dict[str, Any]
    class_names: tuple[str, ...]
    class_colors: tuple[tuple[int, int, int], ...]
    input_hw: tuple[int, int]
    ignore_index: int | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "RGB"
    artifact: str = "checkpoint"
    unpool_mode: str = "train"
    precision: str = "fp32"
    file_sha256: str | None = None
    parent_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION
    output_kind: str = "logits"
    input_kind: str = "normalized"
    frame_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.class_colors):
            raise ModelError(
                f"model card has {len(self.class_names)} class names but {len(self.class_colors)} "
                "colours; give one RGB colour per class"
            )
        for name, value, allowed in (
            ("artifact", self.artifact, ARTIFACTS),
            ("unpool_mode", self.unpool_mode, UNPOOL_MODES),
            ("precision", self.precision, PRECISIONS),
            ("output_kind", self.output_kind, OUTPUT_KINDS),
            ("input_kind", self.input_kind, INPUT_KINDS),
        ):
            if value not in allowed:
                raise ModelError(f"model card {name}={value!r} is not one of {', '.join(allowed)}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ModelError(f"model card channel_order={self.channel_order!r}; expected RGB or BGR")
        if (self.input_kind == "bgr-uint8") != (self.frame_hw is not None):
            raise ModelError(f"model card input_kind={self.input_kind!r} with frame_hw={self.frame_hw}; "
                             "frame_hw is set exactly for bgr-uint8 inputs: re-create the artifact")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def display_name(self) -> str:
        """The architecture, or ``NAME (external)`` for a model from ``edgeseg import`` /
        ``export --module`` (whose architecture is ``external``): what reports show."""
        if self.architecture == "external":
            return f"{self.arch_args.get('name', 'model')} (external)"
        return self.architecture

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` applied (the card is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["class_names"] = list(self.class_names)
        d["class_colors"] = [list(c) for c in self.class_colors]
        d["input_hw"] = list(self.input_hw)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["frame_hw"] = None if self.frame_hw is None else list(self.frame_hw)
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "model card") -> ModelCard:
        """Validate ``d`` against the card schema (:mod:`edgeseg.schema`) and build the card.

        Any wrong type, shape or absurd size raises ModelError naming ``source`` and the field.
        """
        from edgeseg.schema import CardSchema, validate

        names = {f.name for f in dataclasses.fields(cls)}
        if isinstance(d, dict):
            unknown = sorted(set(d) - names, key=str)
            if unknown:
                raise ModelError(
                    f"{source}: unknown key {unknown[0]!r}{did_you_mean(str(unknown[0]), sorted(names))}; "
                    f"valid keys: {', '.join(sorted(names))}"
                )
            missing = [k for k in ("architecture", "arch_args", "class_names", "class_colors", "input_hw")
                       if k not in d]
            if missing:
                raise ModelError(f"{source}: missing key(s) {', '.join(missing)}; re-create the artifact")
            if isinstance(d.get("schema"), int) and d["schema"] > SCHEMA_VERSION:
                raise ModelError(f"{source}: schema {d['schema']} is newer than this edgeseg "
                                 f"({SCHEMA_VERSION}); upgrade edgeseg")
        v = validate(CardSchema, d, source, ModelError,
                     "re-create the card with the edgeseg step that wrote the artifact")
        fields: dict[str, Any] = {
            "architecture": v.architecture, "arch_args": dict(d["arch_args"]),  # as written, not coerced
            "class_names": tuple(v.class_names), "class_colors": tuple(tuple(c) for c in v.class_colors),
            "input_hw": (v.input_hw[0], v.input_hw[1]), "ignore_index": v.ignore_index,
            "channel_order": v.channel_order, "artifact": v.artifact, "unpool_mode": v.unpool_mode,
            "precision": v.precision, "file_sha256": v.file_sha256, "parent_sha256": v.parent_sha256,
            "extra": dict(d.get("extra") or {}), "schema": v.schema_,
            "output_kind": v.output_kind, "input_kind": v.input_kind,
            "frame_hw": None if v.frame_hw is None else (v.frame_hw[0], v.frame_hw[1]),
        }
        for k in ("mean", "std"):
            if getattr(v, k) is not None:
                fields[k] = tuple(float(x) for x in getattr(v, k))
        try:
            return cls(**fields)
        except ModelError as e:
            raise ModelError(f"{source}: {e}") from None


def card_path(artifact: str | os.PathLike[str]) -> Path:
    """Path of the sidecar card of ``artifact`` (see module docstring for the rule)."""
    p = Path(artifact)
    if p.suffix == ".safetensors":
        return p.with_suffix(".json")
    return p.with_name(p.name + ".json")


def read_card(artifact: str | os.PathLike[str], verify_hash: bool = True) -> ModelCard:
    """Read the card of ``artifact``; check that it describes this very file when it has a hash."""
    artifact = Path(artifact)
    cpath = card_path(artifact)
    if not artifact.exists():
        raise ModelError(f"model file {artifact} does not exist; check the path")
    if not cpath.exists():
        raise ModelError(
            f"model card {cpath} is missing for {artifact}; every edgeseg artifact needs its card "
            "next to it (re-run the edgeseg step that wrote the file)"
        )
    try:
        data = json.loads(cpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"model card {cpath} is not valid JSON ({e}); re-create it") from e
    card = ModelCard.from_dict(data, source=str(cpath))
    if verify_hash and card.file_sha256 is None:
        # A card without a hash cannot vouch for its file: refusing it keeps "file_sha256: null"
        # from switching the check off.
        raise ModelError(f"model card {cpath} has no file_sha256, so it cannot be checked against "
                         f"{artifact}; re-create the artifact with the edgeseg step that wrote it")
    if verify_hash and card.file_sha256 is not None:
        actual = sha256_file(artifact)
        if actual != card.file_sha256:
            raise ModelError(
                f"model card {cpath} does not match {artifact} (SHA-256 {actual[:12]}… vs card "
                f"{card.file_sha256[:12]}…); the file was changed or the card belongs to another "
                "file: re-export/rebuild it with edgeseg"
            )
    return card


def write_card(artifact: str | os.PathLike[str], card: ModelCard,
               hashed: str | os.PathLike[str] | None = None) -> Path:
    """Hash ``artifact`` into ``card.file_sha256`` and write the card atomically; return its path.

    ``hashed``: the file to hash instead (the temporary file that will be renamed onto
    ``artifact``), so card and file can be written inside one :func:`~edgeseg.io.atomic_path`.
    """
    card = card.replace(file_sha256=sha256_file(hashed if hashed is not None else artifact))
    return write_json_atomic(card_path(artifact), card.to_dict())


def require_logits(card: ModelCard, path: str | os.PathLike[str], tool: str, labels_ok: bool = False) -> None:
    """Refuse a deployment file (argmax or preprocessing inside the graph) in a tool that rewrites
    or compares logits graphs / feeds normalized input (calibrate, convert-fp16, int8-sensitivity;
    precision-report takes labels outputs, ``labels_ok``, but not uint8 inputs): those read the
    logits files, and deployment files are made from them at the end."""
    name = Path(path).name
    if card.output_kind == "labels" and not labels_ok:
        raise ConfigError(f"{name} returns labels (argmax inside the graph, made with --argmax); {tool} "
                          "needs the logits file: pass the file it was made from (edgeseg deploy keeps it; "
                          "edgeseg export without --argmax writes one)")
    if card.input_kind == "bgr-uint8":
        raise ConfigError(f"{name} takes uint8 frames (preprocessing inside the graph, made with "
                          f"--frame-size); {tool} feeds normalized float input: pass the file made without "
                          "--frame-size")
