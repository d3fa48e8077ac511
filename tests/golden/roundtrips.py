"""The export round trips whose results are kept in tests/golden/ (test helper, not package code).

Each case makes one ONNX file the way a user does, through the CLI (`edgeseg export`, `edgeseg
import`, `edgeseg deploy` via typer's CliRunner), so a refactor of the code behind those commands
cannot change what is compared. Of each file it records:

* the graph: a histogram of op types (``domain::op`` for custom domains) and the I/O signature
  (name, element type, shape; symbolic dims by name);
* the numbers: ``edgeseg.load(file)`` (the documented Python API, which reads the card and its
  preprocessing) run by onnxruntime on one fixed uint8 BGR image: argmax labels (uint8 (h, w))
  and, for logits files, the float32 logits (K, h, w).

Checkpoints are random-init models of the registry (``torch.manual_seed(0)``, BatchNorm statistics
warmed on three noise batches) at 32x48 with 4 classes (unet at width 8): small enough that
eleven of these cases took 30 s on 2 cores at load 5 (segnet's 117 MB of weights most of it),
large enough to run every layer of the real architectures.

Comparison (``compare``): graph and card facts exactly. Logits: each element within ``ATOL_STD``
x the golden logits' spatial std (the std about each class's mean over the image: random-init
heads add per-class offsets far larger than what varies over the image), at most
``MAX_OUTLIERS`` of the elements beyond it. Labels: equal wherever the golden top-1/top-2 margin
exceeds twice that tolerance, again up to ``MAX_OUTLIERS`` of those pixels (labels-only files: of
all pixels). Why not exact: onnxruntime's CPU kernels (MLAS/oneDNN) sum in a different order on
AVX2, AVX-512 and NEON, and the warmed BatchNorm statistics come from torch's CPU convolutions,
so logits are expected to differ across machines in the last bits (relative ~1e-6..1e-5 of their
magnitude; not measured: one CPU type is at hand): for lite-unet, the tightest case, 1e-5 x 0.35
= 3.5e-6 against a tolerance of 5.9e-5. Logits are
stored as float32: float16 would round by up to 1.2e-4 at the 0.3 offsets of some heads, more
than the variation it must resolve (lite-unet's spatial std is 0.003). Why a few outliers:
max-unpool indices come from 2x2 max pooling, and two window values within ~1e-6 of each other
may pick the other index on another CPU, moving one value to a neighbouring pixel and changing a
small patch of logits. A behaviour change (preprocessing, unpool wiring, adapter, a dropped
layer) moves most elements by a sizeable fraction of the spatial std and fails;
``test_comparison_flags_what_a_behaviour_change_does`` checks that a tenth of it does.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).resolve().parent
HW = (32, 48)  # every model accepts it: segnet needs >= 32, unet/lite-unet multiples of 16, enet of 8
FRAME_HW = (48, 64)  # camera frames of the deploy case (resized inside the graph)
CLASSES = 4
ARCH_ARGS: dict[str, dict[str, Any]] = {"unet": {"width": 8}}  # full-width unet is 31 M parameters
ATOL_STD = 0.02  # per-element logit tolerance, as a fraction of the golden logits' spatial std
MAX_OUTLIERS = 0.01  # fraction of logit elements allowed beyond it (max-unpool index ties, above)
# Card facts that decide how the file is fed and read (not hashes or versions, which change freely).
CARD_KEYS = ("artifact", "unpool_mode", "precision", "input_hw", "frame_hw", "input_kind", "output_kind",
             "mean", "std", "channel_order", "class_names")


@dataclass(frozen=True)
class Case:
    """One round trip: the CLI arguments making ``<name>.onnx`` in a work folder.

    ``args`` may hold ``{ckpt:MODEL}`` (that model's checkpoint folder), ``{foreign}`` (the
    foreign ONNX file) and ``{onnx:CASE}`` (the file another case made), filled in by ``run_case``.
    """

    name: str
    args: tuple[str, ...]
    needs: tuple[str, ...] = field(default=())  # cases whose files this one reads

    @property
    def models(self) -> tuple[str, ...]:
        """The registry models whose checkpoints this case exports."""
        return tuple(a[6:-1] for a in self.args if a.startswith("{ckpt:"))


def _export(model: str, unpool: str | None) -> Case:
    name = model if unpool is None else f"{model}-{unpool}"
    extra = () if unpool is None else ("--unpool", unpool)
    return Case(name, ("export", f"{{ckpt:{model}}}", "-o", f"{name}.onnx", "--threads", "1", *extra))


CASES: tuple[Case, ...] = (
    *(_export(m, u) for m in ("segnet", "res-segnet", "enet") for u in ("native", "plugin")),
    # the CLI's default (--target tensorrt -> plugin unpool today): catches a change of that default
    Case("enet-cli-default", ("export", "{ckpt:enet}", "-o", "enet-cli-default.onnx", "--threads", "1")),
    _export("lite-unet", None),  # no unpool: --unpool changes nothing (card unpool 'none')
    _export("unet", None),
    Case("import-uint8-nhwc-lowres", ("import", "{foreign}", "-o", "import-uint8-nhwc-lowres.onnx",
                                      "--classes", str(CLASSES))),
    Case("deploy-argmax", ("deploy", "{onnx:res-segnet-plugin}", "-o", "deploy-argmax.onnx"),
         needs=("res-segnet-plugin",)),
    # unet: its top-2 margins (>= 0.04) stay clear of the OpenCV-vs-ONNX-Resize difference; with
    # res-segnet's near-ties deploy's own check refuses (98.7 % < 99.9 % label agreement).
    Case("deploy-frames", ("deploy", "{onnx:unet}", "-o", "deploy-frames.onnx",
                           "--frame-size", f"{FRAME_HW[0]}x{FRAME_HW[1]}"), needs=("unet",)),
)
CASES_BY_NAME = {c.name: c for c in CASES}


# ---------------------------------------------------------------------------- inputs
def make_checkpoint(folder: Path, name: str) -> Path:
    """A random-init ``name`` checkpoint folder (deterministic for a given torch build)."""
    import torch

    from edgeseg.card import ModelCard
    from edgeseg.models.checkpoint import save_checkpoint
    from edgeseg.models.registry import build_model

    torch.manual_seed(0)
    args = {"num_classes": CLASSES, **ARCH_ARGS.get(name, {})}
    model = build_model(name, **args).train()
    with torch.no_grad():  # warmed BatchNorm statistics, so logits are not degenerate
        for _ in range(3):
            model(torch.randn(2, 3, *HW))
    card = ModelCard(architecture=name, arch_args=args, class_names=tuple(f"c{i}" for i in range(CLASSES)),
                     class_colors=tuple((60 * i, 255 - 60 * i, 30 * i) for i in range(CLASSES)),
                     input_hw=HW)
    save_checkpoint(model.eval(), card, folder / name)
    return folder / name


def write_foreign(path: Path) -> Path:
    """A foreign segmentation ONNX in the style of a Keras/TF export, built without torch: uint8
    NHWC RGB pixels in, /255 and ImageNet mean/std inside, a stride-2 conv, a 1x1 head, NHWC
    (1, H/2, W/2, K) logits out. ``edgeseg import`` must add a float NCHW front and a transposing,
    upsampling back."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    h, w = HW
    consts = {
        "scale": np.float32(1 / 255).reshape(()),
        "mean": np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1),
        "std": np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1),
        "w1": rng.normal(scale=0.5, size=(8, 3, 3, 3)).astype(np.float32),
        "b1": rng.normal(scale=0.1, size=(8,)).astype(np.float32),
        "w2": rng.normal(scale=0.5, size=(CLASSES, 8, 1, 1)).astype(np.float32),
        "b2": rng.normal(scale=0.1, size=(CLASSES,)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Cast", ["pixels"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["nchw", "scale"], ["unit"]),
        helper.make_node("Sub", ["unit", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["x"]),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["head"], kernel_shape=[1, 1]),
        helper.make_node("Transpose", ["head"], ["out"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes, "foreign_seg", [helper.make_tensor_value_info("pixels", TensorProto.UINT8, [1, h, w, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, h // 2, w // 2, CLASSES])],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="foreign")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def fixed_image(hw: tuple[int, int]) -> np.ndarray:
    """The fixed uint8 BGR (H, W, 3) input: smooth colour gradients plus noise (numpy's PCG64 is the
    same on every platform), so preprocessing and every channel matter."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1), 128 + 0 * xx], axis=-1)
    noise = np.random.default_rng(20).normal(scale=40, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- running
Invoke = Callable[[list[str]], None]


def cli_invoke(args: list[str]) -> None:
    """Run ``edgeseg ARGS`` in this process; raise with its output if it fails."""
    from typer.testing import CliRunner

    from edgeseg.cli.main import app

    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise RuntimeError(f"edgeseg {' '.join(args)} exited {result.exit_code}:\n{result.output}"
                           + (f"\n{result.exception!r}" if result.exception else ""))


class Workshop:
    """Makes the round trips' files in ``work`` on demand, each input once (checkpoints, the
    foreign file, the files other cases read), so running some cases costs only theirs."""

    def __init__(self, work: Path, invoke: Invoke = cli_invoke) -> None:
        self.work, self.invoke = work, invoke
        self.ckpts: dict[str, Path] = {}
        self.made: dict[str, Path] = {}
        self.foreign: Path | None = None

    def make(self, name: str) -> Path:
        """The ONNX file of case ``name`` (with its card next to it)."""
        if name in self.made:
            return self.made[name]
        case = CASES_BY_NAME[name]
        for dep in case.needs:
            self.make(dep)
        for model in case.models:
            if model not in self.ckpts:
                self.ckpts[model] = make_checkpoint(self.work, model)
        if self.foreign is None and "{foreign}" in case.args:
            self.foreign = write_foreign(self.work / "foreign.onnx")
        self.made[name] = run_case(case, self.work, self.ckpts, self.foreign, self.invoke)
        return self.made[name]


def run_case(case: Case, work: Path, ckpts: dict[str, Path], foreign: Path | None,
             invoke: Invoke = cli_invoke) -> Path:
    """Make ``work/<case.name>.onnx`` (and its card) through the CLI; return its path."""
    args = []
    for a in case.args:
        if a.startswith("{ckpt:"):
            a = str(ckpts[a[6:-1]])
        elif a == "{foreign}":
            a = str(foreign)
        elif a.startswith("{onnx:"):
            a = str(work / f"{a[6:-1]}.onnx")
        elif a.endswith(".onnx"):
            a = str(work / a)
        args.append(a)
    invoke(args)
    return work / f"{case.name}.onnx"


def graph_facts(path: Path) -> dict[str, Any]:
    """Op-type histogram and I/O signature of an ONNX file (JSON-ready, sorted)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
                  for n in model.graph.node)

    def sig(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                        "shape": dims})
        return out

    card = json.loads(path.with_name(path.name + ".json").read_text())  # on-disk keys are stable
    return {"ops": dict(sorted(ops.items())), "inputs": sig(model.graph.input),
            "outputs": sig(model.graph.output), "card": {k: card.get(k) for k in CARD_KEYS}}


def outputs(path: Path) -> dict[str, np.ndarray]:
    """onnxruntime's answer on the fixed image through ``edgeseg.load``: ``labels`` uint8 (h, w) at
    the network input size, and ``logits`` float32 (K, h, w) for files that output logits.

    A file taking uint8 frames (``deploy --frame-size``) runs in a plain onnxruntime session on the
    frame itself: ``Segmenter.predict`` feeds normalized input only (it refuses such files).
    """
    import edgeseg

    card = json.loads(path.with_name(path.name + ".json").read_text())
    if card["input_kind"] == "bgr-uint8":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        frame = fixed_image(tuple(card["frame_hw"]))[None]
        return {"labels": np.asarray(sess.run(None, {sess.get_inputs()[0].name: frame})[0][0], np.uint8)}
    with edgeseg.load(path, threads=1) as m:
        image = fixed_image(m.card.input_hw)
        out = {"labels": m.predict(image, size="input")}
        if m.card.output_kind == "logits":
            out["logits"] = np.asarray(m.logits(image), np.float32)
    return out


# ---------------------------------------------------------------------------- golden files
def spatial_std(logits_khw: np.ndarray) -> float:
    """Standard deviation of the logits about each class's mean over the image."""
    lg = logits_khw.astype(np.float64)
    return float((lg - lg.mean(axis=(1, 2), keepdims=True)).std())


def golden_paths(name: str) -> tuple[Path, Path]:
    return GOLDEN / f"{name}.json", GOLDEN / f"{name}.npz"


def write_golden(name: str, facts: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write ``<name>.json`` and ``<name>.npz`` atomically (temp file, then rename)."""
    from edgeseg.io import atomic_path, write_json_atomic

    json_path, npz_path = golden_paths(name)
    named: dict[str, Any] = dict(arrays)  # numpy's stub types **kwds as its own keyword arguments
    with atomic_path(npz_path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **named)
    stats = {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()}
    if "logits" in arrays:
        lg = arrays["logits"]
        stats["logits"].update({k: float(f"{v:.5g}") for k, v in (
            ("mean", lg.mean()), ("spatial_std", spatial_std(lg)), ("min", lg.min()), ("max", lg.max()))})
    counts = np.bincount(arrays["labels"].ravel(), minlength=CLASSES)
    stats["labels"]["pixels_per_class"] = [int(c) for c in counts]
    write_json_atomic(json_path, {**facts, "results": stats})


def read_golden(name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    json_path, npz_path = golden_paths(name)
    facts = json.loads(json_path.read_text())
    with np.load(npz_path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return facts, arrays


def compare(name: str, facts: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[str]:
    """Differences between a fresh round trip and its golden files, one line each ([] = equal)."""
    gold_facts, gold = read_golden(name)
    problems = [f"{name}: {key} {facts[key]} != golden {gold_facts[key]}"
                for key in ("ops", "inputs", "outputs", "card") if facts[key] != gold_facts[key]]
    if set(arrays) != set(gold):
        return [*problems, f"{name}: results {sorted(arrays)} != golden {sorted(gold)}"]
    tol = None
    if "logits" in gold:
        g, f = gold["logits"], arrays["logits"]
        if g.shape != f.shape:
            return [*problems, f"{name}: logits shape {f.shape} != golden {g.shape}"]
        tol = ATOL_STD * spatial_std(g)
        err = np.abs(f - g)
        beyond = float((err > tol).mean())
        if beyond > MAX_OUTLIERS:
            problems.append(f"{name}: {beyond:.2%} of logits differ by more than {tol:.4g} "
                            f"(max {err.max():.4g}; allowed {MAX_OUTLIERS:.0%})")
    g_lab, f_lab = gold["labels"], arrays["labels"]
    if g_lab.shape != f_lab.shape:
        return [*problems, f"{name}: labels shape {f_lab.shape} != golden {g_lab.shape}"]
    must = np.ones(g_lab.shape, bool)  # labels-only file: no margins to tell near-ties
    if tol is not None:
        top2 = np.sort(gold["logits"], axis=0)[-2:]
        must = (top2[1] - top2[0]) > 2 * tol
    wrong = float((g_lab != f_lab)[must].mean()) if must.any() else 0.0
    if wrong > MAX_OUTLIERS:
        problems.append(f"{name}: labels differ on {wrong:.2%} of the pixels whose golden top-2 margin "
                        f"exceeds the tolerance (allowed {MAX_OUTLIERS:.0%})")
    return problems
