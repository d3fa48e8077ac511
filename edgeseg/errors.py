"""The edgeseg error hierarchy.

Every error a user can cause is an :class:`EdgesegError` whose message is one line that names
the problem, what was expected and how to fix it. The CLI prints that line and exits with 2;
the Python API raises the typed exception. Never ``assert`` on user input.
"""

from __future__ import annotations


class EdgesegError(Exception):
    """Base class: a problem with the user's input or environment, not a bug in edgeseg."""

    exit_code = 2


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


class SourceError(EdgesegError):
    """A video source or sink cannot be opened or read."""


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' if none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
