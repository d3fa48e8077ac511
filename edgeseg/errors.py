"""The edgeseg error hierarchy.

Every error a user can cause is an :class:`EdgesegError` whose message is one line that names
the problem, what was expected and how to fix it. The CLI prints that line and exits with the
error's ``exit_code``; the Python API raises the typed exception. Never ``assert`` on user input.

Exit codes, the same for every command (docs/reliability.md):

* 0 — done.
* 1 — the work started and failed (a write failed, a source was lost, a check failed);
  what was finished is kept, nothing earlier was replaced.
* 2 — refused: bad input, option, file or environment; nothing was run or written.
* 128 + signal — stopped by a signal after saving what was done: 130 SIGINT (Ctrl-C), 143 SIGTERM.
"""

from __future__ import annotations


class EdgesegError(Exception):
    """Base class: a problem with the user's input or environment, not a bug in edgeseg."""

    exit_code = 2


EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def signal_exit_code(signum: int) -> int:
    """128 + signal number: 130 for SIGINT, 143 for SIGTERM (the shell's convention)."""
    return 128 + int(signum)


class OutputError(EdgesegError):
    """An output could not be written (disk full, size limit, unwritable folder); nothing earlier
    was replaced."""

    exit_code = EXIT_FAILED


class ConfigError(EdgesegError, ValueError):
    """Bad option, argument, model name, builder argument or config file."""


class DataError(EdgesegError):
    """Missing, unreadable or inconsistent images, masks, datasets or manifests."""


class ModelError(EdgesegError):
    """Checkpoint/model card missing, from another architecture, or not matching its file."""


class ExportError(EdgesegError):
    """ONNX export, simplification, checking or verification failed."""


class CalibrationError(EdgesegError):
    """Calibration set or INT8/FP16 conversion problem."""


class EngineError(EdgesegError):
    """TensorRT missing, plugin library problem, engine build/load failure or mismatch."""


class BackendError(EdgesegError):
    """An inference backend cannot load or run the given model here."""


class BackendOptionError(BackendError, ConfigError):
    """An option the chosen backend does not take, or a value of the wrong type (a bad option, so
    also a ConfigError)."""


class SourceError(EdgesegError):
    """A video source or sink cannot be opened or read."""


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' if none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
