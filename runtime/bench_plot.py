"""Latency vs mIoU chart of a bench run (matplotlib, Agg: no display needed).

One point per measured model x input size x backend (the backend names the precision), at the
smallest batch measured (batch 1 by default). Without ``--data``
there is no mIoU: the chart then shows latency per backend as bars, so the PNG always exists
when anything was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeseg.io import atomic_path


def points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, input, backend): the smallest measured batch."""
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        if r.get("status") != "ok" or not r.get("latency_ms"):
            continue
        key = (r["architecture"] + " " + Path(r["model"]).parent.name, r["input"], r["backend"])
        if key not in best or r["batch"] < best[key]["batch"]:
            best[key] = r
    return list(best.values())


def plot_latency_miou(rows: list[dict[str, Any]], out: Path) -> Path | None:
    """Write the chart to ``out`` (PNG, atomically); None when no row was measured."""
    pts = points(rows)
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    with_miou = [p for p in pts if p.get("miou") is not None]
    if with_miou:
        markers = {"torch": "o", "onnxruntime": "s", "tensorrt": "^"}
        for p in with_miou:
            ax.scatter(p["latency_ms"]["p50"], 100 * p["miou"], s=45, marker=markers.get(p["runtime"], "D"),
                       label=f"{p['architecture']} {p['backend']} {p['input']}")
        ys = [100 * p["miou"] for p in with_miou]
        if max(ys) - min(ys) < 2.0:  # do not blow tiny differences up to the full height
            mid = (max(ys) + min(ys)) / 2
            ax.set_ylim(mid - 1.5, mid + 1.5)
        ax.legend(fontsize=7, loc="best")
        ax.set_ylabel("mIoU (%)")
        ax.set_xlabel("latency p50 per call, smallest batch (ms)")
        ax.set_title("edgeseg bench: latency vs mIoU")
    else:
        labels = [f"{p['architecture']}\n{p['backend']} {p['input']}" for p in pts]
        ax.barh(labels, [p["latency_ms"]["p50"] for p in pts])
        ax.set_xlabel("latency p50 (ms)")
        ax.set_title("edgeseg bench: latency (no --data, so no mIoU)")
        ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
