"""The ``edgeseg compare`` chart (matplotlib, Agg: no display needed).

One point per machine x model x input x backend at the smallest measured batch: x = p50 latency
(log scale: boards and GPUs differ by orders of magnitude), y = mIoU; colour = machine, marker =
backend, so the same file on several boards reads as one horizontal line of colours. Without
any mIoU the chart shows grouped latency bars (one group per model x input x backend, one bar per
machine), so the PNG exists whenever anything was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.io import atomic_path

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measured rows, one per (machine, model, input, backend): the smallest batch."""
    best: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in rows:
        if r["status"] != "ok" or not r["p50_ms"]:
            continue
        key = (r["machine"], r["model"], r["input"], r["backend"])
        if key not in best or r["batch"] < best[key]["batch"]:
            best[key] = r
    return list(best.values())


def plot_compare(rows: list[dict[str, Any]], machines: list[str], out: Path) -> Path | None:
    """Write the chart to ``out`` (PNG, atomically); None when no row was measured."""
    pts = points(rows)
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(machines)}
    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=120)
    if any(p["miou"] is not None for p in pts):
        _scatter(ax, pts, colours)
    else:
        _bars(ax, pts, machines, colours)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")  # keeps the legends outside the axes
    plt.close(fig)
    return out


def _scatter(ax: Any, pts: list[dict[str, Any]], colours: dict[str, Any]) -> None:
    from matplotlib.lines import Line2D

    with_miou = [p for p in pts if p["miou"] is not None]
    backends = sorted({(p["model"], p["input"], p["backend"]) for p in with_miou})
    marker = {b: MARKERS[i % len(MARKERS)] for i, b in enumerate(backends)}
    for p in with_miou:
        # Hollow markers, so a point on top of another (same file, same speed) still shows both.
        ax.scatter(p["p50_ms"], 100 * p["miou"], s=70, marker=marker[(p["model"], p["input"], p["backend"])],
                   facecolors="none", edgecolors=[colours[p["machine"]]], linewidths=1.6)
    ax.set_xscale("log")
    ys = [100 * p["miou"] for p in with_miou]
    if max(ys) - min(ys) < 2.0:  # do not blow tiny differences up to the full height
        mid = (max(ys) + min(ys)) / 2
        ax.set_ylim(mid - 1.5, mid + 1.5)
    else:
        ax.margins(x=0.08, y=0.08)
    # Legends outside the axes, so no point hides behind them.
    first = ax.legend(handles=[Line2D([], [], ls="", marker="o", mfc="none", mec=c, mew=1.6, label=m)
                               for m, c in colours.items()], title="machine", fontsize=7,
                      loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.add_artist(first)
    ax.legend(handles=[Line2D([], [], ls="", marker=mk, mfc="none", mec="black", label=" ".join(b))
                       for b, mk in marker.items()], title="model input backend", fontsize=7,
              loc="lower left", bbox_to_anchor=(1.02, 0.0))
    ax.set_xlabel("latency p50 per call, smallest batch (ms, log scale)")
    ax.set_ylabel("mIoU (%)")
    missing = len(pts) - len(with_miou)
    ax.set_title("edgeseg compare: latency vs mIoU" + (f" ({missing} points without mIoU not shown)"
                                                        if missing else ""))


def _bars(ax: Any, pts: list[dict[str, Any]], machines: list[str], colours: dict[str, Any]) -> None:
    groups = sorted({(p["model"], p["input"], p["backend"]) for p in pts})
    height = 0.8 / len(machines)
    for j, m in enumerate(machines):
        by_group = {(p["model"], p["input"], p["backend"]): p["p50_ms"] for p in pts if p["machine"] == m}
        ys = [i + j * height for i, g in enumerate(groups) if g in by_group]
        ax.barh(ys, [by_group[g] for g in groups if g in by_group], height=height, color=colours[m], label=m)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(groups))], [" ".join(g) for g in groups])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 per call, smallest batch (ms, log scale)")
    ax.set_title("edgeseg compare: latency (no mIoU in the bench files)")
    ax.legend(title="machine", fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
