"""``edgeseg compare``: bench results of several machines in one table and one plot.

Input: the ``STEM.json`` files ``edgeseg bench`` wrote on each machine (a fleet of boards, a
desktop GPU, a CPU host). They must share the bench format, schema and edgeseg version: a row's
meaning can change between versions, so mixing them would compare unlike numbers. Each file is
one *machine*, labelled by its file name (``bench-orin-nano.json`` -> ``orin-nano``) or by
``--labels``.

Output: ``STEM.json`` + ``STEM.md`` (the machines, then one line per model x input x backend x
batch x machine, with ``vs REF`` = the first machine's p50 latency / this machine's, so 2.00x
means twice as fast as the reference) and ``STEM.png`` (p50 latency vs mIoU, colour = machine,
marker = backend; grouped latency bars when no file has mIoU). torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.runtime.bench.report import BENCH_FORMAT, BENCH_SCHEMA
from edgeseg.runtime.bench.row import BenchRow
from edgeseg.runtime.bench.specs import BACKENDS

from edgeseg.errors import ConfigError, DataError
from edgeseg.report import write_report

COMPARE_FORMAT = "edgeseg-compare"
COMPARE_SCHEMA = 1
ROW_KEYS = ("model", "architecture", "backend", "input", "batch", "status", "latency_ms")
HEADER = ("model", "input", "backend", "batch", "machine", "p50 ms", "p99 ms", "img/s", "vs {ref}",
          "mIoU %", "power W", "mJ/frame", "status")


@dataclass(frozen=True)
class Machine:
    """One bench file: its label, path, parsed JSON and its rows (read through BenchRow)."""

    label: str
    path: Path
    data: dict[str, Any]

    @property
    def rows(self) -> list[BenchRow]:
        return [BenchRow.from_json(r) for r in self.data["rows"]]


def read_bench(path: Path) -> dict[str, Any]:
    """Parse one bench JSON; DataError (one line, with the fix) for anything else."""
    redo = "pass the STEM.json that edgeseg bench wrote on that machine"
    if not path.is_file():
        raise DataError(f"bench file {path} does not exist; {redo}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({str(e).splitlines()[0]}); {redo}") from None
    if not isinstance(data, dict) or data.get("format") != BENCH_FORMAT:
        if isinstance(data, dict) and "rows" in data and "machine" in data:
            raise DataError(f"{path} was written by an edgeseg bench without a format/schema record "
                            f"(before schema {BENCH_SCHEMA}); re-run edgeseg bench on that machine")
        raise DataError(f"{path} is not an edgeseg bench result (no \"format\": \"{BENCH_FORMAT}\"); {redo}")
    schema = data.get("schema")
    if not isinstance(schema, int) or schema > BENCH_SCHEMA or schema < 1:
        raise DataError(f"{path} has bench schema {schema!r}; this edgeseg reads schema {BENCH_SCHEMA}: "
                        "compare with the edgeseg version that wrote it, or re-run edgeseg bench")
    _check_rows(path, data)
    return data


def _check_rows(path: Path, data: dict[str, Any]) -> None:
    rows = data.get("rows")
    if not isinstance(rows, list) or not isinstance(data.get("machine"), dict):
        raise DataError(f"{path}: \"rows\" must be a list and \"machine\" an object; the file is "
                        "damaged: re-run edgeseg bench")
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"{path}: row {i} lacks {', '.join(missing)}; the file is damaged: "
                            "re-run edgeseg bench")


def default_label(path: Path) -> str:
    """``bench-orin-nano.json`` -> ``orin-nano``; ``x86.json`` -> ``x86``."""
    stem = path.name.removesuffix(".json")
    for prefix in ("bench-", "bench_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix):]
    return stem


def load_machines(paths: list[Path], labels: list[str] | None = None) -> list[Machine]:
    """Read every file, check they agree on schema and edgeseg version, label them uniquely."""
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two bench JSONs, got {len(paths)}; pass one "
                          "STEM.json per machine")
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(f"--labels has {len(labels)} names for {len(paths)} files; give one per file, "
                          "in the same order")
    datas = [read_bench(p) for p in paths]
    for key, what in (("schema", "bench schemas"), ("edgeseg_version", "edgeseg versions")):
        values = {str(d.get(key)) for d in datas}
        if len(values) > 1:
            listed = ", ".join(f"{p.name}: {d.get(key)}" for p, d in zip(paths, datas, strict=True))
            raise DataError(f"the bench files come from different {what} ({listed}); rows can mean "
                            "different things across them: re-run edgeseg bench on each machine with "
                            "one edgeseg version")
    names = labels if labels is not None else [default_label(p) for p in paths]
    if any(not n for n in names):
        raise ConfigError(f"--labels {','.join(names)!r} has an empty name; give one name per file")
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"two bench files are labelled {dup!r}; name the machines with "
                          f"--labels, e.g. --labels {','.join(f'm{i + 1}' for i in range(len(paths)))}")
    return [Machine(n, p, d) for n, p, d in zip(names, paths, datas, strict=True)]


def model_names(rows: list[BenchRow]) -> dict[str, str]:
    """Model path -> display name: the architecture, plus the run folder when one file holds two
    models of the same architecture."""
    by_arch: dict[str, set[str]] = {}
    for r in rows:
        by_arch.setdefault(r.architecture, set()).add(r.model)
    names = {}
    for arch, models in by_arch.items():
        for m in models:
            folder = Path(m).parent.name if Path(m).suffix else Path(m).name
            names[m] = arch if len(models) == 1 else f"{arch} ({folder})"
    return names


def compare_rows(machines: list[Machine]) -> list[dict[str, Any]]:
    """One flat row per bench row, sorted by model, input, backend, batch, then machine order;
    ``vs_ref`` = the first machine's p50 / this p50 for the same model, input, backend, batch."""
    flat: list[dict[str, Any]] = []
    for order, m in enumerate(machines):
        rows = m.rows
        names = model_names(rows)
        for row in rows:
            lat = row.latency_ms if row.latency_ms is not None and row.status == "ok" else None
            power = row.power
            flat.append({"machine": m.label, "order": order, "model": names[row.model],
                         "input": row.input, "backend": row.backend, "batch": row.batch,
                         "status": row.status, "reason": row.reason,
                         "p50_ms": lat and lat.p50, "p99_ms": lat and lat.p99,
                         "throughput_ips": row.throughput_ips if row.status == "ok" else None,
                         "miou": row.miou, "params": row.facts.params,
                         "avg_power_w": power and power.avg_power_w,
                         "energy_per_frame_mj": power and power.energy_per_frame_mj, "vs_ref": None})
    ref = {_key(r): r["p50_ms"] for r in flat if r["order"] == 0 and r["p50_ms"]}
    for r in flat:
        base = ref.get(_key(r))
        r["vs_ref"] = round(base / r["p50_ms"], 3) if base and r["p50_ms"] else None
    flat.sort(key=lambda r: (r["model"], r["input"], _BACKEND_ORDER.get(r["backend"], 99), r["backend"],
                             r["batch"], r["order"]))
    return flat


_BACKEND_ORDER = {b: i for i, b in enumerate(BACKENDS)}  # the bench's own order of its backends


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return r["model"], r["input"], r["backend"], r["batch"]


def machine_facts(m: Machine) -> dict[str, Any]:
    """What the machine was, from the bench file's own record."""
    mach, versions = m.data["machine"], m.data["machine"].get("versions") or {}
    return {"label": m.label, "file": str(m.path), "cpu": mach.get("cpu"), "cpu_count": mach.get("cpu_count"),
            "threads": mach.get("threads"), "gpu": mach.get("gpu"), "board": mach.get("board"),
            "arch": mach.get("machine"), "loadavg_1m": mach.get("loadavg_1m"),
            "versions": {k: v for k, v in versions.items() if v},
            "timing": (m.data.get("config") or {}).get("timing"), "command": m.data.get("command")}


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def columns(rows: list[dict[str, Any]]) -> list[int]:
    """Indexes into HEADER to show: the power columns only when some row has power."""
    has_power = any(r["avg_power_w"] is not None or r["energy_per_frame_mj"] is not None for r in rows)
    return [i for i, h in enumerate(HEADER) if has_power or h not in ("power W", "mJ/frame")]


def cells(r: dict[str, Any]) -> list[str]:
    """One row's cells, in HEADER order."""
    status = "ok" if r["status"] == "ok" else f"{r['status']}: {r['reason']}".rstrip(": ")
    return [r["model"], r["input"], r["backend"], str(r["batch"]), r["machine"], _f(r["p50_ms"], "{:.2f}"),
            _f(r["p99_ms"], "{:.2f}"), _f(r["throughput_ips"], "{:.1f}"), _f(r["vs_ref"], "{:.2f}x"),
            _f(r["miou"] if r["miou"] is None else 100 * r["miou"], "{:.2f}"),
            _f(r["avg_power_w"], "{:.1f}"), _f(r["energy_per_frame_mj"], "{:.1f}"), status]


def to_markdown(machines: list[Machine], rows: list[dict[str, Any]], command: str) -> str:
    ref = machines[0].label
    lines = ["# edgeseg compare", "", f"`{command}`", "", "| machine | file | CPU (threads) | GPU | board | "
             "runtimes | timing | 1-min load |", "|---|---|---|---|---|---|---|---:|"]
    for m in machines:
        f = machine_facts(m)
        runtimes = ", ".join(f"{k} {v}" for k, v in f["versions"].items()) or "-"
        lines.append(f"| {m.label} | `{m.path.name}` | {f['cpu']} ({f['threads']} of {f['cpu_count']}) | "
                     f"{f['gpu'] or '-'} | {f['board'] or '-'} | {runtimes} | {f['timing'] or '-'} | "
                     f"{_f(f['loadavg_1m'], '{}')} |")
    show = columns(rows)
    header = [HEADER[i].format(ref=ref) for i in show]
    align = ["---:" if 5 <= i < len(HEADER) - 1 else "---" for i in show]
    lines += ["", f"Latency per batch (p50/p99 ms); vs {ref}: {ref}'s p50 / this machine's p50 for the same "
              "model, input, backend and batch (2.00x = twice as fast). Each machine's rows come from its "
              "own bench run; compare absolute numbers knowing each file's load and timing.", "",
              "| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        c = cells(r)
        lines.append("| " + " | ".join(c[i].replace("|", "\\|") for i in show) + " |")
    return "\n".join(lines) + "\n"


def rich_table(machines: list[Machine], rows: list[dict[str, Any]]) -> Any:
    """Terminal view: one narrow table per model and input; reasons of non-ok rows below."""
    from rich import box
    from rich.console import Group
    from rich.table import Table

    ref = machines[0].label
    short = {"batch": "b", "vs {ref}": "×ref", "p50 ms": "p50 ms", "mJ/frame": "mJ"}
    show = [i for i in columns(rows) if HEADER[i] not in ("model", "input")]
    notes: dict[str, int] = {}
    tables = []
    for key in dict.fromkeys((r["model"], r["input"]) for r in rows):
        table = Table(title=f"{key[0]} {key[1]}", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
        for i in show:
            table.add_column(short.get(HEADER[i], HEADER[i]), justify="left" if i < 5 else "right",
                             no_wrap=True)
        for r in (r for r in rows if (r["model"], r["input"]) == key):
            c = cells(r)
            if r["status"] != "ok":
                c[-1] = f"{r['status']} [{notes.setdefault(r['reason'], len(notes) + 1)}]"
            table.add_row(*[c[i] for i in show], style=None if r["status"] == "ok" else "dim")
        tables.append(table)
    lines = [f"×ref: {ref}'s p50 / this p50 (same model, input, backend, batch)"]
    return Group(*tables, *lines, *[f"[{n}] {reason}" for reason, n in notes.items()])


def write_compare(machines: list[Machine], stem: Path,
                  command: str) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write STEM.json, STEM.md and STEM.png; refuse a stem whose outputs would overwrite an input."""
    from edgeseg.runtime.compare_plot import plot_compare

    from edgeseg.version import __version__

    outs = [stem.with_name(stem.name + s) for s in (".json", ".md", ".png")]
    inputs = {m.path.resolve() for m in machines}
    clash = next((o for o in outs if o.resolve() in inputs), None)
    if clash is not None:
        raise ConfigError(f"output {clash} is one of the bench files being compared; choose another "
                          "--out stem, e.g. --out compare")
    rows = compare_rows(machines)
    data = {"format": COMPARE_FORMAT, "schema": COMPARE_SCHEMA, "edgeseg_version": __version__,
            "bench_schema": machines[0].data["schema"], "command": command, "reference": machines[0].label,
            "machines": [machine_facts(m) for m in machines],
            "rows": [{k: v for k, v in r.items() if k != "order"} for r in rows]}
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = list(write_report(stem, data, to_markdown(machines, rows, command)))
    png = plot_compare(rows, [m.label for m in machines], outs[2])
    return paths + ([png] if png is not None else []), rows
