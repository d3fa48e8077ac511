"""``edgeseg train`` and ``edgeseg eval``.

Heavy imports (torch) happen inside ``train`` only; ``eval`` of an ONNX file or an engine stays
torch-free (the torch backend imports torch only for ``.safetensors`` checkpoints).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.cli.vocab import pick_alias
from edgeseg.errors import ConfigError, EdgesegError
from edgeseg.train.config import (
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    DIST_TIMEOUT_S,
    Device,
    Optimizer,
    Schedule,
    TrainConfig,
    parse_kv,
    run_config,
)

# The option defaults are TrainConfig's: a dataclass keeps each field's default as a class attribute.
_D = TrainConfig
_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def _per_optimizer(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in values.items())


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` came from the user (command line; also any later source such as a
    default map), not from its default: what --resume applies and --nproc hands on."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _given(ctx: typer.Context) -> dict[str, Any]:
    """The TrainConfig fields the user set, by field name (--input, --model-arg, --loss-arg parsed)."""
    from edgeseg.models.registry import parse_hw

    typed = {name: value for name, value in ctx.params.items() if _typed(ctx, name)}
    given = {name: value for name, value in typed.items() if name in _FIELDS}
    if "input" in typed:
        given["input_hw"] = parse_hw(typed["input"])
    for option, name in (("model_arg", "model_args"), ("loss_arg", "loss_args")):
        if option in typed:
            given[name] = parse_kv(typed[option], f"--{option.replace('_', '-')}")
    return given


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
        if param.name is None or param.name == "nproc" or not _typed(ctx, param.name):
            continue
        name = next((o for o in param.opts if o.startswith("--")), param.opts[0])  # --out, not -o
        value = ctx.params[param.name]
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
    loss: Annotated[str, typer.Option(
        help="Loss by name, e.g. bce-dice (a wrong name lists the valid ones).")] = _D.loss,
    loss_arg: Annotated[list[str] | None, typer.Option(help="Loss argument key=value (repeatable).")] = None,
    optimizer: Annotated[Optimizer, typer.Option(help="SGD runs with momentum 0.9.")] = _D.optimizer,
    lr: Annotated[float | None, typer.Option(
        help=f"Base LR (not given: {_per_optimizer(DEFAULT_LR)}).")] = _D.lr,
    weight_decay: Annotated[float | None, typer.Option(
        help=f"Not given: {_per_optimizer(DEFAULT_WEIGHT_DECAY)}.")] = _D.weight_decay,
    schedule: Annotated[Schedule, typer.Option(help="LR schedule.")] = _D.schedule,
    batch: Annotated[int, typer.Option(
        help="Global batch size: with N processes each takes batch/N per step.")] = _D.batch,
    epochs: Annotated[int, typer.Option(help="Epochs.")] = _D.epochs,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = _D.workers,
    device: Annotated[Device, typer.Option(
        help="auto: CUDA with AMP when torch sees a GPU, else the CPU.")] = _D.device,
    seed: Annotated[int, typer.Option(help="Seed of order, augmentation, init.")] = _D.seed,
    max_steps: Annotated[int | None, typer.Option(
        help="Stop after N optimizer steps (smoke runs).")] = _D.max_steps,
    val_split: Annotated[str, typer.Option(help="Validation split.")] = _D.val_split,
    train_split: Annotated[str, typer.Option(help="Training split.")] = _D.train_split,
    checkpoint_every: Annotated[int, typer.Option(
        help="Save last/ every N steps (0: at epoch ends only).")] = _D.checkpoint_every,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads (not given: all cores).")] = _D.threads,
    synthetic_num: Annotated[int, typer.Option(
        help="--data synthetic: number of train scenes (val: an eighth, at least 8).")] = _D.synthetic_num,
    init: Annotated[str | None, typer.Option(help="Start from a checkpoint's weights.")] = _D.init,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out exactly.")] = False,
    nproc: Annotated[int | None, typer.Option(
        help="Data-parallel processes on this node (starts torchrun; one per GPU on CUDA).")] = None,
    sync_bn: Annotated[bool, typer.Option(
        "--sync-bn/--no-sync-bn",
        help="With several processes: BatchNorm over the global batch.")] = _D.sync_bn,
    dist_timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the other processes (rendezvous, each collective).")] = DIST_TIMEOUT_S,
) -> None:
    """Train a model; checkpoints in OUT/best and OUT/last, logs and curves in OUT.

    Data parallel: torchrun --nproc-per-node N -m edgeseg train ... (or --nproc N on one node);
    see docs/training-multi-gpu.md.
    """
    # The options reach the run through ctx (_given): a new run takes those given plus
    # TrainConfig's defaults, --resume applies only those given to the saved config, and --nproc
    # hands on only those.
    try:
        _train(ctx, out, resume, nproc, dist_timeout)
    except EdgesegError as e:
        raise _rank_zero_only(_one_line(e)) from None


def _train(ctx: typer.Context, out: Path, resume: bool, nproc: int | None, dist_timeout: float) -> None:
    from edgeseg.train.dist import launched

    given = _given(ctx)
    if not dist_timeout > 0:
        raise ConfigError(f"--dist-timeout must be positive, got {dist_timeout}")
    if nproc is not None:
        if nproc < 1:
            raise ConfigError(f"--nproc must be at least 1, got {nproc}")
        if launched():
            raise ConfigError("--nproc starts torchrun itself; under torchrun drop --nproc "
                              "(torchrun's --nproc-per-node sets the number of processes)")
    cfg = run_config(out, resume, given)  # bad options: one line here, not once per process
    from edgeseg.guard import data_input, guard_outputs, model_input

    guard_outputs({"--out": [out, out / "config.json", out / "best" / "model.safetensors",
                             out / "best" / "model.json"]},
                  [*model_input(cfg.init, "--init"), *data_input(cfg.data)])
    if nproc is not None and nproc > 1:
        from edgeseg.train.launch import launch_job

        raise typer.Exit(launch_job(cfg, out, resume, nproc, _argv_without_nproc(ctx)))
    from edgeseg.train.dist import from_env
    from edgeseg.train.loop import train

    result = train(cfg, out, resume=resume, dist_timeout_s=dist_timeout)
    if not from_env().main:
        return
    best = "n/a"
    if result.best_val_miou is not None:
        best = f"{result.best_val_miou:.4f} (epoch {result.best_epoch})"
    typer.echo(f"done: {result.global_step} steps, {result.train_seconds:.0f} s training; "
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
    from edgeseg.runtime.backends import backend_options

    options = backend_options(model, runtime, device=device, threads=threads,
                              inference_precision=inference_precision)  # one-line error for a wrong one
    console = Console()
    total: list[int | None] = [None]
    with counted("evaluating") as update:
        result = evaluate(model, data, split, runtime=runtime, backend_options=options, num=num,
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


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
