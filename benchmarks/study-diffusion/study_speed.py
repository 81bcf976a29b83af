"""Time the study's trained denoisers on the sparse runtime against dense: writes ``speed.json``, which the
report's sampling-speed section reads.

    python benchmarks/study-diffusion/study_speed.py RUNS_DIR benchmarks/study-diffusion/speed.json \
        [--arms static,stu] [--seed 0] [--threads 1] [--batch-sizes 1,16,64]

RUNS_DIR is the study sweep's output folder (the runs with their checkpoints, not the committed light
copies). For each completed run of the given methods and seed, one per sparsity, it calls
``sparsegan bench RUN --json`` (whole DDIM samplings at the run's NFE, dense and sparse alternating,
medians) and records the command, the thread count, the machine's CPU count, torch's version, the commit and the load
average before and after: time with nothing else running, and the load average says whether that held.

A run is timed only where its folder still holds final/'s EMA denoiser. ``speed.json`` is a list of measurements,
each with its own conditions: a new one replaces the earlier timings of the arms it times and keeps the others
(a denoiser timed on another machine or at another commit stays, under the conditions it was timed in).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from study_diffusion import arm_of

from sparsegan.experiments.results import load_runs
from sparsegan.run_folder import RunFolder


def _runs(runs_dir: Path, methods: list[str], seed: int) -> list[tuple[str, Path, int]]:
    """(arm, run folder, NFE) of each completed run of ``methods`` at ``seed``: one per arm of the report."""
    found = {}
    for run in load_runs(runs_dir):
        if "rounds" in run.path.relative_to(runs_dir).parts:  # an IMP chain's rounds are not the study's cells
            continue
        if run.status == "completed" and run.method in methods and run.seed == seed and run.method != "dense":
            if not RunFolder(run.path).generator_file("ema").is_file():  # a light copy: nothing to time
                print(f"skipped {run.path.name}: no final/ denoiser", file=sys.stderr)
                continue
            found.setdefault(arm_of(run), (run.path, int(run.config.get("sample_steps") or 1)))
    return [(name, path, nfe) for name, (path, nfe) in sorted(found.items())]


def merged(path: Path, new: dict) -> dict:
    """``path``'s measurements with ``new`` appended: the arms ``new`` times leave the earlier ones, and a
    measurement left with no arm goes."""
    earlier = json.loads(path.read_text())["measurements"] if path.is_file() else []
    kept = []
    for m in earlier:
        runs = {arm: r for arm, r in m["runs"].items() if arm not in new["runs"]}
        if runs:
            kept.append({**m, "runs": runs})
    return {"measurements": kept + [new]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="the study sweep's output folder")
    ap.add_argument("out", type=Path, help="benchmarks/study-diffusion/speed.json")
    ap.add_argument("--arms", default="static,stu", help="the methods whose runs to time (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    runs = _runs(args.runs, args.arms.split(","), args.seed)
    if not runs:
        sys.exit(f"error: no completed run of {args.arms} at seed {args.seed} with its final/ denoiser in {args.runs}")
    nfe = {n for _, _, n in runs}
    if len(nfe) != 1:
        sys.exit(f"error: the runs sample at different NFE ({sorted(nfe)}); time one NFE at a time")
    flags = ["--batch-sizes", args.batch_sizes, "--repeats", str(args.repeats), "--warmup", "2",
             "--threads", str(args.threads), "--no-plan-cache"]
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run, _ in runs:
            out = Path(tmp) / "bench.json"
            subprocess.run([sys.executable, "-m", "sparsegan", "bench", str(run), *flags, "--json", str(out)],
                           check=True)
            results[name] = json.loads(out.read_text())
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    conditions = (f"{args.threads} torch thread(s) on a {os.cpu_count()}-CPU {platform.machine()} machine, torch "
                  f"{torch.__version__}, commit {commit}, the EMA denoisers of seed {args.seed}; load average (1 min) "
                  f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    new = {"command": "sparsegan bench RUN " + " ".join(flags), "conditions": conditions, "nfe": nfe.pop(),
           "runs": results}
    data = merged(args.out, new)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    total = sum(len(m["runs"]) for m in data["measurements"])
    print(f"wrote {args.out} ({len(results)} denoisers timed; {total} in all)")


if __name__ == "__main__":
    main()
