"""The output-path guard: no output of a command may overwrite or replace one of its inputs.

Every command calls :func:`guard_outputs` once, before any work, with what it reads and what it
will write. An output is refused when it is the same file as an input (same path after resolving
links, or the same inode: hard links), when it is an input's model card, when it is an input
folder, or when it would replace an existing data file (image, mask, video or list file) inside
an input folder (dataset root, masks, image source).

Inputs are given as :class:`Input` values; :func:`model_input` adds a model file's sidecar card,
because rewriting the card silently re-labels the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import ConfigError

# Files a dataset folder is read for; other files inside it (a report, a manifest) are not inputs.
DATA_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".txt", ".csv",
                           ".mp4", ".avi", ".mkv", ".mov"})


@dataclass(frozen=True)
class Input:
    """One thing a command reads: ``what`` names it in the message ("the model", "--set")."""

    path: Path
    what: str


def model_input(path: str | os.PathLike[str] | None, what: str = "the model") -> list[Input]:
    """A model file and its card (``card_path``) as inputs; [] for None."""
    if path is None:
        return []
    from edgeseg.card import card_path

    p = Path(path)
    if p.is_dir():  # a checkpoint folder: its weights and card
        p = p / "model.safetensors"
    return [Input(p, what), Input(card_path(p), f"the card of {what}")]


def data_input(spec: str | os.PathLike[str] | None, what: str = "--data") -> list[Input]:
    """A dataset given as folder or list file (the built-in 'synthetic' reads no file)."""
    if spec is None or str(spec) == "synthetic" or not Path(spec).exists():
        return []
    return [Input(Path(spec), what)]


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    try:
        child.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def clash(output: Path, inputs: Iterable[Input]) -> Input | None:
    """The input ``output`` would overwrite or replace, or None."""
    for inp in inputs:
        if inp.path.is_dir():
            replaces_data = output.suffix.lower() in DATA_SUFFIXES and output.exists()
            if _same(output, inp.path) or (replaces_data and _inside(output, inp.path)):
                return inp
        elif _same(output, inp.path):
            return inp
    return None


def guard_outputs(outputs: dict[str, Sequence[Path | None] | Path | None], inputs: Iterable[Input]) -> None:
    """ConfigError (exit 2, nothing run) if any output would overwrite or replace an input.

    ``outputs`` maps the option that names them (``--report``) to the paths that option writes
    (a report stem writes STEM.json and STEM.md: pass both).
    """
    inputs = [i for i in inputs if i.path is not None]
    for option, paths in outputs.items():
        if paths is None:
            continue
        for out in [paths] if isinstance(paths, Path) else paths:
            if out is None:
                continue
            hit = clash(Path(out), inputs)
            if hit is not None:
                raise ConfigError(f"{option} {out} would overwrite {hit.what} ({hit.path}), which this "
                                  "command reads; choose another output path")


def stem_outputs(stem: Path | None, *suffixes: str) -> list[Path]:
    """The files a report stem writes: STEM.json, STEM.md, ... (dots in the stem's name kept)."""
    if stem is None:
        return []
    return [stem.with_name(stem.name + s) for s in suffixes or (".json", ".md")]
