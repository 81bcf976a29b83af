"""The lottery-ticket pieces: GAN Tickets' claims (``runs-tickets/``: the IMP chain of G, its
random-reinit and random-pruning controls, pruning D, D's initialisation) and Generative Tickets'
(``runs-generative-tickets/``: the VAE and the AE under IMP with late rewinding, early-bird, a GAN
ticket on the VAE decoder). One seed each: a difference counts only beyond the dense seeds' noise."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from study_common import DENSE_GATE, LABEL, completed_runs, fmt, header, load, train_flops

from sparsegan.experiments.results import load_runs


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
    return " / ".join(fmt(v) for v in values) if values else "-"


def _agreement(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> tuple[list[int], str]:
    """The steps both curves evaluated, and how they agree there: 'the same values' or their largest gap."""
    other = dict(b)
    shared = [s for s, _ in a if s in other]
    gap = max((abs(v - other[s]) for s, v in a if s in other), default=0.0)
    return shared, "the same values" if gap == 0 else f"a largest difference of {fmt(gap, 4)}"


def _same_as_core(study: Path, seed: int, curve: list[tuple[int, float]]) -> list[str]:
    """Round 0 (dense) against the core grid's dense run of the same seed at the steps both evaluated:
    the same training code gives the same curve, which ties the chain's yardstick to the core grid's."""
    runs = [r for r in load_runs(study / "runs") if r.method == "dense" and r.seed == seed and
            r.status == "completed"] if (study / "runs").is_dir() else []
    shared, same = _agreement(curve, runs[0].series(LABEL) if runs else [])
    if not shared:
        return []
    resumed = [r["step"] for r in runs[0].of_kind("resume") if r["step"] < max(shared)]
    if same != "the same values" and resumed:
        same += (f" (the core run was resumed at step {', '.join(f'{s:,}' for s in resumed)}: the study README "
                 "says why a resume may drift)")
    return [f"Round 0 against the core grid's dense run of the same seed ({seed}) at the {len(shared)} evaluations "
            f"both made: {same}.", ""]


def _chains(study: Path, runs: str):
    chains = {}
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
        chains[key] = run
    return chains


@dataclass(frozen=True)
class _Noise:
    """The seed-noise yardstick of one-seed rounds: 1.96·√2·sd of the core grid's dense seeds at each of a
    round's last three evaluations. Two rounds compare only where both have the three and the noise is known."""
    at: list[float]

    def comparable(self, a: list[float], b: list[float]) -> bool:
        return len(a) == len(b) == len(self.at) == 3 and not any(math.isnan(n) for n in self.at)

    def within(self, a, b):  # a at most noise worse than b, at each of the three (None: nothing to compare)
        return all(x - y <= n for x, y, n in zip(a, b, self.at)) if self.comparable(a, b) else None

    def better(self, a, b):  # a better than b by more than the noise, at each of the three
        return all(y - x > n for x, y, n in zip(a, b, self.at)) if self.comparable(a, b) else None


def _each(flags: list[bool]) -> str:
    """A condition at the last three evaluations: at each ('yes'), at none ('no'), or 'mixed'."""
    return "yes" if all(flags) else "no" if not any(flags) else "mixed"


def _matching(g, controls, noise: _Noise) -> list[str]:
    """Up to which round the IMP ticket matches dense (round 0), and whether it beats its controls."""
    dense = _tail(g[0][1])
    out = ["## Up to which sparsity does the IMP ticket match dense, and beat its controls?", "",
           "| round | G sparsity | IMP ticket | matches dense | random reinit | ticket beats it | random pruning "
           "| ticket beats it |", "|---|---|---|---|---|---|---|---|"]
    matched, beats = [], {k: [] for k in controls}
    for k in sorted(g):
        dens, curve = g[k]
        t = _tail(curve)
        m = noise.within(t, dense) if k else None
        # 'no' only where dense is better beyond the noise at each of the three; 'mixed' in between
        m = None if m is None else "yes" if m else "no" if noise.better(dense, t) else "mixed"
        cells = [f"{k}", fmt(100 * (1 - dens.get("G", 1.0)), 1) + " %", _cells(t), m or "-"]
        for name in ("reinit", "random"):
            c = _tail(controls.get(name, {}).get(k, ({}, []))[1])
            b = noise.better(t, c)
            # 'yes': the ticket better beyond the noise; 'worse': the control better beyond it; 'no': within it
            b = None if b is None else "yes" if b else "worse" if noise.better(c, t) else "no"
            cells += [_cells(c), b or "-"]
            if k and b is not None:
                beats[name].append((k, b))
        if k:
            matched.append((k, 1 - dens.get("G", 1.0), m))
        out.append("| " + " | ".join(cells) + " |")
    last_match = None
    for k, sp, m in matched:
        if m != "yes":
            break
        last_match = sp
    behind = {state: ", ".join(str(k) for k, _, m in matched if m == state) for state in ("no", "mixed")}
    verdict = ("inconclusive (no noise yardstick or fewer than three evaluations per round: fewer than two "
               "dense seeds of runs/ at these steps, or a round without the metric)"
               if not matched or any(m is None for *_, m in matched)
               else f"the ticket matches dense at every round up to {100 * last_match:.1f} % sparsity" if last_match
               else "the ticket matches dense at no round")
    if not verdict.startswith("inconclusive"):
        verdict += "".join(f"; {what} at rounds {behind[state]}" for state, what in (
            ("no", "behind dense beyond the noise at each of the last three evaluations"),
            ("mixed", "beyond the noise at some of them only")) if behind[state])
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
    return out + [""]


def _pruning_d(g, gd, noise: _Noise) -> list[str]:
    """IMP_GD against IMP_G at the same G sparsity: GAN Tickets finds pruning D matters little."""
    out = ["## Pruning D too (IMP_GD) or not (IMP_G): the paper finds it matters little", "",
           "| round | G / D sparsity (IMP_GD) | IMP_G | IMP_GD | within the noise |", "|---|---|---|---|---|"]
    same = []
    for k in sorted(set(gd) & set(g) - {0}):
        a, b = _tail(g[k][1]), _tail(gd[k][1])
        w = _each([abs(x - y) <= n for x, y, n in zip(a, b, noise.at)]) if noise.comparable(a, b) else None
        same.append(w)
        d = gd[k][0]
        out.append(f"| {k} | {fmt(100 * (1 - d.get('G', 1)), 1)} / {fmt(100 * (1 - d.get('D', 1)), 1)} % | "
                   f"{_cells(a)} | {_cells(b)} | {w or '-'} |")
    v = ("inconclusive" if not same or any(w is None for w in same) else
         "reproduced" if all(w == "yes" for w in same) else "not reproduced" if "no" in same else "inconclusive")
    return out + ["", "'yes': within the noise at each of the last three evaluations; 'no': beyond it at each; "
                  f"'mixed': neither. Claim (pruning D matters little): **{v}**.", ""]


def _d_initialisation(g, inits, rewind: int, noise: _Noise, study: Path) -> list[str]:
    """D rewound with G, reset to init or kept, under late rewinding: GAN Tickets finds it matters a lot."""
    out = [f"## D's initialisation under late rewinding (step {rewind}): rewound with G, reset to init, or kept "
           "from the previous round; the paper finds it matters a lot", "",
           "| round | G sparsity | " + " | ".join(f"D {n}" for n in inits) + " | largest gap beyond the noise |",
           "|---|---|" + "---|" * len(inits) + "---|"]
    gaps = []
    for k in sorted(set.intersection(*(set(r) for r in inits.values())) - {0}):
        tails = {n: _tail(r[k][1]) for n, r in inits.items()}
        first = next(iter(inits.values()))[k][0]
        spread = [max(t[i] for t in tails.values()) - min(t[i] for t in tails.values()) for i in range(3)] \
            if len(tails) >= 2 and all(len(t) == 3 for t in tails.values()) else []  # one chain: no gap yet
        beyond = None if not spread or any(math.isnan(n) for n in noise.at) \
            else _each([x > n for x, n in zip(spread, noise.at)])
        gaps.append(beyond)
        out.append(f"| {k} | {fmt(100 * (1 - first.get('G', 1)), 1)} % | " +
                   " | ".join(_cells(t) for t in tails.values()) + f" | {beyond or '-'} |")
    v = ("inconclusive" if len(inits) < 3 or not gaps or any(b is None for b in gaps) else
         "reproduced" if all(b == "yes" for b in gaps) else "reproduced at some rounds only" if "yes" in gaps
         else "not reproduced" if all(b == "no" for b in gaps) else "inconclusive")
    out += ["", f"Claim (D's initialisation matters a lot): **{v}** (the gap between the best and the worst "
            "initialisation beyond the noise at each of the last three evaluations: 'yes'; at none: 'no'; "
            "'mixed': neither).", ""]
    if "rewind" in inits:  # descriptive: what rewinding late (with D rewound too) buys over rewinding to init
        late = inits["rewind"]
        out += [f"Late rewinding (step {rewind}, D rewound) against IMP_G's rewinding to initialisation, at the "
                f"same G sparsity and the same steps of training: a late-rewound round counts its steps from the "
                f"rewind point, so its step s is step s + {rewind} of training, and only evaluations both chains "
                "made at the same step of training are set side by side:", "",
                "| round | G sparsity | steps of training | IMP_G (to init) | late rewinding | late better beyond the "
                "noise |", "|---|---|---|---|---|---|"]
        aligned = []
        for k in sorted(set(late) & set(g) - {0}):
            a, b = dict(g[k][1]), {s + int(rewind): v for s, v in late[k][1]}
            common = sorted(set(a) & set(b))[-3:]
            at = _noise(study, common)
            w = None if not common or any(math.isnan(n) for n in at) else \
                _each([a[s] - b[s] > n for s, n in zip(common, at)])
            aligned.append(len(common))
            out.append(f"| {k} | {fmt(100 * (1 - late[k][0].get('G', 1)), 1)} % | "
                       f"{' / '.join(f'{s:,}' for s in common) or '-'} | {_cells([a[s] for s in common])} | "
                       f"{_cells([b[s] for s in common])} | {w or '-'} |")
        out += ["", f"Descriptive (one seed each; {min(aligned, default=0)} aligned evaluation(s) per round, where "
                "the study's rule asks three).", ""]
    return out


def render_tickets(study: Path) -> str:
    runs = "runs-tickets"
    chains = _chains(study, runs)
    cfg = chains["IMP_G"].config if "IMP_G" in chains else {}
    per_round = (f"{int(cfg['steps']):,}" if "steps" in cfg else "-") + " G steps per round"
    out = header(study, runs, f"GAN Tickets' claims (IMP of the generator, {per_round}, one seed)",
                  "study-fmnist-tickets.yaml").copy()
    rate = f"{100 * float(cfg['imp_rate']):g} %" if "imp_rate" in cfg else "-"
    out[2] = out[2].replace("12,000 G steps", f"{per_round}, {rate} of the remaining weights pruned per round")
    g = _rounds(chains["IMP_G"]) if "IMP_G" in chains else {}
    if 0 not in g:
        return "\n".join(out + ["The IMP chain has no completed dense round yet."]) + "\n"
    steps = [s for s, _ in g[0][1][-3:]]
    noise = _Noise(_noise(study, steps))
    dense = _tail(g[0][1])
    out += ["Each value: the round's last three evaluations (" + (", ".join(f"{s:,}" for s in steps) or "none of "
            + LABEL) + " steps of the round). One seed: a difference counts only beyond the seed noise, "
            "1.96·√2·sd of the core grid's dense seeds at the same steps (" + _cells(noise.at) + "); 'matches dense' "
            "= at most that much worse than round 0 (dense) at each of the three, 'no' = worse by more than that at "
            "each of the three, 'mixed' = neither; 'beats' = better by more than the noise at each of the three.",
            ""]
    gate = bool(dense) and all(v <= DENSE_GATE for v in dense)
    out += [f"The regime: round 0 (dense) ≤ {DENSE_GATE} at each of the last three evaluations: "
            + ("**yes**" if gate else "**no** (these rounds are short: the verdicts below rank tickets early in "
               "training, not trained ones)") + f" ({_cells(dense)}).", ""]
    out += _same_as_core(study, int(cfg.get("seed", 0)), g[0][1])
    controls = {k: _rounds(chains[f"control {k}"]) for k in ("reinit", "random") if f"control {k}" in chains}
    out += _matching(g, controls, noise)
    if "IMP_GD" in chains:
        out += _pruning_d(g, _rounds(chains["IMP_GD"]), noise)
    inits = {name: _rounds(chains[f"late rewinding, D {name}"]) for name in ("rewind", "init", "keep")
             if f"late rewinding, D {name}" in chains}
    if inits:
        rewind = next(int(chains[f"late rewinding, D {n}"].config.get("rewind_step", 0)) for n in inits)
        out += _d_initialisation(g, inits, rewind, noise, study)
    return "\n".join(out) + "\n"


RECON = "recon_mse@10000,split=test,G=raw"


def _ticket_name(masks_from: str) -> str:
    """'.../tickets/round-05' -> 'IMP_G round 5'."""
    name = Path(masks_from).name
    return f"IMP_G round {int(name.split('-')[1])}" if name.startswith("round-") else name


def _still_improving(dense: list[float], unit: str) -> list[str]:
    """A caveat when round 0 (dense) still falls by more than 5 % over its last three evaluations: the
    chain then compares how far each ticket gets in a round's steps, not trained models."""
    if len(dense) < 3 or dense[-1] >= 0.95 * dense[0]:
        return []
    return [f"Round 0 (dense) is still improving: {unit} {fmt(dense[0])} → {fmt(dense[-1])} over its last three "
            f"evaluations ({fmt(100 * (dense[-1] / dense[0] - 1), 1)} %). The rounds are not past the early phase: "
            "'within 10 % of dense' here compares how far each ticket gets in a round's steps, not trained "
            "models, so the verdict says less than the paper's.", ""]


def render_generative_tickets(study: Path) -> str:
    runs = "runs-generative-tickets"
    found = {}
    for run in completed_runs(study / runs):
        c = run.config
        key = ("AE" if c.get("model") == "ae" else "VAE") + " " + run.method + (
            " (GAN ticket)" if c.get("masks_from") else "")
        found[key] = run
    steps = sorted({int(r.config.get("steps", 0)) for r in found.values()})
    out = header(study, runs, "Generative Tickets' claims on the VAE and the AE (one seed each)",
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
        v = ("reproduced" if reached else "not reproduced" if stop == "failed" else
             "inconclusive (a round without three evaluations)" if stop == "unknown" else
             "inconclusive (the chain has not reached the paper's sparsity)")
        out += rows + ["", f"Tickets within 10 % of dense at every round up to "
                       f"{'-' if last_ok is None else f'{100 * last_ok:.1f} %'} sparsity (the paper: up to "
                       f"{100 * paper:.0f} %): **{v}**.", ""]
        out += _still_improving(_tail(chains[name][0][1]), unit)
        if f"{name} dense" in found:  # the sweep's own dense run: the same seed and training as round 0
            shared, same = _agreement(found[f"{name} dense"].series(label), chains[name][0][1])
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
