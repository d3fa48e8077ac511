"""``edgeseg bench`` (the comparison table) and ``edgeseg demo`` (the first-run command).

Both stay torch-free unless a torch backend or an on-the-fly export is asked for: heavy modules
are imported inside the commands.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeseg.cli.vocab import pick_alias
from edgeseg.errors import ConfigError
from edgeseg.runtime.bench.specs import BACKENDS, BenchConfig
from edgeseg.runtime.demo import DemoOptions

if TYPE_CHECKING:
    from edgeseg.runtime.bench.row import BenchResult

_D = BenchConfig()  # the option defaults
_D_BACKENDS, _D_BATCHES = ",".join(spec.name for spec in _D.backends), ",".join(map(str, _D.batches))
_DEMO = DemoOptions()


def bench_cmd(
    models: Annotated[list[Path], typer.Argument(
        help="Model files or run folders: model.safetensors, model.onnx, model.int8.onnx, "
             "model.<precision>.engine. Each backend runs the file of its kind in the same family.")],
    backends: Annotated[str, typer.Option(
        help=f"Comma list of {', '.join(BACKENDS)} (ov*: OpenVINO, pip install 'edgeseg[openvino]'; "
             "ov-f32 always computes in f32).")] = _D_BACKENDS,
    input: Annotated[str | None, typer.Option(
        "--input", help="Input sizes HxW, comma list (default: each model's own size).")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, comma list, e.g. 1,4.")] = _D_BATCHES,
    data: Annotated[str | None, typer.Option(
        help="Labelled dataset (folder, list file or 'synthetic') for mIoU per row.")] = _D.data,
    split: Annotated[str, typer.Option(help="Split of --data to score.")] = _D.split,
    synthetic_num: Annotated[int | None, typer.Option(
        help="--data synthetic: number of scenes (default 50 for val and test, 200 for train).")] = None,
    data_num: Annotated[int | None, typer.Option(
        "--data-num", hidden=True, help="Old name of --synthetic-num.")] = None,
    calib: Annotated[str | None, typer.Option(
        help="Images to calibrate a missing INT8 ONNX on (dataset folder or 'synthetic').")] = _D.calib,
    iters: Annotated[int, typer.Option(help="Timed calls per row.")] = _D.iters,
    warmup: Annotated[int, typer.Option(help="Untimed calls before timing.")] = _D.warmup,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads for torch and onnxruntime alike (default: all logical CPUs).")] = _D.threads,
    inference_precision: Annotated[str, typer.Option(
        help="OpenVINO rows: precision to compute in: auto (bf16 on CPUs with bf16, else f32), f32, bf16, "
             "f16. The precision used is recorded on each row.")] = _D.inference_precision,
    interleave: Annotated[bool, typer.Option(
        "--interleave", help="Time the backends of each model and input round-robin (fair ratios on "
                             "a shared, noisy machine).")] = _D.interleave,
    out: Annotated[Path, typer.Option(
        "-o", "--out",
        help="Output stem: STEM.json, .md, .csv, .png; prepared ONNX files go to STEM.artifacts/.")
    ] = Path("bench"),
) -> None:
    """Time every MODEL on every backend, input size and batch; write the comparison table.

    Backends that cannot run here (no GPU, no TensorRT, missing file) are listed as skipped with
    the reason. Ctrl-C or a failing backend still writes everything measured so far.
    """
    import os

    from rich.console import Console

    from edgeseg.guard import data_input, guard_outputs, model_input, stem_outputs
    from edgeseg.pipelines.bench import bench
    from edgeseg.runtime.bench.specs import parse_backends, parse_batches, parse_inputs

    data_num = pick_alias("--synthetic-num", synthetic_num, "--data-num", data_num, None)

    guard_outputs({"--out": stem_outputs(out, ".json", ".md", ".csv", ".png")},
                  [*[i for m in models for i in model_input(m, f"model {m}")], *data_input(data),
                   *data_input(calib, "--calib")])
    specs = parse_backends(backends)
    threads = threads if threads is not None else os.cpu_count()
    inputs = parse_inputs(input)
    cfg = BenchConfig(models=tuple(models), backends=tuple(specs), work_dir=Path(f"{out}.artifacts"),
                      inputs=None if inputs is None else tuple(inputs), batches=tuple(parse_batches(batch)),
                      warmup=warmup, iters=iters, threads=threads, data=data, split=split, data_num=data_num,
                      calib=calib, interleave=interleave,
                      inference_precision=_inference_precision(inference_precision))
    console, err = Console(), Console(stderr=True)
    command = _command(models, {"--backends": backends, "--input": input, "--batch": batch,
                                "--data": data, "--split": split if data else None,
                                "--synthetic-num": data_num,
                                "--calib": calib, "--iters": iters, "--warmup": warmup,
                                "--inference-precision": None if inference_precision == _D.inference_precision
                                else inference_precision,
                                "--threads": threads, "--out": out})
    command += " --interleave" if interleave else ""
    with _progress(err) as (bar, task):
        run = bench(cfg, out, command, log=lambda m: err.print(f"[dim]{m}[/dim]"),
                    on_iter=lambda label, i, n: bar.update(task, description=label, completed=i, total=n))
    _print(run.result, run.paths, console)
    if run.busy:  # said with the results, after any refusal
        typer.echo(f"warning: {run.busy}", err=True)
    if run.result.interrupted:
        raise typer.Exit(130)
    if any(r.status == "failed" for r in run.result.rows):
        raise typer.Exit(1)


def _inference_precision(text: str) -> str:
    """ConfigError (listing the choices) unless ``text`` is an OpenVINO inference precision."""
    from edgeseg.errors import did_you_mean
    from edgeseg.runtime.backends.openvino import INFERENCE_PRECISIONS as choices

    if text not in choices:
        raise ConfigError(f"--inference-precision {text!r} is not one of {', '.join(choices)}"
                          f"{did_you_mean(text, choices)}")
    return text


def _command(models: list[Path], options: dict[str, Any]) -> str:
    """The command line that reproduces this run (every option spelled out)."""
    parts = ["edgeseg", "bench", *(str(m) for m in models)]
    for k, v in options.items():
        if v is not None:
            parts += [k, str(v)]
    return " ".join(shlex.quote(p) for p in parts)


def _progress(console: Any) -> Any:
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    @contextmanager
    def bar() -> Any:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console, transient=True) as p:
            yield p, p.add_task("starting", total=None)

    return bar()


def _print(result: BenchResult, paths: list[Path], console: Any) -> None:
    from edgeseg.runtime.bench.report import rich_table

    if not result.rows:
        return
    console.print(rich_table(result))
    skipped = sum(r.status == "skipped" for r in result.rows)
    if skipped:
        console.print(f"{skipped} row(s) skipped: the status column says why.")
    console.print("wrote " + ", ".join(str(p) for p in paths))


def demo_cmd(
    camera: Annotated[int | None, typer.Option(help="Camera index (default: the synthetic scenes).")
                      ] = _DEMO.camera,
    max_frames: Annotated[int | None, typer.Option(
        help=f"Frames to process (camera: stop after this many; default {_DEMO.max_frames}).")] = None,
    frames: Annotated[int | None, typer.Option("--frames", hidden=True, help="Old name of --max-frames.")
                      ] = None,
    out: Annotated[Path, typer.Option(
        "-o", "--out", help="Output folder: overlay video, report, per-frame stats.")
                   ] = Path("edgeseg-demo"),
    model: Annotated[Path | None, typer.Option(help="Model (default: the shipped demo model).")
                     ] = _DEMO.model,
    show: Annotated[bool, typer.Option("--show", help="Also show a window (needs a display).")] = _DEMO.show,
) -> None:
    """Run the streaming runtime end to end: synthetic scenes (or --camera N) -> the shipped
    model on onnxruntime -> overlay video + report; prints FPS, latency, parameters and IoU."""
    from rich.console import Console

    from edgeseg.cli.stream import stop_exit_code
    from edgeseg.guard import guard_outputs, model_input
    from edgeseg.runtime.demo import demo_model, demo_outputs, demo_summary, run_demo

    frames = pick_alias("--max-frames", max_frames, "--frames", frames, _DEMO.max_frames)
    if frames < 1:
        raise ConfigError(f"--max-frames {frames} must be at least 1")
    guard_outputs({"--out": demo_outputs(out)}, model_input(model or demo_model()))
    report, paths = run_demo(out, DemoOptions(camera=camera, max_frames=frames, model=model, show=show))
    console = Console()
    console.print(report.rich_tables())
    console.print(demo_summary(report.to_dict()))
    console.print("wrote " + ", ".join(str(p) for p in paths))
    code = stop_exit_code(report.stop_reason)  # same convention as stream (edgeseg.errors)
    if code:
        if code == 1:
            typer.echo(f"error: demo stopped: {report.stop_reason.removeprefix('error: ')}", err=True)
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)
    app.command("demo")(demo_cmd)
