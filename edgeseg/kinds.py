"""The kinds a model card states, each declared once as a ``Literal`` (docs/design.md §4).

The value tuples derive from the Literals with ``typing.get_args``; the card
(:mod:`edgeseg.card`), its pydantic schema (:mod:`edgeseg.schema`) and the CLI's choices all use
these, so a new value is added in one place. No imports: every layer may use this module.
"""

from __future__ import annotations

from typing import Literal, get_args

Artifact = Literal["checkpoint", "onnx", "engine"]
UnpoolMode = Literal["train", "native", "plugin", "none"]
Precision = Literal["fp32", "fp16", "int8"]
OutputKind = Literal["logits", "labels"]  # labels: argmax inside the graph, (N, H, W) class ids
InputKind = Literal["normalized", "bgr-uint8"]  # bgr-uint8: preprocessing inside the graph
ChannelOrder = Literal["RGB", "BGR"]  # order of the colour channels the network takes
ARTIFACTS: tuple[str, ...] = get_args(Artifact)
UNPOOL_MODES: tuple[str, ...] = get_args(UnpoolMode)
PRECISIONS: tuple[str, ...] = get_args(Precision)
OUTPUT_KINDS: tuple[str, ...] = get_args(OutputKind)
INPUT_KINDS: tuple[str, ...] = get_args(InputKind)
CHANNEL_ORDERS: tuple[str, ...] = get_args(ChannelOrder)
