"""A run folder as the shared workspace of the whole path.

``edgeseg train --out runs/dsb`` writes ``runs/dsb/best/model.safetensors``; the README's later
steps keep that file's family next to it (``best/model.onnx``, ``model.fp16.onnx``,
``model.int8.onnx``, ``model.<precision>.engine``). Every command that takes a model accepts the run
folder instead of a file and picks the member of the family it needs; a missing member is one line
naming the step that makes it. Explicit paths pass through unchanged.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.errors import ModelError

# kind -> (file name in the family, the step that writes it; {run} and {best} are filled in)
MEMBERS: dict[str, tuple[str, str]] = {
    "checkpoint": ("model.safetensors", "edgeseg train --out {run} ..."),
    "onnx": ("model.onnx", "edgeseg export {best}/model.safetensors -o {best}/model.onnx"),
    "fp16": ("model.fp16.onnx", "edgeseg convert-fp16 {best}/model.onnx -o {best}/model.fp16.onnx"),
    "int8": ("model.int8.onnx",
             "edgeseg calibrate {best}/model.onnx --set SET.json -o {best}/model.int8.onnx"),
    "fp16-engine": ("model.fp16.engine", "edgeseg build-engine {best}/model.fp16.onnx --precision fp16 "
                                         "-o {best}/model.fp16.engine"),
    "int8-engine": ("model.int8.engine", "edgeseg build-engine {best}/model.int8.onnx --precision int8 "
                                         "-o {best}/model.int8.engine"),
}
# What a runtime command (stream, eval, the Python API) runs from a run folder: the most deployed
# member present, in this order.
DEPLOYED = ("int8-engine", "fp16-engine", "int8", "fp16", "onnx", "checkpoint")


def family_dir(folder: Path) -> Path | None:
    """The folder holding the family: ``folder`` itself (a best/ or last/ folder) or ``folder/best``."""
    for d in (folder, folder / "best"):
        if any((d / name).is_file() for name, _ in MEMBERS.values()):
            return d
    return None


def resolve(path: str | Path, *kinds: str) -> Path:
    """``path`` if it is not a folder; else the first of ``kinds`` present in its family.

    ModelError (one line) when the folder holds no family, or none of ``kinds``: it names the step
    that makes the first kind.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    best = family_dir(path)
    if best is None:
        raise ModelError(f"{path} is a folder without a model (no best/model.safetensors, model.onnx ...); "
                         "pass a model file, or a run folder of edgeseg train --out")
    for kind in kinds:
        name, _ = MEMBERS[kind]
        if (best / name).is_file():
            return best / name
    name, step = MEMBERS[kinds[0]]
    run = best.parent if best.name in ("best", "last") else best
    raise ModelError(f"run folder {path} has no {best / name} yet; make it with: "
                     f"{step.format(run=run, best=best)}")


def resolve_all(paths: list[Path], kinds: tuple[str, ...]) -> list[Path]:
    """A single run folder -> every member of ``kinds`` present (the first one required); files and
    several paths pass through unchanged."""
    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return list(paths)
    first = resolve(paths[0], kinds[0])
    others = (first.parent / MEMBERS[k][0] for k in kinds[1:])
    return [first, *(p for p in others if p.is_file())]


_PRECISIONS = (".fp32", ".fp16", ".int8")


def beside(model: Path, suffix: str) -> Path:
    """The default output next to ``model``: ``best/model.int8.onnx`` + ``.deploy.onnx`` ->
    ``best/model.int8.deploy.onnx``; ``.safetensors`` / ``.onnx`` is replaced by ``suffix``."""
    name = model.name.removesuffix(".safetensors").removesuffix(".onnx")
    return model.with_name(name + suffix)


def engine_beside(onnx: Path, precision: str) -> Path:
    """``model.fp16.onnx`` or ``model.onnx`` built as fp16 -> ``model.fp16.engine`` (the family name)."""
    name = onnx.name.removesuffix(".onnx")
    for infix in _PRECISIONS:
        name = name.removesuffix(infix)
    return onnx.with_name(f"{name}.{precision}.engine")


def need_out(out: Path | None, default: Path | None, example: str) -> Path:
    """``out``, else ``default``; ConfigError when neither exists (e.g. no model to put it beside)."""
    from edgeseg.errors import ConfigError

    if out is not None:
        return out
    if default is None:
        raise ConfigError(f"no output given and no model to write it beside; pass -o, e.g. -o {example}")
    return default
