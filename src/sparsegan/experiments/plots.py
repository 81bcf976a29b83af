"""The report's figures, as PNG files. matplotlib is the optional 'report' extra, imported lazily.

Each function returns the written path, or raises :class:`NotApplicable` with the reason, which
the report prints in place of the figure (e.g. "no run has summary.json flops"), or
:class:`Uninformative` where the figure would repeat a table (a one-cell heat-map): the report
then leaves it out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Callable

from sparsegan.errors import UserError
from sparsegan.experiments.results import RunResult
from sparsegan.experiments.table import Cell, CellKey, Stat, has_d, pct
from sparsegan.run_folder import SAMPLES, SUMMARY

# The smallest text in any figure, in points at the saved size (figures are saved at their own
# size, never scaled): legends, point labels and cell values stay readable in the report.
SMALL_FONT = 8


class NotApplicable(Exception):
    """The figure does not apply to these runs; the message says why."""


class Uninformative(NotApplicable):
    """The figure could be drawn but would show nothing the tables do not: the report leaves it out."""


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("sparsegan report needs matplotlib: pip install 'sparsegan[report]'") from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")  # nothing clipped (titles, legends)
    pyplot().close(fig)
    return path


def _metric_stat(cell: Cell, metric: str) -> Stat:
    return cell.stat(lambda r: r.metric(metric))


def _panels(n: int, size: tuple[float, float] = (4.2, 3.4)):
    plt = pyplot()
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def metric_vs_sparsity(cells: dict[CellKey, Cell], metric: str, path: Path) -> Path:
    """The paper's Figure 4: metric vs s_G, one line per method, one panel per s_D; dense as a band."""
    sparse = {k: c for k, c in cells.items() if k[2] > 0 and _metric_stat(c, metric).n}
    if not sparse:
        raise NotApplicable(f"no sparse run has {metric}")
    dense = [_metric_stat(c, metric) for k, c in cells.items() if k[2] == 0 and _metric_stat(c, metric).n]
    sds = sorted({k[1] for k in sparse})
    fig, axes = _panels(len(sds))
    for ax, sd in zip(axes, sds):
        for lab in dict.fromkeys(k[0] for k in sparse if k[1] == sd):
            pts = sorted((k[2], _metric_stat(c, metric)) for k, c in sparse.items() if k[0] == lab and k[1] == sd)
            xs = [100 * s for s, _ in pts]
            ax.errorbar(xs, [st.mean for _, st in pts], yerr=[st.std or 0.0 for _, st in pts],
                        marker="o", capsize=3, label=lab)
        for st in dense:
            ax.axhline(st.mean, color="k", ls="--", lw=1, label="dense")
            if st.std:
                ax.axhspan(st.mean - st.std, st.mean + st.std, color="k", alpha=0.08)
        ax.set_xlabel("generator sparsity s_G (%)")
        ax.set_ylabel(metric)
        if has_d(cells):  # a model without D (diffusion) has one panel and no s_D to name
            ax.set_title(f"s_D = {pct(sd)}")
        ax.legend(fontsize=SMALL_FONT)
    return _save(fig, path)


def heatmap(cells: dict[CellKey, Cell], metric: str, path: Path) -> Path:
    """The paper's Figure 3: the metric over s_G x s_D, one panel per sparse method.

    Only for a grid of two cells or more: one s_G and one s_D make a single coloured square per
    method that says nothing Table 1 does not."""
    sparse = {k: c for k, c in cells.items() if k[2] > 0 and _metric_stat(c, metric).n}
    if not sparse:
        raise NotApplicable(f"no sparse run has {metric}")
    labels = list(dict.fromkeys(k[0] for k in sparse))
    sgs = sorted({k[2] for k in sparse})
    sds = sorted({k[1] for k in sparse})
    if len(sgs) * len(sds) < 2:
        raise Uninformative(f"the runs cover one s_G x s_D cell only (s_G = {pct(sgs[0])}, s_D = {pct(sds[0])}); "
                            "its values are in Table 1")
    values = [_metric_stat(c, metric).mean for c in sparse.values()]
    lo, hi = min(values), max(values)
    fig, axes = _panels(len(labels), (1.2 + 1.1 * len(sgs), 1.0 + 0.9 * len(sds)))
    for ax, lab in zip(axes, labels):
        grid = [[float("nan")] * len(sgs) for _ in sds]
        for (label, sd, sg), c in sparse.items():
            if label == lab:
                grid[sds.index(sd)][sgs.index(sg)] = _metric_stat(c, metric).mean
        im = ax.imshow(grid, cmap="viridis_r", vmin=lo, vmax=hi if hi > lo else lo + 1e-9, origin="lower",
                       aspect="auto")
        for i in range(len(sds)):
            for j in range(len(sgs)):
                if not math.isnan(grid[i][j]):
                    ax.text(j, i, f"{grid[i][j]:.3g}", ha="center", va="center", fontsize=SMALL_FONT, color="w")
        ax.set_xticks(range(len(sgs)), [pct(s) for s in sgs])
        ax.set_yticks(range(len(sds)), [pct(s) for s in sds])
        ax.set_xlabel("s_G")
        ax.set_ylabel("s_D")
        ax.set_title(lab, fontsize=9)
        ax.figure.colorbar(im, ax=ax, label=metric)
    return _save(fig, path)


def metric_vs_flops(cells: dict[CellKey, Cell], metric: str, path: Path) -> Path:
    """Quality vs cost: the metric against the training FLOPs recorded in summary.json."""
    pts = []
    for (lab, sd, sg), c in cells.items():
        m, f = _metric_stat(c, metric), c.stat(lambda r: r.flops)
        if m.n and f.n:
            pts.append((lab, sd, sg, f.mean, m))
    if not pts:
        raise NotApplicable(f"no run has both {metric} and {SUMMARY} 'flops'; nothing was estimated")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for lab in dict.fromkeys(p[0] for p in pts):
        mine = [p for p in pts if p[0] == lab]
        ax.errorbar([p[3] for p in mine], [p[4].mean for p in mine], yerr=[p[4].std or 0.0 for p in mine],
                    marker="o", ls="none", capsize=3, label=lab)
        for p in mine:
            ax.annotate(f"G{100 * p[2]:g}/D{100 * p[1]:g}", (p[3], p[4].mean), fontsize=SMALL_FONT,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xscale("log")
    ax.set_xlabel(f"training FLOPs ({SUMMARY})")
    ax.set_ylabel(metric)
    ax.legend(fontsize=SMALL_FONT)
    return _save(fig, path)


def _mean_series(runs: list[RunResult], series: Callable[[RunResult], list[tuple[int, float]]]):
    by_step: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        for step, v in series(r):
            by_step[step].append(v)
    steps = sorted(by_step)
    return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]


def _topology(net: str) -> Callable[[RunResult], list[tuple[int, float]]]:
    def series(r: RunResult):
        return [(int(x["step"]), float(x["itop_rate"])) for x in r.of_kind("topology")
                if x.get("net") == net and "itop_rate" in x]

    return series


def _series_figure(cells: dict[CellKey, Cell], series_by_net, ylabel: str, path: Path, missing: str) -> Path:
    curves = []
    for (lab, sd, sg), c in cells.items():
        for net, series in series_by_net.items():
            steps, ys = _mean_series(c.runs, series)
            if steps:
                curves.append((f"{lab} G{100 * sg:g}/D{100 * sd:g}" + (f" [{net}]" if net else ""), net, steps, ys))
    if not curves:
        raise NotApplicable(missing)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10 if len(curves) > 8 else 6.5, 4))  # room for a legend beside the axes
    for name, net, steps, ys in curves:
        ax.plot(steps, ys, ls="--" if net == "D" else "-", marker="." if len(steps) < 30 else None, label=name)
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    if len(curves) > 8:  # beside the axes, not over the curves (the saved figure widens to hold it)
        ax.legend(fontsize=SMALL_FONT, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=SMALL_FONT)
    return _save(fig, path)


def itop_over_training(cells: dict[CellKey, Cell], path: Path) -> Path:
    """ITOP exploration rate R (ever-active / prunable) per net over training (mean over seeds).

    D is drawn only where it was explored (its rate moved above its density)."""
    def explored_d(r: RunResult) -> list[tuple[int, float]]:
        recs = [x for x in r.of_kind("topology") if x.get("net") == "D"]
        moved = any(x.get("pruned", 0) for x in recs)
        return _topology("D")(r) if moved else []

    return _series_figure(cells, {"G": _topology("G"), "D": explored_d}, "ITOP rate R", path,
                          "no kind=topology records (dense runs and runs shorter than one update interval have none)")


def balance_over_training(cells: dict[CellKey, Cell], path: Path) -> Path:
    return _series_figure(cells, {"": lambda r: r.balance_series()}, "balance ratio (ADAPT)", path,
                          "no kind=balance records in these runs "
                          "(only methods that measure the balance ratio write them)")


def losses_over_training(cells: dict[CellKey, Cell], path: Path) -> Path:
    def key(k: str):
        return lambda r: [(int(x["step"]), float(x[k])) for x in r.of_kind("train") if k in x]

    curves = {k: [(lab, sd, sg, *_mean_series(c.runs, key(k))) for (lab, sd, sg), c in cells.items()]
              for k in ("loss_d", "loss_g")}
    if not any(c[3] for cs in curves.values() for c in cs):
        raise NotApplicable("no kind=train records")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (k, cs) in zip(axes, curves.items()):
        for lab, sd, sg, steps, ys in cs:
            ax.plot(steps, ys, label=f"{lab} G{100 * sg:g}/D{100 * sd:g}")
        ax.set_xlabel("generator step")
        ax.set_ylabel(k)
    axes[0].legend(fontsize=SMALL_FONT)
    return _save(fig, path)


def metric_over_training(cells: dict[CellKey, Cell], metric: str, path: Path) -> Path:
    def series(r: RunResult):  # only records of this protocol (label)
        return r.series(metric)

    if not any(len({s for s, _ in series(r)}) > 1 for c in cells.values() for r in c.runs):
        raise NotApplicable(f"no run evaluated {metric} at more than one step (evaluation after training only)")
    return _series_figure(cells, {"": series}, metric, path, f"no kind=eval records of {metric}")


def sample_grids(cells: dict[CellKey, Cell], path: Path) -> Path:
    """The last sample grid of each cell's first seed, side by side."""
    from PIL import Image

    shown = []
    for (lab, sd, sg), c in cells.items():
        for r in sorted(c.runs, key=lambda r: r.seed):
            if r.samples:
                shown.append((f"{lab}\nG {pct(sg)} / D {pct(sd)} (seed {r.seed})", r.samples[-1]))
                break
    if not shown:
        raise NotApplicable(f"no run has {SAMPLES}/*.png")
    fig, axes = _panels(len(shown), (3.3, 3.6))
    for ax, (title, png) in zip(axes, shown):
        with Image.open(png) as im:
            ax.imshow(im.convert("RGB"))
        ax.set_title(title, fontsize=SMALL_FONT)
        ax.axis("off")
    return _save(fig, path)
