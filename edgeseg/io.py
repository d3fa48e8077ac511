"""Small file helpers shared by every stage: atomic writes, write-failure reporting, content hashes.

Nothing an earlier run wrote is ever half-overwritten: every artifact is written to a temporary
file in the same folder and renamed over the target only once complete. The temporary file gets
the mode a plainly created file would get (``0o666`` minus the umask), not ``mkstemp``'s private
``0o600``, so artifacts are as readable as the user's other files.

Write failures (disk full ``ENOSPC``, file-size limit ``EFBIG``, quota ``EDQUOT``, I/O errors)
become one-line :class:`~edgeseg.errors.OutputError` naming the target; libraries that wrap the
``OSError`` (torch, protobuf, safetensors) are recognised by the error chain and message, and a
block that fails while the folder is (nearly) full is reported as a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import resource
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeseg.errors import ConfigError, EdgesegError, OutputError

# Below this much free space a failed write is reported as "disk full" even when the library that
# failed hid the errno (onnx/protobuf and torch raise their own exception types).
LOW_SPACE_BYTES = 1 << 20
_WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file-size limit was reached",
                 errno.EDQUOT: "the disk quota is exceeded", errno.EIO: "an I/O error occurred",
                 errno.EROFS: "the file system is read-only", errno.EACCES: "permission was denied",
                 errno.EPERM: "permission was denied"}
_WRITE_WORDS = (("no space left", errno.ENOSPC), ("file too large", errno.EFBIG),
                ("disk quota", errno.EDQUOT))


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` minus the process umask: what ``open(..., 'w')`` / ``mkdir`` would create."""
    current = os.umask(0)
    os.umask(current)
    return mode & ~current


def free_bytes(folder: str | os.PathLike[str]) -> int:
    """Bytes this process may still write under ``folder``: free space, capped by ``ulimit -f``."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return free if soft == resource.RLIM_INFINITY else min(free, soft)


def check_room(target: str | os.PathLike[str], need_bytes: int, what: str | None = None) -> None:
    """OutputError when ``need_bytes`` more bytes will not fit next to ``target``.

    Checks both the free space of the file system and the per-file size limit (``ulimit -f``,
    against ``target``'s current size when it exists). ``what`` names the output in the message
    (default ``output TARGET``).
    """
    target = Path(target)
    what = what or f"output {target}"
    parent = target.parent if str(target.parent) else Path(".")
    st = os.statvfs(parent)
    free = st.f_bavail * st.f_frsize
    if free < need_bytes:
        raise OutputError(f"cannot write {what}: {free // 1024} KiB free on its file system, "
                          f"{need_bytes // 1024} KiB needed; free some space or choose another path")
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    size = target.stat().st_size if target.is_file() else 0
    if soft != resource.RLIM_INFINITY and size + need_bytes > soft:
        raise OutputError(f"cannot write {what}: the file-size limit (ulimit -f) is "
                          f"{soft // 1024} KiB; raise it or write a smaller file")


def write_errno(e: BaseException) -> int | None:
    """The errno of a write failure in ``e`` or its chain (also when a library kept only the text)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _WRITE_ERRNOS:
            return cur.errno
        text = str(cur).lower()
        for words, code in _WRITE_WORDS:
            if words in text:
                return code
        cur = cur.__cause__ or cur.__context__
    return None


def output_error(e: BaseException, target: str | os.PathLike[str],
                 what: str = "output") -> OutputError | None:
    """A one-line OutputError for a failed write of ``target``, or None if ``e`` is not one.

    Recognised: an errno in the chain (see :func:`write_errno`), or any failure while the
    target's file system has less than ``LOW_SPACE_BYTES`` free (libraries that swallow errno).
    """
    if isinstance(e, EdgesegError):
        return None
    code = write_errno(e)
    if code is None:
        parent = Path(target).parent if str(Path(target).parent) else Path(".")
        with contextlib.suppress(OSError):
            if free_bytes(parent) < LOW_SPACE_BYTES:
                code = errno.ENOSPC
    if code is None:
        return None
    return OutputError(f"writing {what} {target} failed: {_WRITE_ERRNOS[code]} ({os.strerror(code)}); "
                       "nothing earlier was replaced; free space (or raise the limit) and run again")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], need_bytes: int = 0) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` if the block succeeds.

    On any exception the temporary file is removed and ``target`` is left untouched; write
    failures (disk full, size limit) are raised as one-line :class:`OutputError`. ``need_bytes``
    (when known) is checked against the free space before anything is written.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"output folder {parent} does not exist; create it or choose another output path")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"output folder {parent} is not writable; choose another output path")
    if target.is_dir():
        raise ConfigError(f"output {target} is a folder; give a file path")
    if need_bytes:
        check_room(target, need_bytes)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise output_error(e, target) or e from None
    os.fchmod(fd, umask_mode())  # mkstemp creates 0600; artifacts follow the umask like plain files
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except Exception as e:
        err = output_error(e, target)
        if err is not None:
            raise err from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the target path."""
    data = text.encode("utf-8")
    with atomic_path(target, need_bytes=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_json_atomic(target: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    return write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_json(data: Any) -> str:
    """Hex SHA-256 of a JSON value in canonical form (sorted keys, no spaces)."""
    return sha256_bytes(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


def load_onnx(path: str | os.PathLike[str], *, weights: bool = True) -> Any:
    """Read an ONNX file as data: one-line ModelError for a missing, truncated or non-ONNX file.

    Tensors stored as external data must name a relative file inside the model's folder (no
    absolute path, no ``..`` out, no symlink out), so a crafted model cannot make edgeseg read
    other files. ``weights=False`` checks those paths but does not load the external bytes.
    """
    import onnx

    from edgeseg.errors import ModelError

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX file {path} does not exist; check the path")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError, onnx's own errors: all mean "not a whole ONNX file"
        raise ModelError(f"{path} is not a readable ONNX file ({type(e).__name__}: truncated or not "
                         "ONNX); re-create it with edgeseg export") from None
    folder = path.parent.resolve()
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise ModelError(f"{path}: tensor {tensor.name!r} stores its data at {location!r}, outside the "
                             "model's folder; external data must be a file next to the model")
        if not target.is_file():
            raise ModelError(f"{path}: tensor {tensor.name!r} needs its external data file {location!r}, "
                             "which is missing; copy it next to the model")
    if weights:
        try:
            onnx.load_external_data_for_model(model, str(folder))
        except Exception as e:
            raise ModelError(f"{path}: cannot read its external data ({type(e).__name__}: {e}); "
                             "re-create the model with edgeseg export") from None
    return model
