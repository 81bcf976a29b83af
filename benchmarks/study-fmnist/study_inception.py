"""Inception FID (the papers' extractor) at the end of the study's headline runs.

    nice python benchmarks/study-fmnist/study_inception.py runs/study-fmnist-core [--num-samples 2000] [--dry-run]

For every completed run of the core grid that is dense or sits in a headline cell (static and
STU-GAN at s_G 95 / s_D 70 % and s_G 80 / s_D 70 %), and has no eval file of this protocol yet, runs

    sparsegan eval RUN --metrics fid,kid --num-samples N --no-progress

(the final EMA generator, eval mode, N generated vs N real training images; the same N for every
run). The files land in RUN/eval/ (fid@N.json, kid@N.json), which benchmarks/study-fmnist/study_collect.py copies
and benchmarks/study-fmnist/study_fmnist.py reports next to fid_domain. On the 2-core CPU machine the TF-Inception
runs at a few images per second per core: 2,000 images per run is the count the budget allows (FID
at 2,000 samples is biased upward against the papers' 50,000; the comparison holds only between
runs of the same count, as here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HEADLINE = ((0.95, 0.7), (0.8, 0.7))


def selected(run: Path) -> bool:
    try:
        config = json.loads((run / "config.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    if summary.get("status") != "completed":
        return False
    if config.get("method") == "dense":
        return True
    return config.get("method") in ("static", "stu") and any(
        abs(config.get("sparsity_g", 0) - g) < 1e-9 and abs(config.get("sparsity_d", 0) - d) < 1e-9
        for g, d in HEADLINE)


def done(run: Path, n: int) -> bool:
    path = run / "eval" / f"fid@{n}.json"
    if not path.exists():
        return False
    step = json.loads((run / "summary.json").read_text()).get("step")
    return json.loads(path.read_text()).get("step") == step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="the core grid's sweep folder")
    ap.add_argument("--num-samples", type=int, default=2000)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    todo = [r for r in sorted(p for p in args.runs.iterdir() if p.is_dir())
            if selected(r) and not done(r, args.num_samples)]
    print(f"{len(todo)} runs to evaluate: {', '.join(r.name for r in todo) or '-'}", flush=True)
    for run in [] if args.dry_run else todo:
        cmd = [sys.executable, "-m", "sparsegan", "eval", str(run), "--metrics", "fid,kid",
               "--num-samples", str(args.num_samples), "--no-progress"]
        rc = subprocess.run(cmd).returncode
        print(f"{run.name}: {'done' if rc == 0 else f'failed (exit {rc})'}", flush=True)
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
