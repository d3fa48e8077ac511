"""``edgeseg train`` and ``edgeseg eval``.

Heavy imports (torch) happen inside ``train`` only; ``eval`` of an ONNX file or an engine stays
torch-free (the torch backend imports torch only for ``.safetensors`` checkpoints).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.cli.vocab import pick_alias
from edgeseg.errors import ConfigError, EdgesegError


class Optimizer(str, Enum):
    sgd = "sgd"
    adamw = "adamw"


class Schedule(str, Enum):
    poly = "poly"
    cosine = "cosine"
    constant = "constant"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _given(**options: Any) -> dict[str, Any]:
    """Options the user passed (None = not given), enums turned into their values."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items() if v is not None}


def config_from_options(out: Path, resume: bool, given: dict[str, Any]) -> Any:
    """The TrainConfig: saved one (``--resume``) with the given options applied, or a new one."""
    from edgeseg.train.config import TrainConfig, read_config

    if resume:
        return read_config(out / "config.json").replace(**given)
    missing = [f"--{k}" for k in ("model", "data") if k not in given]
    if missing or "input_hw" not in given:
        need = missing + ([] if "input_hw" in given else ["--input"])
        raise ConfigError(f"a new run needs {', '.join(need)} (e.g. --model lite-unet --data synthetic "
                          "--input 128x128); to continue a run pass --out RUN --resume")
    return TrainConfig(**given)


def _one_line(e: EdgesegError) -> EdgesegError:
    """Errors re-raised from DataLoader workers carry a traceback; keep its last line only."""
    text = str(e)
    if "\n" not in text:
        return e
    last = [line for line in text.splitlines() if line.strip()][-1]
    return type(e)(last.split(": ", 1)[-1] if last.startswith(("edgeseg.", type(e).__name__)) else last)


def _argv_without_nproc(ctx: typer.Context) -> list[str]:
    """This command's options as typed (defaults left out), minus ``--nproc``: what each process
    that torchrun starts receives."""
    argv: list[str] = []
    for param in ctx.command.params:
        name = next((o for o in param.opts if o.startswith("--")), param.opts[0])  # --out, not -o
        value = ctx.params.get(param.name)
        if param.name == "nproc" or value is None or value == param.default:
            continue
        value = value.value if isinstance(value, Enum) else value
        if getattr(param, "is_flag", False):  # only options have is_flag; arguments do not
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        elif isinstance(value, (list, tuple)):
            for item in value:
                argv += [name, str(item)]
        else:
            argv += [name, str(value)]
    return argv


def _rank_zero_only(e: EdgesegError) -> EdgesegError | typer.Exit:
    """Under a launcher, rank 0 prints the job's error; the other ranks leave quietly with exit
    code 0 unless the error is theirs alone (RankError: their own data in the loop; their
    rendezvous). Exit code 0 on purpose: torchrun stops the whole job at the first failing
    process, which could kill rank 0 before it prints; a quiet rank that "succeeds" lets rank 0
    finish, and rank 0's code becomes the job's."""
    from edgeseg.train.dist import DistributedError, RankError, from_env, launched

    if not launched() or isinstance(e, (RankError, DistributedError)):
        return e
    try:
        rank = from_env().rank
    except EdgesegError:
        return e
    return e if rank == 0 else typer.Exit(0)


def train_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("-o", "--out", help="Run folder (config, checkpoints, logs, curves).")],
    model: Annotated[str | None, typer.Option(help="Architecture, e.g. lite-unet.")] = None,
    data: Annotated[str | None, typer.Option(help="Dataset folder, list file, or 'synthetic'.")] = None,
    input: Annotated[str | None, typer.Option("--input", help="Network input HxW, e.g. 256x256.")] = None,
    model_arg: Annotated[list[str] | None, typer.Option(help="Model arg key=value (repeatable).")] = None,
    loss: Annotated[str | None, typer.Option(
        help="ce, weighted-ce, balanced-ce, bce-dice, dice (default ce).")] = None,
    loss_arg: Annotated[list[str] | None, typer.Option(help="Loss argument key=value (repeatable).")] = None,
    optimizer: Annotated[Optimizer | None, typer.Option(
        help="sgd (momentum 0.9) or adamw (default sgd).")] = None,
    lr: Annotated[float | None, typer.Option(help="Base LR (default sgd 0.05, adamw 1e-3).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Default sgd 5e-4, adamw 1e-2.")] = None,
    schedule: Annotated[Schedule | None, typer.Option(help="LR schedule (default poly).")] = None,
    batch: Annotated[int | None, typer.Option(
        help="Global batch size (default 8): with N processes each takes batch/N per step.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default 30).")] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader worker processes (default 0).")] = None,
    device: Annotated[Device | None, typer.Option(help="auto: CUDA + AMP if present (default auto).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of order, augmentation, init (default 0).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps (smoke runs).")] = None,
    val_split: Annotated[str | None, typer.Option(help="Validation split (default val).")] = None,
    train_split: Annotated[str | None, typer.Option(help="Training split (default train).")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        help="Save last/ every N steps (default 50).")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: all cores).")] = None,
    synthetic_num: Annotated[int | None, typer.Option(
        help="--data synthetic: number of train scenes (default 256; val: an eighth, at least 8).")] = None,
    init: Annotated[str | None, typer.Option(help="Start from a checkpoint's weights.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out exactly.")] = False,
    nproc: Annotated[int | None, typer.Option(
        help="Data-parallel processes on this node (starts torchrun; one per GPU on CUDA).")] = None,
    sync_bn: Annotated[bool | None, typer.Option(
        "--sync-bn/--no-sync-bn", help="With several processes: BatchNorm over the global batch.")] = None,
    dist_timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the other processes (rendezvous, each collective).")] = 600.0,
) -> None:
    """Train a model; checkpoints in OUT/best and OUT/last, logs and curves in OUT.

    Data parallel: torchrun --nproc-per-node N -m edgeseg train ... (or --nproc N on one node);
    see docs/training-multi-gpu.md.
    """
    try:
        _train(ctx, out, resume, nproc, dist_timeout, input, model_arg, loss_arg,
               _given(model=model, data=data, loss=loss, optimizer=optimizer, lr=lr,
                      weight_decay=weight_decay, schedule=schedule, batch=batch, epochs=epochs,
                      workers=workers, device=device, seed=seed, max_steps=max_steps,
                      val_split=val_split, train_split=train_split, checkpoint_every=checkpoint_every,
                      threads=threads, synthetic_num=synthetic_num, init=init, sync_bn=sync_bn))
    except EdgesegError as e:
        raise _rank_zero_only(_one_line(e)) from None


def _train(ctx: typer.Context, out: Path, resume: bool, nproc: int | None, dist_timeout: float,
           input: str | None, model_arg: list[str] | None, loss_arg: list[str] | None,
           given: dict[str, Any]) -> None:
    from edgeseg.models.registry import parse_hw
    from edgeseg.train.config import parse_kv
    from edgeseg.train.dist import launched

    if input is not None:
        given["input_hw"] = parse_hw(input)
    if model_arg is not None:
        given["model_args"] = parse_kv(model_arg, "--model-arg")
    if loss_arg is not None:
        given["loss_args"] = parse_kv(loss_arg, "--loss-arg")
    if not dist_timeout > 0:
        raise ConfigError(f"--dist-timeout must be positive, got {dist_timeout}")
    if nproc is not None:
        if nproc < 1:
            raise ConfigError(f"--nproc must be at least 1, got {nproc}")
        if launched():
            raise ConfigError("--nproc starts torchrun itself; under torchrun drop --nproc "
                              "(torchrun's --nproc-per-node sets the number of processes)")
    cfg = config_from_options(out, resume, given)  # bad options: one line here, not once per process
    from edgeseg.guard import data_input, guard_outputs, model_input

    guard_outputs({"--out": [out, out / "config.json", out / "best" / "model.safetensors",
                             out / "best" / "model.json"]},
                  [*model_input(cfg.init, "--init"), *data_input(cfg.data)])
    if nproc is not None and nproc > 1:
        from edgeseg.train.dist import Dist, check_world
        from edgeseg.train.launch import launch
        from edgeseg.train.start import check_resume_world

        job = Dist(0, nproc, 0, nproc)
        check_world(cfg, job)  # refused here once, before any process starts
        if resume:
            check_resume_world(out, job)
        raise typer.Exit(launch(nproc, _argv_without_nproc(ctx)))
    from edgeseg.train.dist import from_env
    from edgeseg.train.loop import train

    result = train(cfg, out, resume=resume, dist_timeout_s=dist_timeout)
    if not from_env().main:
        return
    best = "n/a"
    if result["best_val_miou"] is not None:
        best = f"{result['best_val_miou']:.4f} (epoch {result['best_epoch']})"
    typer.echo(f"done: {result['global_step']} steps, {result['train_seconds']:.0f} s training; "
               f"best val mIoU {best}; checkpoint {out / 'best' / 'model.safetensors'}")


def eval_cmd(
    model: Annotated[Path, typer.Argument(help="Artifact: model.safetensors, .onnx or .engine.")],
    data: Annotated[str, typer.Option(help="Dataset folder, list file, or 'synthetic'.")],
    split: Annotated[str, typer.Option(help="Split to score.")] = "val",
    out: Annotated[Path | None, typer.Option(
        "-o", "--out", help="Report stem (default MODEL.eval-SPLIT).")] = None,
    device: Annotated[str | None, typer.Option(
        help="Checkpoints: torch device auto (default), cpu or cuda. OpenVINO: CPU (default), GPU, NPU."
    )] = None,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads of the backend (default: all cores).")] = None,
    runtime: Annotated[str | None, typer.Option(
        help="ONNX files: onnxruntime (default) or openvino (pip install 'edgeseg[openvino]').")] = None,
    inference_precision: Annotated[str | None, typer.Option(
        help="OpenVINO: precision to compute in: auto (bf16 on CPUs with bf16, else f32), f32, bf16, "
             "f16. Score each precision you deploy.")] = None,
    synthetic_num: Annotated[int | None, typer.Option(
        help="--data synthetic: number of scenes (default 50 for val and test, 200 for train).")] = None,
    num: Annotated[int | None, typer.Option(
        "--num", hidden=True, help="Old name of --synthetic-num.")] = None,
) -> None:
    """Score MODEL on a labelled split: per-class table, JSON + Markdown report.

    Predictions are compared at the model's input size (masks resized with nearest neighbour).
    """
    from rich.console import Console

    from edgeseg.workspace import DEPLOYED, resolve

    model = resolve(model, *DEPLOYED)  # a run folder: its most deployed file, as stream runs it

    from edgeseg.cli.progress import counted
    from edgeseg.guard import data_input, guard_outputs, model_input, stem_outputs
    from edgeseg.report import metrics_markdown, metrics_table, write_report
    from edgeseg.runtime.evaluate import evaluate

    num = pick_alias("--synthetic-num", synthetic_num, "--num", num, None)

    stem = out if out is not None else model.with_name(f"{model.name}.eval-{split}")
    guard_outputs({"--out": stem_outputs(stem)}, [*model_input(model), *data_input(data)])
    options = _eval_options(model, device, threads, runtime, inference_precision)
    console = Console()
    total: list[int | None] = [None]
    with counted("evaluating") as update:
        result = evaluate(model, data, split, backend_options=options, num=num,
                          on_start=lambda n: total.__setitem__(0, n),
                          on_image=lambda i: update(i, total[0]))
    title = f"{model.name} on {data} ({split}, {result.images} images, {result.card.input_hw[0]}x" \
            f"{result.card.input_hw[1]})"
    console.print(metrics_table(result.metrics, result.card.class_names, title=title))
    md = metrics_markdown(result.metrics, result.card.class_names, title=title)
    computed = result.backend.get("inference_precision")
    md += (f"\nScored at the {result.to_dict()['resolution']}; backend {result.backend.get('name')}"
           f"{f' (inference precision {computed})' if computed else ''}.\n")
    json_path, md_path = write_report(stem, result.to_dict(), md)
    console.print(f"wrote {json_path} and {md_path}")


def _eval_options(model: Path, device: str | None, threads: int | None, runtime: str | None,
                  inference_precision: str | None) -> dict[str, Any]:
    """Backend options for ``eval``: --device for checkpoints (default auto) and OpenVINO, --threads
    for every backend, --inference-precision for OpenVINO only (ConfigError elsewhere)."""
    openvino = runtime == "openvino"
    options: dict[str, Any] = {} if runtime is None else {"runtime": runtime}
    if model.suffix == ".safetensors" and runtime in (None, "torch"):
        options["device"] = device or Device.auto.value
    elif device is not None:
        if not openvino:
            on = runtime or "the default"
            raise ConfigError(f"--device does not apply to {model.suffix} models on {on} runtime; it is "
                              "for checkpoints (auto, cpu, cuda) and --runtime openvino (CPU, GPU, NPU)")
        options["device"] = device
    if inference_precision is not None:
        if not openvino:
            raise ConfigError("--inference-precision applies to --runtime openvino only; add --runtime "
                              "openvino or drop it")
        options["inference_precision"] = inference_precision
    if threads is not None:
        options["threads"] = threads
    return options


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
