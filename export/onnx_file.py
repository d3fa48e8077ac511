"""Writing an ONNX artifact: the output check made before the (slow) work, and the atomic write of
the file with its model card. Shared by every stage that writes ONNX (export, ``export --module``,
deploy), so none of them imports another for it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgeseg.card import ModelCard, card_path
from edgeseg.errors import ConfigError, ExportError
from edgeseg.io import atomic_path, sha256_file, write_json_atomic


def check_output_path(out: Path) -> None:
    """Fail early (before the slow export) if ``out`` cannot be written."""
    if out.suffix != ".onnx":
        raise ConfigError(f"output {out} must end in .onnx (e.g. model.onnx)")
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ExportError(f"output {out} is a folder; give a file name such as {out}/model.onnx")
    if not parent.is_dir():
        raise ExportError(f"output folder {parent} does not exist; create it or choose another -o")
    try:  # a real probe: permissions, read-only file systems and quotas all show up here
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ExportError(f"output folder {parent} is not writable ({e.strerror}); choose another "
                          "-o path") from None


def write_onnx(out: Path, data: bytes, card: ModelCard) -> tuple[Path, ModelCard]:
    """Write the ONNX bytes and the card atomically (card first, then the file is renamed in);
    return the path and the card as written (with ``file_sha256``)."""
    with atomic_path(out, need_bytes=len(data)) as tmp:
        tmp.write_bytes(data)
        card = card.replace(file_sha256=sha256_file(tmp))
        write_json_atomic(card_path(out), card.to_dict())
    return out, card
