"""The Fashion-MNIST study's tables and verdicts, generated from its committed run folders.

    python benchmarks/study_fmnist.py benchmarks/study-fmnist                 # runs/ -> results.md, curves.png
    python benchmarks/study_fmnist.py benchmarks/study-fmnist --runs runs-mlp  # -> results-mlp.md, curves-mlp.png
    python benchmarks/study_fmnist.py benchmarks/study-fmnist --check          # fails if results.md differs

Reads only ``STUDY/RUNS/*/`` (config.json, metrics.jsonl, summary.json: the light files
``benchmarks/study_collect.py`` copies out of a sweep) and ``STUDY/RUNS/COMMIT`` (the commit the
runs were trained at). Every number in the results file comes from those files;
tests/test_study_fmnist.py regenerates it, so a hand-edited number fails CI.

Protocol: fid_domain at 5,000 generated vs 5,000 real training images (label ``fid_domain@5000``),
evaluated during training every 1,000 steps. A verdict uses the **last three evaluations**: a
comparison counts only if it holds at each of them (a stable ranking, not a snapshot).
Comparisons are paired by seed (same initial weights, masks and data order), with 95 % t-intervals
and Holm's correction across the comparisons of a claim at each evaluation step
(:mod:`sparsegan.experiments.stats`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from sparsegan.experiments.results import load_runs
from sparsegan.experiments.stats import direction, holm, paired

LABEL = "fid_domain@5000"
DENSE_GATE = 5.0  # dense must reach this at each of the last three evaluations (issue's regime)
MATCH_MARGIN = 0.10  # "matches dense": STU-GAN at most 10 % of the dense mean worse (upper CI bound)


def _arm(run) -> str:
    if run.method == "dense":
        return "dense"
    return f"{run.method} sG{run.sparsity('G'):.2f} sD{run.sparsity('D'):.2f}"


def outputs(runs: str) -> tuple[str, str]:
    """The results and figure file names of a runs folder: runs -> results.md, runs-mlp -> results-mlp.md."""
    tag = "" if runs == "runs" else "-" + runs.removeprefix("runs-")
    return f"results{tag}.md", f"curves{tag}.png"


def load(runs_dir: Path):
    """arm -> seed -> {step: value} for completed runs, and arm -> seed -> ITOP rate of G."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(dict)
    itop: dict[str, dict[int, float]] = defaultdict(dict)
    for run in load_runs(runs_dir):
        if run.status != "completed":
            continue
        series = dict(run.series(LABEL))
        if series:
            curves[_arm(run)][run.seed] = series
            itop[_arm(run)][run.seed] = float(run.summary.get("itop_rate", {}).get("G", math.nan))
    return curves, itop


def _fmt(v: float, digits: int = 2) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def _fmt_p(p: float) -> str:
    return "-" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def _arm_order(arms) -> list[str]:
    def key(a: str):
        if a == "dense":
            return (0, 0.0, 0.0, "")
        method, sg, sd = a.split()
        return (1, -float(sg[2:]), float(sd[2:]), method)
    return sorted(arms, key=key)


def _at(curves, arm: str, step: int) -> dict[int, float]:
    return {seed: c[step] for seed, c in curves.get(arm, {}).items() if step in c}


def _verdict(directions: list[int], claimed: int, ns: list[int]) -> str:
    if not directions or min(ns) < 2:
        return f"inconclusive (n = {min(ns) if ns else 0} seed pairs)"
    if all(d == claimed for d in directions):
        return "reproduced"
    if all(d == -claimed for d in directions):
        return "not reproduced (the opposite holds)"
    return "inconclusive"


def _family(rows, steps, claimed: int):
    """rows: [(name, {step: Paired})]; Holm across the rows at each step; markdown lines + verdicts."""
    adjusted = {s: holm([cmp[s].p for _, cmp in rows]) for s in steps}
    lines, verdicts = [], []
    for i, (name, cmp) in enumerate(rows):
        cells, dirs, ns = [], [], []
        for s in steps:
            c = cmp[s]
            lo, hi = c.ci
            cells.append(f"{_fmt(c.mean)} [{_fmt(lo)}, {_fmt(hi)}] p={_fmt_p(adjusted[s][i])} n={c.n}")
            dirs.append(direction(adjusted[s][i], c.ci))
            ns.append(c.n)
        v = _verdict(dirs, claimed, ns)
        verdicts.append(v)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {v} |")
    return lines, verdicts


def _section(title: str, rows, steps, head: str, rule: str) -> list[str]:
    """A claim's table of paired comparisons (all claimed positive) and its verdict."""
    if not rows:
        return [title, "", "No comparison of this claim has both sides run yet: verdict **inconclusive**.", ""]
    lines, verdicts = _family(rows, steps, +1)
    return [title, "", head, rule, *lines, "", f"Verdict: **{_claim_verdict(verdicts)}**.", ""]


def _claim_verdict(verdicts: list[str]) -> str:
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v.startswith("not reproduced") for v in verdicts):
        return "not reproduced"
    return "inconclusive"


def render(study: Path, runs: str = "runs") -> str:
    curves, itop = load(study / runs)
    commit = (study / runs / "COMMIT").read_text().strip() if (study / runs / "COMMIT").exists() else "unknown"
    arms = _arm_order(curves)
    all_steps = sorted({s for arm in curves.values() for c in arm.values() for s in c})
    # The last three evaluation steps every run has reached.
    common = sorted(set.intersection(*(set(c) for arm in curves.values() for c in arm.values()))) if curves else []
    last = common[-3:]
    models = sorted(_models(study / runs))
    command = "python benchmarks/study_fmnist.py benchmarks/study-fmnist" + ("" if runs == "runs" else f" --runs {runs}")
    out = [f"# Fashion-MNIST study: results ({', '.join(models) or 'no runs'})", "",
           f"Generated by `{command}` from the run folders in `{runs}/` (trained at commit `{commit}`); do not "
           "edit by hand, `tests/test_study_fmnist.py` regenerates it. 12,000 G steps per run, ΔT 500 "
           "(sweeps: `configs/sweeps/study-fmnist-*.yaml`). "
           f"Metric `{LABEL}` (lower is better; real vs real ~0.06), evaluated every 1,000 steps.", ""]
    n_runs = sum(len(v) for v in curves.values())
    out += ["## Runs", "", f"Completed runs: {n_runs}; arms: {len(arms)}.", "",
            "| arm | seeds |", "|---|---|"]
    out += [f"| {a} | {', '.join(str(s) for s in sorted(curves[a]))} |" for a in arms]
    out += ["", "## Learning curves: mean over seeds at each evaluation (figure: `curves.png`)", "",
            "| arm | " + " | ".join(f"{s // 1000}k" for s in all_steps) + " |",
            "|---|" + "---|" * len(all_steps)]
    for a in arms:
        vals = [list(_at(curves, a, s).values()) for s in all_steps]
        out.append(f"| {a} | " + " | ".join(_fmt(statistics.fmean(v)) if v else "-" for v in vals) + " |")
    if len(last) < 3:
        out += ["", "Fewer than three evaluation steps are common to all runs: no verdicts yet."]
        return "\n".join(out) + "\n"
    out += ["", f"## At the last three evaluations ({', '.join(f'{s:,}' for s in last)} steps): mean ± sd over seeds", "",
            "| arm | n | " + " | ".join(f"{s:,}" for s in last) + " |", "|---|---|" + "---|" * len(last)]
    for a in arms:
        out.append(f"| {a} | {len(curves[a])} | " + " | ".join(_mean_sd(list(_at(curves, a, s).values())) for s in last) + " |")

    dense = {s: list(_at(curves, "dense", s).values()) for s in last}
    gate = all(v and statistics.fmean(v) <= DENSE_GATE for v in dense.values())
    out += ["", "## Claims", "",
            f"The regime: dense mean ≤ {DENSE_GATE} at each of the last three evaluations: "
            + ("**yes**" if gate else "**no** (the verdicts below rank runs that are not past the early phase)")
            + " (" + ", ".join(_fmt(statistics.fmean(v)) if v else "-" for v in dense.values()) + ").", "",
            "Each cell: mean paired difference [95 % CI], Holm-adjusted p, seed pairs; at "
            + ", ".join(f"{s:,}" for s in last) + " steps.", ""]
    head = "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | verdict |"
    rule = "|---|" + "---|" * len(last) + "---|"
    cells = sorted({tuple(a.split()[1:]) for a in arms if a != "dense"}, key=lambda c: (-float(c[0][2:]), float(c[1][2:])))
    pairs = [c for c in cells if f"static {c[0]} {c[1]}" in curves and f"stu {c[0]} {c[1]}" in curves]

    def gain(cell, step):  # static - STU-GAN per seed: > 0 when STU-GAN is better
        return paired(_at(curves, f"static {cell[0]} {cell[1]}", step), _at(curves, f"stu {cell[0]} {cell[1]}", step))

    def gain_by_seed(cell, step) -> dict[int, float]:
        g = gain(cell, step)
        return dict(zip(g.seeds, g.diffs))

    # 1. STU-GAN beats static sparse training in every cell.
    rows = [(f"static − STU-GAN, {c[0]} {c[1]}", {s: gain(c, s) for s in last}) for c in pairs]
    out += _section("### 1. STU-GAN beats static sparse training at every s_G (paper: Table 1)", rows, last, head, rule)

    # 2. The gain is largest at s_G 95 %: gain(95) - gain(other s_G), per s_D, paired by seed.
    rows = [(f"gain sG0.95 − gain {sg}, {sd}",
             {s: paired(gain_by_seed(("sG0.95", sd), s), gain_by_seed((sg, sd), s)) for s in last})
            for sd in sorted({c[1] for c in pairs}) if ("sG0.95", sd) in pairs
            for sg in sorted({c[0] for c in pairs if c[1] == sd and c[0] != "sG0.95"})]
    out += _section("### 2. The gain over static is largest at s_G = 95 %", rows, last, head, rule)

    # 3. The gain is larger beside a denser D (s_D 50 % vs 70 %), per s_G.
    rows = [(f"gain sD0.50 − gain sD0.70, {sg}",
             {s: paired(gain_by_seed((sg, "sD0.50"), s), gain_by_seed((sg, "sD0.70"), s)) for s in last})
            for sg in sorted({c[0] for c in pairs}, reverse=True)
            if (sg, "sD0.50") in pairs and (sg, "sD0.70") in pairs]
    out += _section("### 3. The gain over static is larger beside a denser D", rows, last, head, rule)

    # 4. At s_G 80 % / s_D 70 % STU-GAN matches dense: STU - dense within the margin.
    arm = "stu sG0.80 sD0.70"
    out += ["### 4. At s_G = 80 %, s_D = 70 % STU-GAN matches dense", ""]
    if arm in curves and "dense" in curves:
        out += [head.replace("verdict", "within the margin"), rule]
        ok, cells4 = [], []
        for s in last:
            c = paired(_at(curves, arm, s), _at(curves, "dense", s))
            margin = MATCH_MARGIN * statistics.fmean(_at(curves, "dense", s).values())
            lo, hi = c.ci
            ok.append(None if c.n < 2 else (True if hi <= margin else (False if lo > margin else None)))
            cells4.append(f"{_fmt(c.mean)} [{_fmt(lo)}, {_fmt(hi)}] margin {_fmt(margin)} n={c.n}")
        v = ("reproduced" if all(o is True for o in ok) else
             "not reproduced" if all(o is False for o in ok) else "inconclusive")
        out += [f"| STU-GAN − dense | " + " | ".join(cells4) + f" | {v} |", "",
                f"'Matches' means the upper 95 % bound of STU-GAN − dense is at most {MATCH_MARGIN:.0%} of the "
                f"dense mean; 'not reproduced' that the lower bound is above it. Verdict: **{v}**.", ""]
    else:
        out += ["Not run yet: verdict **inconclusive** (no data).", ""]

    # 5. Exploration shows in the ITOP rate.
    out += ["### 5. In-time over-parameterization: G's ITOP rate (weights ever active / prunable)", "",
            "| cell | static (= its density) | STU-GAN |", "|---|---|---|"]
    for c in pairs:
        st, su = itop.get(f"static {c[0]} {c[1]}", {}), itop.get(f"stu {c[0]} {c[1]}", {})
        out.append(f"| {c[0]} {c[1]} | {_mean_sd(list(st.values()))} | {_mean_sd(list(su.values()))} |")
    out += ["", "Not in this grid yet (later pieces of the study): explore G vs D vs G&D, PF, GAN Tickets (IMP), GMP, "
            "SNIP, GraSP, early-bird, ADAPT, small-dense, the MLP cell, the lottery-ticket claims and Inception FID."]
    return "\n".join(out) + "\n"


def _models(runs_dir: Path) -> set[str]:
    return {f"{r.config.get('model')} (width {r.config.get('model_width') or 'default'})" for r in load_runs(runs_dir)}


def plot_curves(study: Path, path: Path, runs: str = "runs") -> Path:
    """Learning curves of dense, static and STU-GAN side by side, one panel per (s_G, s_D) cell:
    the mean over seeds with the seeds' min-max band (matplotlib, the 'report' extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, _ = load(study / runs)
    cells = sorted({tuple(a.split()[1:]) for a in curves if a != "dense"},
                   key=lambda c: (-float(c[0][2:]), float(c[1][2:])))
    fig, axes = plt.subplots(1, max(1, len(cells)), figsize=(4 * max(1, len(cells)), 3.4), squeeze=False,
                             sharey=True)
    for ax, cell in zip(axes[0], cells or [None]):
        arms = ["dense"] + ([f"static {cell[0]} {cell[1]}", f"stu {cell[0]} {cell[1]}"] if cell else [])
        for arm, color in zip(arms, ("black", "tab:blue", "tab:red")):
            if arm not in curves:
                continue
            steps = sorted({s for c in curves[arm].values() for s in c})
            by_step = [list(_at(curves, arm, s).values()) for s in steps]
            ax.plot(steps, [statistics.fmean(v) for v in by_step], color=color,
                    label=f"{arm.split()[0]} (n={len(curves[arm])})")
            ax.fill_between(steps, [min(v) for v in by_step], [max(v) for v in by_step], color=color, alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel("G steps")
        ax.set_title(f"{cell[0]} {cell[1]}" if cell else "dense")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(LABEL)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="the study folder (runs/, results.md, ...)")
    ap.add_argument("--runs", default="runs", help="the runs folder inside it (runs, runs-mlp, ...)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the results file differs from what the runs give")
    args = ap.parse_args()
    text = render(args.study, args.runs)
    results, figure = outputs(args.runs)
    target = args.study / results
    if args.check:
        same = target.exists() and target.read_text() == text
        print(f"{results} matches the runs" if same else f"{results} differs from what the runs give")
        return 0 if same else 1
    target.write_text(text)
    print(f"wrote {target} and {plot_curves(args.study, args.study / figure, args.runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
