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
with one seed is shown and not judged (descriptive).
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
from sparsegan.experiments.stats import direction, holm, paired

LABEL = "fid_domain@5000,nfe=20"
MARGIN = 0.10  # "matches dense": at most 10 % of the dense mean worse (upper 95 % bound)
PLATEAU = 0.05  # the gate: the last three evaluations change by at most 5 % of the first of them
METHODS = {"static": "static", "stu/gradient": "RigL-DM", "stu/random": "MagRan-DM"}


def arm_of(run) -> str:
    """'dense', or '<method> <sparsity> %' (RigL-DM: stu with gradient regrowth; MagRan-DM: random)."""
    c = run.config
    if run.method == "dense":
        return "dense"
    name = METHODS.get(run.method + (f"/{c.get('grow', 'gradient')}" if run.method == "stu" else ""), run.method)
    return f"{name} {100 * float(c.get('sparsity_g', 0)):g} %"


def curves_of(folder: Path) -> tuple[dict[str, dict[int, dict[int, float]]], dict[str, dict[int, object]]]:
    """arm -> seed -> {step: value}, and arm -> seed -> the run, of the completed runs in ``folder``."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(dict)
    runs: dict[str, dict[int, object]] = defaultdict(dict)
    for run in load_runs(folder) if folder.is_dir() else []:
        series = dict(run.series(LABEL))
        if run.status == "completed" and series:
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


def gate(folder: Path) -> list[str]:
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
            f"(at most {PLATEAU:.0%}; one seed, descriptive).", ""]
    return out


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


def matches_dense(curves, last: list[int]) -> list[str]:
    """Oliveira et al.: sparse-to-sparse training matches or beats dense. Each sparse-to-sparse cell against
    dense, paired by seed, within the margin at each of the last three evaluations."""
    out = ["## Sparse-to-sparse training matches or beats dense (Oliveira et al. 2025)", "",
           "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | matches dense |",
           "|---|" + "---|" * len(last) + "---|"]
    verdicts = {}
    for arm in sorted(curves, key=_arm_key):
        if not arm.startswith(("RigL-DM", "MagRan-DM")):
            continue
        cmp = [paired(_at(curves, arm, s), _at(curves, "dense", s)) for s in last]
        # the margin: 10 % of dense over the seeds in the pairs
        margin = [MARGIN * statistics.fmean([_at(curves, "dense", s)[k] for k in c.seeds] or [math.nan])
                  for s, c in zip(last, cmp)]
        if any(c.n < 2 for c in cmp):
            v = "descriptive (one seed pair)" if all(c.n for c in cmp) else "-"
        else:
            v = ("reproduced" if all(c.ci[1] <= m for c, m in zip(cmp, margin)) else
                 "not reproduced" if all(c.ci[0] > m for c, m in zip(cmp, margin)) else "inconclusive")
            verdicts[arm] = v
        out.append(f"| {arm} − dense | " + " | ".join(f"{_cell(c)} margin {fmt(m)}" for c, m in zip(cmp, margin))
                   + f" | {v} |")
    claim = ("inconclusive (no cell with two or more seed pairs)" if not verdicts else
             "reproduced" if all(v == "reproduced" for v in verdicts.values()) else
             "not reproduced" if all(v == "not reproduced" for v in verdicts.values()) else
             "reproduced for " + ", ".join(a for a, v in verdicts.items() if v == "reproduced")
             if "reproduced" in verdicts.values() else "inconclusive")
    return out + ["", f"'Matches': the upper 95 % bound of sparse − dense at most {MARGIN:.0%} of the dense mean (its "
                  "seeds in the pairs) at "
                  "each evaluation; 'not reproduced': the lower bound above it at each. Cells with one seed are "
                  f"descriptive. Verdict (over the cells with seeds: {', '.join(verdicts) or 'none'}): **{claim}**.",
                  ""]


def beats_static(curves, last: list[int]) -> list[str]:
    """Oliveira et al.'s RigL-DM and MagRan-DM against Static-DM at the same sparsity: static − sparse-to-sparse
    per seed (positive: dynamic is better), Holm across the comparisons with two or more seed pairs."""
    rows = []
    for arm in sorted(curves, key=_arm_key):
        if arm.startswith(("RigL-DM", "MagRan-DM")):
            static = "static " + arm.split(" ", 1)[1]
            cmp = [paired(_at(curves, static, s), _at(curves, arm, s)) for s in last]
            if all(c.n for c in cmp):
                rows.append((f"static − {arm}", cmp))
    out = ["## Exploring the topology beats static masks (RigL-DM and MagRan-DM against Static-DM)", "",
           "| comparison | " + " | ".join(f"{s:,} steps" for s in last) + " | verdict |",
           "|---|" + "---|" * len(last) + "---|"]
    judged = [i for i, (_, cmp) in enumerate(rows) if all(c.n >= 2 for c in cmp)]
    adjusted = [holm([rows[i][1][k].p for i in judged]) for k in range(len(last))]
    verdicts = []
    for i, (name, cmp) in enumerate(rows):
        if i not in judged:
            out.append(f"| {name} | " + " | ".join(_cell(c) for c in cmp) + " | descriptive (one seed pair) |")
            continue
        j = judged.index(i)
        dirs = [direction(adjusted[k][j], c.ci) for k, c in enumerate(cmp)]
        v = ("reproduced" if all(d == 1 for d in dirs) else
             "not reproduced (the opposite holds)" if all(d == -1 for d in dirs) else "inconclusive")
        verdicts.append(v)
        out.append(f"| {name} | " + " | ".join(_cell(c, adjusted[k][j]) for k, c in enumerate(cmp)) + f" | {v} |")
    claim = ("inconclusive (no cell with two or more seed pairs)" if not verdicts else
             "reproduced" if all(v == "reproduced" for v in verdicts) else
             "not reproduced" if any(v.startswith("not") for v in verdicts) else "inconclusive")
    return out + ["", f"Verdict: **{claim}**.", ""]


def speed(folder: Path) -> list[str]:
    path = folder / "speed.json"
    out = ["## Sampling speed: the exported sparse denoiser against dense", ""]
    if not path.is_file():
        return out + ["Not measured yet.", ""]
    data = json.loads(path.read_text())
    out += [f"`{data['command']}` ({data['conditions']}); a sample is NFE = {data['nfe']} denoiser calls:", "",
            "| denoiser | batch | dense ms per batch | sparse ms per batch | speed-up |", "|---|---|---|---|---|"]
    for name, bench in data["runs"].items():
        for bs, r in sorted(((k, v) for k, v in bench.items() if k.isdigit()), key=lambda kv: int(kv[0])):
            out.append(f"| {name} | {bs} | {fmt(r['dense_ms'], 0)} | {fmt(r['sparse_ms'], 0)} | {fmt(r['speedup'])}x |")
    return out + [""]


def render(folder: Path) -> str:
    commit = {name: (folder / name / "COMMIT").read_text().strip() if (folder / name / "COMMIT").is_file() else "-"
              for name in ("runs", "runs-gate")}
    curves, runs = curves_of(folder / "runs")
    any_run = next((r for arm in runs.values() for r in arm.values()), None)
    cfg = any_run.config if any_run else {}
    out = ["# The diffusion study on Fashion-MNIST: sparse DDPM denoisers trained from scratch", "",
           "Generated by `python benchmarks/study-diffusion/study_diffusion.py benchmarks/study-diffusion` from the "
           f"run folders in `runs-gate/` (trained at commit `{commit['runs-gate']}`) and `runs/` (commit "
           f"`{commit['runs']}`); do not edit by hand, `tests/test_study_diffusion.py` re-derives it. DDPM (noise "
           f"prediction, linear schedule, T = 1000), the U-Net of width {cfg.get('model_width', '-')}, "
           f"{int(cfg.get('steps', 0)):,} steps per run at batch {cfg.get('batch_size', '-')}, sampled by DDIM; "
           f"metric `{LABEL}` (lower is better). Each comparison: mean paired difference [95 % CI], Holm-adjusted p "
           "where a claim has several, seed pairs, at each of the last three evaluations.", ""]
    out += gate(folder / "runs-gate")
    if not curves:
        return "\n".join(out + ["## The cells", "", "Not run yet.", ""]) + "\n"
    common = [set(c) for arm in curves.values() for c in arm.values()]
    last = sorted(set.intersection(*common))[-3:]
    out += runs_table(curves, runs, last)
    if "dense" in curves and len(last) == 3:
        out += matches_dense(curves, last) + beats_static(curves, last)
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
