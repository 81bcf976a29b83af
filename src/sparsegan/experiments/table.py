"""Table-1-style aggregation: one cell per (method, s_D, s_G), statistics over seeds.

The paper's Table 1 has the methods and s_D as rows and s_G as columns; a cell here holds the
metric's mean ± sample standard deviation (ddof 1) over the seeds that have a current value of one
protocol (a label such as ``fid_domain@1000``), and the number of those seeds. A table shows one
protocol only; a row also names the steps of the weights measured, and runs measured at other
steps get rows of their own. Dense runs ignore the sparsity flags and sit in the s_G = 0 column.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from dataclasses import dataclass, field

from sparsegan.experiments.results import RunResult, higher_is_better, label, varying_keys

CellKey = tuple[str, float, float]  # (row label, s_D, s_G)


@dataclass
class Stat:
    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return sum(self.values) / self.n if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof 1); None below two values."""
        if self.n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (self.n - 1))


@dataclass
class Cell:
    key: CellKey
    runs: list[RunResult] = field(default_factory=list)

    def stat(self, fn) -> Stat:
        return Stat([v for v in (fn(r) for r in self.runs) if v is not None])

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for r in self.runs:
            out[r.status] += 1
        return dict(out)


def group(runs: list[RunResult]) -> dict[CellKey, Cell]:
    axes = varying_keys(runs)
    cells: dict[CellKey, Cell] = {}
    for r in runs:
        key = (label(r, axes), r.sparsity("D"), r.sparsity("G"))
        cells.setdefault(key, Cell(key)).runs.append(r)
    return dict(sorted(cells.items(), key=lambda kv: (kv[0][0] != "dense", kv[0][0], kv[0][1], -kv[0][2])))


def has_d(cells: dict[CellKey, Cell]) -> bool:
    """Whether any run's model has a D (a diffusion model's config.json lists G alone): without one, the
    tables leave out D's columns rather than show a sparsity of a net that is not there."""
    return any("D" in r.config.get("nets", ("G", "D")) for cell in cells.values() for r in cell.runs)


def _without(table: Table, names: set[str]) -> Table:
    keep = [j for j, h in enumerate(table.header) if h not in names]
    moved = {j: k for k, j in enumerate(keep)}
    return Table([table.header[j] for j in keep], [[row[j] for j in keep] for row in table.rows],
                 {(i, moved[j]) for i, j in table.bold if j in moved})


def pct(s: float) -> str:
    return f"{100 * s:g} %"


def decimals(values, significant: int = 3, most: int = 6) -> int:
    """Decimals that show the smallest non-zero |value| to ``significant`` digits: one count for a
    whole column, so its entries line up (12.0, 112.4, 9.9 rather than 12, 112, 9.87)."""
    small = min((abs(v) for v in values if v), default=None)
    if small is None:
        return 0
    return max(0, min(most, significant - 1 - math.floor(math.log10(small))))


def si(x: float) -> str:
    """A large count in one notation down a column: 3 significant digits and an SI prefix
    (6.80 T, 680 G, 20.0)."""
    x = float(f"{x:.3g}")  # round first, so that 999.6e9 reads 1.00 T, not 1.00e+03 G
    prefix, scale = next(((p, v) for p, v in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))
                          if abs(x) >= v), ("", 1.0))
    return f"{f'{x / scale:#.3g}'.rstrip('.')} {prefix}".rstrip()


def fmt(stat: Stat, places: int) -> str:
    """mean ± std (n=...) with ``places`` decimals for both (the column's count, from :func:`decimals`)."""
    if stat.mean is None:
        return "–"
    text = f"{stat.mean:.{places}f}"
    if stat.std is not None:
        text += f" ± {stat.std:.{places}f}"
    return text + f" (n={stat.n})"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) of best entries

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        for i, row in enumerate(self.rows):
            cells = [f"**{c}**" if (i, j) in self.bold else c for j, c in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = []
        for i, row in enumerate(self.rows):
            tds = "".join(
                f"<td><b>{html.escape(c)}</b></td>" if (i, j) in self.bold else f"<td>{html.escape(c)}</td>"
                for j, c in enumerate(row)
            )
            body.append(f"<tr>{tds}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def metric_table(cells: dict[CellKey, Cell], label: str) -> Table:
    """Rows: (method, s_D, steps); columns: s_G, descending; best mean per column in bold.

    Only current values of ``label`` (one protocol) enter; a row per step measured, so values of
    weights trained for different numbers of steps never share a cell."""
    sgs = sorted({k[2] for k in cells}, reverse=True)
    values: dict[tuple[str, float, int | None, float], list[float]] = defaultdict(list)
    for (lab, sd, sg), cell in cells.items():
        for r in cell.runs:
            m = r.current(label)
            if m is not None:
                values[(lab, sd, m.step, sg)].append(m.value)
    row_keys: list[tuple[str, float, int | None]] = []
    for lab, sd, _ in cells:
        steps = sorted({k[2] for k in values if k[:2] == (lab, sd)}, key=lambda s: (s is None, s)) or [None]
        row_keys += [(lab, sd, st) for st in steps if (lab, sd, st) not in row_keys]
    header = ["method", "s_D", "steps"] + [f"s_G = {pct(s)}" for s in sgs]
    # one protocol, one metric: every column shows the same number of decimals
    places = decimals([sum(v) / len(v) for v in values.values()])
    rows, means = [], []
    for lab, sd, st in row_keys:
        row, mrow = [lab, pct(sd), "–" if st is None else str(st)], []
        for sg in sgs:
            st_ = Stat(values.get((lab, sd, st, sg), []))
            row.append("" if (lab, sd, sg) not in cells else fmt(st_, places) if st_.n or st is None else "")
            mrow.append(st_.mean)
        rows.append(row)
        means.append(mrow)
    bold = set()
    sign = -1.0 if higher_is_better(label.partition("@")[0]) else 1.0
    for j in range(len(sgs)):
        col = [(sign * m[j], i) for i, m in enumerate(means) if m[j] is not None]
        if len(col) > 1:
            best = min(col)[0]
            bold |= {(i, j + 3) for v, i in col if v == best}
    table = Table(header, rows, bold)
    return table if has_d(cells) else _without(table, {"s_D"})


def _mean_text(st: Stat, places: int) -> str:
    return "–" if st.mean is None else f"{st.mean:.{places}f}"


WALL_TIME_NOTE = ("Wall time (s): seconds of training steps (summed over resumed sessions; sampling, evaluation "
                  "and checkpoints not counted), mean over seeds. It depends on the machine's load and the thread "
                  "count, so it is not a speed comparison unless the runs ran alone on the same machine with the "
                  "same threads; compare costs by the train FLOPs.")


def details_table(cells: dict[CellKey, Cell]) -> Table:
    """What every cell's runs are, whatever metric exists: steps, densities, ITOP, cost, status.

    One format per column: densities and ITOP rates (fractions) to 4 decimals, FLOPs with an SI
    prefix, wall time in seconds to 1 decimal (what it is and is not: :data:`WALL_TIME_NOTE`)."""
    header = ["method", "s_D", "s_G", "seeds", "steps", "status", "density G", "density D", "ITOP G", "ITOP D",
              "train FLOPs", "wall time (s)"]
    rows = []
    for (lab, sd, sg), cell in cells.items():
        dens = lambda net: (lambda r: (r.summary.get("density") or {}).get(net))  # noqa: E731
        itop = lambda net: (lambda r: (r.summary.get("itop_rate") or {}).get(net))  # noqa: E731
        status = ", ".join(f"{n} {s}" for s, n in sorted(cell.statuses().items()))
        steps = ", ".join(str(s) for s in sorted({r.step for r in cell.runs if r.step is not None})) or "–"
        flops = cell.stat(lambda r: r.flops)
        rows.append([lab, pct(sd), pct(sg), str(len(cell.runs)), steps, status,
                     _mean_text(cell.stat(dens("G")), 4), _mean_text(cell.stat(dens("D")), 4),
                     _mean_text(cell.stat(itop("G")), 4), _mean_text(cell.stat(itop("D")), 4),
                     "–" if flops.mean is None else si(flops.mean),
                     _mean_text(cell.stat(lambda r: r.summary.get("wall_time_s")), 1)])
    table = Table(header, rows)
    return table if has_d(cells) else _without(table, {"s_D", "density D", "ITOP D"})
