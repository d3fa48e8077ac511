"""Argmax and preprocessing inside an edgeseg ONNX graph (torch-free: onnx + onnxruntime).

Works on any edgeseg ONNX file (exported, imported, FP16 or INT8 Q/DQ): it only touches the
graph's one input and its first output.

* :func:`append_argmax` — logits (N,K,h,w) -> [Resize to the input size when the head is
  low-resolution] -> ArgMax over classes (first maximum wins, as ``np.argmax``) -> labels
  (N,H,W) ``uint8`` (``int32`` when K > 256). The device-to-host copy shrinks from 4K bytes to
  1 byte per pixel and the host argmax disappears. A one-channel binary head becomes
  ``logit > 0``, as the runtime's host path does. The cast goes int64 -> float -> uint8 because
  TensorRT converts to UINT8 from FLOAT/HALF only (NvInferRuntimeBase.h, DataType::kUINT8).
* :func:`prepend_preprocess` — the graph takes the camera frame, uint8 (N,Hf,Wf,3) BGR, and does
  what :func:`edgeseg.preprocess.preprocess` does: Cast -> NHWC->NCHW -> channel order -> bilinear
  Resize (half-pixel centres, no antialias, as ``cv2.INTER_LINEAR``) -> (x - 255 mean) / (255 std).
  Bit-exact with the host when no resize is needed (Hf,Wf = input size) up to float rounding; with
  a resize the host rounds the resized pixels to uint8 and OpenCV uses 11-bit fixed-point weights,
  the graph stays in float: differences stay below about one grey level (measured in
  docs/streaming.md).
* :func:`make_deployable` — both, as chosen, plus the card update and a check with onnxruntime
  that the new graph gives the same labels as the old one with host preprocessing + argmax.
* :func:`deploy_onnx` — the same from file to file (``edgeseg deploy``), with :class:`DeployOptions`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.export.options import DeployOptions

from edgeseg.card import ModelCard, read_card
from edgeseg.errors import ConfigError, ExportError, ModelError

PREFIX = "edgeseg_io/"
FRAME_INPUT = "frame"
LABELS_OUTPUT = "labels"
MIN_OPSET = 11  # Resize with ``sizes``


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _check_opset(model: Any, what: str) -> None:
    if _opset(model) < MIN_OPSET:
        raise ConfigError(f"{what} needs ONNX opset >= {MIN_OPSET}, the model has opset {_opset(model)}; "
                          f"re-export it with --opset {MIN_OPSET} or higher (default 17)")


def _dims(value_info: Any) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def _with_shapes(model: Any) -> Any:
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # onnx raises several types; the message is what matters
        raise ExportError(f"ONNX shape inference failed ({str(e).splitlines()[0][:160]}); the file is "
                          "not a valid edgeseg model: re-export it") from None


def _sizes(x: str, hw: tuple[int, int], tag: str) -> list[Any]:
    """Nodes computing ``{tag}_sizes`` = (N, C of ``x``, *hw) for Resize, so a dynamic batch stays
    dynamic (``scales`` could miss the exact size by float rounding)."""
    import onnx
    from onnx import helper

    def const(name: str, value: list[int]) -> Any:
        return helper.make_node("Constant", [], [f"{PREFIX}{tag}_{name}"], name=f"{PREFIX}{tag}_{name}",
                                value=onnx.numpy_helper.from_array(np.array(value, np.int64)))

    p = f"{PREFIX}{tag}_"
    return [const("zero", [0]), const("two", [2]), const("hw", list(hw)),
            helper.make_node("Shape", [x], [p + "shape"], name=p + "Shape"),
            helper.make_node("Slice", [p + "shape", p + "zero", p + "two"], [p + "nc"], name=p + "Slice"),
            helper.make_node("Concat", [p + "nc", p + "hw"], [p + "sizes"], axis=0, name=p + "Concat")]


def _resize(x: str, sizes: str, out: str, tag: str) -> Any:
    from onnx import helper

    # half_pixel + linear = torch's bilinear(align_corners=False) and cv2.INTER_LINEAR's sampling grid
    return helper.make_node("Resize", [x, "", "", sizes], [out], name=f"{PREFIX}{tag}_Resize", mode="linear",
                            coordinate_transformation_mode="half_pixel")


def append_argmax(model: Any, card: ModelCard) -> tuple[Any, ModelCard]:
    """Copy of ``model`` whose only output is ``labels`` (N,H,W) uint8 (int32 for K > 256); the card
    says ``output_kind="labels"``. Raises ConfigError if the model already returns labels."""
    import onnx
    from onnx import TensorProto, helper

    if card.output_kind == "labels":
        raise ConfigError("the model already returns labels (argmax inside the graph); pass --no-argmax")
    _check_opset(model, "argmax inside the graph")
    m = _with_shapes(model)
    out = m.graph.output[0]
    dims = _dims(out)
    if len(dims) != 4:
        raise ExportError(f"output {out.name} has shape {dims}; expected logits (N, K, H, W)")
    k, hw = dims[1], tuple(dims[2:])
    if not isinstance(k, int):
        raise ExportError(f"output {out.name} has a dynamic class axis ({k}); expected a fixed K")
    nodes: list[Any] = []
    logits = out.name
    if hw != tuple(card.input_hw):  # low-resolution head: upsample the logits before the argmax
        nodes += _sizes(logits, card.input_hw, "up")
        nodes.append(_resize(logits, f"{PREFIX}up_sizes", f"{PREFIX}logits_up", "up"))
        logits = f"{PREFIX}logits_up"
    if k == 1:  # binary head: class 1 where the logit is positive (the runtime's host rule)
        nodes += [helper.make_node("Constant", [], [f"{PREFIX}zero_f"], name=f"{PREFIX}zero_f",
                                   value=onnx.numpy_helper.from_array(np.array(0, np.float32))),
                  helper.make_node("Cast", [logits], [f"{PREFIX}logits_f"], to=TensorProto.FLOAT),
                  helper.make_node("Greater", [f"{PREFIX}logits_f", f"{PREFIX}zero_f"], [f"{PREFIX}pos"]),
                  helper.make_node("Squeeze", [f"{PREFIX}pos", f"{PREFIX}one"], [f"{PREFIX}ids"]),
                  helper.make_node("Constant", [], [f"{PREFIX}one"], name=f"{PREFIX}one",
                                   value=onnx.numpy_helper.from_array(np.array([1], np.int64)))]
    else:
        nodes.append(helper.make_node("ArgMax", [logits], [f"{PREFIX}ids"], name=f"{PREFIX}ArgMax",
                                      axis=1, keepdims=0))
    small = k <= 256
    nodes += [helper.make_node("Cast", [f"{PREFIX}ids"], [f"{PREFIX}ids_f"], to=TensorProto.FLOAT),
              helper.make_node("Cast", [f"{PREFIX}ids_f"], [LABELS_OUTPUT], name=f"{PREFIX}Labels",
                               to=TensorProto.UINT8 if small else TensorProto.INT32)]
    batch = out.type.tensor_type.shape.dim[0]
    n: int | str = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch")
    labels = helper.make_tensor_value_info(LABELS_OUTPUT, TensorProto.UINT8 if small else TensorProto.INT32,
                                           [n, *card.input_hw])
    new = onnx.ModelProto()
    new.CopyFrom(model)
    new.graph.node.extend(_topo(nodes))
    del new.graph.output[:]
    new.graph.output.append(labels)
    return new, card.replace(output_kind="labels")


def _topo(nodes: list[Any]) -> list[Any]:
    """Constants first (they were appended where convenient); the rest keeps its order."""
    return [n for n in nodes if n.op_type == "Constant"] + [n for n in nodes if n.op_type != "Constant"]


def preprocess_nodes(card: ModelCard, frame_hw: tuple[int, int], out_name: str,
                     out_type: int) -> list[Any]:
    """Nodes from the ``frame`` input (uint8 N,Hf,Wf,3 BGR) to ``out_name`` (normalized N,3,H,W)."""
    import onnx
    from onnx import TensorProto, helper

    def const(name: str, value: np.ndarray) -> Any:
        return helper.make_node("Constant", [], [f"{PREFIX}{name}"], name=f"{PREFIX}{name}",
                                value=onnx.numpy_helper.from_array(value))

    def op(kind: str, inputs: list[str], out: str, **attrs: Any) -> Any:
        return helper.make_node(kind, inputs, [out], name=f"{PREFIX}{kind}", **attrs)

    p = PREFIX
    mean = np.array(card.mean, np.float32).reshape(1, 3, 1, 1) * np.float32(255.0)
    scale = np.float32(1.0) / (np.array(card.std, np.float32).reshape(1, 3, 1, 1) * np.float32(255.0))
    nodes = [const("mean255", mean), const("inv_std255", scale),
             op("Cast", [FRAME_INPUT], p + "frame_f", to=TensorProto.FLOAT),
             op("Transpose", [p + "frame_f"], p + "nchw", perm=[0, 3, 1, 2])]
    x = p + "nchw"
    if card.channel_order == "RGB":
        nodes += [const("bgr2rgb", np.array([2, 1, 0], np.int64)),
                  op("Gather", [x, p + "bgr2rgb"], p + "rgb", axis=1)]
        x = p + "rgb"
    if tuple(frame_hw) != tuple(card.input_hw):
        nodes += _sizes(x, card.input_hw, "pre")
        nodes.append(_resize(x, p + "pre_sizes", p + "resized", "pre"))
        x = p + "resized"
    final = out_name if out_type == TensorProto.FLOAT else p + "normalized"
    nodes += [op("Sub", [x, p + "mean255"], p + "centred"),
              op("Mul", [p + "centred", p + "inv_std255"], final)]
    if out_type != TensorProto.FLOAT:  # an FP16-input model: hand it the type it expects
        nodes.append(helper.make_node("Cast", [final], [out_name], name=p + "CastIn", to=out_type))
    return _topo(nodes)


def prepend_preprocess(model: Any, card: ModelCard, frame_hw: tuple[int, int]) -> tuple[Any, ModelCard]:
    """Copy of ``model`` whose input is ``frame``, uint8 (N, Hf, Wf, 3) BGR with (Hf, Wf) =
    ``frame_hw``; the card says ``input_kind="bgr-uint8"``, ``frame_hw``."""
    import onnx
    from onnx import TensorProto, helper

    if card.input_kind == "bgr-uint8":
        raise ConfigError("the model already takes uint8 BGR frames (preprocessing inside the graph); "
                          "leave out --frame-size")
    if min(frame_hw) < 1:
        raise ConfigError(f"--frame-size {frame_hw[0]}x{frame_hw[1]} must be positive, e.g. 720x1280")
    _check_opset(model, "preprocessing inside the graph")
    if len(model.graph.input) != 1:
        raise ExportError(f"the model has {len(model.graph.input)} inputs; expected one image input")
    inp = model.graph.input[0]
    batch = inp.type.tensor_type.shape.dim[0]
    n: int | str = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch")
    new = onnx.ModelProto()
    new.CopyFrom(model)
    del new.graph.input[:]
    new.graph.input.append(helper.make_tensor_value_info(FRAME_INPUT, TensorProto.UINT8, [n, *frame_hw, 3]))
    pre = preprocess_nodes(card, frame_hw, inp.name, inp.type.tensor_type.elem_type)
    body = list(new.graph.node)
    del new.graph.node[:]
    new.graph.node.extend([*pre, *body])
    return new, card.replace(input_kind="bgr-uint8", frame_hw=(int(frame_hw[0]), int(frame_hw[1])))


def preprocess_model(card: ModelCard, frame_hw: tuple[int, int], opset: int = 17) -> Any:
    """A stand-alone graph: frame uint8 (1,Hf,Wf,3) BGR -> ``input`` float32 (1,3,H,W), for checks."""
    import onnx
    from onnx import TensorProto, helper

    nodes = preprocess_nodes(card, frame_hw, "input", TensorProto.FLOAT)
    frame = helper.make_tensor_value_info(FRAME_INPUT, TensorProto.UINT8, [1, *frame_hw, 3])
    out = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *card.input_hw])
    graph = helper.make_graph(nodes, "edgeseg_preprocess", [frame], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _session(model: Any, threads: int | None = 1) -> Any:
    import onnxruntime as ort

    from edgeseg.unpool.ort_op import session_options

    return ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class DeployCheck:
    """The onnxruntime check of a deployment graph against the original with host preprocessing +
    argmax: the card's ``extra["deploy"]`` (same keys as ever). ``label_agreement``: fraction
    (0..1) of equal labels; ``max_abs_input_diff``: in-graph vs host preprocessing (only with
    in-graph preprocessing); ``argmax`` / ``frame_hw``: what was put in the graph."""

    frames: int
    label_agreement: float
    max_abs_input_diff: float | None
    argmax: bool
    frame_hw: tuple[int, int] | None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"frames": self.frames, "label_agreement": self.label_agreement}
        if self.max_abs_input_diff is not None:
            d["max_abs_input_diff"] = self.max_abs_input_diff
        d.update(argmax=self.argmax, frame_hw=None if self.frame_hw is None else list(self.frame_hw))
        return d

    @classmethod
    def from_json(cls, d: Any) -> DeployCheck:
        """The record from a card's ``extra["deploy"]``; ModelError when a key is missing."""
        try:
            hw = d.get("frame_hw")
            diff = d.get("max_abs_input_diff")
            return cls(frames=int(d["frames"]), label_agreement=float(d["label_agreement"]),
                       max_abs_input_diff=None if diff is None else float(diff), argmax=bool(d["argmax"]),
                       frame_hw=None if hw is None else (int(hw[0]), int(hw[1])))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ModelError(f"the card's deploy record is malformed ({type(e).__name__}: {e}); "
                             "run edgeseg deploy again") from None


def check_deployable(old: Any, old_card: ModelCard, new: Any, new_card: ModelCard,
                     options: DeployOptions) -> DeployCheck:
    """Run both graphs with onnxruntime on ``options.check_frames`` synthetic frames (the frame
    size of ``new`` when it takes frames, else the input size); the old one with host
    preprocessing + argmax. The input difference is measured with :func:`preprocess_model`
    (only with in-graph preprocessing)."""
    from edgeseg.runtime.stages import ArgmaxLabels

    from edgeseg.data.synthetic import SyntheticScenes
    from edgeseg.preprocess import preprocess

    hw = new_card.frame_hw or new_card.input_hw
    scenes = SyntheticScenes(hw, seed=7)
    s_old, s_new = _session(old), _session(new)
    pre = _session(preprocess_model(new_card, hw)) if new_card.frame_hw else None
    argmax, agree, total, diff = ArgmaxLabels(), 0, 0, 0.0
    for t in range(options.check_frames):
        image = scenes.frame(t).image_bgr
        x = preprocess(image, old_card)
        x_old = x.astype(np.float16) if s_old.get_inputs()[0].type == "tensor(float16)" else x
        ref = argmax(s_old.run(None, {s_old.get_inputs()[0].name: x_old})[0])
        feed = image[None] if new_card.frame_hw else x_old
        got = s_new.run(None, {s_new.get_inputs()[0].name: feed})[0]
        got = argmax(got)
        ref = _upsampled(ref, got.shape)
        agree += int(np.count_nonzero(got == ref))
        total += got.size
        if pre is not None:
            diff = max(diff, float(np.abs(pre.run(None, {FRAME_INPUT: image[None]})[0] - x).max()))
    return DeployCheck(frames=options.check_frames, label_agreement=agree / total,
                       max_abs_input_diff=diff if pre is not None else None, argmax=options.argmax,
                       frame_hw=options.frame_hw)


def _upsampled(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    if labels.shape == shape:
        return labels
    return cv2.resize(labels.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def make_deployable(model: Any, card: ModelCard, options: DeployOptions) -> tuple[Any, ModelCard]:
    """Apply in-graph preprocessing (``options.frame_hw`` given) and/or argmax; check the result
    against the original with onnxruntime and record it in ``card.extra["deploy"]`` (a
    :class:`DeployCheck`). Raises ExportError when labels agree on fewer than
    ``options.min_agreement`` of the pixels (low-resolution heads compare against the host argmax
    upsampled by nearest neighbour, so a few edge pixels may differ)."""
    import onnx

    new, new_card = model, card
    if options.frame_hw is not None:
        new, new_card = prepend_preprocess(new, new_card, options.frame_hw)
    if options.argmax:
        new, new_card = append_argmax(new, new_card)
    if new is model:
        raise ConfigError("nothing to do: pass --argmax and/or --frame-size HxW")
    try:
        onnx.checker.check_model(new)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the graph with argmax/preprocessing fails the ONNX checker "
                          f"({str(e).splitlines()[0][:160]}); report a bug") from None
    check = check_deployable(model, card, new, new_card, options)
    if check.label_agreement < options.min_agreement:
        raise ExportError(f"labels of the new graph agree with the host path on only "
                          f"{100 * check.label_agreement:.3f} % of pixels; nothing written")
    return new, new_card.replace(extra={**card.extra, "deploy": check.to_json()})


def deploy_onnx(src: str | os.PathLike[str], out: str | os.PathLike[str],
                options: DeployOptions = DeployOptions()) -> tuple[Path, ModelCard]:
    """``src`` (an edgeseg ONNX file with its card) -> ``out`` (+ card) with argmax and/or
    preprocessing inside; the new card's parent is ``src``. Nothing is written on failure."""
    import onnx
    from edgeseg.export.onnx_file import check_output_path, write_onnx

    src, out = Path(src), Path(out)
    card = read_card(src)
    if card.artifact != "onnx":
        raise ConfigError(f"{src.name} is a {card.artifact}; edgeseg deploy takes an edgeseg ONNX file "
                          "(build the engine from its output)")
    check_output_path(out)
    if out.resolve() == src.resolve():
        raise ConfigError(f"-o {out} is the input file; choose another name, e.g. "
                          f"{src.with_name(src.stem + '.deploy.onnx')}")
    model = onnx.load(str(src))
    new, new_card = make_deployable(model, card, options)
    new_card = new_card.replace(parent_sha256=card.file_sha256, file_sha256=None)
    return write_onnx(out, new.SerializeToString(), new_card)
