"""``edgeseg`` entry point: builds the Typer app from the command-group modules.

Each command-group module exposes ``register(app)``. Errors derived from ``EdgesegError`` are
printed as one line on stderr and exit with their ``exit_code`` (the convention is in
:mod:`edgeseg.errors`; no traceback). Two failures that are not edgeseg's own become one line
here, for every command: a missing optional dependency (torch in a runtime-only install names
the extra to install) and a write failure (disk full, file-size limit) that escaped a helper.
"""

from __future__ import annotations

import importlib
import signal
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from edgeseg.errors import EXIT_FAILED, EXIT_REFUSED, EdgesegError, signal_exit_code

# Optional modules -> the extra that installs them (pyproject.toml [project.optional-dependencies]).
EXTRAS = {"torch": "train", "safetensors": "train", "onnxsim": "train", "albumentations": "train",
          "tensorrt": "tensorrt", "pycuda": "tensorrt"}

# Command-group modules under edgeseg.cli, in help order.
COMMAND_MODULES: tuple[str, ...] = ("models", "train", "export", "importing", "deploy", "stream", "engine",
                                     "calib", "bench", "doctor", "compare")


class Terminated(BaseException):
    """SIGTERM turned into an exception, so ``finally`` blocks (temporary files) run."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def _tidy_help(command: Any, ctx: Any) -> None:
    """Make ``--help`` show what the code says, once per command object.

    Flags take no value: blank the ``<bool>`` type typer prints beside them (``--help`` included;
    an empty metavar is what the renderer shows as the type). Help texts are rich markup to typer,
    which silently drops anything in brackets ("Output [default: X]." became "Output ."; the
    "[openvino]" of pip extras vanished): escape the brackets so they print literally.
    """
    if getattr(command, "_edgeseg_tidy", False):
        return
    command._edgeseg_tidy = True
    if command.help:
        command.help = command.help.replace("[", "\\[")
    for param in [*command.params, command.get_help_option(ctx)]:
        if param is None:
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
        if getattr(param, "help", None):
            param.help = param.help.replace("[", "\\[")


class _Group(TyperGroup):
    """Turns EdgesegError into one clear line and a non-zero exit; flags print no ``<bool>``."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_help(command, ctx)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy_help(self, ctx)
        super().format_help(ctx, formatter)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EdgesegError as e:
            typer.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except (KeyboardInterrupt, Terminated) as e:
            # Commands with their own stop handling (stream, train, bench) save and exit 130/143
            # themselves; anywhere else the atomic writes' cleanup has already run on the way out.
            signum = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
            typer.echo(f"error: stopped by {signum.name}; nothing half-written was kept", err=True)
            ctx.exit(signal_exit_code(signum))
        except ModuleNotFoundError as e:
            top = (e.name or "").split(".")[0]
            if top not in EXTRAS:
                raise
            typer.echo(f"error: this command needs {top}, which is not installed (a runtime-only "
                       f"install); install it with: pip install 'edgeseg[{EXTRAS[top]}]'", err=True)
            ctx.exit(EXIT_REFUSED)
        except OSError as e:
            from edgeseg.io import write_errno

            if write_errno(e) is None:
                raise
            typer.echo(f"error: a write failed: {e.strerror or e}"
                       f"{f' ({e.filename})' if e.filename else ''}; free space (or raise the "
                       "file-size limit) and run again", err=True)
            ctx.exit(EXIT_FAILED)


def _print_version(value: bool) -> None:
    """``edgeseg --version``: print the version and exit before any command runs (eager option)."""
    if value:
        from edgeseg.version import __version__

        typer.echo(__version__)
        raise typer.Exit()


ROOT_HELP = (
    "Semantic segmentation from PyTorch to TensorRT engines on a live camera, measured."
    "\n\nConventions of every command: sizes are HxW (height x width, e.g. 360x480); -o/--out names "
    "what a command writes (never one of its inputs); --data names a dataset; a run folder (edgeseg "
    "train --out) stands for the model files in it. Exit codes: 0 done, 1 failed while running, "
    "2 refused (nothing run), 130/143 after SIGINT/SIGTERM."
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        cls=_Group,
        name="edgeseg",
        help=ROOT_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def root(
        version: Annotated[bool, typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the edgeseg version and exit.")
        ] = False,
    ) -> None:
        """Semantic segmentation from PyTorch to TensorRT engines on a live camera (ROOT_HELP)."""

    for name in COMMAND_MODULES:
        importlib.import_module(f"edgeseg.cli.{name}").register(app)

    @app.command("version")
    def version() -> None:
        """Print the edgeseg version."""
        from edgeseg.version import __version__

        typer.echo(__version__)

    return app


app = build_app()


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # commands with a graceful stop install their own
    app(prog_name="edgeseg")


if __name__ == "__main__":
    main()
