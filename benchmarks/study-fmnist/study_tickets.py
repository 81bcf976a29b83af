"""The lottery-ticket pieces: GAN Tickets' claims (``runs-tickets/``: the IMP chain of G, its
random-reinit and random-pruning controls, pruning D, D's initialisation) and Generative Tickets'
(``runs-generative-tickets/``: the VAE and the AE under IMP with late rewinding, early-bird, a GAN
ticket on the VAE decoder).

GAN Tickets' comparisons are paired by seed: a chain and its controls of one seed share the initial
weights and data order, so each comparison is the per-seed difference, with a 95 % t-interval and
Holm's correction across the comparisons of a claim at each evaluation, as the core grid's. Where a
comparison has one seed pair, its difference is judged against the spread of same-seed differences
between two sparse methods in the core grid (static − STU-GAN within each cell, pooled over the
cells, at the same step), with that estimate's degrees of freedom in the t quantile
(:class:`sparsegan.experiments.stats.Single`)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from study_common import (
    DENSE_GATE,
    LABEL,
    MATCH_MARGIN,
    _family,
    agreement,
    comparison_head,
    completed_runs,
    fmt,
    header,
    load,
    mean_sd,
    started_with,
    train_flops,
    values_at,
)

from sparsegan.experiments.results import load_runs
from sparsegan.experiments.stats import Paired, Single, paired, pooled_sd


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


def _empty_layer_lines(run) -> list[str]:
    """A sentence naming the rounds whose masks leave a layer without a weight (layer collapse), if any."""
    empty = run.empty_layers()
    if not empty:
        return []
    groups: dict[str, list[int]] = {}
    for k in sorted(empty):
        groups.setdefault("; ".join(f"{net}'s {', '.join(names)}" for net, names in sorted(empty[k].items())),
                          []).append(k)
    said = "; ".join(f"round{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}: {layers}"
                     for layers, ks in groups.items())
    return [f"Rounds whose masks leave a layer with no weight (a global ranking can empty a layer; such a layer "
            f"passes on nothing but its bias): {said} (the chain's summary records per-layer densities for every "
            "round but the last).", ""]


def _tail(curve: list[tuple[int, float]]) -> list[float]:
    """The last three evaluations of a round (rounds of one chain share their schedule)."""
    return [v for _, v in curve[-3:]]


def _spread(study: Path, steps: list[int]) -> dict[int, tuple[float, int]]:
    """step -> (sd, degrees of freedom) of one same-seed log ratio between two sparse methods: the core
    grid's log(static / STU-GAN) per seed, deviations from each cell's mean, pooled over the cells,
    at the step the core grid evaluated nearest to each of ``steps``.
    Why not the dense seeds' sd times √2: same-seed differences between two sparse methods vary more than
    two dense runs do, and the dense sd has 4 degrees of freedom, where 1.96 is not the t quantile. Why the
    log ratio: the spread of differences grows with the level (sd 0.3 to 5 across the cells at 8,000
    steps), the spread of log ratios much less (0.05 to 0.17), so one pooled value fits every cell."""
    curves = load(study / "runs")[0] if (study / "runs").is_dir() else {}
    evaluated = sorted({s for arm in curves.values() for c in arm.values() for s in c})
    out = {}
    for want in steps:  # the nearest step the core grid evaluated (the later of two as near)
        s = min(reversed(evaluated), key=lambda e: abs(e - want)) if evaluated else want
        groups = []
        for arm in curves:
            if arm.startswith("static "):
                stu = values_at(curves, "stu " + arm.removeprefix("static "), s)
                static = values_at(curves, arm, s)
                groups.append([math.log(static[k] / stu[k]) for k in sorted(set(static) & set(stu))])
        out[want] = pooled_sd(groups)
    return out


def _cells(values: list[float]) -> str:
    return " / ".join(fmt(v) for v in values) if values else "-"


def _same_as_core(study: Path, seed: int, curve: list[tuple[int, float]], chain: Path) -> list[str]:
    """Round 0 (dense) against the core grid's dense run of the same seed at the steps both evaluated:
    the same training code at the same thread count gives the same curve, which ties the chain to the core
    grid's runs."""
    runs = [r for r in load_runs(study / "runs") if r.method == "dense" and r.seed == seed and
            r.status == "completed"] if (study / "runs").is_dir() else []
    shared, same = agreement(curve, runs[0].series(LABEL) if runs else [])
    if not shared:
        return []
    resumed = [r["step"] for r in runs[0].of_kind("resume") if r["step"] < max(shared)]
    core_threads, chain_threads = started_with(runs[0].path), started_with(chain)
    if same != "the same values" and core_threads and chain_threads and core_threads != chain_threads:
        same += (f" (the core run started at {core_threads} torch threads, the chain at {chain_threads}: "
                 "`threads.json`; another float rounding from the first step, the same initial weights and data "
                 "order)")
    elif same != "the same values" and resumed:
        same += (f" (the core run was resumed at step {', '.join(f'{s:,}' for s in resumed)}: the study README "
                 "says why a resume may drift)")
    elif same != "the same values":
        same += (" (not explained here: neither run was resumed before it; the ticket claims pair rounds within "
                 "chains of one seed, which this does not touch)")
    return [f"Round 0 of seed {seed} against the core grid's dense run of the same seed at the {len(shared)} "
            f"evaluations both made: {same}.", ""]


def _chains(study: Path, runs: str) -> dict[str, dict[int, object]]:
    """chain kind -> seed -> the chain's run."""
    chains: dict[str, dict[int, object]] = {}
    for run in completed_runs(study / runs):
        c = run.config
        if c.get("imp_control", "none") != "none":
            key = f"control {c['imp_control']}"
        elif c.get("prune_nets") == "GD":
            key = "IMP_GD"
        elif int(c.get("rewind_step") or 0) > 0:
            key = f"late rewinding, D {c.get('imp_d')}"
        else:
            key = "IMP_G"
        chains.setdefault(key, {})[int(c.get("seed", 0))] = run
    return chains


Chain = dict[int, dict[int, tuple[dict[str, float], list[tuple[int, float]]]]]  # seed -> round -> rounds' entry


@dataclass(frozen=True)
class _Judge:
    """Paired comparisons of two chains' rounds at the last three evaluations of a round (``steps``): by
    seed where two or more seeds have both rounds, else the one pair against the core grid's spread."""
    steps: list[int]
    spread: dict[int, tuple[float, int]]

    def compare(self, a: Chain, ka: int, b: Chain, kb: int) -> dict[int, Paired | Single]:
        """step -> a's round ka − b's round kb, over the seeds with both at each of the steps."""
        at = {}
        for s in self.steps:
            va = {seed: dict(r[ka][1]).get(s) for seed, r in a.items() if ka in r}
            vb = {seed: dict(r[kb][1]).get(s) for seed, r in b.items() if kb in r}
            va = {k: v for k, v in va.items() if v is not None}
            vb = {k: v for k, v in vb.items() if v is not None}
            c = paired(va, vb)
            if c.n == 1:
                sd, df = self.spread.get(s, (math.nan, 0))
                seed = c.seeds[0]
                c = Single(seed, va[seed], vb[seed], sd, df, relative=True)
            at[s] = c
        return at

    def yardstick(self) -> str:
        if not self.steps:
            return "none: no evaluations to take it at"
        sds = [self.spread.get(s, (math.nan, 0)) for s in self.steps]
        return (f"sd of the log ratio {' / '.join(fmt(sd, 3) for sd, _ in sds)} with "
                f"{' / '.join(str(df) for _, df in sds)} degrees of freedom")


def _seeds(chain: Chain, k: int) -> list[int]:
    return sorted(seed for seed, r in chain.items() if k in r)


def _values(chain: Chain, k: int, steps: list[int]) -> str:
    """A round's value at each of the steps: the mean over seeds (± sd with two or more)."""
    cells = []
    for s in steps:
        vals = [dict(r[k][1])[s] for r in chain.values() if k in r and s in dict(r[k][1])]
        cells.append(mean_sd(vals))
    return " / ".join(cells) if any(c != "-" for c in cells) else "-"


def _cmp_cell(c) -> str:
    lo, hi = c.ci
    return f"{fmt(c.mean)} [{fmt(lo)}, {fmt(hi)}] n={c.n}" if c.n else "-"


def _margin_state(cmp: dict[int, Paired | Single], margin: dict[int, float]) -> str | None:
    """'yes' if the upper 95 % bound is at most the margin at each evaluation, 'no' if the lower bound is
    above it at each, 'mixed' otherwise; None where a comparison cannot be judged."""
    if not cmp or any(not c.judgeable or math.isnan(margin[s]) for s, c in cmp.items()):
        return None
    flags = [c.ci[1] <= margin[s] for s, c in cmp.items()]
    if all(flags):
        return "yes"
    return "no" if all(c.ci[0] > margin[s] for s, c in cmp.items()) else "mixed"


def _matching(g: Chain, controls: dict[str, Chain], judge: _Judge) -> tuple[list[str], list[int]]:
    """Up to which round the IMP ticket matches dense (round 0 of its own seed), within the study's margin;
    the controls' values beside it (their comparisons: :func:`_controls`)."""
    rounds = sorted({k for r in g.values() for k in r} - {0})
    out = ["## Up to which sparsity does the IMP ticket match dense?", "",
           "| round | G sparsity | seeds | IMP ticket | ticket − dense at each evaluation | matches dense "
           "| random reinit | random pruning |", "|---|---|---|---|---|---|---|---|",
           f"| 0 | 0.0 % | {len(_seeds(g, 0))} | {_values(g, 0, judge.steps)} | - | - | - | - |"]
    states = []
    for k in rounds:
        c = judge.compare(g, k, g, 0)
        margin = {s: MATCH_MARGIN * statistics.fmean([dict(r[0][1])[s] for r in g.values()
                                                       if 0 in r and s in dict(r[0][1])] or [math.nan])
                  for s in judge.steps}
        m = _margin_state(c, margin)
        states.append((k, _sparsity(g, k), m))
        out.append(f"| {k} | {fmt(100 * _sparsity(g, k), 1)} % | {len(_seeds(g, k))} | {_values(g, k, judge.steps)} "
                   f"| {' / '.join(_cmp_cell(x) for x in c.values()) or '-'} | {m or '-'} | "
                   + " | ".join(_values(controls.get(n, {}), k, judge.steps) for n in ("reinit", "random")) + " |")
    last_match = None
    for _, sp, m in states:
        if m != "yes":
            break
        last_match = sp
    if not states or any(m is None for *_, m in states):
        verdict = "inconclusive (a round without three evaluations or without a spread to judge it by)"
    else:
        verdict = (f"the ticket matches dense at every round up to {100 * last_match:.1f} % sparsity" if last_match
                   else "the ticket matches dense at no round")
        for state, what in (("no", "behind dense beyond the margin at each of the last three evaluations"),
                            ("mixed", "neither within nor beyond the margin at each")):
            ks = [str(k) for k, _, m in states if m == state]
            if ks:
                verdict += f"; {what} at rounds {', '.join(ks)}"
    return out + ["", f"'Matches dense': the upper 95 % bound of ticket − dense is at most {MATCH_MARGIN:.0%} of "
                  "round 0's mean at each of the last three evaluations ('yes'); 'no': the lower bound above it "
                  "at each; 'mixed': neither (the core grid's rule for STU-GAN against dense).", "",
                  f"Matching: {verdict}.", ""], [k for k, *_ in states]


def _sparsity(chain: Chain, k: int) -> float:
    dens = [r[k][0].get("G", 1.0) for r in chain.values() if k in r]
    return 1 - dens[0] if dens else math.nan


def _controls(g: Chain, controls: dict[str, Chain], judge: _Judge) -> list[str]:
    """The ticket against each control, round by round: control − ticket (positive: the ticket is better),
    Holm across the rounds of one control at each evaluation."""
    out = []
    for name, label in (("reinit", "random reinitialisation"), ("random", "random pruning")):
        c = controls.get(name, {})
        rows = [(f"round {k} ({fmt(100 * _sparsity(g, k), 1)} %)", judge.compare(c, k, g, k))
                for k in sorted({k for r in c.values() for k in r} & {k for r in g.values() for k in r} - {0})]
        rows = [(n, cmp) for n, cmp in rows if cmp and all(x.n for x in cmp.values())]
        out += [f"## The ticket against {label} (control − ticket: positive, the ticket is better)", ""]
        if not rows:
            why = "no round comparable with the ticket's" if c else "not run yet"
            out += [f"{why[0].upper() + why[1:]}: **inconclusive**.", ""]
            continue
        lines, verdicts = _family(rows, judge.steps, +1)
        won = [n.split(" (")[0] for (n, _), v in zip(rows, verdicts) if v == "reproduced"]
        lost = [n.split(" (")[0] for (n, _), v in zip(rows, verdicts) if v.startswith("not reproduced")]
        v = ("reproduced" if len(won) == len(rows) else "reproduced at some sparsities only" if won else
             "not reproduced" if lost else "inconclusive")
        said = [f"better at {', '.join(won)}"] * bool(won) + [f"the control better at {', '.join(lost)}"] * bool(lost)
        out += [*comparison_head(judge.steps), *lines, "",
                f"Claim (the ticket beats {label}): **{v}**" + (f" ({'; '.join(said)})" if said else "") + ".", ""]
    return out


def _pruning_d(g: Chain, gd: Chain, judge: _Judge) -> list[str]:
    """IMP_GD against IMP_G at the same G sparsity: GAN Tickets finds pruning D matters little."""
    out = ["## Pruning D too (IMP_GD) or not (IMP_G): the paper finds it matters little", "",
           "| round | G / D sparsity (IMP_GD) | seeds | IMP_G | IMP_GD | IMP_GD − IMP_G at each evaluation | "
           "within the margin |", "|---|---|---|---|---|---|---|"]
    states = []
    for k in sorted({k for r in gd.values() for k in r} & {k for r in g.values() for k in r} - {0}):
        c = judge.compare(gd, k, g, k)
        margin = {s: MATCH_MARGIN * statistics.fmean([dict(r[k][1])[s] for r in g.values()
                                                       if k in r and s in dict(r[k][1])] or [math.nan])
                  for s in judge.steps}
        # both directions: within ± the margin at each evaluation, or beyond it (either way) at each
        judged = all(x.judgeable for x in c.values()) and c and not any(math.isnan(m) for m in margin.values())
        w = None if not judged else "yes" if all(-margin[s] <= x.ci[0] and x.ci[1] <= margin[s]
                                                 for s, x in c.items()) \
            else "no" if all(x.ci[0] > margin[s] or x.ci[1] < -margin[s] for s, x in c.items()) else "mixed"
        states.append(w)
        d = next(r[k][0] for r in gd.values() if k in r)
        out.append(f"| {k} | {fmt(100 * (1 - d.get('G', 1)), 1)} / {fmt(100 * (1 - d.get('D', 1)), 1)} % | "
                   f"{len(_seeds(gd, k))} | {_values(g, k, judge.steps)} | {_values(gd, k, judge.steps)} | "
                   f"{' / '.join(_cmp_cell(x) for x in c.values()) or '-'} | {w or '-'} |")
    v = ("inconclusive" if not states or any(w is None for w in states) else
         "reproduced" if all(w == "yes" for w in states) else "not reproduced" if "no" in states else "inconclusive")
    return out + ["", f"'yes': the 95 % interval of IMP_GD − IMP_G within ± {MATCH_MARGIN:.0%} of IMP_G's mean at "
                  "each of the last three evaluations; 'no': entirely beyond it at each; 'mixed': neither. "
                  f"Claim (pruning D matters little): **{v}**.", ""]


def _d_initialisation(inits: dict[str, Chain], rewind: int, study: Path) -> list[str]:
    """D reset to init or kept, against D rewound with G, under late rewinding (one seed): GAN Tickets
    finds D's initialisation matters a lot."""
    late = next(iter(inits.values()))
    steps = sorted({s for r in late.values() for k in r if k for s, _ in r[k][1]})[-3:]  # rewound rounds
    # a late-rewound round's step s is step s + rewind of training: the spread of runs that far in
    judge = _Judge(steps, dict(zip(steps, _spread(study, [s + rewind for s in steps]).values())))
    out = [f"## D's initialisation under late rewinding (step {rewind}): rewound with G, reset to init, or kept "
           "from the previous round; the paper finds it matters a lot", "",
           f"Each value: a round's last three evaluations, at {', '.join(f'{s:,}' for s in steps)} steps of the "
           f"round, which are {', '.join(f'{s + rewind:,}' for s in steps)} steps of training (a late-rewound "
           "round counts its steps from the rewind point).", "",
           "| round | G sparsity | " + " | ".join(f"D {n}" for n in inits) + " |", "|---|---|" + "---|" * len(inits)]
    ks = sorted(set.intersection(*({k for r in c.values() for k in r} for c in inits.values())) - {0})
    for k in ks:
        out.append(f"| {k} | {fmt(100 * _sparsity(late, k), 1)} % | "
                   + " | ".join(_values(c, k, steps) for c in inits.values()) + " |")
    rows = [(f"D {n} − D rewind, round {k}", judge.compare(inits[n], k, inits["rewind"], k))
            for k in ks for n in inits if n != "rewind" and "rewind" in inits]
    rows = [(n, cmp) for n, cmp in rows if cmp and all(x.n for x in cmp.values())]
    if len(inits) < 3 or not rows:
        return out + ["", "Claim (D's initialisation matters a lot): **inconclusive** (the three initialisations "
                      "have not all finished a round).", ""]
    # Two-sided: a difference either way shows that D's initialisation matters.
    lines, verdicts = _family(rows, steps, +1)
    differs = {k: any(not v.startswith("inconclusive") for (n, _), v in zip(rows, verdicts)
                      if n.endswith(f"round {k}")) for k in ks}
    v = ("reproduced" if all(differs.values()) else "reproduced at some rounds only" if any(differs.values())
         else "inconclusive (no difference beyond the noise)")
    out += ["", *comparison_head(steps, "differs"), *lines, "",
            f"One seed: each difference against the core grid's spread of same-seed differences between sparse "
            f"methods at these steps of training ({judge.yardstick()}). A row 'reproduced': "
            "D's initialisation worse than rewinding beyond the noise at each evaluation; 'not reproduced (the "
            "opposite holds)': better at each. Either way it matters. "
            f"Claim (D's initialisation matters a lot): **{v}**.", ""]
    return out


def _late_vs_init(g: Chain, late: Chain, rewind: int, study: Path) -> list[str]:
    """Descriptive: what rewinding late (with D rewound too) buys over rewinding to init, at the same G
    sparsity and the same steps of training."""
    out = [f"Late rewinding (step {rewind}, D rewound) against IMP_G's rewinding to initialisation, at the "
           f"same G sparsity and the same steps of training: a late-rewound round counts its steps from the "
           f"rewind point, so its step s is step s + {rewind} of training, and only evaluations both chains "
           "made at the same step of training are set side by side:", "",
           "| round | G sparsity | steps of training | IMP_G (to init) | late rewinding | late − to init |",
           "|---|---|---|---|---|---|"]
    rows = []  # (round, seed, IMP_G's curve, the late chain's by steps of training, their common steps)
    seeds = sorted(set(late) & set(g))
    for k in sorted({k for r in late.values() for k in r} & {k for r in g.values() for k in r} - {0}):
        seed = next((s for s in seeds if k in late[s] and k in g[s]), None)
        if seed is not None:
            a, b = dict(g[seed][k][1]), {s + int(rewind): v for s, v in late[seed][k][1]}
            rows.append((k, seed, a, b, sorted(set(a) & set(b))[-3:]))
    spread = _spread(study, sorted({s for *_, common in rows for s in common}))  # the core grid read once
    aligned = []
    for k, seed, a, b, common in rows:
        cmp = [Single(seed, b[s], a[s], *spread[s], relative=True) for s in common]
        aligned.append(len(common))
        out.append(f"| {k} | {fmt(100 * _sparsity(late, k), 1)} % | {' / '.join(f'{s:,}' for s in common) or '-'} | "
                   f"{_cells([a[s] for s in common])} | {_cells([b[s] for s in common])} | "
                   f"{' / '.join(_cmp_cell(c) for c in cmp) or '-'} |")
    return out + ["", f"Descriptive (one seed each; {min(aligned, default=0)} aligned evaluation(s) per round, where "
                  "the study's rule asks three; the interval: the core grid's spread of same-seed differences "
                  "between sparse methods at that step).", ""]


def render_tickets(study: Path) -> str:
    runs = "runs-tickets"
    found = _chains(study, runs)
    first = found["IMP_G"][min(found["IMP_G"])] if "IMP_G" in found else None
    cfg = first.config if first else {}
    seeds = sorted(found.get("IMP_G", {}))
    per_round = (f"{int(cfg['steps']):,}" if "steps" in cfg else "-") + " G steps per round"
    out = header(study, runs, f"GAN Tickets' claims (IMP of the generator, {per_round}, "
                 f"seeds {', '.join(map(str, seeds)) or '-'})", "study-fmnist-tickets.yaml").copy()
    out[2] = out[2].replace("`configs/sweeps/study-fmnist-tickets.yaml`", "`configs/sweeps/study-fmnist-tickets.yaml` "
                            "(seed 0; seeds 1 and 2: `configs/sweeps/study-fmnist-tickets-seeds.yaml`)")
    rate = f"{100 * float(cfg['imp_rate']):g} %" if "imp_rate" in cfg else "-"
    out[2] = out[2].replace("12,000 G steps", f"{per_round}, {rate} of the remaining weights pruned per round")
    g = {seed: _rounds(run) for seed, run in found.get("IMP_G", {}).items()}
    g = {seed: r for seed, r in g.items() if 0 in r}
    if not g:
        return "\n".join(out + ["The IMP chain has no completed dense round yet."]) + "\n"
    steps = [s for s, _ in g[min(g)][0][1][-3:]]
    judge = _Judge(steps, _spread(study, steps))
    out += ["Each value: a round's last three evaluations (" + (", ".join(f"{s:,}" for s in steps) or "none of "
            + LABEL) + " steps of the round), mean ± sd over the seeds that finished it. Comparisons pair a "
            "chain's round with another's of the same seed; with one seed pair the difference is judged against "
            "the core grid's spread of same-seed differences between two sparse methods (log(static / STU-GAN), "
            f"within each cell, pooled: {judge.yardstick()}) with that t quantile: n=1 intervals are prediction "
            "intervals of the log ratio, shown as differences.", ""]
    dense = [dict(r[0][1]).get(s) for r in g.values() for s in steps]
    dense = [v for v in dense if v is not None]
    gate = len(dense) == 3 * len(g) and statistics.fmean(dense[-3:]) <= DENSE_GATE and all(
        statistics.fmean([dict(r[0][1])[s] for r in g.values()]) <= DENSE_GATE for s in steps)
    out += [f"The regime: round 0 (dense) ≤ {DENSE_GATE} at each of the last three evaluations (mean over seeds): "
            + ("**yes**" if gate else "**no** (these rounds are short: the verdicts below rank tickets early in "
               "training, not trained ones)") + f" ({_values(g, 0, steps)}).", ""]
    for seed in sorted(g):
        out += _same_as_core(study, seed, g[seed][0][1], found["IMP_G"][seed].path)
    controls = {k: {seed: _rounds(run) for seed, run in found[f"control {k}"].items()}
                for k in ("reinit", "random") if f"control {k}" in found}
    lines, _ = _matching(g, controls, judge)
    out += lines
    out += _controls(g, controls, judge)
    if "IMP_GD" in found:
        out += _pruning_d(g, {seed: _rounds(run) for seed, run in found["IMP_GD"].items()}, judge)
    inits = {name: {seed: _rounds(run) for seed, run in found[f"late rewinding, D {name}"].items()}
             for name in ("rewind", "init", "keep") if f"late rewinding, D {name}" in found}
    if inits:
        rewind = next(int(next(iter(found[f"late rewinding, D {n}"].values())).config.get("rewind_step", 0))
                      for n in inits)
        out += _d_initialisation(inits, rewind, study)
        if "rewind" in inits:
            out += _late_vs_init(g, inits["rewind"], rewind, study)
    return "\n".join(out) + "\n"


RECON = "recon_mse@10000,split=test,G=raw"
IMPROVING = 0.05  # round 0 still improving: its last three evaluations fell by more than 5 %


def _ticket_name(masks_from: str) -> str:
    """'.../tickets/round-05' -> 'IMP_G round 5'."""
    name = Path(masks_from).name
    return f"IMP_G round {int(name.split('-')[1])}" if name.startswith("round-") else name


def _still_improving(dense: list[float], unit: str) -> list[str]:
    """A caveat when round 0 (dense) still falls by more than 5 % over its last three evaluations: the
    chain then compares how far each ticket gets in a round's steps, not trained models."""
    if len(dense) < 3 or dense[-1] >= (1 - IMPROVING) * dense[0]:
        return []
    return [f"Round 0 (dense) is still improving: {unit} {fmt(dense[0])} → {fmt(dense[-1])} over its last three "
            f"evaluations ({fmt(100 * (dense[-1] / dense[0] - 1), 1)} %). The rounds are not past the early phase: "
            "'within 10 % of dense' here compares how far each ticket gets in a round's steps, not trained "
            "models, so it gives no verdict on the paper's claim (the walk up the rounds is shown as it is).", ""]


def flattened_at(curve: list[tuple[int, float]]) -> int | None:
    """The first evaluation step at which the last three evaluations fell by at most IMPROVING: the rule that
    gives a chain's round 0 a verdict (:func:`_still_improving`), applied along a dense curve."""
    return next((s for (_, a), (s, v) in zip(curve, curve[2:]) if v >= (1 - IMPROVING) * a), None)


def render_generative_plateau(study: Path, runs: str = "runs-generative-plateau") -> str:
    """The dense VAE and AE trained long: where each stops improving by the generative tickets' rule, which
    sets the rounds of the long chains (runs-generative-tickets-long)."""
    out = header(study, runs, "the dense VAE and AE trained to a plateau (one seed each)",
                 "study-fmnist-generative-plateau.yaml").copy()
    out[2] = out[2].split(" Width-16 DCGAN")[0] + " The VAE and the AE with the width-16 DCGAN decoder, dense, seed 0."
    found = {("AE" if r.config.get("model") == "ae" else "VAE"): r for r in completed_runs(study / runs)}
    for name, label, unit in (("VAE", LABEL, "fid_domain@5000"), ("AE", RECON, "recon_mse")):
        out += [f"## The {name}", ""]
        if name not in found:
            out += ["Not run yet.", ""]
            continue
        curve = sorted(found[name].series(label))
        out += [f"| step | {unit} | change over the last three evaluations |", "|---|---|---|"]
        out += [f"| {s:,} | {fmt(v)} | " + (f"{fmt(100 * (v / curve[i - 2][1] - 1), 1)} %" if i >= 2 else "-") + " |"
                for i, (s, v) in enumerate(curve)]
        first = flattened_at(curve)
        end_step, end = curve[-1]
        out += ["", (f"The first evaluation at which the last three fell by at most {100 * IMPROVING:g} % (the rule "
                     f"that gives a chain's round 0 a verdict): step {first:,} ({fmt(dict(curve)[first])}); at step "
                     f"{end_step:,}: {fmt(end)}, {fmt(100 * (end / dict(curve)[first] - 1), 1)} % from there."
                     if first is not None else
                     f"Its last three evaluations never fell by {100 * IMPROVING:g} % or less: still improving at "
                     f"step {end_step:,}."), ""]
    return "\n".join(out) + "\n"


def render_generative_tickets(study: Path, runs: str = "runs-generative-tickets",
                              sweep: str = "study-fmnist-generative-tickets.yaml") -> str:
    """Generative Tickets' VAE and AE claims from ``runs`` (the 8,000-step rounds, or the rounds as long as
    the dense models' plateau: runs-generative-tickets-long)."""
    found = {}
    for run in completed_runs(study / runs):
        c = run.config
        key = ("AE" if c.get("model") == "ae" else "VAE") + " " + run.method + (
            " (GAN ticket)" if c.get("masks_from") else "")
        found[key] = run
    # the VAE's runs first, then the AE's, as the header names them ("VAE / AE ... 24,000 / 22,000 steps")
    steps = list(dict.fromkeys(int(found[k].config.get("steps", 0)) for k in sorted(found, key=lambda k: (
        k.startswith("AE"), k))))
    title = "Generative Tickets' claims on the VAE and the AE" + (
        ", rounds as long as the dense models' plateau" if runs.endswith("-long") else "") + " (one seed each)"
    out = header(study, runs, title, sweep).copy()
    per_run = (" / ".join(f"{s:,}" for s in steps) or "-") + " steps per run or round"
    every = sorted({int(r.config.get("eval_every", 1000)) for r in found.values()}) or [1000]
    out[2] = out[2].replace("every 1,000 steps", "every " + " / ".join(f"{e:,}" for e in every) + " steps")
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
            rows.append(f"| {k} | {fmt(100 * (1 - d.get('G', 1)), 1)} / {fmt(100 * (1 - d.get('D', 1)), 1)} % | "
                        f"{_cells(t)} | {'-' if ok is None else ('yes' if ok else 'no')} |")
        return last_ok, stop, rows, chain

    chains = {}
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
        last_ok, stop, rows, chains[name] = res
        # Realised densities carry the per-layer rounding of counts: compare at the tables' 0.1 % precision.
        reached = last_ok is not None and round(100 * last_ok, 1) >= round(100 * paper, 1)
        improving = _still_improving(_tail(chains[name][0][1]), unit)
        # A dense model still improving makes 'within 10 % of it' a comparison of early training, where a
        # ticket can beat dense without being a trained model's equal: no verdict either way.
        v = ("inconclusive (round 0, dense, is still improving)" if improving and stop != "unknown" else
             "reproduced" if reached else "not reproduced" if stop == "failed" else
             "inconclusive (a round without three evaluations)" if stop == "unknown" else
             "inconclusive (the chain has not reached the paper's sparsity)")
        out += rows + ["", f"Tickets within 10 % of dense at every round up to "
                       f"{'-' if last_ok is None else f'{100 * last_ok:.1f} %'} sparsity (the paper: up to "
                       f"{100 * paper:.0f} %; one seed: descriptive): **{v}**.", ""]
        out += _empty_layer_lines(found[f"{name} imp"])
        out += improving
        if f"{name} dense" in found:  # the sweep's own dense run: the same seed and training as round 0
            shared, same = agreement(found[f"{name} dense"].series(label), chains[name][0][1])
            out += [f"The sweep's dense {name} run against the chain's round 0 (the same seed and dense training) "
                    f"at {len(shared)} evaluations: {same}.", ""]
    vae = found.get("VAE imp")
    chain = chains.get("VAE", {})
    if "VAE early_bird" in found:
        eb = found["VAE early_bird"]
        drawn = [r for r in eb.of_kind("early_bird")]
        t_eb = _tail(eb.series(LABEL))
        f_eb, f_imp = train_flops(eb), train_flops(vae) if vae else math.nan
        last = chain[max(chain)] if chain else None
        out += ["## Early-bird's ticket and its cost against IMP's (VAE, the same final sparsity)", "",
                "| | ticket drawn at | fid_domain@5000 (last three) | training FLOPs / one dense run |",
                "|---|---|---|---|",
                f"| early-bird | step {drawn[0]['step'] if drawn else '-'}"
                f"{'' if not drawn or drawn[0].get('detected') else ' (budget end, not detected)'} "
                f"| {_cells(t_eb)} | {fmt(f_eb)} |",
                f"| IMP (last round) | after {max(chain) if chain else '-'} rounds | "
                f"{_cells(_tail(last[1])) if last else '-'} | {fmt(f_imp)} |", "",
                "Descriptive (one seed).", ""]
    if "VAE static (GAN ticket)" in found:
        st = found["VAE static (GAN ticket)"]
        near = min(chain, key=lambda k: abs((1 - chain[k][0].get("G", 1)) - st.sparsity("G"))) if chain else None
        out += ["## A GAN generator's ticket on the VAE decoder", "",
                "| | decoder sparsity | fid_domain@5000 (last three) |", "|---|---|---|",
                f"| GAN ticket ({_ticket_name(st.config['masks_from'])}), static training | "
                f"{fmt(100 * st.sparsity('G'), 1)} % | "
                f"{_cells(_tail(st.series(LABEL)))} |"]
        if near is not None:
            out.append(f"| the VAE's own IMP ticket (round {near}) | "
                       f"{fmt(100 * (1 - chain[near][0].get('G', 1)), 1)} % | "
                       f"{_cells(_tail(chain[near][1]))} |")
        if 0 in chain:
            out.append(f"| dense VAE | 0 % | {_cells(_tail(chain[0][1]))} |")
        out += ["", "Descriptive (one seed).", ""]
    return "\n".join(out) + "\n"
