"""Latency vs mIoU chart of a bench run (matplotlib, Agg: no display needed).

One point per measured model x input size x backend (the backend names the precision), at the
smallest batch measured (batch 1 by default). Without ``--data``
there is no mIoU: the chart then shows latency per backend as bars, so the PNG always exists
when anything was measured.
"""

from __future__ import annotations

from pathlib import Path

from edgeseg.runtime.bench.row import BenchRow

from edgeseg.io import atomic_path


def points(rows: list[BenchRow]) -> list[BenchRow]:
    """One row per (model, input, backend): the smallest measured batch."""
    best: dict[tuple[str, str, str], BenchRow] = {}
    for r in rows:
        if r.status != "ok" or r.p50 is None:
            continue
        key = (r.architecture + " " + Path(r.model).parent.name, r.input, r.backend)
        if key not in best or r.batch < best[key].batch:
            best[key] = r
    return list(best.values())


def _stacked_sizes(pts: list[BenchRow], base: float = 45.0) -> list[float]:
    """Marker area per point: ``base``, grown for each earlier point within 1 % of the latency axis
    span and 0.05 mIoU points of it (what would draw on top of it)."""
    xs = [_p50(p) for p in pts]
    span = (max(xs) - min(xs)) or max(xs) or 1.0
    sizes: list[float] = []
    for i, p in enumerate(pts):
        under = sum(1 for q in pts[:i] if abs(_p50(q) - xs[i]) <= 0.01 * span
                    and abs(100 * ((q.miou or 0.0) - (p.miou or 0.0))) <= 0.05)
        sizes.append(base * (1 + 1.2 * under))
    return sizes


def _p50(r: BenchRow) -> float:
    return r.p50 or 0.0  # points() keeps measured rows only


def plot_latency_miou(rows: list[BenchRow], out: Path) -> Path | None:
    """Write the chart to ``out`` (PNG, atomically); None when no row was measured."""
    pts = points(rows)
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    with_miou = [p for p in pts if p.miou is not None]
    if with_miou:
        markers = {"torch": "o", "onnxruntime": "s", "tensorrt": "^", "openvino": "v"}
        for p, size in zip(with_miou, _stacked_sizes(with_miou), strict=True):
            # hollow, and larger for each point that lands on an earlier one: coinciding rows (FP32
            # and FP16 often share mIoU and nearly share latency) stay visible as nested outlines
            ax.scatter(_p50(p), 100 * (p.miou or 0.0), s=size, marker=markers.get(p.runtime, "D"),
                       facecolors="none", edgecolors=f"C{with_miou.index(p) % 10}", linewidths=1.4,
                       label=f"{p.architecture} {p.backend} {p.input}")
        ys = [100 * (p.miou or 0.0) for p in with_miou]
        if max(ys) - min(ys) < 2.0:  # do not blow tiny differences up to the full height
            mid = (max(ys) + min(ys)) / 2
            ax.set_ylim(mid - 1.5, mid + 1.5)
        ax.legend(fontsize=7, loc="best")
        ax.set_ylabel("mIoU (%)")
        ax.set_xlabel("latency p50 per call, smallest batch (ms)")
        ax.set_title("edgeseg bench: latency vs mIoU")
    else:
        labels = [f"{p.architecture}\n{p.backend} {p.input}" for p in pts]
        ax.barh(labels, [_p50(p) for p in pts])
        ax.set_xlabel("latency p50 (ms)")
        ax.set_title("edgeseg bench: latency (no --data, so no mIoU)")
        ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
