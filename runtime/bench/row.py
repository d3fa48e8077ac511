"""One bench row as a typed record: what ran (model, backend, input, batch), what happened
(``status``), and what was measured. JSON is written from it with the keys every earlier version
wrote (``edgeseg compare`` reads files of earlier runs through :meth:`BenchRow.from_json`).

``status``:

* ``ok`` — measured;
* ``skipped`` — cannot run here or lacks its file (``reason`` says why and how to fix it);
* ``failed`` — opening or running raised (``reason`` is the error's line);
* ``interrupted`` — Ctrl-C during its timed calls (the calls timed so far are kept);
* ``not run`` — Ctrl-C came before it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, get_args

from edgeseg.runtime.bench.specs import BenchConfig
from edgeseg.runtime.tegrastats import PowerSummary

Status = Literal["ok", "skipped", "failed", "interrupted", "not run"]
STATUSES: tuple[str, ...] = get_args(Status)


@dataclass(frozen=True)
class Latency:
    """Latency of one batch call in ms over the timed calls (None: nothing timed)."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Latency | None:
        return None if not d else cls(d.get("mean"), d.get("p50"), d.get("p90"), d.get("p99"))


@dataclass(frozen=True)
class ModelFacts:
    """Parameters and GFLOPs (one image) of the model at the row's input, and where each came from."""

    params: int | None = None
    params_from: str | None = None
    gflops: float | None = None
    gflops_from: str | None = None


@dataclass(frozen=True)
class RunsOn:
    """What a row ran on: the backend's own ``describe()`` completed by the machine's facts."""

    device: str | None = None
    cpu: str | None = None
    threads: int | None = None
    gpu: str | None = None
    runtime: str | None = None
    version: str | None = None
    providers: list[str] | None = None
    inference_precision: str | None = None
    device_name: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> RunsOn | None:
        return None if not d else cls(**{f.name: d.get(f.name) for f in fields(cls)})


def power_from_json(d: dict[str, Any] | None) -> PowerSummary | None:
    """A row's ``power`` record (tegrastats averages) as written by :meth:`PowerSummary.to_dict`."""
    if not d:
        return None
    values: dict[str, Any] = {f.name: d.get(f.name) for f in fields(PowerSummary)}
    return PowerSummary(**values)


@dataclass(frozen=True)
class BenchRow:
    """One model x input x backend x batch. ``input`` is ``"HxW"``; ``artifact`` the file it ran
    (``artifact_note``: how that file came to be); memory in MB (``host_delta_mb``: peak resident
    memory minus the resident memory before the backend was opened); ``miou`` in [0, 1]."""

    model: str
    architecture: str
    backend: str
    runtime: str
    precision: str
    device: str
    input: str
    batch: int
    status: Status = "not run"
    reason: str = ""
    artifact: str | None = None
    artifact_note: str = ""
    file_mb: float | None = None
    facts: ModelFacts = field(default_factory=ModelFacts)
    latency_ms: Latency | None = None
    throughput_ips: float | None = None
    iters: int = 0
    peak_host_mb: float | None = None
    host_delta_mb: float | None = None
    gpu_mem_mb: float | None = None
    miou: float | None = None
    inference_precision: str | None = None
    power: PowerSummary | None = None
    runs_on: RunsOn | None = None
    speedup_vs_torch: float | None = None
    speedup_vs_fp32: float | None = None

    def with_(self, **changes: Any) -> BenchRow:
        """A copy with ``changes`` (rows are frozen: each step of the run returns a new one)."""
        return replace(self, **changes)

    def measured(self) -> bool:
        return self.status in ("ok", "interrupted")

    @property
    def p50(self) -> float | None:
        """The p50 latency of a measured row (None otherwise)."""
        return self.latency_ms.p50 if self.latency_ms is not None and self.measured() else None

    def to_json(self) -> dict[str, Any]:
        """The row as ``edgeseg bench`` has always written it: flat keys in field order (the facts'
        four keys in its place), nested latency / power / runs_on."""
        d: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "facts":
                d.update(asdict(value))  # params, params_from, gflops, gflops_from: top-level keys
            elif f.name == "runs_on":
                d[f.name] = {} if value is None else asdict(value)
            else:
                d[f.name] = asdict(value) if value is not None and hasattr(value, "__dataclass_fields__") \
                    else value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BenchRow:
        """A row of a bench JSON (any schema-1 file; keys later versions added default to None)."""
        status = d.get("status", "not run")
        return cls(
            model=str(d["model"]), architecture=str(d["architecture"]), backend=str(d["backend"]),
            runtime=str(d.get("runtime", "")), precision=str(d.get("precision", "")),
            device=str(d.get("device", "")), input=str(d["input"]), batch=int(d["batch"]),
            status=status if status in STATUSES else "failed", reason=d.get("reason") or "",
            artifact=d.get("artifact"), artifact_note=d.get("artifact_note") or "", file_mb=d.get("file_mb"),
            facts=ModelFacts(d.get("params"), d.get("params_from"), d.get("gflops"), d.get("gflops_from")),
            latency_ms=Latency.from_json(d.get("latency_ms")), throughput_ips=d.get("throughput_ips"),
            iters=int(d.get("iters") or 0), peak_host_mb=d.get("peak_host_mb"),
            host_delta_mb=d.get("host_delta_mb"), gpu_mem_mb=d.get("gpu_mem_mb"), miou=d.get("miou"),
            inference_precision=d.get("inference_precision"), power=power_from_json(d.get("power")),
            runs_on=RunsOn.from_json(d.get("runs_on")), speedup_vs_torch=d.get("speedup_vs_torch"),
            speedup_vs_fp32=d.get("speedup_vs_fp32"))


@dataclass
class BenchResult:
    """Rows so far, the machine (:func:`edgeseg.runtime.bench.machine.machine_facts`), and whether
    Ctrl-C stopped the run."""

    config: BenchConfig
    machine: dict[str, Any]
    rows: list[BenchRow] = field(default_factory=list)
    interrupted: bool = False
