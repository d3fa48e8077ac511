"""``edgeseg train --nproc N``: torchrun's own launcher (``torch.distributed.run``), single node.

Equivalent to ``torchrun --standalone --nproc-per-node N -m edgeseg train ...``; the workers
print their own lines (rank 0 only), so the launcher turns torchrun's failure reports into an
exit code instead of a second, longer traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from edgeseg.train.config import TrainConfig
from edgeseg.train.dist import DistributedError


def launch_job(cfg: TrainConfig, folder: Path, resume: bool, nproc: int, train_argv: list[str]) -> int:
    """Refuse once, before any process starts, a job every process would refuse (``cfg`` on
    ``nproc`` processes; a resumed run of another world size), then :func:`launch` it."""
    from edgeseg.train.dist import Dist, check_world
    from edgeseg.train.start import check_resume_world  # imports torch

    job = Dist(0, nproc, 0, nproc)
    check_world(cfg, job)
    if resume:
        check_resume_world(folder, job)
    return launch(nproc, train_argv)


def launch(nproc: int, train_argv: list[str]) -> int:
    """Run ``python -m edgeseg train *train_argv`` in ``nproc`` processes; return the exit code
    (0, the failing rank's code, or 130 after Ctrl-C / SIGTERM)."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError

    # torchrun would give every worker 1 thread; split this machine's cores instead (--threads
    # still decides per process)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = torchrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "edgeseg",
                                "train", *train_argv])
    # the agent logs every worker failure and signal with a traceback or a warning; the workers
    # already said why in one line (each of its loggers has its own level, hence the loop)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        return _exit_code(e.failures)
    except SignalException:
        return 130
    except RendezvousError as e:
        raise DistributedError(f"torchrun could not start its {nproc} local processes ({e}); "
                               "check that localhost networking works and retry") from None
    return 0


def _exit_code(failures: dict[int, Any]) -> int:
    """The job's exit code: rank 0's error code, else another rank's, else 128 + the signal that
    killed a rank (torchrun reports a signal as a negative exit code)."""
    codes = [failures[r].exitcode for r in sorted(failures)]
    positive = [c for c in codes if c > 0]
    return positive[0] if positive else 128 - codes[0]
