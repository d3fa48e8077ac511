"""The options of the export-side stages, each default declared here once (docs/design.md §1).

One frozen dataclass per stage: :class:`ExportOptions` (``edgeseg export``, :func:`export_onnx`),
:class:`ModuleExportOptions` (``export --module``, :func:`export_module`), :class:`ImportOptions`
(``edgeseg import``, :func:`import_onnx`) and :class:`DeployOptions` (``edgeseg deploy``,
:func:`deploy_onnx`). Each choice is a ``Literal`` declared here once; the value tuples derive
from it and the CLI annotates its options with the same type. Values are checked when the
options are made (``__post_init__``), so a bad value is one ConfigError before any work starts.

Torch-free and light (no onnx import): the CLI imports this module at startup for its defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from edgeseg.errors import ConfigError

Target = Literal["tensorrt", "onnxruntime"]  # where the exported file will run
ExportUnpool = Literal["native", "plugin"]  # the unpool forms an export writes (card.UnpoolMode's subset)
Layout = Literal["nchw", "nhwc"]  # a foreign image input's layout
TrtChoice = Literal["10.3", "11", "all"]  # check-ops: the keys of export/data/tensorrt_ops.json, or all
TARGETS: tuple[str, ...] = get_args(Target)
EXPORT_UNPOOLS: tuple[str, ...] = get_args(ExportUnpool)
LAYOUTS: tuple[str, ...] = get_args(Layout)
TRT_CHOICES: tuple[str, ...] = get_args(TrtChoice)
# The one rule for the unpool form when none is given: the plugin node where TensorRT runs the
# file (one custom node, the edgeseg plugin), standard ops everywhere else (onnxruntime's plugin
# node is a slow Python op). An explicit ``unpool`` wins.
TARGET_UNPOOL: dict[Target, ExportUnpool] = {"tensorrt": "plugin", "onnxruntime": "native"}
DEFAULT_SCALE = 1.0 / 255.0  # import / export --module: pixel scale before mean/std when none is given
MIN_OPSET = 9  # TensorRT's ONNX parser floor
MAX_OPSET = 20  # the TorchScript exporter's ceiling in torch 2.13


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}; choose one of them")


@dataclass(frozen=True)
class ExportOptions:
    """How to export (checkpoint or module -> ONNX).

    ``target``: where the file will run; it picks the unpool form when ``unpool`` is None
    (:data:`TARGET_UNPOOL`; read the resolved form from :attr:`unpool_mode`). ``input_hw`` None =
    the checkpoint card's size (required for a module). ``data``: dataset spec for real-image
    verification (None = random inputs only). ``min_agreement``: argmax agreement (0..1) below
    which nothing is written unless ``force``. ``threads``: torch + onnxruntime threads for the
    verification (None = their defaults). ``argmax`` / ``frame_hw``: a deployment file (labels
    out / uint8 BGR frames of that size in), made by :mod:`edgeseg.export.deploy_graph` with
    :class:`DeployOptions`' checks.
    """

    target: Target = "tensorrt"
    unpool: ExportUnpool | None = None
    opset: int = 17
    input_hw: tuple[int, int] | None = None
    dynamic_batch: bool = False
    simplify: bool = True
    data: str | None = None
    data_split: str = "val"
    verify_frames: int = 20
    random_inputs: int = 2
    min_agreement: float = 0.999
    force: bool = False
    threads: int | None = None
    argmax: bool = False
    frame_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _choice("target", self.target, TARGETS)
        if self.unpool is not None:
            _choice("unpool", self.unpool, EXPORT_UNPOOLS)
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ConfigError(f"opset {self.opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} "
                              f"(TensorRT parses >= {MIN_OPSET}; torch's exporter stops at {MAX_OPSET}); "
                              f"{ExportOptions.opset} is the default")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads} must be >= 1 (or omitted for the defaults)")
        if self.verify_frames < 1 or self.random_inputs < 1:
            raise ConfigError("verification needs at least 1 frame and 1 random input; raise --frames")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"min agreement {self.min_agreement} must be within 0..1 (e.g. 0.999)")

    @property
    def unpool_mode(self) -> ExportUnpool:
        """The unpool form written: ``unpool`` if given, else the target's (:data:`TARGET_UNPOOL`)."""
        return self.unpool if self.unpool is not None else TARGET_UNPOOL[self.target]


@dataclass(frozen=True)
class ModelFacts:
    """What a foreign graph or module cannot say about itself (import and ``export --module``):
    ``classes`` (names, a count, ``"a,b,c"`` or a classes.json path; None = from the dataset the
    stage is given, else refused), the preprocessing ``x = (pixel * scale - mean) / std`` per
    channel (None = ImageNet mean/std and :data:`DEFAULT_SCALE`), ``bgr`` (the model takes BGR)
    and the card's ``name`` (None = the file stem / the module's class or factory name)."""

    classes: Sequence[str] | int | str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    scale: float | None = None
    bgr: bool = False
    name: str | None = None

    def classes_text(self) -> str | None:
        """``classes`` as the command line writes it (``"a,b,c"``, ``"N"``, a path) or None."""
        c = self.classes
        return c if c is None or isinstance(c, str) else str(c) if isinstance(c, int) else ",".join(c)


@dataclass(frozen=True)
class ModuleExportOptions:
    """``export --module``: the export options (``export.input_hw`` is required; ``export.data``
    also gives the classes when ``facts.classes`` is None) and the module's :class:`ModelFacts`."""

    export: ExportOptions = field(default_factory=ExportOptions)
    facts: ModelFacts = field(default_factory=ModelFacts)


@dataclass(frozen=True)
class ImportOptions:
    """What a foreign graph cannot say. ``input_hw``: the size to run at when H/W are dynamic;
    ``facts``: classes and preprocessing (:class:`ModelFacts`); ``data``: a dataset whose
    description gives the classes (``data_split`` of it, named as in :class:`ExportOptions`);
    ``layout``: when the graph is ambiguous; ``output``: output name when there are several."""

    input_hw: tuple[int, int] | None = None
    facts: ModelFacts = field(default_factory=ModelFacts)
    data: str | None = None
    data_split: str = "val"
    layout: Layout | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        if self.layout is not None:
            _choice("layout", self.layout, LAYOUTS)


@dataclass(frozen=True)
class DeployOptions:
    """How to make a deployment file. ``argmax``: labels (N,H,W) out instead of logits;
    ``frame_hw``: uint8 BGR frames of this (H, W) in, preprocessing inside the graph;
    ``check_frames``: synthetic frames for the onnxruntime check against the host path;
    ``min_agreement``: label agreement (0..1) below which nothing is written."""

    argmax: bool = True
    frame_hw: tuple[int, int] | None = None
    check_frames: int = 4
    min_agreement: float = 0.999

    def __post_init__(self) -> None:
        if self.check_frames < 1:
            raise ConfigError(f"check_frames={self.check_frames} must be >= 1 (--frames)")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"min agreement {self.min_agreement} must be within 0..1 (e.g. 0.999)")
