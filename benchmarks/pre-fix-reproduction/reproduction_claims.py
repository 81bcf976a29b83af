"""The STU-GAN claims of REFERENCE.md section 3, checked on a dense / static / STU-GAN sweep.

Reads run folders (any sweep with dense, static and stu runs over s_G x s_D x seeds) and prints a
markdown section: per cell the static and STU-GAN means, STU-GAN's gain over static, the share of
the static-to-dense gap it closes, per-seed paired wins (static and STU-GAN runs of one seed share
the initial masks, weights and data order) and Welch's t-test over seeds; then one line per claim.

    python benchmarks/pre-fix-reproduction/reproduction_claims.py runs/reproduction-fmnist --metric fid_domain
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from scipy import stats

from sparsegan.experiments.results import load_runs


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else "-"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--metric", default="fid_domain", help="lower is better")
    args = ap.parse_args()

    runs = [r for r in load_runs(args.runs) if r.status == "completed" and r.metric(args.metric) is not None]
    dense = [r.metric(args.metric) for r in runs if r.method == "dense"]
    cells: dict[tuple[str, float, float], dict[int, float]] = defaultdict(dict)
    itop: dict[tuple[float, float], list[float]] = defaultdict(list)
    for r in runs:
        if r.method in ("static", "stu"):
            key = (r.method, r.sparsity("G"), r.sparsity("D"))
            cells[key][r.seed] = r.metric(args.metric)
            if r.method == "stu":
                itop[key[1:]].append(float(r.summary.get("itop_rate", {}).get("G", float("nan"))))
    d_mean = statistics.mean(dense)
    out = [f"Metric `{args.metric}` (lower is better), {len(runs)} completed runs under `{args.runs}`; "
           f"dense: {_mean_std(dense)} (n={len(dense)}).", "",
           "| s_G | s_D | static | STU-GAN | gain (static - STU) | gap to dense closed | "
           "paired wins | Welch p | ITOP G (STU) |",
           "|---|---|---|---|---|---|---|---|---|"]
    gains: dict[tuple[float, float], float] = {}
    for s_g in sorted({k[1] for k in cells}, reverse=True):
        for s_d in sorted({k[2] for k in cells}):
            st, su = cells.get(("static", s_g, s_d), {}), cells.get(("stu", s_g, s_d), {})
            if not st or not su:
                continue
            a, b = list(st.values()), list(su.values())
            gain = statistics.mean(a) - statistics.mean(b)
            gains[(s_g, s_d)] = gain
            closed = gain / (statistics.mean(a) - d_mean) if statistics.mean(a) != d_mean else float("nan")
            seeds = sorted(set(st) & set(su))
            wins = sum(su[s] < st[s] for s in seeds)
            p = stats.ttest_ind(a, b, equal_var=False).pvalue if len(a) > 1 and len(b) > 1 else float("nan")
            rate = statistics.mean(itop[(s_g, s_d)]) if itop[(s_g, s_d)] else float("nan")
            out.append(f"| {s_g:.0%} | {s_d:.0%} | {_mean_std(a)} | {_mean_std(b)} | {gain:+.1f} | {closed:.0%} | "
                       f"{wins}/{len(seeds)} | {p:.2f} | {rate:.3f} |")
    out.append("")
    by_sg = {s_g: statistics.mean(v for (g, _), v in gains.items() if g == s_g) for s_g in {g for g, _ in gains}}
    by_sd = {s_d: statistics.mean(v for (_, d), v in gains.items() if d == s_d) for s_d in {d for _, d in gains}}
    out.append("Mean gain of STU-GAN over static per s_G (over s_D): "
               + ", ".join(f"{g:.0%}: {v:+.1f}" for g, v in sorted(by_sg.items(), reverse=True)) + ".  ")
    out.append("Mean gain per s_D (over s_G): "
               + ", ".join(f"{d:.0%}: {v:+.1f}" for d, v in sorted(by_sd.items())) + ".  ")
    stu_cells = [(statistics.mean(v.values()), k) for k, v in cells.items() if k[0] == "stu"]
    if stu_cells:
        value, (_, s_g, s_d) = min(stu_cells)
        out.append(f"Best STU-GAN cell: s_G {s_g:.0%}, s_D {s_d:.0%} at {value:.1f} (dense {d_mean:.1f}).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
