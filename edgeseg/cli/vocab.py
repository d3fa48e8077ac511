"""Old option spellings kept as hidden aliases of the one name each idea has now.

The CLI has one name per idea (``--max-frames`` for a frame limit, ``--synthetic-num`` for a count
of synthetic scenes, ``--data`` for a dataset read). Older spellings still parse, hidden from
``--help``, so scripts written against them keep working; giving both spellings is refused.

Options with an alias are declared with default ``None`` (so "not given" is visible) and their
real default in ``show_default``; :func:`pick_alias` applies it.
"""

from __future__ import annotations

from typing import TypeVar

from edgeseg.errors import ConfigError

T = TypeVar("T")


def pick_alias(new_flag: str, new_value: T | None, old_flag: str, old_value: T | None, default: T) -> T:
    """The value given as ``new_flag`` or as its hidden old spelling ``old_flag``, else ``default``.

    ``None`` means "not given". Raises ConfigError when both spellings were given (one option).
    """
    if new_value is not None and old_value is not None:
        raise ConfigError(f"{old_flag} is the old name of {new_flag}; give {new_flag} once (drop {old_flag})")
    if new_value is not None:
        return new_value
    return old_value if old_value is not None else default
