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
from typing import Any

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


class _Group(TyperGroup):
    """Turns EdgesegError into one clear line and a non-zero exit."""

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


def build_app() -> typer.Typer:
    app = typer.Typer(
        cls=_Group,
        name="edgeseg",
        help="Semantic segmentation from PyTorch to TensorRT engines on a live camera, measured.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def root() -> None:
        """Semantic segmentation from PyTorch to TensorRT engines on a live camera, measured."""

    for name in COMMAND_MODULES:
        importlib.import_module(f"edgeseg.cli.{name}").register(app)

    @app.command("version")
    def version() -> None:
        """Print the edgeseg version."""
        from edgeseg import __version__

        typer.echo(__version__)

    return app


app = build_app()


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)  # commands with a graceful stop install their own
    app(prog_name="edgeseg")


if __name__ == "__main__":
    main()
