"""A foreign segmentation ONNX -> an edgeseg artifact (``edgeseg import MODEL.onnx``).

Steps (nothing is written until all pass)::

    load (one file; external weight files refused) -> find the image input (NCHW/NHWC,
    float32/uint8, H/W from the graph or --input) -> run it once in onnxruntime on a zero image
    -> classify the output: logits (N,K,H,W) at the input size, logits at a lower resolution,
    NHWC logits, or labels (N,H,W) -> classes (--classes / classes.json / --data), count checked
    -> preprocessing (--mean/--std/--scale/--bgr; defaults stated) -> adapter (export.onnx_adapt)
    when the file does not already have edgeseg's I/O contract -> check + run the result
    -> write: the card next to the file (unchanged), or the adapted copy + card.

The card: ``architecture="external"``, ``arch_args={"name": ...}``, the file's SHA-256, and
``extra["import"]`` (source path and SHA-256, input/output as found, adapter steps, the
preprocessing flags and which were assumed). An adapted copy's ``parent_sha256`` is the foreign
file's hash. Torch-free (onnx, onnxruntime, numpy).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from edgeseg.export.onnx_adapt import ADAPTER_MIN_OPSET, IoPlan, adapt_input, adapt_output, opset_of, prune
from edgeseg.export.options import DEFAULT_SCALE, ImportOptions, Layout, ModelFacts

from edgeseg.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard, card_path, read_card
from edgeseg.errors import ConfigError, EdgesegError, ExportError, ModelError
from edgeseg.io import atomic_path, sha256_file, write_json_atomic

Log = Callable[[str], None]
ARCHITECTURE = "external"


@dataclass(frozen=True)
class ImportRecord:
    """What the import found and decided: the card's ``extra["import"]`` (same keys as ever).

    ``input``: name, shape, layout, dtype of the image input as found; ``output``: name, kind
    (``logits`` | ``logits_lowres`` | ``labels``), shape, layout; ``adapter``: the adapter steps
    (empty: the file is used unchanged); ``preprocessing``: the formula and values recorded;
    ``assumed``: the preprocessing defaults the user did not set (printed)."""

    source: str
    source_sha256: str
    name: str
    producer: str
    opset: int
    input: dict[str, Any]
    output: dict[str, Any]
    adapter: tuple[str, ...]
    preprocessing: dict[str, Any]
    assumed: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["adapter"], d["assumed"] = list(self.adapter), list(self.assumed)
        return d

    @classmethod
    def from_json(cls, d: Any) -> ImportRecord:
        """The record from a card's ``extra["import"]``; ModelError when a key is missing."""
        try:
            return cls(source=str(d["source"]), source_sha256=str(d["source_sha256"]), name=str(d["name"]),
                       producer=str(d["producer"]), opset=int(d["opset"]), input=dict(d["input"]),
                       output=dict(d["output"]), adapter=tuple(d["adapter"]),
                       preprocessing=dict(d["preprocessing"]), assumed=tuple(d["assumed"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"the card's import record is malformed ({type(e).__name__}: {e}); "
                             "import the model again") from None

    @classmethod
    def of(cls, card: ModelCard) -> ImportRecord:
        """The import record of an imported file's card."""
        if "import" not in card.extra:
            raise ModelError("the card has no import record (extra.import); it was not written by "
                             "edgeseg import: import the model again")
        return cls.from_json(card.extra["import"])


def load_foreign(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise ConfigError(f"{path} does not exist; pass an .onnx file")
    if path.suffix != ".onnx":
        raise ConfigError(f"{path} is not an .onnx file; export the model to ONNX first (torch.onnx.export)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelError(f"{path} is not a readable ONNX file ({type(e).__name__}); re-export it") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ModelError(f"{path} keeps its weights in external files; save it as one file "
                         "(onnx.save(onnx.load(path), out, save_as_external_data=False)) and import that")
    return model


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def find_input(model: Any, opts: ImportOptions) -> tuple[Any, Layout]:
    """(the image input's ValueInfo, layout); refuses anything but one 4-D 3-channel image."""
    from onnx import TensorProto

    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    images = [i for i in inputs if len(_dims(i)) == 4]
    if len(images) != 1 or len(inputs) != 1:
        names = ", ".join(f"{i.name} {_dims(i)}" for i in inputs) or "none"
        raise ModelError(f"the model has {len(inputs)} inputs ({names}); edgeseg runs models with exactly "
                         "one image input (N,3,H,W or N,H,W,3): export it with a single image input")
    inp = images[0]
    elem = inp.type.tensor_type.elem_type
    if elem not in (TensorProto.FLOAT, TensorProto.UINT8):
        raise ModelError(f"input {inp.name!r} has element type {TensorProto.DataType.Name(elem)}; edgeseg "
                         "imports float32 or uint8 image inputs (export FP32, then edgeseg convert-fp16)")
    _, d1, _, d3 = _dims(inp)
    if opts.layout is not None:
        layout = opts.layout
    elif d1 == 3 and d3 != 3:
        layout = "nchw"
    elif d3 == 3 and d1 != 3:
        layout = "nhwc"
    else:
        raise ModelError(f"input {inp.name!r} has shape {_dims(inp)}: cannot tell NCHW from NHWC; pass "
                         "--layout nchw or --layout nhwc")
    channels = d1 if layout == "nchw" else d3
    if channels not in (3, None):
        raise ModelError(f"input {inp.name!r} ({layout.upper()}) has {channels} channels; edgeseg feeds "
                         "3-channel colour images (RGB or BGR); pass --layout if the layout is wrong")
    return inp, layout


def input_hw(inp: Any, layout: Layout,
             given: tuple[int, int] | None) -> tuple[tuple[int, int], int | None, bool]:
    """(H, W, batch (None = dynamic), H/W were dynamic); refuses contradictions."""
    d = _dims(inp)
    h, w = (d[2], d[3]) if layout == "nchw" else (d[1], d[2])
    if d[0] not in (None, 1):
        raise ModelError(f"input {inp.name!r} has a fixed batch of {d[0]}; edgeseg runs batch 1 or a dynamic "
                         "batch: re-export with batch 1 or a dynamic batch axis")
    if h is not None and w is not None:
        if given is not None and given != (h, w):
            raise ConfigError(f"input {inp.name!r} is fixed at {h}x{w} but --input says "
                              f"{given[0]}x{given[1]}; drop --input or pass --input {h}x{w}")
        return (h, w), d[0], False
    if given is None:
        raise ConfigError(f"input {inp.name!r} has dynamic height/width ({d}); pass the size to run at "
                          "with --input HxW, e.g. --input 360x480")
    fixed = [(v, g) for v, g in ((h, given[0]), (w, given[1])) if v is not None]
    if any(v != g for v, g in fixed):
        raise ConfigError(f"input {inp.name!r} has shape {d}; --input {given[0]}x{given[1]} contradicts "
                          "its fixed side: pass a size that keeps it")
    return given, d[0], True


def probe(model: Any, inp: Any, layout: Layout,
          hw: tuple[int, int]) -> list[tuple[str, tuple[int, ...], str]]:
    """Run the graph once on a zero image; (name, shape, numpy dtype) of every output."""
    import onnxruntime as ort
    from onnx import TensorProto

    from edgeseg.unpool.ort_op import session_options

    uint8 = inp.type.tensor_type.elem_type == TensorProto.UINT8
    shape = (1, 3, *hw) if layout == "nchw" else (1, *hw, 3)
    x = np.zeros(shape, np.uint8 if uint8 else np.float32)
    try:
        session = ort.InferenceSession(model.SerializeToString(), session_options(1),
                                       providers=["CPUExecutionProvider"])
        outs = session.run(None, {inp.name: x})
    except EdgesegError:
        raise
    except Exception as e:  # onnxruntime's own exception types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ModelError(f"onnxruntime cannot run the model at {hw[0]}x{hw[1]} ({first}); check --input "
                         "(and --layout), or re-export the model") from None
    names = [o.name for o in session.get_outputs()]
    return [(n, tuple(o.shape), str(o.dtype)) for n, o in zip(names, outs, strict=True)]


def classify(outputs: list[tuple[str, tuple[int, ...], str]], hw: tuple[int, int],
             layout: Layout, wanted: str | None) -> tuple[str, str, bool, int | None, bool]:
    """(output name, kind, NHWC logits, channels K (None for labels), labels are 4-D (N,1,H,W))."""
    h, w = hw
    if wanted is not None:
        found = [o for o in outputs if o[0] == wanted]
        if not found:
            raise ConfigError(f"--output {wanted!r} is not an output of the model; its outputs: "
                              f"{', '.join(o[0] for o in outputs)}")
        outputs = found
    for name, shape, dtype in outputs:
        integer = dtype.startswith(("int", "uint"))
        if integer and (len(shape) == 3 or (len(shape) == 4 and shape[1] == 1)):
            if tuple(shape[-2:]) != (h, w):
                raise ModelError(f"output {name!r} holds labels of size {shape[-2:]} for a {h}x{w} input; "
                                 "edgeseg imports labels at the input size only: export the logits instead")
            return name, "labels", False, None, len(shape) == 4
        if integer or len(shape) != 4:
            continue
        if tuple(shape[2:]) == (h, w):
            return name, "logits", False, shape[1], False
        if tuple(shape[1:3]) == (h, w):
            return name, "logits", True, shape[3], False
        nhwc = layout == "nhwc"  # a lower-resolution head keeps the input's layout
        sp, k = (shape[1:3], shape[3]) if nhwc else (shape[2:], shape[1])
        if 1 < sp[0] < h and 1 < sp[1] < w:
            return name, "logits_lowres", nhwc, k, False
    listed = ", ".join(f"{n} {list(s)} {d}" for n, s, d in outputs)
    raise ModelError(f"no output with spatial dims at or below the {h}x{w} input (outputs: {listed}); "
                     "edgeseg imports logits (N,K,H,W) or labels (N,H,W): pass --output NAME or re-export")


def parse_classes(facts: ModelFacts, data: str | None, split: str, k: int | None, name: str) -> Any:
    """A DatasetInfo for the model's classes (``facts.classes``, or the description of the dataset
    ``data``); its count must equal the output channels ``k``."""
    from edgeseg.data.known import DatasetInfo, palette, read_classes_json

    classes = facts.classes_text()
    if classes is not None and data is not None:
        raise ConfigError("pass --classes or --data, not both (both describe the classes)")
    if data is not None:
        from edgeseg.data import open_dataset

        info = open_dataset(data, split).info
        source = f"--data {data}"
    elif classes is None:
        hint = f" (the model outputs {k} channels)" if k else ""
        raise ConfigError(f"the class names are not in the graph{hint}: pass --classes a,b,c, --classes N, "
                          "--classes classes.json, or --data DATASET")
    elif classes.endswith(".json"):
        path = Path(classes)
        if not path.is_file():
            raise ConfigError(f"--classes {path} does not exist; pass a classes.json file, names or a count")
        info = read_classes_json(path, name)[0]
        source = f"--classes {path}"
    elif classes.strip().isdigit():
        n = int(classes)
        if n < 1:
            raise ConfigError("--classes 0: a model has at least one class; pass the count, e.g. 21")
        info = DatasetInfo(name, tuple(f"class{i}" for i in range(n)), palette(n))
        source = f"--classes {n}"
    else:
        names = tuple(s.strip() for s in classes.split(","))
        if any(not s for s in names) or len(set(names)) != len(names):
            raise ConfigError(f"--classes {classes!r} has empty or repeated names; write them like "
                              "background,person,car")
        info = DatasetInfo(name, names, palette(len(names)))
        source = "--classes"
    n = info.num_classes
    if k is not None and k != n and not (k == 1 and n == 2):
        binary = ", or 2 for a one-channel binary head" if k == 1 else ""
        raise ConfigError(f"the model outputs {k} channels but {source} gives {n} classes; give {k} "
                          f"classes (one per output channel{binary})")
    return info


def preprocessing(facts: ModelFacts, uint8: bool) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """(card fields mean/std/channel_order, assumed defaults, the record for the card).

    The card normalizes ``(pixel / 255 - mean') / std'``; for ``x = (pixel * scale - mean) / std``
    that is ``mean' = mean / (255 scale)``, ``std' = std / (255 scale)``. A uint8 input takes raw
    pixels (the graph normalizes): mean' 0, std' 1/255, so the tensor fed is the pixel values.
    """
    order = "BGR" if facts.bgr else "RGB"
    if uint8:
        given = [f for f, v in (("--mean", facts.mean), ("--std", facts.std), ("--scale", facts.scale)) if v]
        if given:
            raise ConfigError(f"the model takes uint8 pixels (it normalizes inside the graph), so "
                              f"{', '.join(given)} cannot apply; drop {given[0]}")
        record: dict[str, Any] = {"input": "uint8 pixels 0..255 (normalized inside the graph)",
                                  "channel_order": order}
        assumed = [] if facts.bgr else ["channel order RGB (pass --bgr for BGR)"]
        return {"mean": (0.0,) * 3, "std": (1.0 / 255.0,) * 3, "channel_order": order}, assumed, record
    scale = DEFAULT_SCALE if facts.scale is None else facts.scale
    mean = IMAGENET_MEAN if facts.mean is None else facts.mean
    std = IMAGENET_STD if facts.std is None else facts.std
    if scale <= 0 or any(s <= 0 for s in std):
        raise ConfigError("--scale and --std must be positive (e.g. --scale 1/255 --std 0.229,0.224,0.225)")
    assumed = [text for text, value in (
        (f"mean {list(IMAGENET_MEAN)} (ImageNet; --mean)", facts.mean),
        (f"std {list(IMAGENET_STD)} (ImageNet; --std)", facts.std),
        ("scale 1/255 (--scale)", facts.scale), ("channel order RGB (--bgr for BGR)", facts.bgr or None))
        if value is None]
    k = 255.0 * scale
    fields = {"mean": tuple(m / k for m in mean), "std": tuple(s / k for s in std), "channel_order": order}
    record = {"formula": "(pixel * scale - mean) / std", "scale": scale, "mean": list(mean),
              "std": list(std), "channel_order": order}
    return fields, assumed, record


def import_onnx(model_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                options: ImportOptions = ImportOptions(), *,
                log: Log | None = None) -> tuple[Path, ModelCard]:
    """Import ``model_path`` (see the module docstring); returns (the file the card describes, card).

    ``out`` None: the card goes next to the file when it needs no adapter, else the adapted copy
    is written as ``<stem>.edgeseg.onnx`` next to it. The card's ``extra["import"]`` is an
    :class:`ImportRecord` (what was found, the adapter steps, the assumed preprocessing). Raises
    one-line EdgesegErrors; on any failure nothing is written.
    """
    import onnx

    opts = options
    log = log or (lambda _m: None)
    src = Path(model_path)
    model = load_foreign(src)
    params = _initializer_count(model)  # before any adapter
    _refuse_edgeseg_card(src)
    inp, layout = find_input(model, opts)
    hw, batch, dynamic = input_hw(inp, layout, opts.input_hw)
    uint8 = inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    log(f"running {src.name} once at {hw[0]}x{hw[1]} in onnxruntime")
    outputs = probe(model, inp, layout, hw)
    out_name, kind, out_nhwc, k, labels_4d = classify(outputs, hw, layout, opts.output)
    name = opts.facts.name or src.stem
    info = parse_classes(opts.facts, opts.data, opts.data_split, k, name)
    fields, assumed, pre_record = preprocessing(opts.facts, uint8)
    plan = IoPlan(inp.name, layout, uint8, batch, hw, out_name, kind, out_nhwc, info.num_classes
                  if k is None else k, labels_4d)
    steps = plan.steps(dynamic, len(outputs) > 1)
    target = _target(src, out, bool(steps))
    if steps:
        model = adapted(model, plan)
    data = model.SerializeToString() if steps else None
    source_sha = sha256_file(src)
    out_shape = next(o[1] for o in outputs if o[0] == out_name)
    record = ImportRecord(
        source=str(src.resolve()), source_sha256=source_sha, name=name,
        producer=f"{model.producer_name} {model.producer_version}".strip(), opset=opset_of(model),
        input={"name": inp.name, "shape": _dims(inp), "layout": layout,
               "dtype": "uint8" if uint8 else "float32"},
        output={"name": out_name, "kind": kind, "shape": list(out_shape),
                "layout": "nhwc" if out_nhwc else "nchw"},
        adapter=tuple(steps), preprocessing=pre_record, assumed=tuple(assumed))
    card = ModelCard(architecture=ARCHITECTURE, arch_args={"name": name}, class_names=info.class_names,
                     class_colors=info.class_colors, input_hw=hw, ignore_index=info.ignore_index,
                     artifact="onnx", unpool_mode=_unpool_mode(model), precision="fp32",
                     parent_sha256=source_sha if steps else None,
                     extra={"import": record.to_json(), "params": params}, **fields)
    return _write(src, target, data, card)


def _refuse_edgeseg_card(src: Path) -> None:
    """An edgeseg export already has its card; importing would replace it with a poorer one."""
    if not card_path(src).is_file():
        return
    try:
        card = read_card(src, verify_hash=False)
    except EdgesegError:
        return  # not a readable card: the import writes a fresh one
    if card.architecture != ARCHITECTURE:
        raise ConfigError(f"{src} is an edgeseg {card.architecture} export with its card "
                          f"{card_path(src).name}; it needs no import: use it as it is")


def _target(src: Path, out: str | os.PathLike[str] | None, needs_copy: bool) -> Path:
    if out is None:
        return src.with_name(f"{src.stem}.edgeseg.onnx") if needs_copy else src
    target = Path(out)
    if target.suffix != ".onnx":
        raise ConfigError(f"output {target} must end in .onnx (e.g. {src.stem}.edgeseg.onnx)")
    if target.resolve() == src.resolve() and needs_copy:
        raise ConfigError(f"output {target} is the input; the adapted model is a new file: pass "
                          f"-o {src.with_name(src.stem + '.edgeseg.onnx')}")
    if target.is_dir():
        raise ConfigError(f"output {target} is a folder; give a file name such as {target}/{src.name}")
    return target


def adapted(model: Any, plan: IoPlan) -> Any:
    """The model with edgeseg's I/O (export.onnx_adapt), checked and shape-inferred."""
    import onnx

    needs_ops = plan.layout == "nhwc" or plan.uint8 or plan.output_kind != "logits" or plan.output_nhwc
    if needs_ops and opset_of(model) < ADAPTER_MIN_OPSET:
        raise ExportError(f"the model uses opset {opset_of(model)}; edgeseg's input/output adapter needs "
                          f"opset >= {ADAPTER_MIN_OPSET}: re-export it with opset_version=17")
    model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy
    adapt_input(model, plan)
    adapt_output(model, plan)
    prune(model)
    try:
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ExportError(f"the adapted graph fails the ONNX checker ({first}); nothing was written — "
                          "re-export the model at opset 17 and import again") from None


def _initializer_count(model: Any) -> int:
    """Weights of the foreign graph as imported (before any adapter): the count every derived file
    (FP16, INT8, engine) reports, since their own initializers add Q/DQ scales or casts."""
    import numpy as np

    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def _unpool_mode(model: Any) -> str:
    from edgeseg.unpool.onnx_graph import plugin_nodes

    return "plugin" if plugin_nodes(model) else "none"


def _write(src: Path, target: Path, data: bytes | None, card: ModelCard) -> tuple[Path, ModelCard]:
    """The file (adapted bytes, a copy of ``src``, or nothing when ``target`` is ``src``) and its
    card, each atomically (a failure leaves no half-written file)."""
    if target.resolve() == src.resolve():
        card = card.replace(file_sha256=sha256_file(src))
        write_json_atomic(card_path(target), card.to_dict())
        return target, card
    with atomic_path(target) as tmp:
        if data is None:
            shutil.copyfile(src, tmp)
        else:
            tmp.write_bytes(data)
        card = card.replace(file_sha256=sha256_file(tmp))
        write_json_atomic(card_path(target), card.to_dict())
    return target, card
