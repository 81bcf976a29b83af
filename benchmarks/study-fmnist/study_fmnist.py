"""The Fashion-MNIST study's tables and verdicts, generated from its committed run folders.

    python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist     # every results*.md and curves*.png
    python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist --runs runs-mlp  # results-mlp.md only
    python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist --check  # fails if a results file differs

Reads only ``STUDY/RUNS/*/`` (config.json, metrics.jsonl, summary.json: the light files
``benchmarks/study-fmnist/study_collect.py`` copies out of a sweep) and ``STUDY/RUNS/COMMIT`` (the commit the
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
    """The results file of ``study/runs``: the core grid's (runs, runs-mlp) or a later piece's."""
    if runs in PIECES:
        return PIECES[runs](study)
    return render_grid(study, runs)


def render_grid(study: Path, runs: str = "runs") -> str:
    curves, itop = load(study / runs)
    commit = (study / runs / "COMMIT").read_text().strip() if (study / runs / "COMMIT").exists() else "unknown"
    arms = _arm_order(curves)
    all_steps = sorted({s for arm in curves.values() for c in arm.values() for s in c})
    # The last three evaluation steps every run has reached.
    common = sorted(set.intersection(*(set(c) for arm in curves.values() for c in arm.values()))) if curves else []
    last = common[-3:]
    models = sorted(_models(study / runs))
    command = ("python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist"
               + ("" if runs == "runs" else f" --runs {runs}"))
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
    out += ["", f"## At the last three evaluations ({', '.join(f'{s:,}' for s in last)} steps): "
                "mean ± sd over seeds", "",
            "| arm | n | " + " | ".join(f"{s:,}" for s in last) + " |", "|---|---|" + "---|" * len(last)]
    for a in arms:
        out.append(f"| {a} | {len(curves[a])} | "
                   + " | ".join(_mean_sd(list(_at(curves, a, s).values())) for s in last) + " |")

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
    cells = sorted({tuple(a.split()[1:]) for a in arms if a != "dense"},
                   key=lambda c: (-float(c[0][2:]), float(c[1][2:])))
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
        out += ["| STU-GAN − dense | " + " | ".join(cells4) + f" | {v} |", "",
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
    out += ["", "Descriptive: exploration is what raises the rate above the density (static never changes its "
            "mask), so the table measures how far STU-GAN explored, not a claim that could fail; the paper's claim "
            "that quality comes with the explored range is claim 1 at the same cells, and exploring G against D "
            "(`results-explore.md`) adds D's rate."]
    if runs == "runs":  # Inception FID: the core grid's headline cells only
        out += [""] + _inception_section(study / runs, curves)
    out += ["", "The other pieces of the study (Table 1's other rows, exploration, the MLP cell, the lottery-ticket "
            "claims) are in the other results files next to this one."]
    return "\n".join(out) + "\n"


def load_inception(runs_dir: Path) -> tuple[int | None, dict[str, dict[int, dict[str, float]]]]:
    """(N, arm -> seed -> {"fid", "kid"}) from the runs' eval files fid@N.json / kid@N.json measured at
    the run's last step (benchmarks/study-fmnist/study_inception.py); N: the count most runs have."""
    found: dict[int, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for run in load_runs(runs_dir):
        if run.status != "completed":
            continue
        for m in run.measurements.values():
            proto = m.protocol
            if m.name in ("fid", "kid") and m.step == run.step and proto.num_ref in (None, proto.num_samples) \
                    and proto.split == "train" and proto.generator == "ema" and proto.eval_mode:
                found[proto.num_samples][_arm(run)].setdefault(run.seed, {})[m.name] = m.value
    if not found:
        return None, {}
    n = max(found, key=lambda k: sum(len(v) for v in found[k].values()))
    return n, found[n]


def _inception_section(runs_dir: Path, curves) -> list[str]:
    n, inc = load_inception(runs_dir)
    title = "### 6. Inception FID (the papers' extractor) at the end"
    if not inc:
        return [title, "", "Not measured yet (`benchmarks/study-fmnist/study_inception.py`): "
                "verdicts **inconclusive**."]
    fids = {a: {s: v["fid"] for s, v in seeds.items() if "fid" in v} for a, seeds in inc.items()}
    end = {a: {seed: c[max(c)] for seed, c in curves.get(a, {}).items() if seed in fids[a]} for a in fids}
    out = [title, "", f"The final EMA generator, {n:,} generated vs {n:,} real training images (the same count for "
           "every run; FID at this count is biased upward against the papers' 50,000), next to the run's last "
           f"`{LABEL}` of the same seeds.", "", "| arm | n | FID | KID x 10^3 | fid_domain@5000 (last) |",
           "|---|---|---|---|---|"]
    for a in _arm_order(fids):
        kids = [1e3 * v["kid"] for v in inc[a].values() if "kid" in v]
        out.append(f"| {a} | {len(fids[a])} | {_mean_sd(list(fids[a].values()))} | {_mean_sd(kids)} | "
                   f"{_mean_sd(list(end[a].values()))} |")
    head, rule = "| comparison | FID at the end | verdict |", "|---|---|---|"
    rows = [(f"static − STU-GAN, {c}", {"end": paired(fids[f"static {c}"], fids[f"stu {c}"])})
            for c in ("sG0.95 sD0.70", "sG0.80 sD0.70") if f"static {c}" in fids and f"stu {c}" in fids]
    out += ["", *_section("STU-GAN beats static at the headline cells, by Inception FID:", rows, ["end"], head, rule)]
    arm = "stu sG0.80 sD0.70"
    if arm in fids and "dense" in fids:
        c = paired(fids[arm], fids["dense"])
        margin = MATCH_MARGIN * statistics.fmean(fids["dense"].values())
        lo, hi = c.ci
        v = ("inconclusive" if c.n < 2 else "reproduced" if hi <= margin else "not reproduced" if lo > margin
             else "inconclusive")
        out += [f"STU-GAN at s_G 80 / s_D 70 % matches dense, by Inception FID: STU-GAN − dense {_fmt(c.mean)} "
                f"[{_fmt(lo)}, {_fmt(hi)}], margin {_fmt(margin)}, n={c.n}: **{v}**."]
    return out


# --- the later pieces: each reads its own runs folder and the core grid's (runs/) ----------------------

def _label_series(run) -> dict[int, float]:
    """The run's fid_domain@5000 curve; an IMP run's is its last round's (its ticket trained)."""
    rounds = sorted((run.path / "rounds").glob("round-*")) if (run.path / "rounds").is_dir() else []
    if rounds:
        last = load_runs(rounds[-1])
        return dict(last[0].series(LABEL)) if last else {}
    return dict(run.series(LABEL))


def _completed(runs_dir: Path):
    """Completed top-level runs (an IMP run's rounds are read through it, not as runs of their own)."""
    return [r for r in load_runs(runs_dir) if r.status == "completed" and "rounds" not in Path(r.name).parts]


def _baseline_row(run) -> str:
    c, m = run.config, run.method
    if m == "dense":
        return "dense" if c.get("width_multiplier", 1.0) == 1.0 else f"small dense (width x{c['width_multiplier']:g})"
    name = {"static": "static", "stu": "STU-GAN", "gmp": "GMP", "snip": "SNIP", "grasp": "GraSP",
            "early_bird": "early-bird", "imp": "GAN Tickets (IMP)"}.get(m, m)
    if m == "pf":
        name = f"PF {c.get('ranking')}"
    if m == "adapt":
        name = f"ADAPT {c.get('adapt_variant')}"
    return f"{name}, sD{run.sparsity('D'):.2f}"


def _rows(runs_dir: Path, label=_baseline_row):
    """row name -> seed -> curve, and row name -> seed -> relative training FLOPs."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(dict)
    flops: dict[str, dict[int, float]] = defaultdict(dict)
    for run in _completed(runs_dir):
        series = _label_series(run)
        if series:
            curves[label(run)][run.seed] = series
            rel = (run.summary.get("flops") or {}).get("train", {}).get("relative")
            flops[label(run)][run.seed] = float(rel) if rel is not None else math.nan
    return curves, flops


def _last_three(curves) -> list[int]:
    runs = [set(c) for arm in curves.values() for c in arm.values()]
    return sorted(set.intersection(*runs))[-3:] if runs else []


def _value_table(curves, flops, rows: list[str], last: list[int]) -> list[str]:
    out = ["| row | n | " + " | ".join(f"{s:,}" for s in last) + " | training FLOPs / dense |",
           "|---|---|" + "---|" * len(last) + "---|"]
    for r in rows:
        f = [v for v in flops.get(r, {}).values() if not math.isnan(v)]
        out.append(f"| {r} | {len(curves[r])} | " + " | ".join(_mean_sd(list(_at(curves, r, s).values())) for s in last)
                   + f" | {_fmt(statistics.fmean(f)) if f else '-'} |")
    return out


def _header(study: Path, runs: str, title: str, sweep: str) -> list[str]:
    commit = (study / runs / "COMMIT").read_text().strip() if (study / runs / "COMMIT").exists() else "unknown"
    core = (study / "runs" / "COMMIT").read_text().strip() if (study / "runs" / "COMMIT").exists() else "unknown"
    return [f"# Fashion-MNIST study: {title}", "",
            f"Generated by `python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist --runs {runs}` "
            "from the run "
            f"folders in `{runs}/` (trained at commit `{commit}`, sweep `configs/sweeps/{sweep}`) and the core grid's "
            f"in `runs/` (commit `{core}`); do not edit by hand, `tests/test_study_fmnist.py` regenerates it. "
            f"Width-16 DCGAN, 12,000 G steps, metric `{LABEL}` (lower is better) every 1,000 steps; each cell "
            "of a table: mean ± sd over seeds; each comparison: mean paired difference [95 % CI], Holm-adjusted "
            "p, seed pairs, at each of the last three evaluations.", ""]


def _merge(*sources):
    curves, flops = defaultdict(dict), defaultdict(dict)
    for c, f in sources:
        for k, v in c.items():
            curves[k].update(v)
        for k, v in f.items():
            flops[k].update(v)
    return curves, flops


def _baselines_curves(study: Path):
    own = _rows(study / "runs-baselines")
    core = _rows(study / "runs", lambda r: "dense" if r.method == "dense" else
                 f"{'STU-GAN' if r.method == 'stu' else r.method}, sD{r.sparsity('D'):.2f}"
                 + ("" if abs(r.sparsity("G") - 0.8) < 1e-9 else " (other s_G)")) \
        if (study / "runs").is_dir() else ({}, {})
    core = ({k: v for k, v in core[0].items() if "other" not in k},
            {k: v for k, v in core[1].items() if "other" not in k})
    return _merge(core, own)


def render_baselines(study: Path) -> str:
    runs = "runs-baselines"
    curves, flops = _baselines_curves(study)
    out = _header(study, runs, "Table 1's other rows at s_G = 80 %", "study-fmnist-baselines.yaml")
    last = _last_three(curves)
    if len(last) < 3:
        return "\n".join(out + ["No completed runs with three common evaluations yet."]) + "\n"
    order = ["dense", "small dense (width x0.5)", "static, sD0.00", "STU-GAN, sD0.00", "PF uniform, sD0.00",
             "PF global, sD0.00", "GAN Tickets (IMP), sD0.00", "static, sD0.50", "STU-GAN, sD0.50", "GMP, sD0.50",
             "SNIP, sD0.50", "GraSP, sD0.50", "early-bird, sD0.50", "ADAPT relaxed, sD0.50", "ADAPT strict, sD0.50",
             "static, sD0.70", "STU-GAN, sD0.70"]
    rows = [r for r in order if r in curves] + sorted(set(curves) - set(order))
    out += ["## The rows (s_G = 80 % unless dense; the s_D 50 / 70 % static and STU-GAN rows are the core grid's)", "",
            *_value_table(curves, flops, rows, last), "",
            "Training FLOPs: G and D, forward and backward, relative to the dense run of the same length "
            "(summary.json `flops.train.relative`; IMP: all its rounds). ADAPT's D starts at 50 % and moves.", ""]
    head = "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | verdict |"
    rule = "|---|" + "---|" * len(last) + "---|"
    stu = "STU-GAN, sD0.00"

    def diff(a, b, s):
        return paired(_at(curves, a, s), _at(curves, b, s))

    cmp = [(f"{r} − {stu}", {s: diff(r, stu, s) for s in last})
           for r in ("PF uniform, sD0.00", "PF global, sD0.00", "GAN Tickets (IMP), sD0.00")
           if r in curves and stu in curves]
    out += _section("### STU-GAN beats prune + fine-tune and GAN Tickets at equal sparsity (s_G 80 %, D dense)",
                    cmp, last, head, rule)

    def gain(sd, s):
        g = paired(_at(curves, f"static, {sd}", s), _at(curves, f"STU-GAN, {sd}", s))
        return dict(zip(g.seeds, g.diffs))

    cmp = [(f"gain sD0.00 − gain {sd}", {s: paired(gain("sD0.00", s), gain(sd, s)) for s in last})
           for sd in ("sD0.50", "sD0.70") if f"static, {sd}" in curves and f"STU-GAN, {sd}" in curves
           and "static, sD0.00" in curves and stu in curves]
    out += _section("### STU-GAN's gain over static (static − STU-GAN) is largest beside a dense D (s_G 80 %)",
                    cmp, last, head, rule)
    ref = "STU-GAN, sD0.50"
    single = [r for r in rows if r.split(",")[0] in ("GMP", "SNIP", "GraSP", "early-bird", "ADAPT relaxed",
                                                     "ADAPT strict")]
    if single and ref in curves:
        out += ["### Where ADAPT and the other baselines stand (beside STU-GAN at s_G 80 / s_D 50 %)", "",
                "| row − STU-GAN (s_D 50 %), by seed | " + " | ".join(f"{s:,} steps" for s in last) + " |",
                "|---|" + "---|" * len(last)]
        for r in single:
            cells = []
            for s in last:
                d = diff(r, ref, s)
                cells.append(", ".join(f"seed {k}: {_fmt(v)}" for k, v in zip(d.seeds, d.diffs)) or "-")
            out.append(f"| {r} | " + " | ".join(cells) + " |")
        out += ["", "Descriptive (a positive difference: the row is behind STU-GAN). With fewer than two seeds a row "
                "gets no verdict: **inconclusive** until its seeds 1-2 are run.", ""]
    adapt = sorted((run.config.get("adapt_variant"), run.seed, run.of_kind("adapt"))
                   for run in _completed(study / runs) if run.method == "adapt")
    if adapt:
        out += ["ADAPT's D density at each adjustment (its balance ratio decides; strict caps D at 50 %, relaxed "
                "lets it grow past; the two differ only once D asks to grow at the cap):", ""]
        for variant, seed, recs in adapt:
            path = " → ".join(f"{r['d_density_after']:.2f}" for r in recs)
            out.append(f"- ADAPT {variant}, seed {seed}: {recs[0]['d_density_before']:.2f} → {path}" if recs
                       else f"- ADAPT {variant}, seed {seed}: no adjustment")
        out.append("")
    return "\n".join(out) + "\n"


def _explore_row(run) -> str:
    return f"explore {run.config.get('explore', 'G')}"


def _in_explore_cell(run) -> bool:
    return run.method == "stu" and abs(run.sparsity("G") - 0.9) < 1e-9 and abs(run.sparsity("D") - 0.5) < 1e-9


def _explore_curves(study: Path):
    own = _rows(study / "runs-explore", _explore_row)
    core = _rows(study / "runs", lambda r: "explore G" if _in_explore_cell(r) else "other") \
        if (study / "runs").is_dir() else ({}, {})
    return _merge(({k: v for k, v in core[0].items() if k != "other"},
                   {k: v for k, v in core[1].items() if k != "other"}), own)


def render_explore(study: Path) -> str:
    runs = "runs-explore"
    curves, flops = _explore_curves(study)
    out = _header(study, runs, "explore G vs D vs G&D (STU-GAN at s_G 90 / s_D 50 %; Fig. 5)",
                  "study-fmnist-explore.yaml")
    last = _last_three(curves)
    if len(last) < 3:
        return "\n".join(out + ["No completed runs with three common evaluations yet."]) + "\n"
    rows = [r for r in ("explore G", "explore D", "explore GD") if r in curves]
    out += ["## The rows (explore G: the core grid's STU-GAN runs of the cell)", "",
            *_value_table(curves, flops, rows, last), ""]
    itop = defaultdict(dict)
    for d, lab in ((study / "runs", lambda r: "explore G" if _in_explore_cell(r) else None),
                   (study / runs, _explore_row)):
        for run in _completed(d) if d.is_dir() else []:
            if lab(run):
                itop[lab(run)][run.seed] = run.summary.get("itop_rate", {})
    out += ["ITOP rate (weights ever active / prunable) at the end, mean over seeds:", "",
            "| row | G | D |", "|---|---|---|"]
    for r in rows:
        vals = list(itop[r].values())
        out.append(f"| {r} | {_mean_sd([v.get('G', math.nan) for v in vals])} | "
                   f"{_mean_sd([v.get('D', math.nan) for v in vals])} |")
    head = "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | verdict |"
    rule = "|---|" + "---|" * len(last) + "---|"
    cmp = [(f"{r} − explore G", {s: paired(_at(curves, r, s), _at(curves, "explore G", s)) for s in last})
           for r in ("explore D", "explore GD") if r in curves and "explore G" in curves]
    out += ["", *_section("### Exploring G beats exploring D or both (STU-GAN Fig. 5)", cmp, last, head, rule)]
    return "\n".join(out) + "\n"


# --- the lottery-ticket claims: chains of rounds, one seed each ----------------------------------------

def _rounds(run, label: str = LABEL) -> dict[int, tuple[dict[str, float], list[tuple[int, float]]]]:
    """round -> (density per net, the round's curve of ``label``) of an IMP run or control."""
    densities = {r["round"]: r.get("final_density") or r.get("density") or {} for r in run.of_kind("round")}
    out = {}
    for path in sorted((run.path / "rounds").glob("round-*")) if (run.path / "rounds").is_dir() else []:
        k = int(path.name.split("-")[1])
        loaded = load_runs(path)
        if loaded and loaded[0].status == "completed":
            out[k] = (densities.get(k, {}), loaded[0].series(label))
    return out


def _tail(curve: list[tuple[int, float]]) -> list[float]:
    """The last three evaluations of a round (rounds of one chain share their schedule)."""
    return [v for _, v in curve[-3:]]


def _noise(study: Path, steps: list[int]) -> list[float]:
    """The 95 % range of the difference of two single runs: 1.96 * sqrt(2) * sd of the core grid's dense
    seeds at each step (nan where fewer than two dense seeds reached it)."""
    dense = load(study / "runs")[0].get("dense", {}) if (study / "runs").is_dir() else {}
    out = []
    for s in steps:
        vals = [c[s] for c in dense.values() if s in c]
        out.append(1.96 * math.sqrt(2) * statistics.stdev(vals) if len(vals) >= 2 else math.nan)
    return out


def _cells(values: list[float]) -> str:
    return " / ".join(_fmt(v) for v in values) if values else "-"


def _chains(study: Path, runs: str):
    chains = {}
    for run in _completed(study / runs):
        c = run.config
        if c.get("imp_control", "none") != "none":
            key = f"control {c['imp_control']}"
        elif c.get("prune_nets") == "GD":
            key = "IMP_GD"
        elif int(c.get("rewind_step") or 0) > 0:
            key = f"late rewinding, D {c.get('imp_d')}"
        else:
            key = "IMP_G"
        chains[key] = run
    return chains


def render_tickets(study: Path) -> str:
    runs = "runs-tickets"
    chains = _chains(study, runs)
    cfg = chains["IMP_G"].config if "IMP_G" in chains else {}
    per_round = (f"{int(cfg['steps']):,}" if "steps" in cfg else "-") + " G steps per round"
    out = _header(study, runs, f"GAN Tickets' claims (IMP of the generator, {per_round}, one seed)",
                  "study-fmnist-tickets.yaml").copy()
    out[2] = out[2].replace("12,000 G steps", f"{per_round}, {100 * float(cfg.get('imp_rate', 0.2)):g} % of "
                            "the remaining weights pruned per round")
    g = _rounds(chains["IMP_G"]) if "IMP_G" in chains else {}
    if 0 not in g:
        return "\n".join(out + ["The IMP chain has no completed dense round yet."]) + "\n"
    steps = [s for s, _ in g[0][1][-3:]]
    noise = _noise(study, steps)
    dense = _tail(g[0][1])
    out += ["Each value: the round's last three evaluations (" + (", ".join(f"{s:,}" for s in steps) or "none of "
            + LABEL) + " steps of the round). One seed: a difference counts only beyond the seed noise, "
            "1.96·√2·sd of the core grid's dense seeds at the same steps (" + _cells(noise) + "); 'matches dense' = "
            "at most that much worse than round 0 (dense) at each of the three, 'beats' = better by more than that "
            "at each of the three.", ""]
    gate = bool(dense) and all(v <= DENSE_GATE for v in dense)
    out += [f"The regime: round 0 (dense) ≤ {DENSE_GATE} at each of the last three evaluations: "
            + ("**yes**" if gate else "**no** (these rounds are short: the verdicts below rank tickets early in "
               "training, not trained ones)") + f" ({_cells(dense)}).", ""]
    controls = {k: _rounds(chains[f"control {k}"]) for k in ("reinit", "random") if f"control {k}" in chains}
    out += ["## Up to which sparsity does the IMP ticket match dense, and beat its controls?", "",
            "| round | G sparsity | IMP ticket | matches dense | random reinit | ticket beats it | random pruning "
            "| ticket beats it |", "|---|---|---|---|---|---|---|---|"]
    matched, beats = [], {k: [] for k in controls}

    def comparable(a, b) -> bool:  # both have the three evaluations and the noise is known at each
        return len(a) == len(b) == len(noise) == 3 and not any(math.isnan(n) for n in noise)

    def within(a, b):  # a at most noise worse than b, at each of the three (None: nothing to compare)
        return all(x - y <= n for x, y, n in zip(a, b, noise)) if comparable(a, b) else None

    def better(a, b):  # a better than b by more than the noise, at each of the three
        return all(y - x > n for x, y, n in zip(a, b, noise)) if comparable(a, b) else None

    def yn(v):
        return "-" if v is None else ("yes" if v else "no")

    for k in sorted(g):
        dens, curve = g[k]
        t = _tail(curve)
        m = within(t, dense) if k else None
        cells = [f"{k}", _fmt(100 * (1 - dens.get("G", 1.0)), 1) + " %", _cells(t), yn(m)]
        for name in ("reinit", "random"):
            c = _tail(controls.get(name, {}).get(k, ({}, []))[1])
            b = better(t, c)
            # 'yes': the ticket better beyond the noise; 'worse': the control better beyond it; 'no': within it
            b = None if b is None else "yes" if b else "worse" if better(c, t) else "no"
            cells += [_cells(c), b or "-"]
            if k and b is not None:
                beats[name].append((k, b))
        if k:
            matched.append((k, 1 - dens.get("G", 1.0), m))
        out.append("| " + " | ".join(cells) + " |")
    last_match = None
    for k, sp, m in matched:
        if not m:
            break
        last_match = sp
    verdict = ("inconclusive (no noise yardstick or fewer than three evaluations per round: fewer than two "
               "dense seeds of runs/ at these steps, or a round without the metric)"
               if not matched or any(m is None for *_, m in matched)
               else f"the ticket matches dense at every round up to {100 * last_match:.1f} % sparsity" if last_match
               else "the ticket matches dense at no round")
    out += ["", f"Matching: {verdict}.", ""]
    for name, label in (("reinit", "random reinitialisation"), ("random", "random pruning")):
        res = beats.get(name, [])
        if not res:
            why = "no round comparable with the ticket's (three evaluations each and the noise)" \
                if name in controls else "not run yet"
            out.append(f"- Against {label}: {why}: **inconclusive**.")
            continue
        won = [k for k, b in res if b == "yes"]
        lost = [k for k, b in res if b == "worse"]
        # One seed each: within the noise is no evidence either way (as in the CycleGAN tickets' study);
        # 'not reproduced' needs the control to be better beyond it somewhere and the ticket nowhere.
        v = ("**reproduced**" if len(won) == len(res) else "**reproduced at some sparsities only**" if won else
             "**not reproduced** (the control is better beyond the noise at rounds "
             + ", ".join(map(str, lost)) + ")" if lost else "**inconclusive** (within the noise at every round)")
        out.append(f"- Against {label}: the ticket is better beyond the noise at rounds "
                   f"{', '.join(map(str, won)) or 'none'} of {len(res)}; the claim (tickets beat the control) is "
                   + v + ".")
    out.append("")
    # Pruning D or not (IMP_GD vs IMP_G at the same G sparsity), and D's initialisation.
    if "IMP_GD" in chains:
        gd = _rounds(chains["IMP_GD"])
        out += ["## Pruning D too (IMP_GD) or not (IMP_G): the paper finds it matters little", "",
                "| round | G / D sparsity (IMP_GD) | IMP_G | IMP_GD | within the noise |", "|---|---|---|---|---|"]
        same = []
        for k in sorted(set(gd) & set(g) - {0}):
            a, b = _tail(g[k][1]), _tail(gd[k][1])
            w = all(abs(x - y) <= n for x, y, n in zip(a, b, noise)) if comparable(a, b) else None
            same.append(w)
            d = gd[k][0]
            out.append(f"| {k} | {_fmt(100 * (1 - d.get('G', 1)), 1)} / {_fmt(100 * (1 - d.get('D', 1)), 1)} % | "
                       f"{_cells(a)} | {_cells(b)} | {yn(w)} |")
        v = ("inconclusive" if not same or any(w is None for w in same) else
             "reproduced" if all(same) else "not reproduced")
        out += ["", f"Claim (pruning D matters little): **{v}**.", ""]
    inits = {name: _rounds(chains[f"late rewinding, D {name}"]) for name in ("rewind", "init", "keep")
             if f"late rewinding, D {name}" in chains}
    if inits:
        rewind = next(int(chains[f"late rewinding, D {n}"].config.get("rewind_step", 0)) for n in inits)
        out += [f"## D's initialisation under late rewinding (step {rewind}): rewound with G, reset to init, or kept "
                "from the previous round; the paper finds it matters a lot", "",
                "| round | G sparsity | " + " | ".join(f"D {n}" for n in inits) + " | largest gap beyond the noise |",
                "|---|---|" + "---|" * len(inits) + "---|"]
        gaps = []
        rounds_all = sorted(set.intersection(*(set(r) for r in inits.values())) - {0})
        for k in rounds_all:
            tails = {n: _tail(r[k][1]) for n, r in inits.items()}
            first = next(iter(inits.values()))[k][0]
            spread = [max(t[i] for t in tails.values()) - min(t[i] for t in tails.values()) for i in range(3)] \
                if all(len(t) == 3 for t in tails.values()) else []
            beyond = None if not spread or any(math.isnan(n) for n in noise) \
                else all(x > n for x, n in zip(spread, noise))
            gaps.append(beyond)
            out.append(f"| {k} | {_fmt(100 * (1 - first.get('G', 1)), 1)} % | " +
                       " | ".join(_cells(t) for t in tails.values()) + f" | {yn(beyond)} |")
        v = ("inconclusive" if len(inits) < 3 or not gaps or any(b is None for b in gaps) else
             "reproduced" if all(gaps) else "not reproduced" if not any(gaps) else "reproduced at some rounds only")
        out += ["", f"Claim (D's initialisation matters a lot): **{v}** (the gap between the best and the worst "
                "initialisation beyond the noise at each of the last three evaluations).", ""]
    return "\n".join(out) + "\n"


RECON = "recon_mse@10000,split=test,G=raw"


def _ticket_name(masks_from: str) -> str:
    """'.../tickets/round-05' -> 'IMP_G round 5'."""
    name = Path(masks_from).name
    return f"IMP_G round {int(name.split('-')[1])}" if name.startswith("round-") else name


def render_generative_tickets(study: Path) -> str:
    runs = "runs-generative-tickets"
    found = {}
    for run in _completed(study / runs):
        c = run.config
        key = ("AE" if c.get("model") == "ae" else "VAE") + " " + run.method + (
            " (GAN ticket)" if c.get("masks_from") else "")
        found[key] = run
    steps = sorted({int(r.config.get("steps", 0)) for r in found.values()})
    out = _header(study, runs, "Generative Tickets' claims on the VAE and the AE (one seed each)",
                  "study-fmnist-generative-tickets.yaml").copy()
    per_run = (" / ".join(f"{s:,}" for s in steps) or "-") + " steps per run or round"
    out[2] = out[2].replace("Width-16 DCGAN, 12,000 G steps", f"VAE / AE with the width-16 DCGAN decoder, {per_run}")
    out[2] = out[2].replace(f"metric `{LABEL}`", f"metrics `{LABEL}` (VAE samples) and `{RECON}` (the AE's held-out "
                            "reconstruction)")
    out += ["One seed each and no seed-noise estimate for these models: 'within 10 %' below is a descriptive "
            "criterion (each of the last three evaluations at most 10 % worse than dense), not a test.", ""]

    def table(name: str, label: str, unit: str):
        """The chain's rows, the sparsity up to which every round is within 10 % of dense, and how the walk
        up the rounds ended: 'failed' (a round worse), 'unknown' (a round without three evaluations) or None."""
        chain = _rounds(found[f"{name} imp"], label)
        if 0 not in chain:
            return None
        dense = _tail(chain[0][1])
        rows = ["| round | G / D sparsity | " + unit + " (last three) | within 10 % of dense |", "|---|---|---|---|"]
        last_ok, stop = None, None
        for k in sorted(chain):
            d, curve = chain[k]
            t = _tail(curve)
            ok = all(x <= 1.1 * y for x, y in zip(t, dense)) if k and len(t) == len(dense) == 3 else None
            if k and stop is None:
                if ok:
                    last_ok = 1 - d.get("G", 1.0)
                else:
                    stop = "unknown" if ok is None else "failed"
            rows.append(f"| {k} | {_fmt(100 * (1 - d.get('G', 1)), 1)} / {_fmt(100 * (1 - d.get('D', 1)), 1)} % | "
                        f"{_cells(t)} | {'-' if ok is None else ('yes' if ok else 'no')} |")
        return last_ok, stop, rows

    for name, label, unit, paper in (("VAE", LABEL, "fid_domain@5000", 0.93), ("AE", RECON, "recon_mse", 0.99)):
        rewind = found[f"{name} imp"].config.get("rewind_step", 0) if f"{name} imp" in found else "-"
        out += [f"## The {name}: IMP with late rewinding (step {rewind}) of decoder and encoder", ""]
        if f"{name} imp" not in found:
            out += ["Not run yet: **inconclusive**.", ""]
            continue
        res = table(name, label, unit)
        if res is None:
            out += ["The chain has no completed dense round yet: **inconclusive**.", ""]
            continue
        last_ok, stop, rows = res
        # Realised densities carry the per-layer rounding of counts: compare at the tables' 0.1 % precision.
        reached = last_ok is not None and round(100 * last_ok, 1) >= round(100 * paper, 1)
        v = ("reproduced" if reached else "not reproduced" if stop == "failed" else
             "inconclusive (a round without three evaluations)" if stop == "unknown" else
             "inconclusive (the chain has not reached the paper's sparsity)")
        out += rows + ["", f"Tickets within 10 % of dense at every round up to "
                       f"{'-' if last_ok is None else f'{100 * last_ok:.1f} %'} sparsity (the paper: up to "
                       f"{100 * paper:.0f} %): **{v}**.", ""]
    vae = found.get("VAE imp")
    chain = _rounds(vae) if vae else {}
    if "VAE early_bird" in found:
        eb = found["VAE early_bird"]
        drawn = [r for r in eb.of_kind("early_bird")]
        t_eb = _tail(eb.series(LABEL))
        f_eb = (eb.summary.get("flops") or {}).get("train", {}).get("relative")
        f_imp = (vae.summary.get("flops") or {}).get("train", {}).get("relative") if vae else None
        last = chain[max(chain)] if chain else None
        out += ["## Early-bird's ticket and its cost against IMP's (VAE, the same final sparsity)", "",
                "| | ticket drawn at | fid_domain@5000 (last three) | training FLOPs / one dense run |",
                "|---|---|---|---|",
                f"| early-bird | step {drawn[0]['step'] if drawn else '-'}"
                f"{'' if not drawn or drawn[0].get('detected') else ' (budget end, not detected)'} "
                f"| {_cells(t_eb)} | {_fmt(f_eb) if f_eb is not None else '-'} |",
                f"| IMP (last round) | after {max(chain) if chain else '-'} rounds | "
                f"{_cells(_tail(last[1])) if last else '-'} | {_fmt(f_imp) if f_imp is not None else '-'} |", "",
                "Descriptive (one seed).", ""]
    if "VAE static (GAN ticket)" in found:
        st = found["VAE static (GAN ticket)"]
        near = min(chain, key=lambda k: abs((1 - chain[k][0].get("G", 1)) - st.sparsity("G"))) if chain else None
        out += ["## A GAN generator's ticket on the VAE decoder", "",
                "| | decoder sparsity | fid_domain@5000 (last three) |", "|---|---|---|",
                f"| GAN ticket ({_ticket_name(st.config['masks_from'])}), static training | "
                f"{_fmt(100 * st.sparsity('G'), 1)} % | "
                f"{_cells(_tail(st.series(LABEL)))} |"]
        if near is not None:
            out.append(f"| the VAE's own IMP ticket (round {near}) | "
                       f"{_fmt(100 * (1 - chain[near][0].get('G', 1)), 1)} % | "
                       f"{_cells(_tail(chain[near][1]))} |")
        if 0 in chain:
            out.append(f"| dense VAE | 0 % | {_cells(_tail(chain[0][1]))} |")
        out += ["", "Descriptive (one seed).", ""]
    return "\n".join(out) + "\n"


# --- block masks: STU-GAN with 4x1 blocks against the core grid's unstructured runs ------------------

BLOCK_CELL = (0.95, 0.7)


def _blocks_curves(study: Path):
    def in_cell(r) -> bool:
        return abs(r.sparsity("G") - BLOCK_CELL[0]) < 1e-9 and abs(r.sparsity("D") - BLOCK_CELL[1]) < 1e-9

    def label(r) -> str:
        name = {"stu": "STU-GAN", "static": "static"}.get(r.method, r.method)
        return f"{name} {r.config.get('mask_block', '1x1')}" if in_cell(r) else "other"

    own = _rows(study / "runs-blocks", label)
    core = _rows(study / "runs", label) if (study / "runs").is_dir() else ({}, {})
    return _merge(*(({k: v for k, v in c.items() if k != "other"}, {k: v for k, v in f.items() if k != "other"})
                    for c, f in (core, own)))


def render_blocks(study: Path) -> str:
    runs = "runs-blocks"
    curves, flops = _blocks_curves(study)
    out = _header(study, runs, "STU-GAN with 4x1 block masks vs unstructured masks (s_G 95 / s_D 70 %)",
                  "study-fmnist-blocks.yaml")
    last = _last_three(curves)
    if len(last) < 3 or "STU-GAN 4x1" not in curves:
        return "\n".join(out + ["No completed runs with three common evaluations yet."]) + "\n"
    rows = [r for r in ("static 1x1", "STU-GAN 1x1", "STU-GAN 4x1") if r in curves]
    out += ["## The rows (1x1: the core grid's runs of the cell; 4x1: `--mask-block 4x1`, G and D)", "",
            *_value_table(curves, flops, rows, last), ""]
    head = "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | verdict |"
    rule = "|---|" + "---|" * len(last) + "---|"
    out += ["### Does STU-GAN with 4x1 blocks match unstructured STU-GAN?", "",
            head.replace("verdict", "within the margin"), rule]
    ok, cells, by_seed, behind = [], [], [], []
    for s in last:
        c = paired(_at(curves, "STU-GAN 4x1", s), _at(curves, "STU-GAN 1x1", s))
        behind.append(c.n >= 2 and c.ci[0] > 0)
        by_seed.append(f"{s:,} steps: " + ", ".join(f"seed {k} {_fmt(v)}" for k, v in zip(c.seeds, c.diffs)))
        margin = MATCH_MARGIN * statistics.fmean(_at(curves, "STU-GAN 1x1", s).values())
        lo, hi = c.ci
        ok.append(None if c.n < 2 else (True if hi <= margin else (False if lo > margin else None)))
        cells.append(f"{_fmt(c.mean)} [{_fmt(lo)}, {_fmt(hi)}] margin {_fmt(margin)} n={c.n}")
    v = "yes" if all(o is True for o in ok) else "no" if all(o is False for o in ok) else "inconclusive"
    out += ["| 4x1 − 1x1 | " + " | ".join(cells) + f" | {v} |", "",
            "By seed (4x1 − 1x1): " + "; ".join(by_seed) + ".", "",
            f"'Matches' means the upper 95 % bound of 4x1 − 1x1 (same seed: same initial weights and data order, "
            f"the masks differ by construction) is at most {MATCH_MARGIN:.0%} of the 1x1 mean; 'no' that the lower "
            f"bound is above it. Verdict: **{v}**.", "",
            "Behind unstructured STU-GAN (the 95 % interval of 4x1 − 1x1 above 0 at each of the last three "
            f"evaluations): **{'yes' if all(behind) else 'no' if not any(behind) else 'at some evaluations only'}**.",
            ""]
    cmp = [("static 1x1 − STU-GAN 4x1", {s: paired(_at(curves, "static 1x1", s), _at(curves, "STU-GAN 4x1", s))
                                         for s in last})] if "static 1x1" in curves else []
    out += _section("### STU-GAN with 4x1 blocks still beats unstructured static", cmp, last, head, rule)
    out += ["What the blocks buy in speed: `benchmarks/efficiency/results/block_inference.md`.", ""]
    return "\n".join(out) + "\n"


PIECES = {"runs-baselines": render_baselines, "runs-explore": render_explore, "runs-tickets": render_tickets,
          "runs-generative-tickets": render_generative_tickets, "runs-blocks": render_blocks}
PIECE_CURVES = {"runs-baselines": _baselines_curves, "runs-explore": _explore_curves, "runs-blocks": _blocks_curves}


def plot_rows(study: Path, path: Path, runs: str) -> Path:
    """A later piece's learning curves: every row's mean over seeds, one panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, _ = PIECE_CURVES[runs](study)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in sorted(curves):
        steps = sorted({s for c in curves[row].values() for s in c})
        ax.plot(steps, [statistics.fmean(_at(curves, row, s).values()) for s in steps],
                label=f"{row} (n={len(curves[row])})", lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("G steps")
    ax.set_ylabel(LABEL)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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


def _write(study: Path, runs: str, check: bool) -> bool:
    """Writes (or with ``check`` compares) one runs folder's results file and figure; False if it differs."""
    text = render(study, runs)
    results, figure = outputs(runs)
    target = study / results
    if check:
        same = target.exists() and target.read_text() == text
        print(f"{results} matches the runs" if same else f"{results} differs from what the runs give")
        return same
    target.write_text(text)
    if runs in PIECES and runs not in PIECE_CURVES:
        print(f"wrote {target}")
        return True
    plot = plot_rows if runs in PIECE_CURVES else plot_curves
    print(f"wrote {target} and {plot(study, study / figure, runs)}")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="the study folder (runs/, results.md, ...)")
    ap.add_argument("--runs", default=None,
                    help="one runs folder inside it (runs, runs-mlp, ...); default: every runs* folder with a COMMIT")
    ap.add_argument("--check", action="store_true", help="exit 1 if a results file differs from what the runs give")
    args = ap.parse_args()
    pieces = [args.runs] if args.runs else sorted(
        p.name for p in args.study.glob("runs*") if p.is_dir() and (p / "COMMIT").is_file())
    if not pieces:
        print(f"study_fmnist: no runs* folder with a COMMIT file in {args.study}", file=sys.stderr)
        return 2
    results = [_write(args.study, runs, args.check) for runs in pieces]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
