"""``sparsegan report``: run folders -> report.md and report.html (figures embedded as base64 PNG).

Reads only run folders (config.json, metrics.jsonl, summary.json, samples/, eval/). Whatever is
missing (no metric, no FLOPs, no balance records) is said in the report instead of being guessed.
Every metric value is shown with its protocol (sample counts, reference, generator) and the steps
of the weights it measured; one table per protocol; stale values (the run trained on after they
were measured) are listed, never tabulated.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from sparsegan.errors import UserError
from sparsegan.experiments import plots
from sparsegan.experiments.results import (
    RunResult,
    choose_metric,
    higher_is_better,
    labels_of,
    load_runs,
    metric_of,
    varying_keys,
)
from sparsegan.experiments.table import WALL_TIME_NOTE, Table, details_table, group, has_d, metric_table
from sparsegan.files import atomic_write_bytes
from sparsegan.protocols import split_label
from sparsegan.run_folder import CONFIG, METRICS, SUMMARY

FIGURES = "figures"


@dataclass
class Block:
    kind: str  # h2 | p | table | figure
    text: str = ""
    table: Table | None = None
    path: Path | None = None


def _figure(blocks: list[Block], title: str, make, *args) -> None:
    try:
        path = make(*args)
    except plots.Uninformative:
        return
    except plots.NotApplicable as e:
        blocks += [Block("h3", title), Block("p", f"Not shown: {e}.")]
        return
    blocks += [Block("h3", title), Block("figure", title, path=path)]


def build_blocks(runs: list[RunResult], root: Path, out: Path, metric: str | None) -> list[Block]:
    cells = group(runs)
    figs = out / FIGURES
    methods = sorted({r.method for r in runs})
    b = [Block("h1", f"sparsegan report: {root.name or root}")]
    status = {}
    for r in runs:
        status[r.status] = status.get(r.status, 0) + 1
    b.append(Block("p", f"{len(runs)} run folders under `{root}` in {len(cells)} cells; methods: {', '.join(methods)}; "
                        f"status: {', '.join(f'{n} {s}' for s, n in sorted(status.items()))}."))
    axes = varying_keys(runs)
    if axes:
        b.append(Block("p", "Besides method, s_G, s_D and seed the runs differ in: " + ", ".join(axes)
                            + " (shown in the row labels)."))
    labels = labels_of(runs, metric) if metric else []
    have_metric = any(r.metric(lab) is not None for r in runs for lab in labels)
    if metric is None:
        b.append(Block("p", "**No metric found in these runs** (no eval/*.json, no kind=eval records): run "
                            "`sparsegan eval RUN_DIR --metrics ...` on them. Tables of densities and ITOP "
                            "rates and the figures that apply follow."))
    elif not labels:
        b.append(Block("p", f"**Metric {metric!r} is missing in every run**: run `sparsegan eval RUN_DIR --metrics "
                            f"{metric_of(metric)}`. Tables of densities and ITOP rates and the figures that apply "
                            "follow."))
    for label in labels:
        _metric_section(b, runs, cells, label, len(labels) > 1)
    b.append(Block("h2", "Runs: steps, densities, ITOP rate and cost (means over seeds)"))
    b.append(Block("table", table=details_table(cells)))
    b.append(Block("p", WALL_TIME_NOTE))
    if not any(r.flops is not None for r in runs):
        b.append(Block("p", f"Training FLOPs: no run has {SUMMARY} 'flops'; nothing was estimated."))
    b.append(Block("h2", "Figures"))
    if have_metric:
        label = next(lab for lab in labels if any(r.metric(lab) is not None for r in runs))
        fig_runs, step, others = _at_one_step(runs, label)
        fig_cells = group(fig_runs)
        at = f"{label}, weights after {step} steps"
        if others:
            b.append(Block("p", f"The figures show {label} of the runs measured after {step} steps; {others} run(s) "
                                "measured at another step are in the table only."))
        per_d = ", per s_D" if has_d(fig_cells) else ""
        _figure(b, f"{at}: vs generator sparsity{per_d} (paper Fig. 4)", plots.metric_vs_sparsity, fig_cells,
                label, figs / "metric_vs_sparsity.png")
        _figure(b, f"{at}: over s_G x s_D (paper Fig. 3)", plots.heatmap, fig_cells, label, figs / "heatmap.png")
        _figure(b, f"{at}: vs training FLOPs", plots.metric_vs_flops, fig_cells, label, figs / "metric_vs_flops.png")
        _figure(b, f"{label} during training (kind=eval records of this protocol)", plots.metric_over_training,
                cells, label, figs / "metric_over_training.png")
    else:
        b.append(Block("p", "Not shown without a current metric value: metric vs s_G (Fig. 4), the s_G x s_D "
                            "heat-map (Fig. 3), metric vs training FLOPs."))
    _figure(b, "ITOP exploration rate over training (G solid, explored D dashed)", plots.itop_over_training, cells,
            figs / "itop_rate.png")
    _figure(b, "Balance ratio over training", plots.balance_over_training, cells, figs / "balance_ratio.png")
    _figure(b, "Losses over training", plots.losses_over_training, cells, figs / "losses.png")
    _figure(b, "Samples (last grid of each cell's first seed)", plots.sample_grids, cells, figs / "samples.png")
    return b


def _metric_section(b: list[Block], runs: list[RunResult], cells, label: str, several: bool) -> None:
    """Table 1 for one protocol, what it measured, and which runs it leaves out (missing or stale)."""
    name, protocol = split_label(label)
    direction = "higher" if higher_is_better(name) else "lower"
    b.append(Block("h2", f"Table 1: {label} ({direction} is better)"))
    current = [r for r in runs if r.metric(label) is not None]
    text = (f"Protocol `{label}`: {protocol.describe()}. Mean ± sample standard deviation over seeds; n = seeds "
            "with a current value; steps = generator steps of the weights measured (runs measured at different "
            "steps are in separate rows). Best mean per column in bold. Dense runs ignore the sparsity flags and "
            "sit in the s_G = 0 % column.")
    if several:
        text += f" {name} was measured under more than one protocol in these runs: each has its own table."
    b.append(Block("p", text))
    if current:
        b.append(Block("table", table=metric_table(cells, label)))
    stale = [(r, r.measurements[label]) for r in runs if label in r.measurements and r.metric(label) is None]
    if stale:
        cmd = " ".join(["sparsegan eval RUN", "--metrics", metric_of(label), *protocol.eval_args()])
        b.append(Block("p", f"**Stale, not shown** ({len(stale)} run(s): the run moved on since {label} was "
                            "measured): " + "; ".join(f"{r.name}: {m.stale}" for r, m in stale)
                            + f". Measure again with `{cmd}`."))
    missing = [r.name for r in runs if label not in r.measurements]
    if missing and current:
        b.append(Block("p", f"{len(missing)} run(s) lack {label} and are not counted: " + ", ".join(missing) + "."))


def _at_one_step(runs: list[RunResult], label: str) -> tuple[list[RunResult], int | None, int]:
    """The runs with a current value of ``label`` at the step most of them were measured at."""
    by_step: dict[int | None, list[RunResult]] = {}
    for r in runs:
        m = r.current(label)
        if m is not None:
            by_step.setdefault(m.step, []).append(r)
    step = max(by_step, key=lambda s: (len(by_step[s]), s or 0))
    return by_step[step], step, sum(len(v) for k, v in by_step.items() if k != step)


def render_markdown(blocks: list[Block], out: Path) -> str:
    lines = []
    for bl in blocks:
        if bl.kind == "h1":
            lines.append(f"# {bl.text}")
        elif bl.kind == "h2":
            lines.append(f"## {bl.text}")
        elif bl.kind == "h3":
            lines.append(f"### {bl.text}")
        elif bl.kind == "p":
            lines.append(bl.text)
        elif bl.kind == "table":
            lines.append(bl.table.markdown())
        elif bl.kind == "figure":
            lines.append(f"![{bl.text}]({bl.path.relative_to(out).as_posix()})")
        lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then the two markdown marks the report uses: **bold** and `code`."""
    parts = html.escape(text).split("**")
    text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(blocks: list[Block]) -> str:
    body = []
    for bl in blocks:
        if bl.kind in ("h1", "h2", "h3"):
            body.append(f"<{bl.kind}>{html.escape(bl.text)}</{bl.kind}>")
        elif bl.kind == "p":
            body.append(f"<p>{_inline(bl.text)}</p>")
        elif bl.kind == "table":
            body.append(bl.table.html())
        elif bl.kind == "figure":
            data = base64.b64encode(bl.path.read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(bl.text)}" src="data:image/png;base64,{data}"></figure>')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
             "td,th{border:1px solid #bbb;padding:0.25em 0.6em;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    title = html.escape(blocks[0].text if blocks else "sparsegan report")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>{style}</style>"
            f"</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(runs_dir: str | Path, out: str | Path, metric: str | None = None) -> Path:
    """Write OUT/report.md, OUT/report.html and OUT/figures/*.png; returns report.md's path."""
    root, out = Path(runs_dir), Path(out)
    if not root.is_dir():
        raise UserError(f"runs folder {root} not found")
    runs = load_runs(root)
    if not runs:
        raise UserError(f"no run folders ({CONFIG} + {METRICS} or {SUMMARY}) under {root}")
    plots.pyplot()  # fail early, in one line, when matplotlib is missing
    metric = choose_metric(runs, metric)
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    for old in (out / FIGURES).glob("*.png"):  # no stale figure from an earlier report survives
        old.unlink()
    blocks = build_blocks(runs, root, out, metric)
    atomic_write_bytes(out / "report.md", render_markdown(blocks, out).encode())
    atomic_write_bytes(out / "report.html", render_html(blocks).encode())
    return out / "report.md"
