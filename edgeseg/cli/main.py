"""``edgeseg`` entry point: builds the Typer app from the command-group modules.

Each command-group module exposes ``register(app)``. Errors derived from ``EdgesegError`` are
printed as one line on stderr and exit with code 2 (no traceback).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from edgeseg.errors import EdgesegError

# Command-group modules under edgeseg.cli, in help order.
COMMAND_MODULES: tuple[str, ...] = ("models", "train", "export", "deploy", "stream", "engine", "calib",
                                    "bench")


class _Group(TyperGroup):
    """Turns EdgesegError into one clear line and a non-zero exit."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EdgesegError as e:
            typer.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)


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
    app(prog_name="edgeseg")


if __name__ == "__main__":
    sys.exit(main())
