"""The diffusion study on Fashion-MNIST: tables, paired comparisons and verdicts from the committed runs.

    python benchmarks/study-diffusion/study_diffusion.py benchmarks/study-diffusion            # write results.md
    python benchmarks/study-diffusion/study_diffusion.py benchmarks/study-diffusion --check    # exit 1 if stale

reads ``runs-gate/`` (the dense regime gate: configs/sweeps/study-diffusion-gate.yaml), ``runs/`` (the
study's cells: configs/sweeps/study-diffusion.yaml) and, where present, ``speed.json`` (`sparsegan bench
--json` of the exported denoisers), the light files that benchmarks/study-fmnist/study_collect.py copies.

The rule is the Fashion-MNIST study's: a verdict uses the last three evaluations and must hold at each;
comparisons are paired by seed (the same initial weights, masks where both have them, data, noise and
steps), with 95 % t-intervals and Holm's correction across a claim's comparisons at each evaluation;
"matches dense" means the upper 95 % bound of sparse − dense is at most 10 % of the dense mean. A cell
with one seed is judged against the spread of same-seed log ratios between the same kinds of arm in the
cells that have seeds (the Fashion-MNIST study's single-run rule). A claim about every sparse-to-sparse
method is at best inconclusive at a sparsity while one of them has no judged cell there (one method
against the claim still makes it not reproduced).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from sparsegan.experiments.results import load_runs
from sparsegan.experiments.stats import Single, direction, holm, paired, pooled_sd
from sparsegan.run_folder import read_records

LABEL = "fid_domain@5000,nfe=20"
MARGIN = 0.10  # "matches dense": at most 10 % of the dense mean worse (upper 95 % bound)
MODERATE, HIGH = 0.5, 0.9  # Oliveira et al.: matches dense at 25-50 %, falls behind above
PLATEAU = 0.05  # the gate: the last three evaluations change by at most 5 % of the first of them
METHODS = {"static": "static", "stu/gradient": "RigL-DM", "stu/random": "MagRan-DM"}
SPARSE_TO_SPARSE = ("RigL-DM", "MagRan-DM")  # the methods the claims are about


def arm_of(run) -> str:
    """'dense', or '<method> <sparsity> %' (RigL-DM: stu with gradient regrowth; MagRan-DM: random)."""
    c = run.config
    if run.method == "dense":
        return "dense"
    name = METHODS.get(run.method + (f"/{c.get('grow', 'gradient')}" if run.method == "stu" else ""), run.method)
    return f"{name} {100 * float(c.get('sparsity_g', 0)):g} %"


def _is_imp(run) -> bool:
    return run.method == "imp"


def curves_of(folder: Path) -> tuple[dict[str, dict[int, dict[int, float]]], dict[str, dict[int, object]]]:
    """arm -> seed -> {step: value}, and arm -> seed -> the run, of the completed runs in ``folder``."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(dict)
    runs: dict[str, dict[int, object]] = defaultdict(dict)
    for run in load_runs(folder) if folder.is_dir() else []:
        series = dict(run.series(LABEL))
        if run.status == "completed" and series and not _is_imp(run) and "rounds" not in Path(run.name).parts:
            curves[arm_of(run)][run.seed] = series
            runs[arm_of(run)][run.seed] = run
    return curves, runs


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    return fmt(values[0]) if len(values) == 1 else f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def _at(curves, arm: str, step: int) -> dict[int, float]:
    return {seed: c[step] for seed, c in curves.get(arm, {}).items() if step in c}


def _arm_key(arm: str):
    if arm == "dense":
        return (0, 0.0, "")
    name, sparsity, _ = arm.rsplit(" ", 2)
    return (1, float(sparsity), list(METHODS.values()).index(name) if name in METHODS.values() else 9)


def gate(folder: Path, cells_steps: int | None = None, cells: dict | None = None) -> list[str]:
    """The dense regime gate's curve and where it flattens; ``cells_steps``: the cells' run length, set beside it;
    ``cells``: the cells' curves, whose dense run of the gate's seed trains as the gate does (set beside it)."""
    curves, runs = curves_of(folder)
    out = ["## The regime gate: the dense denoiser trained long", ""]
    if "dense" not in curves:
        return out + ["Not run yet.", ""]
    seed, curve = sorted(curves["dense"].items())[0]
    cfg = runs["dense"][seed].config
    steps = sorted(curve)
    out += [f"Dense, seed {seed}, {int(cfg.get('steps', 0)):,} steps, width {cfg.get('model_width')}, batch "
            f"{cfg.get('batch_size')}; `{LABEL}` (5,000 DDIM samples at NFE {cfg.get('sample_steps')} against "
            "5,000 training images, the EMA denoiser):", "",
            "| step | " + " | ".join(f"{s:,}" for s in steps) + " |", "|---|" + "---|" * len(steps),
            "| fid_domain | " + " | ".join(fmt(curve[s]) for s in steps) + " |", ""]
    last = [curve[s] for s in steps[-3:]]
    if len(last) < 3:
        return out + ["Fewer than three evaluations: no plateau judged yet.", ""]
    change = last[-1] / last[0] - 1
    flat = abs(change) <= PLATEAU
    out += [f"Over its last three evaluations it moves by {fmt(100 * change, 1)} % "
            f"({fmt(last[0])} → {fmt(last[-1])}): **{'a plateau' if flat else 'still changing'}** by the gate's rule "
            f"(at most {100 * PLATEAU:g} %; one seed, descriptive).", ""]
    first = plateau_step(curve)
    if first is not None:
        out += [f"The first evaluation at which its last three moved by at most {100 * PLATEAU:g} %: step {first:,} "
                f"({fmt(curve[first])}; {fmt(curve[steps[-1]])} at step {steps[-1]:,}, "
                f"{fmt(100 * (curve[steps[-1]] / curve[first] - 1), 1)} % from there).", ""]
    twin = (cells or {}).get("dense", {}).get(seed)
    if twin:
        shared = sorted(set(twin) & set(curve))
        gap = max((abs(twin[s] - curve[s]) for s in shared), default=0.0)
        out += [f"The cells' dense run of seed {seed} (their commit; the same training) against this one at the "
                f"{len(shared)} evaluations both made: "
                + ("the same values." if gap == 0 else f"a largest difference of {fmt(gap, 4)}.") , ""]
    if cells_steps is not None and cells_steps in curve:
        out += [f"The cells train {cells_steps:,} steps, where this run was at {fmt(curve[cells_steps])}: "
                f"{fmt(100 * (curve[cells_steps] / curve[steps[-1]] - 1), 1)} % from its last evaluation.", ""]
    return out


def plateau_step(curve: dict[int, float]) -> int | None:
    """The first evaluation step at which the last three evaluations moved by at most PLATEAU (relative)."""
    steps = sorted(curve)
    return next((s for a, s in zip(steps, steps[2:]) if abs(curve[s] / curve[a] - 1) <= PLATEAU), None)


def runs_table(curves, runs, last: list[int]) -> list[str]:
    out = [f"## Every cell at its last three evaluations ({', '.join(f'{s:,}' for s in last)} steps): mean ± sd over "
           "seeds", "",
           "| arm | seeds | " + " | ".join(f"{s:,}" for s in last) + " | sampling GFLOPs per image | training FLOPs "
           "/ dense |", "|---|---|" + "---|" * len(last) + "---|---|"]
    for arm in sorted(curves, key=_arm_key):
        flops = [r.summary.get("flops") or {} for r in runs[arm].values()]
        sampling = [f.get("sampling_per_image", {}).get("sparse") for f in flops]
        train = [f.get("train", {}).get("relative") for f in flops]
        sampling = [v for v in sampling if v is not None]
        train = [v for v in train if v is not None]
        out.append(f"| {arm} | {', '.join(map(str, sorted(curves[arm])))} | "
                   + " | ".join(_mean_sd(list(_at(curves, arm, s).values())) for s in last)
                   + f" | {fmt(statistics.fmean(sampling) / 1e9) if sampling else '-'} | "
                   f"{fmt(statistics.fmean(train)) if train else '-'} |")
    return out + [""]


def _cell(c, p: float | None = None) -> str:
    lo, hi = c.ci
    shown = "" if p is None else " p=" + ("-" if math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}")
    return f"{fmt(c.mean)} [{fmt(lo)}, {fmt(hi)}]{shown} n={c.n}"


def _dynamic(curves) -> list[str]:
    """The sparse-to-sparse arms (RigL-DM, MagRan-DM), in table order."""
    return [a for a in sorted(curves, key=_arm_key) if a.startswith(SPARSE_TO_SPARSE)]


def _static_of(arm: str) -> str:
    return "static " + arm.split(" ", 1)[1]


def _spread(curves, steps: list[int], pairs: list[tuple[str, str]]) -> dict[int, tuple[float, int]]:
    """step -> (sd, degrees of freedom) of one same-seed log ratio log(a / b) over the arm pairs (a, b) that
    have two or more seeds, deviations from each pair's own mean, pooled (the Fashion-MNIST study's
    single-pair yardstick: the spread of same-seed differences between methods, not of dense seeds)."""
    out = {}
    for s in steps:
        groups = []
        for a, b in pairs:
            va, vb = _at(curves, a, s), _at(curves, b, s)
            groups.append([math.log(va[k] / vb[k]) for k in sorted(set(va) & set(vb))])
        out[s] = pooled_sd(groups)
    return out


def _compare(va: dict[int, float], vb: dict[int, float], spread: tuple[float, int]):
    """a - b by seed: paired with two or more seeds; one seed pair as a :class:`Single` judged against
    ``spread`` (of same-seed log ratios)."""
    c = paired(va, vb)
    if c.n == 1:
        k = c.seeds[0]
        return Single(k, va[k], vb[k], *spread, relative=True)
    return c


def _seeds(c) -> tuple[int, ...]:
    return (c.seed,) if isinstance(c, Single) else c.seeds


def _sparsity(arm: str) -> float:
    return float(arm.rsplit(" ", 2)[1])


def _method(arm: str) -> str:
    return arm.rsplit(" ", 2)[0]


def _by_sparsity(states: dict[str, str], rule) -> str:
    """'at 50 %: **v**; at 90 %: **v**' with ``rule`` turning one sparsity's row states into its verdict. The
    claims are about every sparse-to-sparse method: while one of them has no judged cell at a sparsity, a
    'reproduced' there is only 'inconclusive' (one method against the claim still decides 'not reproduced')."""
    out = []
    for s in sorted({_sparsity(a) for a in states}):
        here = {_method(a): v for a, v in states.items() if _sparsity(a) == s}
        verdict, why = rule(list(here.values())), ""
        missing = [m for m in SPARSE_TO_SPARSE if m not in here]
        if verdict == "reproduced" and missing:
            verdict, why = "inconclusive", f" (no judged {' or '.join(missing)} cell yet)"
        out.append(f"at {s:g} %: **{verdict}**{why}")
    return "; ".join(out) or "**inconclusive** (no judgeable cell)"


def matches_dense(curves, last: list[int]) -> list[str]:
    """Oliveira et al.: sparse-to-sparse training matches or beats dense at moderate sparsity (their 25-50 %)
    and falls behind at higher. Each sparse-to-sparse cell against dense by seed, against the 10 % margin at
    each of the last three evaluations; a cell with one seed judged against the spread of same-seed log
    ratios sparse / dense of the cells with seeds."""
    spread = _spread(curves, last, [(a, "dense") for a in curves if a != "dense"])
    out = ["## Sparse-to-sparse training against dense (Oliveira et al. 2025)", "",
           "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | against dense |",
           "|---|" + "---|" * len(last) + "---|"]
    states = {}
    for arm in _dynamic(curves):
        cmp = [_compare(_at(curves, arm, s), _at(curves, "dense", s), spread[s]) for s in last]
        if not all(c.n for c in cmp):
            continue
        # the margin: 10 % of dense over the seeds in the pairs
        margin = [MARGIN * statistics.fmean(_at(curves, "dense", s)[k] for k in _seeds(c)) for s, c in zip(last, cmp)]
        v = ("-" if not all(c.judgeable for c in cmp) else
             "matches" if all(c.ci[1] <= m for c, m in zip(cmp, margin)) else
             "behind" if all(c.ci[0] > m for c, m in zip(cmp, margin)) else "inconclusive")
        if v != "-":
            states[arm] = v
        out.append(f"| {arm} − dense | " + " | ".join(f"{_cell(c)} margin {fmt(m)}" for c, m in zip(cmp, margin))
                   + f" | {v}{' (one seed)' if cmp[0].n == 1 else ''} |")
    moderate = {a: v for a, v in states.items() if _sparsity(a) <= 100 * MODERATE}
    high = {a: v for a, v in states.items() if _sparsity(a) >= 100 * HIGH}
    sds = [spread[s] for s in last]
    return out + ["", f"'matches': the upper 95 % bound of sparse − dense at most {MARGIN:.0%} of the dense mean (its "
                  "seeds in the pairs) at each evaluation; 'behind': the lower bound above it at each. A cell with one "
                  "seed is judged against the spread of same-seed log(sparse / dense) over the cells with seeds "
                  f"(sd {' / '.join(fmt(sd, 3) for sd, _ in sds)}, {' / '.join(str(df) for _, df in sds)} degrees of "
                  "freedom; taken from other cells than the one judged, so the interval it gives is an estimate).", "",
                  "Matches or beats dense at moderate sparsity (every sparse-to-sparse method): "
                  + _by_sparsity(moderate, lambda vs: "reproduced" if all(v == "matches" for v in vs) else
                                 "not reproduced" if any(v == "behind" for v in vs) else "inconclusive") + ".",
                  "Falls behind at high sparsity (every sparse-to-sparse method): "
                  + _by_sparsity(high, lambda vs: "reproduced" if all(v == "behind" for v in vs) else
                                 "not reproduced" if any(v == "matches" for v in vs) else "inconclusive") + ".", ""]


def beats_static(curves, last: list[int]) -> list[str]:
    """Oliveira et al.'s RigL-DM and MagRan-DM against Static-DM at the same sparsity: static − sparse-to-sparse
    per seed (positive: dynamic is better), Holm across the comparisons at each evaluation; a cell with one seed
    judged against the spread of same-seed log(static / sparse-to-sparse) of the cells with seeds."""
    spread = _spread(curves, last, [(_static_of(a), a) for a in _dynamic(curves)])
    rows = []
    for arm in _dynamic(curves):
        cmp = [_compare(_at(curves, _static_of(arm), s), _at(curves, arm, s), spread[s]) for s in last]
        if all(c.n for c in cmp):
            rows.append((arm, cmp))
    out = ["## Exploring the topology beats static masks (RigL-DM and MagRan-DM against Static-DM)", "",
           "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | verdict |",
           "|---|" + "---|" * len(last) + "---|"]
    judged = [i for i, (_, cmp) in enumerate(rows) if all(c.judgeable for c in cmp)]
    adjusted = [holm([rows[i][1][k].p for i in judged]) for k in range(len(last))]
    states = {}
    for i, (arm, cmp) in enumerate(rows):
        one = " (one seed)" if cmp[0].n == 1 else ""
        if i not in judged:
            out.append(f"| static − {arm} | " + " | ".join(_cell(c) for c in cmp) + f" | -{one} |")
            continue
        j = judged.index(i)
        dirs = [direction(adjusted[k][j], c.ci) for k, c in enumerate(cmp)]
        states[arm] = ("reproduced" if all(d == 1 for d in dirs) else
                       "not reproduced (the opposite holds)" if all(d == -1 for d in dirs) else "inconclusive")
        out.append(f"| static − {arm} | " + " | ".join(_cell(c, adjusted[k][j]) for k, c in enumerate(cmp))
                   + f" | {states[arm]}{one} |")
    sds = [spread[s] for s in last]
    return out + ["", "A cell with one seed is judged against the spread of same-seed log(static / sparse-to-sparse) "
                  f"over the cells with seeds (sd {' / '.join(fmt(sd, 3) for sd, _ in sds)}, "
                  f"{' / '.join(str(df) for _, df in sds)} degrees of freedom).", "",
                  "Verdict (every sparse-to-sparse method ahead of static): "
                  + _by_sparsity(states, lambda vs: "reproduced" if all(v == "reproduced" for v in vs) else
                                 "not reproduced" if any(v.startswith("not") for v in vs) else "inconclusive")
                  + ".", ""]


def _rounds(run) -> dict[int, tuple[float, dict[int, float]]]:
    """An IMP run's (or control's) completed rounds: round -> (G sparsity, {step: value})."""
    density = {r["round"]: (r.get("final_density") or r.get("density") or {}).get("G", 1.0)
               for r in run.of_kind("round")}
    out = {}
    for path in sorted((run.path / "rounds").glob("round-*")) if (run.path / "rounds").is_dir() else []:
        loaded = load_runs(path)
        k = int(path.name.split("-")[1])
        if loaded and loaded[0].status == "completed" and dict(loaded[0].series(LABEL)):
            out[k] = (1.0 - density.get(k, 1.0), dict(loaded[0].series(LABEL)))
    return out


def tickets(folder: Path, curves) -> list[str]:
    """Jiang et al.: an IMP ticket of the denoiser matches dense (its chain's round 0) at high sparsity and
    beats random pruning with its per-layer counts. Paired by seed; one seed pair judged against the spread
    of same-seed log ratios between two sparse methods of the cells (:func:`_spread`)."""
    chains: dict[str, dict[int, dict]] = {"ticket": {}, "random": {}}
    collapsed = {}  # (kind, seed) -> {round: {net: layers with no weight}}
    for run in load_runs(folder) if folder.is_dir() else []:
        if _is_imp(run) and run.status == "completed" and "rounds" not in Path(run.name).parts:
            kind = "random" if run.config.get("imp_control") == "random" else "ticket" \
                if run.config.get("imp_control", "none") == "none" else None
            if kind:
                chains[kind][run.seed] = _rounds(run)
                empty = run.empty_layers()  # reads every round's records: once
                if empty:
                    collapsed[kind, run.seed] = empty
    out = ["## DDPM lottery tickets (Jiang et al. 2023): IMP of the denoiser against dense and random pruning", ""]
    ticket = {seed: r for seed, r in chains["ticket"].items() if 0 in r}
    if not ticket:
        return out + ["Not run yet: **inconclusive**.", ""]
    steps = sorted(ticket[min(ticket)][0][1])[-3:]
    spread = _spread(curves, steps, [(_static_of(a), a) for a in _dynamic(curves)])

    def compare(a: dict, ka: int, b: dict, kb: int) -> list:
        cmp = []
        for s in steps:
            va = {seed: r[ka][1][s] for seed, r in a.items() if ka in r and s in r[ka][1]}
            vb = {seed: r[kb][1][s] for seed, r in b.items() if kb in r and s in r[kb][1]}
            c = _compare(va, vb, spread.get(s, (math.nan, 0)))
            cmp.append(c)
        return cmp

    rounds = sorted({k for r in ticket.values() for k in r} - {0})
    out += ["| round | G sparsity | ticket − dense (95 % CI) | matches dense | random − ticket (95 % CI, Holm p) "
            "| ticket beats random |", "|---|---|---|---|---|---|"]
    vs_random = [(k, compare(chains["random"], k, ticket, k)) for k in rounds]
    vs_random = [(k, c) for k, c in vs_random if all(x.n for x in c)]
    adjusted = [holm([c[i].p for _, c in vs_random]) for i in range(len(steps))]
    states = {}
    for k in rounds:
        dense = compare(ticket, k, ticket, 0)
        margin = [MARGIN * statistics.fmean([r[0][1][s] for r in ticket.values() if s in r[0][1]]) for s in steps]
        m = None if not all(c.judgeable for c in dense) else "yes" if all(
            c.ci[1] <= x for c, x in zip(dense, margin)) else "no" if all(
            c.ci[0] > x for c, x in zip(dense, margin)) else "mixed"
        j = next((i for i, (kk, _) in enumerate(vs_random) if kk == k), None)
        if j is None:
            rnd, b = "-", None
        else:
            cmp = vs_random[j][1]
            dirs = [direction(adjusted[i][j], c.ci) for i, c in enumerate(cmp)]
            b = None if not all(c.judgeable for c in cmp) else "yes" if all(d == 1 for d in dirs) else \
                "worse" if all(d == -1 for d in dirs) else "no"
            rnd = " / ".join(_cell(c, adjusted[i][j]) for i, c in enumerate(cmp))
        states[k] = (m, b)
        sparsity = next(r[k][0] for r in ticket.values() if k in r)
        out.append(f"| {k} | {fmt(100 * sparsity, 1)} % | {' / '.join(_cell(c) for c in dense)} | {m or '-'} | "
                   f"{rnd} | {b or '-'} |")
    last = max(rounds, default=None)
    m, b = states.get(last, (None, None))
    verdict = ("reproduced" if m == "yes" and b == "yes" else
               "not reproduced" if m == "no" or b == "worse" else "inconclusive")
    sds = [spread.get(s, (math.nan, 0)) for s in steps]
    return out + ["", f"At {', '.join(f'{s:,}' for s in steps)} steps of each round. With one seed pair a "
                  "difference is judged against the cells' spread of same-seed log ratios between two sparse methods "
                  f"(sd {' / '.join(fmt(sd, 3) for sd, _ in sds)}, {' / '.join(str(df) for _, df in sds)} degrees of "
                  "freedom). 'Matches': the upper bound within 10 % of dense; 'beats': random − ticket above 0 after "
                  f"Holm's correction over the rounds, at each evaluation. Claim, at the last round ({last}): "
                  f"**{verdict}**.", ""] + [
        f"The {kind} chain of seed {seed} leaves a layer of the denoiser with no weight (a global ranking can "
        "empty a layer; such a layer passes on nothing but its bias): " + "; ".join(
            f"round {k}: {', '.join(n for names in nets.values() for n in names)}" for k, nets in empty.items()) + ".\n"
        for (kind, seed), empty in sorted(collapsed.items())]


def speed(folder: Path) -> list[str]:
    path = folder / "speed.json"
    out = ["## Sampling speed: the exported sparse denoiser against dense", ""]
    if not path.is_file():
        return out + ["Not measured yet.", ""]
    for m in json.loads(path.read_text())["measurements"]:  # each with its own conditions (study_speed.py)
        out += [f"`{m['command']}` ({m['conditions']}): one call samples a batch, NFE = {m['nfe']} denoiser "
                "calls per image; images per second = batch / the median time of a call.", "",
                "| denoiser | batch | dense ms | sparse ms | dense images/s | sparse images/s | speed-up |",
                "|---|---|---|---|---|---|---|"]
        for name, bench in m["runs"].items():
            for bs, r in sorted(((k, v) for k, v in bench.items() if k.isdigit()), key=lambda kv: int(kv[0])):
                out.append(f"| {name} | {bs} | {fmt(r['dense_ms'], 0)} | {fmt(r['sparse_ms'], 0)} | "
                           f"{fmt(1000 * int(bs) / r['dense_ms'], 1)} | {fmt(1000 * int(bs) / r['sparse_ms'], 1)} | "
                           f"{fmt(r['speedup'])}x |")
        out.append("")
    return out


def _chains(folder: Path) -> list:
    """The runs in ``folder`` as the header counts them: an IMP chain's rounds count as their chain."""
    return [run for run in (load_runs(folder) if folder.is_dir() else [])
            if "rounds" not in run.path.relative_to(folder).parts]


def _counted(counts: dict) -> str:
    return "; ".join(f"{key}: {n} run{'s' if n > 1 else ''}" for key, n in counts.items())


def commits_of(runs: list, folder: Path) -> str:
    """The commits ``runs`` (:func:`_chains` of ``folder``) trained at, each with how many runs trained (or
    resumed) at it: from each run's config.json (its latest segment's and its first's) and its resume
    records, as the runs recorded them; the folder's COMMIT file (written by study_collect.py) where no run
    records one."""
    counts: dict[str, int] = {}
    for run in runs:
        environment = run.config.get("environment", {})
        shas = {str(environment.get("commit", ""))[:7], str(environment.get("started", {}).get("commit", ""))[:7]}
        shas |= {str(r.get("commit", ""))[:7] for r in read_records(run.path) if r.get("kind") == "resume"}
        for sha in sorted(shas - {""}):
            counts[f"`{sha}`"] = counts.get(f"`{sha}`", 0) + 1
    if not counts:
        file = folder / "COMMIT"
        return f"`{file.read_text().strip()[:7]}`" if file.is_file() else "-"
    return _counted(counts)


def threads_of(runs: list) -> str:
    """How many of ``runs`` trained on each torch thread count (config.json's, the latest start or resume);
    "-" where none records it."""
    counts: dict[int, int] = {}
    for run in runs:
        threads = run.config.get("environment", {}).get("torch_threads")
        if threads is not None:
            counts[int(threads)] = counts.get(int(threads), 0) + 1
    return _counted(dict(sorted(counts.items()))) or "-"


def render(folder: Path) -> str:
    chains = {name: _chains(folder / name) for name in ("runs", "runs-gate")}
    commit = {name: commits_of(chains[name], folder / name) for name in chains}
    curves, runs = curves_of(folder / "runs")
    any_run = next((r for arm in runs.values() for r in arm.values()), None)
    cfg = any_run.config if any_run else {}
    out = ["# The diffusion study on Fashion-MNIST: sparse DDPM denoisers trained from scratch", "",
           "Generated by `python benchmarks/study-diffusion/study_diffusion.py benchmarks/study-diffusion` from the "
           f"run folders in `runs-gate/` (trained at commit {commit['runs-gate']}) and `runs/` (trained or resumed "
           f"at commit {commit['runs']}; torch threads {threads_of(chains['runs'])}); do not edit by hand, "
           "`tests/test_study_diffusion.py` re-derives it. "
           "DDPM (noise prediction, linear schedule, T = 1000), "
           + (f"the U-Net of width {cfg.get('model_width', '-')}, {int(cfg.get('steps', 0)):,} steps per run at batch "
              f"{cfg.get('batch_size', '-')}" if cfg else "the cells' U-Net as `configs/sweeps/study-diffusion.yaml` "
              "sets it (none finished yet)") + ", sampled by DDIM; "
           f"metric `{LABEL}` (lower is better). Each comparison: mean paired difference [95 % CI], Holm-adjusted p "
           "where a claim has several, seed pairs, at each of the last three evaluations.", ""]
    out += gate(folder / "runs-gate", int(cfg["steps"]) if cfg.get("steps") else None, curves)
    if not curves:
        return "\n".join(out + ["## The cells", "", "Not run yet.", ""] + speed(folder)) + "\n"
    common = [set(c) for arm in curves.values() for c in arm.values()]
    last = sorted(set.intersection(*common))[-3:]
    out += runs_table(curves, runs, last)
    if "dense" in curves and len(last) == 3 and any(arm != "dense" for arm in curves):
        out += matches_dense(curves, last) + beats_static(curves, last)
    elif set(curves) == {"dense"}:  # the sweep runs dense first: no comparison before a sparse cell finishes
        out += ["## The comparisons", "", "No sparse cell has finished yet.", ""]
    out += tickets(folder / "runs", curves)
    out += speed(folder)
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="benchmarks/study-diffusion")
    ap.add_argument("--check", action="store_true", help="exit 1 if results.md differs from what the runs give")
    args = ap.parse_args()
    text, path = render(args.folder), args.folder / "results.md"
    if args.check:
        ok = path.is_file() and path.read_text() == text
        print(f"results.md {'matches' if ok else 'does not match'} the runs")
        sys.exit(0 if ok else 1)
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
