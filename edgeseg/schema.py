"""One schema for the files edgeseg reads back: model cards and calibration manifests.

Both are data written by edgeseg and possibly edited by hand (or by someone hostile), so every
field is checked for type, shape and a sane size before anything uses it: a card whose
``input_hw`` is ``"abc"``, a list where an object belongs, or a 10^6 x 10^6 input size (which
would allocate terabytes) is refused with one line naming the file and the field.

The checks are pydantic models (pydantic 2 is already in the training install through
albumentations, has wheels for Jetson's aarch64/cp310, and turns a nested type error into a
location such as ``preprocess.input_hw.0`` — what the one-line message needs). Only this module
imports pydantic; callers get plain values or an :class:`~edgeseg.errors.EdgesegError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)
from pydantic import ValidationError as _PydanticError

from edgeseg.errors import EdgesegError
from edgeseg.kinds import Artifact, ChannelOrder, InputKind, OutputKind, Precision, UnpoolMode

MAX_SIDE = 16384  # pixels per side of a network input; 16k x 16k is already ~3 GB as float32
MAX_CLASSES = 1024
MAX_ARG = 4096  # integer builder arguments (channels, widths): bounds the memory a card can ask for
MAX_IMAGES = 1_000_000

Side = Annotated[StrictInt, Field(ge=1, le=MAX_SIDE)]
Hw = Annotated[list[Side], Field(min_length=2, max_length=2)]
Number = StrictInt | StrictFloat
Channel3 = Annotated[list[Number], Field(min_length=3, max_length=3)]
Sha = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]
ArgValue = StrictBool | StrictInt | StrictFloat | StrictStr | None
Color = Annotated[list[Annotated[StrictInt, Field(ge=0, le=255)]], Field(min_length=3, max_length=3)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CardExtra(BaseModel):
    """Stage facts; the keys the runtime reads are typed, the rest are free-form notes."""

    model_config = ConfigDict(extra="allow")
    plugin_sha256: Sha | None = None
    plugin_path: StrictStr | None = None  # recorded for people; never loaded (see trt backend)
    build_command: StrictStr | None = None
    tensorrt_version: StrictStr | None = None
    compute_capability: StrictStr | None = None
    params: Annotated[StrictInt, Field(ge=0)] | None = None


class CardSchema(_Strict):
    """A model card as stored (JSON); see :class:`edgeseg.card.ModelCard` for the meaning."""

    architecture: StrictStr
    arch_args: dict[StrictStr, ArgValue]

    @field_validator("arch_args")
    @classmethod
    def _bounded(cls, args: dict[str, Any]) -> dict[str, Any]:
        for k, v in args.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and not -MAX_ARG <= v <= MAX_ARG:
                raise ValueError(f"builder argument {k}={v} is outside [-{MAX_ARG}, {MAX_ARG}] (it would "
                                 "size the network)")
        return args
    class_names: Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_CLASSES)]
    class_colors: Annotated[list[Color], Field(min_length=1, max_length=MAX_CLASSES)]
    input_hw: Hw
    ignore_index: Annotated[StrictInt, Field(ge=0, le=65535)] | None = None
    mean: Channel3 | None = None
    std: Annotated[list[Annotated[Number, Field(gt=0)]], Field(min_length=3, max_length=3)] | None = None
    channel_order: ChannelOrder = "RGB"
    artifact: Artifact = "checkpoint"
    unpool_mode: UnpoolMode = "train"
    precision: Precision = "fp32"
    file_sha256: Sha | None = None
    parent_sha256: Sha | None = None
    extra: CardExtra = Field(default_factory=CardExtra)
    output_kind: OutputKind = "logits"
    input_kind: InputKind = "normalized"
    frame_hw: Hw | None = None
    schema_: Annotated[StrictInt, Field(ge=1)] = Field(1, alias="schema")


class ManifestImage(_Strict):
    path: Annotated[StrictStr, Field(min_length=1)]
    sha256: Sha


class ManifestPreprocess(_Strict):
    input_hw: Hw
    mean: Channel3
    std: Annotated[list[Annotated[Number, Field(gt=0)]], Field(min_length=3, max_length=3)]
    channel_order: ChannelOrder
    resize: Literal["linear"] = "linear"


class ManifestSchema(_Strict):
    """A calibration-set manifest (``edgeseg calib-set``)."""

    format: Literal["edgeseg-calib-set"]
    version: Literal[1]
    root: Annotated[StrictStr, Field(min_length=1)]
    split: StrictStr | None = None
    strategy: StrictStr = "?"
    seed: StrictInt | None = None
    preprocess: ManifestPreprocess
    images: Annotated[list[ManifestImage], Field(min_length=1, max_length=MAX_IMAGES)]
    class_coverage: dict[StrictStr, Any] | None = None
    set_sha256: Sha


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join("schema" if p == "schema_" else str(p) for p in loc) or "(top level)"


def validate(schema: type[BaseModel], data: Any, source: str, error: type[EdgesegError], fix: str) -> Any:
    """``schema``-checked ``data`` or ``error`` with one line: file, field, problem, value, fix."""
    try:
        return schema.model_validate(data)
    except _PydanticError as e:
        first = e.errors()[0]
        got = repr(first.get("input"))
        got = got if len(got) <= 40 else got[:37] + "..."
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        msg = first["msg"][0].lower() + first["msg"][1:]
        raise error(f"{source}: field {_where(first['loc'])}: {msg}, got {got}{more}; {fix}") from None
