"""``sparsegan sweep``: run a grid of configurations, one run folder per point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparsegan.errors import UserError


def run(args: argparse.Namespace) -> int:
    from sparsegan.experiments.grid import load_grid, parse_overrides
    from sparsegan.experiments.sweep import plan, run_sweep
    from sparsegan.recipes import resolve

    grid = load_grid(resolve(args.grid, "sweep"), parse_overrides(args.set))
    out = args.out or grid.out
    if out is None:
        raise UserError(f"--out is required: {args.grid} names no 'out' folder")
    out = Path(out)
    if args.dry_run:
        from sparsegan.experiments.progress import recorded_step

        states = plan(grid, out)
        width = max(len(p.name) for p, _ in states)
        for point, state in states:
            todo = {"completed": "skip (completed)", "diverged": "skip (diverged)", "resume": "resume",
                    "new": "train"}[state]
            if state == "resume":  # how far it got: the newest step its records (or its newest round's) hold
                step, label = recorded_step(out / point.name)
                steps = point.values.get("steps")
                if step is not None:
                    todo += f" (at step {step:,}" + (f" of {steps:,}" if steps else "") + f"{label})"
            print(f"{point.name:<{width}}  {todo}")
        evals = f"; then sparsegan eval {' '.join(grid.eval_args())}" if grid.eval_metrics else ""
        print(f"{len(states)} points -> {out}{evals}")
        return 0
    results = run_sweep(grid, out, workers=args.workers, progress=not args.no_progress)
    failed = [r for r in results.values() if r.action == "failed"]
    counts = {}
    for r in results.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    print(f"sweep {grid.name}: {len(results)} points in {out} ("
          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")")
    if failed:
        print(f"sparsegan: {len(failed)} point(s) failed: " + ", ".join(f"{r.name} ({r.message})" for r in failed),
              file=sys.stderr)
        return 1
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of configurations (skips finished points, resumes interrupted or "
                                     "extended ones, evaluates points without a current result; OUT/sweep.json "
                                     "keeps every call's outcomes)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("grid", metavar="GRID.yaml|NAME",
                   help="sweep file: 'base' config keys + 'grid' lists (configs/sweeps/), or the name of a packaged "
                        "one (sparsegan recipes sweep lists them; a file that exists wins)")
    p.add_argument("--out", help="folder of the run folders (default: the grid's 'out')")
    p.add_argument("--workers", type=int, default=1, help="points run side by side (subprocesses when > 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a 'base' key for this call, e.g. --set steps=20 --set device=cpu, or an 'eval' key "
                        "with eval.KEY, e.g. --set eval.num_samples=1000 (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="list the points and what would happen to each")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the one-line status per point stays)")
    p.set_defaults(func=run)
