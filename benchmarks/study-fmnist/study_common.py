"""What every piece of the Fashion-MNIST study's report shares: reading the run folders, formatting,
and paired comparisons with their verdicts.

A verdict uses the **last three evaluations**: a comparison counts only if it holds at each of them
(a stable ranking, not a snapshot). Comparisons are paired by seed (same initial weights, masks and
data order), with 95 % t-intervals and Holm's correction across the comparisons of a claim at each
evaluation step (:mod:`sparsegan.experiments.stats`).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from sparsegan.experiments.results import load_runs
from sparsegan.experiments.stats import direction, holm

LABEL = "fid_domain@5000"
DENSE_GATE = 5.0  # dense must reach this at each of the last three evaluations (issue's regime)
MATCH_MARGIN = 0.10  # "matches dense": STU-GAN at most 10 % of the dense mean worse (upper CI bound)


def arm_of(run) -> str:
    if run.method == "dense":
        return "dense"
    return f"{run.method} sG{run.sparsity('G'):.2f} sD{run.sparsity('D'):.2f}"


def load(runs_dir: Path):
    """arm -> seed -> {step: value} for completed runs, and arm -> seed -> ITOP rate of G."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(dict)
    itop: dict[str, dict[int, float]] = defaultdict(dict)
    for run in load_runs(runs_dir):
        if run.status != "completed":
            continue
        series = dict(run.series(LABEL))
        if series:
            curves[arm_of(run)][run.seed] = series
            itop[arm_of(run)][run.seed] = float(run.summary.get("itop_rate", {}).get("G", math.nan))
    return curves, itop


def fmt(v: float, digits: int = 2) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def fmt_p(p: float) -> str:
    return "-" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def arm_order(arms) -> list[str]:
    def key(a: str):
        if a == "dense":
            return (0, 0.0, 0.0, "")
        method, sg, sd = a.split()
        return (1, -float(sg[2:]), float(sd[2:]), method)
    return sorted(arms, key=key)


def values_at(curves, arm: str, step: int) -> dict[int, float]:
    return {seed: c[step] for seed, c in curves.get(arm, {}).items() if step in c}


def within_margin(c, margin: float) -> bool | None:
    """A paired difference against a "matches" margin: True if its upper 95 % bound is at most the
    margin, False if its lower bound is above it, None where the interval straddles it or it cannot be
    judged (fewer than two seed pairs, unless a single pair comes with a spread)."""
    if not c.judgeable:
        return None
    lo, hi = c.ci
    return True if hi <= margin else False if lo > margin else None


def _verdict(directions: list[int], claimed: int, ns: list[int], judgeable: bool = True) -> str:
    if not directions or not judgeable:
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
            cells.append(f"{fmt(c.mean)} [{fmt(lo)}, {fmt(hi)}] p={fmt_p(adjusted[s][i])} n={c.n}")
            dirs.append(direction(adjusted[s][i], c.ci))
            ns.append(c.n)
        v = _verdict(dirs, claimed, ns, all(cmp[s].judgeable for s in steps))
        verdicts.append(v)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {v} |")
    return lines, verdicts


def comparison_head(steps, last_column: str = "verdict") -> list[str]:
    """The head and rule lines of a comparison table: one column per evaluation step, then the verdict."""
    return ["| comparison | " + " | ".join(f"{s:,} steps" for s in steps) + f" | {last_column} |",
            "|---|" + "---|" * len(steps) + "---|"]


NOT_YET = "No completed runs with three common evaluations yet."


def section(title: str, rows, steps, head: list[str] | None = None, verdict: str = "Verdict") -> list[str]:
    """A claim's table of paired comparisons (all claimed positive) and its verdict; ``head``: the table's
    head and rule lines (default: :func:`comparison_head` of ``steps``); ``verdict``: the words before
    the verdict (what it rests on, where that is less than the study's rule)."""
    head = head or comparison_head(steps)
    if not rows:
        return [title, "", "No comparison of this claim has both sides run yet: verdict **inconclusive**.", ""]
    lines, verdicts = _family(rows, steps, +1)
    return [title, "", *head, *lines, "", f"{verdict}: **{_claim_verdict(verdicts)}**.", ""]


def _claim_verdict(verdicts: list[str]) -> str:
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v.startswith("not reproduced") for v in verdicts):
        return "not reproduced"
    return "inconclusive"


def _label_series(run) -> dict[int, float]:
    """The run's fid_domain@5000 curve; an IMP run's is its last round's (its ticket trained)."""
    rounds = sorted((run.path / "rounds").glob("round-*")) if (run.path / "rounds").is_dir() else []
    if rounds:
        last = load_runs(rounds[-1])
        return dict(last[0].series(LABEL)) if last else {}
    return dict(run.series(LABEL))


def completed_runs(runs_dir: Path):
    """Completed top-level runs (an IMP run's rounds are read through it, not as runs of their own)."""
    return [r for r in load_runs(runs_dir) if r.status == "completed" and "rounds" not in Path(r.name).parts]


def rows_of(runs_dir: Path, label):
    """row name (``label(run)``) -> seed -> curve, and row name -> seed -> relative training FLOPs."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(dict)
    flops: dict[str, dict[int, float]] = defaultdict(dict)
    for run in completed_runs(runs_dir):
        series = _label_series(run)
        if series:
            curves[label(run)][run.seed] = series
            flops[label(run)][run.seed] = train_flops(run)
    return curves, flops


def last_three(curves) -> list[int]:
    runs = [set(c) for arm in curves.values() for c in arm.values()]
    return sorted(set.intersection(*runs))[-3:] if runs else []


def train_flops(run) -> float:
    """Training FLOPs relative to one dense run of the same length (summary.json `flops.train`). An IMP
    chain's are its rounds' own counts added up, each at its round's masks: the chains here were trained
    at 66f6b00, whose chain summary counted the earlier rounds at their bare densities spread by ERK,
    not at their masks' per-layer densities (over-counting by 4 to 61 %; fixed in the training code
    since)."""
    train = (run.summary.get("flops") or {}).get("train", {})
    rounds = sorted((run.path / "rounds").glob("round-*/summary.json")) if (run.path / "rounds").is_dir() else []
    if rounds and train.get("dense"):
        own = [(json.loads(p.read_text()).get("flops") or {}).get("train", {}).get("total") for p in rounds]
        return math.nan if None in own else sum(own) / train["dense"]
    return float(train["relative"]) if train.get("relative") is not None else math.nan


def value_table(curves, flops, rows: list[str], last: list[int]) -> list[str]:
    out = ["| row | n | " + " | ".join(f"{s:,}" for s in last) + " | training FLOPs / dense |",
           "|---|---|" + "---|" * len(last) + "---|"]
    for r in rows:
        f = [v for v in flops.get(r, {}).values() if not math.isnan(v)]
        means = (mean_sd(list(values_at(curves, r, s).values())) for s in last)
        out.append(f"| {r} | {len(curves[r])} | " + " | ".join(means)
                   + f" | {fmt(statistics.fmean(f)) if f else '-'} |")
    return out


def header(study: Path, runs: str, title: str, sweep: str) -> list[str]:
    commit = (study / runs / "COMMIT").read_text().strip() if (study / runs / "COMMIT").exists() else "unknown"
    core = (study / "runs" / "COMMIT").read_text().strip() if (study / "runs" / "COMMIT").exists() else "unknown"
    return [f"# Fashion-MNIST study: {title}", "",
            f"Generated by `python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist --runs {runs}` "
            "from the run "
            f"folders in `{runs}/` (trained at commit `{commit}`, sweep `configs/sweeps/{sweep}`) and the core grid's "
            f"in `runs/` (commit `{core}`); do not edit by hand, `tests/test_study_fmnist.py` regenerates it. "
            f"Width-16 DCGAN, 12,000 G steps, metric `{LABEL}` (lower is better) every 1,000 steps; each cell "
            "of a table: mean ± sd over seeds; each comparison: mean paired difference [95 % CI], Holm-adjusted "
            "p, seed pairs, at each of the last three evaluations.", "", *threads(study / runs)]


def started_with(run: Path) -> int | None:
    """The torch thread count ``run`` started with: its config.json's, or its folder's threads.json's (the
    first steps replayed); None where neither says."""
    own = (json.loads((run / "config.json").read_text()).get("environment") or {}).get("torch_threads")
    if own is not None:
        return int(own)
    replayed = run.parent / "threads.json"
    return (json.loads(replayed.read_text()).get(run.name) or {}).get("threads") if replayed.is_file() else None


def threads(runs_dir: Path) -> list[str]:
    """What torch thread count each run started with: its config.json's, or for runs that did not record it,
    threads.json's (study_threads.py: the run's first steps replayed at 1 and at 2 threads, the losses
    matched to the bit). The count changes float rounding, so runs of one seed at other counts are not
    bitwise twins; empty before any run says."""
    replayed = json.loads((runs_dir / "threads.json").read_text()) if (runs_dir / "threads.json").is_file() else {}
    counts: dict[str, list[str]] = defaultdict(list)
    for run in sorted(p for p in runs_dir.iterdir() if (p / "config.json").is_file()) if runs_dir.is_dir() else []:
        n = started_with(run)
        # None: replayed and neither count gave the run's losses, or not replayable here (a control or a
        # transferred ticket trains from files not committed)
        key = str(n) if n is not None else "neither 1 nor 2" if run.name in replayed else "not known"
        counts[key].append(run.name)
    if not replayed and set(counts) <= {"1"}:  # every run records one thread: nothing to say beyond the sweeps
        return []
    parts = []
    for k, names in sorted(counts.items()):
        label = f"{k} thread{'s' * (k != '1')}" if k.isdigit() else k
        listed = f" ({', '.join(names)})" if k != "1" and len(names) <= 6 else ""
        parts.append(f"{label}: {len(names)}{listed}")
    return [f"Torch threads each run started with (`config.json`, or where it does not say, its first "
            f"{next(iter(replayed.values()), {}).get('step', 100)} steps replayed at 1 and 2 threads: `threads.json`, "
            f"`study_threads.py`): {'; '.join(parts)}. Runs of one seed at other counts share their initial weights "
            "and data order but not their float rounding.", ""]


def agreement(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> tuple[list[int], str]:
    """The steps both curves evaluated, and how they agree there: 'the same values' or their largest gap."""
    other = dict(b)
    shared = [s for s, _ in a if s in other]
    gap = max((abs(v - other[s]) for s, v in a if s in other), default=0.0)
    shown = f"{gap:.1e}" if 0 < gap < 1e-4 else fmt(gap, 4)  # a rounding-level gap stays visible
    return shared, "the same values" if gap == 0 else f"a largest difference of {shown}"


def replay(study: Path, folder: str, cell: tuple[float, float], code: str) -> list[str]:
    """A piece trained at another commit than the core grid and paired with it: the core grid's static and
    STU-GAN runs of ``cell`` re-trained with the piece's code (``folder``, configs/sweeps/
    study-fmnist-replays.yaml), curve against curve. Equal curves: that code trains the cell as the core
    grid's did, so the pairs across commits stand."""
    core_commit = (study / "runs" / "COMMIT").read_text().strip() if (study / "runs" / "COMMIT").exists() else "?"
    replays = completed_runs(study / folder) if (study / folder).is_dir() else []
    if not replays:
        return [f"Cross-commit pairing: these runs were trained at {code}, the core grid's at {core_commit}; not "
                "replayed yet (`configs/sweeps/study-fmnist-replays.yaml`).", ""]
    core = completed_runs(study / "runs") if (study / "runs").is_dir() else []
    said, gaps = [], []
    for r in sorted(replays, key=lambda r: r.method):
        twin = [c for c in core if c.method == r.method and c.seed == r.seed
                and abs(c.sparsity("G") - cell[0]) < 1e-9 and abs(c.sparsity("D") - cell[1]) < 1e-9]
        shared, same = agreement(r.series(LABEL), twin[0].series(LABEL)) if twin else ([], "")
        name = {"stu": "STU-GAN"}.get(r.method, r.method)
        said.append(f"{name} seed {r.seed}: {same} at {len(shared)} evaluations" if shared else
                    f"{name} seed {r.seed}: no core run to set it beside")
        core_curve = dict(twin[0].series(LABEL)) if twin else {}
        gaps += [abs(v - core_curve[s]) for s, v in r.series(LABEL) if s in core_curve] if shared else [math.inf]
    close = bool(gaps) and max(gaps) <= 1e-6
    return [f"Cross-commit replay (`{folder}/`): the core grid's runs of this cell re-trained with this piece's code "
            f"({code}; the core grid's: {core_commit}): " + "; ".join(said) + "."
            + (" Every evaluation agrees to 1e-6 or better (the metric's float rounding, far below anything the "
               "study reads): the two commits train this cell alike, and the pairs across them stand." if close else
               " The curves differ: pair this piece with the core grid only with that in mind."), ""]


def merge(*sources):
    curves, flops = defaultdict(dict), defaultdict(dict)
    for c, f in sources:
        for k, v in c.items():
            curves[k].update(v)
        for k, v in f.items():
            flops[k].update(v)
    return curves, flops
