"""The later pieces that add rows beside the core grid's runs: Table 1's other rows
(``runs-baselines/``), exploring G vs D vs G&D (``runs-explore/``) and 4x1 block masks
(``runs-blocks/``). Each reads its own runs folder and the core grid's ``runs/``."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from study_common import (
    LABEL,
    MATCH_MARGIN,
    NOT_YET,
    comparison_head,
    completed_runs,
    fmt,
    header,
    last_three,
    mean_sd,
    merge,
    replay,
    rows_of,
    section,
    value_table,
    values_at,
    within_margin,
)

from sparsegan.experiments.stats import paired


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


def baselines_curves(study: Path):
    own = rows_of(study / "runs-baselines", _baseline_row)
    core = rows_of(study / "runs", lambda r: "dense" if r.method == "dense" else
                 f"{'STU-GAN' if r.method == 'stu' else r.method}, sD{r.sparsity('D'):.2f}"
                 + ("" if abs(r.sparsity("G") - 0.8) < 1e-9 else " (other s_G)")) \
        if (study / "runs").is_dir() else ({}, {})
    core = ({k: v for k, v in core[0].items() if "other" not in k},
            {k: v for k, v in core[1].items() if "other" not in k})
    return merge(core, own)


def render_baselines(study: Path) -> str:
    runs = "runs-baselines"
    curves, flops = baselines_curves(study)
    out = header(study, runs, "Table 1's other rows at s_G = 80 %", "study-fmnist-baselines.yaml")
    last = last_three(curves)
    if len(last) < 3:
        return "\n".join(out + [NOT_YET]) + "\n"
    order = ["dense", "small dense (width x0.5)", "static, sD0.00", "STU-GAN, sD0.00", "PF uniform, sD0.00",
             "PF global, sD0.00", "GAN Tickets (IMP), sD0.00", "static, sD0.50", "STU-GAN, sD0.50", "GMP, sD0.50",
             "SNIP, sD0.50", "GraSP, sD0.50", "early-bird, sD0.50", "ADAPT relaxed, sD0.50", "ADAPT strict, sD0.50",
             "static, sD0.70", "STU-GAN, sD0.70"]
    rows = [r for r in order if r in curves] + sorted(set(curves) - set(order))
    out += ["## The rows (s_G = 80 % unless dense; the s_D 50 / 70 % static and STU-GAN rows are the core grid's)", "",
            *value_table(curves, flops, rows, last), "",
            "Training FLOPs: G and D, forward and backward, relative to the dense run of the same length "
            "(summary.json `flops.train.relative`; IMP: its rounds' own counts added up). ADAPT's D starts at 50 % "
            "and moves.", ""]
    stu = "STU-GAN, sD0.00"

    def diff(a, b, s):
        return paired(values_at(curves, a, s), values_at(curves, b, s))

    cmp = [(f"{r} − {stu}", {s: diff(r, stu, s) for s in last})
           for r in ("PF uniform, sD0.00", "PF global, sD0.00", "GAN Tickets (IMP), sD0.00")
           if r in curves and stu in curves]
    out += section("### STU-GAN beats prune + fine-tune and GAN Tickets at equal sparsity (s_G 80 %, D dense)",
                    cmp, last)

    def gain(sd, s):
        g = paired(values_at(curves, f"static, {sd}", s), values_at(curves, f"STU-GAN, {sd}", s))
        return dict(zip(g.seeds, g.diffs))

    cmp = [(f"gain sD0.00 − gain {sd}", {s: paired(gain("sD0.00", s), gain(sd, s)) for s in last})
           for sd in ("sD0.50", "sD0.70") if f"static, {sd}" in curves and f"STU-GAN, {sd}" in curves
           and "static, sD0.00" in curves and stu in curves]
    out += section("### STU-GAN's gain over static (static − STU-GAN) is largest beside a dense D (s_G 80 %)",
                    cmp, last)
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
                cells.append(", ".join(f"seed {k}: {fmt(v)}" for k, v in zip(d.seeds, d.diffs)) or "-")
            out.append(f"| {r} | " + " | ".join(cells) + " |")
        out += ["", "Descriptive (a positive difference: the row is behind STU-GAN). With fewer than two seeds a row "
                "gets no verdict: **inconclusive** until its seeds 1-2 are run.", ""]
    adapt = sorted((run.config.get("adapt_variant"), run.seed, run.of_kind("adapt"))
                   for run in completed_runs(study / runs) if run.method == "adapt")
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


def explore_curves(study: Path):
    own = rows_of(study / "runs-explore", _explore_row)
    core = rows_of(study / "runs", lambda r: "explore G" if _in_explore_cell(r) else "other") \
        if (study / "runs").is_dir() else ({}, {})
    return merge(({k: v for k, v in core[0].items() if k != "other"},
                   {k: v for k, v in core[1].items() if k != "other"}), own)


def render_explore(study: Path) -> str:
    runs = "runs-explore"
    curves, flops = explore_curves(study)
    out = header(study, runs, "explore G vs D vs G&D (STU-GAN at s_G 90 / s_D 50 %; Fig. 5)",
                  "study-fmnist-explore.yaml")
    last = last_three(curves)
    if len(last) < 3:
        return "\n".join(out + [NOT_YET]) + "\n"
    rows = [r for r in ("explore G", "explore D", "explore GD") if r in curves]
    out += ["## The rows (explore G: the core grid's STU-GAN runs of the cell)", "",
            *value_table(curves, flops, rows, last), ""]
    itop = defaultdict(dict)
    for d, lab in ((study / "runs", lambda r: "explore G" if _in_explore_cell(r) else None),
                   (study / runs, _explore_row)):
        for run in completed_runs(d) if d.is_dir() else []:
            if lab(run):
                itop[lab(run)][run.seed] = run.summary.get("itop_rate", {})
    out += ["ITOP rate (weights ever active / prunable) at the end, mean over seeds:", "",
            "| row | G | D |", "|---|---|---|"]
    for r in rows:
        vals = list(itop[r].values())
        out.append(f"| {r} | {mean_sd([v.get('G', math.nan) for v in vals])} | "
                   f"{mean_sd([v.get('D', math.nan) for v in vals])} |")
    cmp = [(f"{r} − explore G", {s: paired(values_at(curves, r, s), values_at(curves, "explore G", s)) for s in last})
           for r in ("explore D", "explore GD") if r in curves and "explore G" in curves]
    out += ["", *section("### Exploring G beats exploring D or both (STU-GAN Fig. 5)", cmp, last)]
    out += replay(study, "runs-replays-66f6b00", (0.9, 0.5), _commit(study, runs))
    return "\n".join(out) + "\n"


BLOCK_CELL = (0.95, 0.7)


def _commit(study: Path, runs: str) -> str:
    return (study / runs / "COMMIT").read_text().strip() if (study / runs / "COMMIT").exists() else "?"


def blocks_curves(study: Path):
    def in_cell(r) -> bool:
        return abs(r.sparsity("G") - BLOCK_CELL[0]) < 1e-9 and abs(r.sparsity("D") - BLOCK_CELL[1]) < 1e-9

    def label(r) -> str:
        name = {"stu": "STU-GAN", "static": "static"}.get(r.method, r.method)
        return f"{name} {r.config.get('mask_block', '1x1')}" if in_cell(r) else "other"

    return _with_core(study, "runs-blocks", label, label)


def _with_core(study: Path, runs: str, core_label, own_label):
    """The rows of the core grid's runs (``core_label``) and of a piece's (``own_label``), merged; a
    label of "other" leaves a run out."""
    own = rows_of(study / runs, own_label)
    core = rows_of(study / "runs", core_label) if (study / "runs").is_dir() else ({}, {})
    return merge(*(({k: v for k, v in c.items() if k != "other"}, {k: v for k, v in f.items() if k != "other"})
                    for c, f in (core, own)))


def render_blocks(study: Path) -> str:
    runs = "runs-blocks"
    curves, flops = blocks_curves(study)
    out = header(study, runs, "STU-GAN with 4x1 block masks vs unstructured masks (s_G 95 / s_D 70 %)",
                  "study-fmnist-blocks.yaml")
    last = last_three(curves)
    if len(last) < 3 or "STU-GAN 4x1" not in curves:
        return "\n".join(out + [NOT_YET]) + "\n"
    rows = [r for r in ("static 1x1", "STU-GAN 1x1", "STU-GAN 4x1") if r in curves]
    out += ["## The rows (1x1: the core grid's runs of the cell; 4x1: `--mask-block 4x1`, G and D)", "",
            *value_table(curves, flops, rows, last), ""]
    out += ["### Does STU-GAN with 4x1 blocks match unstructured STU-GAN?", "",
            *comparison_head(last, "within the margin")]
    ok, cells, by_seed, behind = [], [], [], []
    for s in last:
        c = paired(values_at(curves, "STU-GAN 4x1", s), values_at(curves, "STU-GAN 1x1", s))
        behind.append(c.n >= 2 and c.ci[0] > 0)
        by_seed.append(f"{s:,} steps: " + ", ".join(f"seed {k} {fmt(v)}" for k, v in zip(c.seeds, c.diffs)))
        margin = MATCH_MARGIN * statistics.fmean(values_at(curves, "STU-GAN 1x1", s).values())
        lo, hi = c.ci
        ok.append(within_margin(c, margin))
        cells.append(f"{fmt(c.mean)} [{fmt(lo)}, {fmt(hi)}] margin {fmt(margin)} n={c.n}")
    v = "yes" if all(o is True for o in ok) else "no" if all(o is False for o in ok) else "inconclusive"
    out += ["| 4x1 − 1x1 | " + " | ".join(cells) + f" | {v} |", "",
            "By seed (4x1 − 1x1): " + "; ".join(by_seed) + ".", "",
            f"'Matches' means the upper 95 % bound of 4x1 − 1x1 (same seed: same initial weights and data order, "
            f"the masks differ by construction) is at most {MATCH_MARGIN:.0%} of the 1x1 mean; 'no' that the lower "
            f"bound is above it. Verdict: **{v}**.", "",
            "Behind unstructured STU-GAN (the 95 % interval of 4x1 − 1x1 above 0 at each of the last three "
            f"evaluations): **{'yes' if all(behind) else 'no' if not any(behind) else 'at some evaluations only'}**.",
            ""]
    cmp = [("static 1x1 − STU-GAN 4x1",
            {s: paired(values_at(curves, "static 1x1", s), values_at(curves, "STU-GAN 4x1", s)) for s in last})] \
        if "static 1x1" in curves else []
    out += section("### STU-GAN with 4x1 blocks still beats unstructured static", cmp, last)
    out += replay(study, "runs-replays-4b1d9cf", BLOCK_CELL, _commit(study, runs))
    out += ["What the blocks buy in speed: `benchmarks/efficiency/results/block_inference.md`.", ""]
    return "\n".join(out) + "\n"


def plot_rows(curves, path: Path) -> Path:
    """A later piece's learning curves (row -> seed -> curve): every row's mean over seeds, one panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for row in sorted(curves):
        steps = sorted({s for c in curves[row].values() for s in c})
        ax.plot(steps, [statistics.fmean(values_at(curves, row, s).values()) for s in steps],
                label=f"{row} (n={len(curves[row])})", lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("G steps")
    ax.set_ylabel(LABEL)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --- sparse compute: the headline cell trained on the sparse path ------------------------------------
SC_MASKED, SC_SPARSE, SC_CONTROL = ("STU-GAN, masked path", "STU-GAN, sparse compute on",
                                    "STU-GAN, masked path rerun (2 threads)")


def sparse_compute_curves(study: Path):
    """The headline cell's STU-GAN runs: the core grid's (the masked path, one thread), and
    runs-sparse-compute's: on the sparse path, and masked-path reruns at another thread count (a
    rounding change alone: how far it moves a run of the same seed)."""
    def in_cell(r) -> bool:
        return r.method == "stu" and abs(r.sparsity("G") - BLOCK_CELL[0]) < 1e-9 \
            and abs(r.sparsity("D") - BLOCK_CELL[1]) < 1e-9 and r.config.get("mask_block", "1x1") == "1x1"

    def core(r) -> str:
        return SC_MASKED if in_cell(r) and r.config.get("sparse_compute", "off") == "off" else "other"

    def own(r) -> str:
        if not in_cell(r):
            return "other"
        return SC_SPARSE if r.config.get("sparse_compute") == "on" else SC_CONTROL

    return _with_core(study, "runs-sparse-compute", core, own)


def render_sparse_compute(study: Path) -> str:
    runs = "runs-sparse-compute"
    curves, flops = sparse_compute_curves(study)
    out = header(study, runs, "STU-GAN trained with sparse compute vs the masked path (s_G 95 / s_D 70 %)",
                 "study-fmnist-sparse-compute.yaml")
    last = last_three(curves)
    if len(last) < 3 or SC_SPARSE not in curves:
        return "\n".join(out + [NOT_YET]) + "\n"
    rows = [r for r in (SC_MASKED, SC_SPARSE, SC_CONTROL) if r in curves]
    out += ["## The rows", "",
            "Masked path: the core grid's runs of the cell (one thread). Sparse compute: every masked layer of G and "
            "D forward and backward on its active weights only (`--sparse-compute on`, one thread). Masked path "
            "rerun: the core grid's run of a seed trained again at two threads, a change of float rounding alone.", "",
            *value_table(curves, flops, rows, last), ""]
    out += ["### Same seed, the other path: within the seed noise?", "",
            "| evaluation | comparison, by seed | mean [95 % CI] | sd of the masked runs over seeds | "
            "within the seed noise |", "|---|---|---|---|---|"]
    within, n_pairs = [], 0
    for s in last:
        noise = statistics.stdev(values_at(curves, SC_MASKED, s).values())
        for row, name in ((SC_SPARSE, "sparse − masked"), (SC_CONTROL, "rerun − masked")):
            if row not in curves:
                continue
            c = paired(values_at(curves, row, s), values_at(curves, SC_MASKED, s))
            lo, hi = c.ci
            ok = abs(c.mean) <= noise
            if row == SC_SPARSE:
                within.append(ok)
                n_pairs = c.n
            out.append(f"| {s:,} | {name}: " + ", ".join(f"seed {k} {fmt(v)}" for k, v in zip(c.seeds, c.diffs))
                       + f" | {fmt(c.mean)} [{fmt(lo)}, {fmt(hi)}] n={c.n} | {fmt(noise)} | "
                       + f"{'yes' if ok else 'no'} |")
    if n_pairs < 3:
        v = f"inconclusive (n={n_pairs} of 3 seed pairs)"
    else:
        v = "yes" if all(within) else "no" if not any(within) else "at some evaluations only"
    out += ["", "Same seed, same masks at set-up, same data order: the two paths differ only by float rounding "
            "(the products summed in another order), which GAN training amplifies like a rerun would; the rerun row "
            "shows how far a rounding change alone moves a run. 'Within the seed noise': the mean paired difference "
            "(sparse − masked) is at most the standard deviation of the masked runs across their seeds "
            f"(n={len(curves[SC_MASKED])}), at each of the last three evaluations, with 3 seed pairs. "
            f"Verdict: **{v}**.", ""]
    if SC_CONTROL in curves:
        shared = sorted(set(curves[SC_CONTROL]) & set(curves[SC_SPARSE]) & set(curves[SC_MASKED]))
        farther = [(s, k) for s in last for k in shared
                   if abs(curves[SC_SPARSE][k][s] - curves[SC_MASKED][k][s])
                   > abs(curves[SC_CONTROL][k][s] - curves[SC_MASKED][k][s])]
        total = len(last) * len(shared)
        if len(shared) < 3:
            cause = "inconclusive"
        elif len(farther) == total:
            cause = "the sparse path"
        elif 2 * len(farther) <= total:
            cause = "not the sparse path: masked reruns move runs as far"
        else:
            cause = "inconclusive"
        out += [f"The rounding control (seed{'s' if len(shared) > 1 else ''} {', '.join(map(str, shared))}): the "
                f"sparse run is farther from the masked run than the masked rerun is at {len(farther)} of {total} "
                f"evaluations. A masked rerun that moves as far says the cell is chaotic at this budget; the sparse "
                f"path is shown to differ from the masked path only where it moves farther than the reruns do, "
                f"at every evaluation of at least 3 control seeds, and cleared where it moves farther at no more "
                f"than half of them: with {len(shared)} control seed{'s' if len(shared) > 1 else ''}, the "
                f"cause of a 'no' above is **{cause}**.", ""]
    return "\n".join(out) + "\n"
