"""Data-parallel training on PyTorch's own engine: torchrun + ``torch.distributed``.

One process per GPU (NCCL) or per CPU worker (gloo). torchrun (or any launcher that sets the
``env://`` variables RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
starts the processes; :func:`from_env` reads where this one stands. Without those variables the
run is a single process and every helper here is a no-op, so ``edgeseg train`` behaves exactly as
before.

The helpers keep the ranks in lock step: each step all-reduces one small tensor carrying the
loss, a non-finite flag and a stop flag (Ctrl-C / SIGTERM seen by any rank), so every rank stops
at the same step; a peer that dies makes the next collective fail, which becomes
:class:`PeerLost` instead of a hang or a half-saved state.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from edgeseg.errors import ConfigError, EdgesegError

if TYPE_CHECKING:
    import torch

    from edgeseg.train.config import TrainConfig


T = TypeVar("T")


class DistributedError(EdgesegError):
    """The process group cannot be formed (rendezvous unreachable, bad launcher variables)."""


class PeerLost(EdgesegError):
    """Another process of the job stopped; this one stops too without writing anything."""


class RankError(EdgesegError):
    """An error only this (non-zero) rank saw; printed with its rank, unlike errors all ranks share."""


class JobStopped(EdgesegError):
    """Raised on the ranks other than 0 when another rank failed a phase; rank 0 says why."""


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the job: ``rank`` of ``world`` processes, ``local_rank`` of
    ``local_world`` on this node (the GPU index it uses)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the only process that prints and writes files."""
        return self.rank == 0


def launched() -> bool:
    """True when a launcher (torchrun or another ``env://`` launcher) started this process."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def from_env() -> Dist:
    """The :class:`Dist` described by the launcher's variables (a single process without them)."""
    if not launched():
        return Dist()
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    values: dict[str, int] = {}
    for name in names:
        raw = os.environ.get(name, "0" if name == "LOCAL_RANK" else "")
        if name == "LOCAL_WORLD_SIZE" and not raw:
            raw = os.environ["WORLD_SIZE"]  # env:// launchers other than torchrun may omit it
        try:
            values[name] = int(raw)
        except ValueError:
            raise DistributedError(f"environment variable {name}={raw!r} is not an integer; start the "
                                   "job with torchrun (torchrun --nproc-per-node N -m edgeseg train ...)"
                                   ) from None
    d = Dist(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"])
    if not (0 <= d.rank < d.world and 0 <= d.local_rank < d.local_world <= d.world):
        raise DistributedError(f"launcher variables RANK={d.rank} WORLD_SIZE={d.world} LOCAL_RANK="
                               f"{d.local_rank} LOCAL_WORLD_SIZE={d.local_world} are inconsistent; "
                               "start the job with torchrun")
    return d


def check_world(cfg: TrainConfig, d: Dist) -> None:
    """Refuse a job the run cannot be split over (same verdict on every rank, before any I/O).

    ``cfg.batch`` is the global batch: each rank takes ``batch / world`` images of every step,
    so it must be a multiple of the world size; with CUDA every process needs its own GPU.
    """
    import torch

    if not d.enabled:
        return
    if d.world > cfg.batch:
        raise ConfigError(f"--batch {cfg.batch} is the global batch and cannot be split over {d.world} "
                          f"processes; use --batch {d.world} or more (a multiple of {d.world}), "
                          "or start fewer processes")
    if cfg.batch % d.world:
        lower, upper = cfg.batch // d.world * d.world, -(-cfg.batch // d.world) * d.world
        raise ConfigError(f"--batch {cfg.batch} (the global batch) does not split evenly over {d.world} "
                          f"processes; use --batch {lower} or --batch {upper}")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cfg.device == "cuda" and gpus == 0:
        raise ConfigError("--device cuda but no CUDA GPU is visible to torch; use --device cpu or auto")
    if cfg.device == "cuda" and gpus < d.local_world:
        raise ConfigError(f"--device cuda with {d.local_world} processes on this node but {gpus} CUDA "
                          f"GPU(s) visible; start one process per GPU (torchrun --nproc-per-node {gpus}, or "
                          f"edgeseg train --nproc {gpus}) "
                          "or use --device cpu")
    if cfg.device == "auto" and 0 < gpus < d.local_world:
        raise ConfigError(f"{d.local_world} processes on this node but {gpus} CUDA GPU(s); start one "
                          f"process per GPU (torchrun --nproc-per-node {gpus}, or edgeseg train --nproc "
                          f"{gpus}) or pass --device cpu")


def init(d: Dist, device: torch.device, timeout_s: float) -> None:
    """Join the process group: NCCL on CUDA, gloo on the CPU (no-op for a single process)."""
    import torch
    import torch.distributed as tdist

    if not d.enabled:
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        tdist.init_process_group(backend, timeout=timedelta(seconds=timeout_s),
                                 device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError, tdist.DistError) as e:
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise DistributedError(
            f"rank {d.rank} of {d.world} could not join the process group at {where} ({backend}) "
            f"within {timeout_s:g} s: {first.strip()[:200]}; check that every node reaches that "
            "address and port (torchrun --rdzv-endpoint HOST:PORT, firewall) and that all "
            f"{d.world} processes were started") from None


def shutdown() -> None:
    """Leave the process group if one was joined."""
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        with contextlib.suppress(RuntimeError, tdist.DistError):  # a dead peer: nothing to tidy
            tdist.destroy_process_group()


def agreed(d: Dist, phase: Callable[[], T]) -> T:
    """Run ``phase`` on every rank, then agree: if it raised an EdgesegError on any rank, every
    rank raises, rank 0 with the message (its own, else the lowest failing rank's, prefixed with
    that rank), the others :class:`JobStopped` (which the CLI does not print).

    Collective (one small all-gather); ``phase`` itself must not call collectives, so a rank
    that fails early cannot leave the others waiting in a different one.
    """
    import torch.distributed as tdist

    error: EdgesegError | None = None
    result: T | None = None
    try:
        result = phase()
    except EdgesegError as e:
        error = e
    if not d.enabled:
        if error is not None:
            raise error
        return result  # type: ignore[return-value]
    # plain strings between this job's own processes (all_gather_object pickles them)
    said: list[Any] = [None] * d.world
    tdist.all_gather_object(said, None if error is None else [str(error), error.exit_code])
    failed = [(rank, item) for rank, item in enumerate(said) if item is not None]
    if not failed:
        return result  # type: ignore[return-value]
    if not d.main:
        raise JobStopped(f"rank 0 reports the error of rank {failed[0][0]}")
    if error is not None:
        raise error
    rank, (text, code) = failed[0]
    stopped = RankError(f"rank {rank}: {text}")
    stopped.exit_code = code
    raise stopped


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s global generator (rank 0 keeps ``seed``: one process is unchanged)."""
    return seed if rank == 0 else (seed * 1_000_003 + 7_919 * rank) % (2**63 - 1)


def _collective_failed(e: BaseException) -> bool:
    import torch.distributed as tdist

    return isinstance(e, tdist.DistError) or (isinstance(e, RuntimeError) and any(
        word in str(e) for word in ("Connection closed", "Connection reset", "gloo", "NCCL", "Broken pipe",
                                    "Socket", "peer", "Timed out", "timed out")))


def peer_lost(d: Dist, e: BaseException, where: str) -> PeerLost | None:
    """The :class:`PeerLost` error for a failed collective ``e`` (None: ``e`` is something else)."""
    if not d.enabled or not _collective_failed(e):
        return None
    return PeerLost(f"another process of the {d.world}-process job stopped ({where}); every process "
                    "stopped without saving; continue from the last saved state with --resume and "
                    f"the same {d.world} processes")


def step_flags(d: Dist, device: torch.device, loss: float, stop: bool) -> tuple[float, bool, bool]:
    """All ranks agree on one step: (mean loss over ranks, any loss non-finite, any stop asked).

    One all-reduce of three float64 numbers; a single process just returns its own values.
    """
    import torch
    import torch.distributed as tdist

    bad = not math.isfinite(loss)
    if not d.enabled:
        return loss, bad, stop
    t = torch.tensor([0.0 if bad else loss, float(bad), float(stop)], dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    total, n_bad, n_stop = t.tolist()
    return (math.nan if n_bad else total / d.world), n_bad > 0, n_stop > 0


def all_sum(d: Dist, t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over ranks (in place; ``t`` itself for a single process)."""
    import torch.distributed as tdist

    if d.enabled:
        tdist.all_reduce(t)
    return t


def gather_rng(d: Dist, device: torch.device) -> dict[str, torch.Tensor]:
    """Every rank's generator states as safetensors entries ``rng.rank{r}.torch`` / ``.cuda``.

    Collective: all ranks call it at the same step, before rank 0 writes anything, so a dead
    peer fails here and no partial state is saved.
    """
    import torch
    import torch.distributed as tdist

    mine = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(device)
    out: dict[str, torch.Tensor] = {}
    for name, state in mine.items():
        local = state.to(device)
        parts = [torch.empty_like(local) for _ in range(d.world)]
        tdist.all_gather(parts, local)
        out.update({f"rng.rank{r}.{name}": p.cpu() for r, p in enumerate(parts)})
    return out


def set_rank_rng(tensors: dict[str, torch.Tensor], d: Dist, device: torch.device) -> None:
    """Restore this rank's generators from :func:`gather_rng`'s entries."""
    import torch

    torch.set_rng_state(tensors[f"rng.rank{d.rank}.torch"])
    key = f"rng.rank{d.rank}.cuda"
    if device.type == "cuda" and key in tensors:
        torch.cuda.set_rng_state(tensors[key], device)
