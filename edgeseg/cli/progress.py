"""Progress of counted work on stderr: a rich bar on a terminal, plain lines in logs (nohup, CI).

Used by the commands that score images or layers (eval, precision-report, int8-sensitivity), so a
run without a terminal still shows where it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Update = Callable[[int, "int | None"], None]


@contextmanager
def counted(what: str) -> Iterator[Update]:
    """Yield ``update(done, total)``: a transient bar with its known total on a terminal; otherwise
    one line ``what: done/total`` at every tenth of the total (and at the end)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if console.is_terminal:
        with Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(what, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    printed = [0]  # the last count written

    def update(done: int, total: int | None) -> None:
        if not total:
            return
        due = done == total or done - printed[0] >= max(1, total // 10)
        if due and done != printed[0]:
            print(f"{what}: {done}/{total}", file=sys.stderr, flush=True)
            printed[0] = done

    yield update
