"""The Typer CLI: one module per command group; heavy imports happen inside commands."""
