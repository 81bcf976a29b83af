"""How many torch threads trained each committed run that does not record it: its first steps replayed.

    PYTHONPATH=WORKTREE/src python benchmarks/study-fmnist/study_threads.py benchmarks/study-fmnist/runs [--steps 100]
        [--inputs WORKTREE]

Runs trained before the run folder recorded its thread count (``config.json`` ``environment.torch_threads``)
say nothing of it, and the thread count changes float rounding, so a run at 2 threads is not the bitwise
twin of one at 1. Each such run's first ``--steps`` steps are trained again from its ``config.json``, with
the code of the commit the runs were trained at (run this with that commit's sources first on the path: a
worktree pinned at the folder's COMMIT), once at 1 thread and once at 2, and the first ``kind=train``
record is compared with the run's own: the same losses to the bit name the thread count the run started
with. An IMP chain or control is checked through its first round (a chain's round 0: dense training
from its seed; a control's round 1: its first ticket, from the masks and weights in its tickets
folder). Runs that start from files outside the committed ones (a control's tickets, transferred
tickets, a dense run to prune) are replayed only with ``--inputs``: the folder their paths
(``masks_from``, ``from_run``) were written relative to, the worktree their sweep ran from, where
those files still are. Left out: methods whose first steps depend on the run's length (GMP's and
early-bird's schedules are fractions of it: a shorter replay would prune at other steps).

Writes RUNS/threads.json: {run: {"threads": 1 | 2 | null, "step": N, "commit": the code replayed}}, which
the reports cite. A run resumed at another count later is not caught here (see the study README).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

LENGTH_SCHEDULED = {"gmp", "early_bird"}  # their schedules scale with --steps: a short replay is another run
INPUTS = ("from_run", "masks_from")  # paths to files a run starts from
SKIP = {"out", "data_root", "steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints",
        "eval_every", "eval_metrics", "tensorboard"}


def _replayable(run: Path, inputs: Path | None) -> Path | None:
    """The config.json to replay for ``run``: its own, or an IMP chain's or control's first round's (a run
    of its own: round 0's dense training, a control's first ticket trained from its masks and weights);
    None when it starts from files that are not under ``inputs`` (or no ``inputs`` is given)."""
    path = run / "config.json"
    if json.loads(path.read_text()).get("method") == "imp":
        rounds = sorted((run / "rounds").glob("round-*/config.json"))
        if not rounds:
            return None
        path = rounds[0]
    config = json.loads(path.read_text())
    if config.get("method") in LENGTH_SCHEDULED:
        return None
    paths = [config[k] for k in INPUTS if config.get(k)]
    if paths and not (inputs and all((inputs / p).exists() for p in paths)):
        return None
    return path


def _first_train(run: Path) -> dict | None:
    """A run's first kind=train record: in its own metrics, or its first round's (an IMP chain's or
    control's); read here rather than through sparsegan's record reader, which this script may not find
    under that name in the old commits whose sources it runs against."""
    for metrics in [run / "metrics.jsonl", *sorted((run / "rounds").glob("round-*/metrics.jsonl"))]:
        for line in metrics.read_text().splitlines() if metrics.is_file() else []:
            record = json.loads(line)
            if record.get("kind") == "train":
                return record
    return None


def replay(config_path: Path, threads: int, steps: int, workdir: Path, inputs: Path | None = None) -> dict | None:
    """The first kind=train record of a fresh run of ``config_path`` at ``threads`` torch threads, run from
    ``inputs`` (where its input paths resolve) if given."""
    from sparsegan.config import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    config = json.loads(config_path.read_text())
    values = {k: v for k, v in config.items() if k in names and k not in SKIP}
    if inputs and config.get("data_root") and (inputs / config["data_root"]).exists():
        values["data_root"] = config["data_root"]  # where the sweep found its data, beside its inputs
    recipe = workdir / f"replay-{threads}.yaml"
    recipe.write_text(yaml.safe_dump(values))
    out = workdir / f"run-{threads}"
    cmd = [sys.executable, "-m", "sparsegan", "train", "--config", str(recipe), "--steps", str(steps),
           "--log-every", str(steps), "--sample-every", str(10 * steps), "--checkpoint-every", str(10 * steps),
           "--no-progress", "--allow-ignored", "--out", str(out), "--overwrite"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=inputs)
    return _first_train(out)


def same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in a if k.startswith("loss"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="a committed runs folder (benchmarks/study-fmnist/runs, ...)")
    ap.add_argument("--steps", type=int, default=100, help="the steps replayed (the runs' first log step)")
    ap.add_argument("--inputs", type=Path, help="the worktree the sweep ran from: replay the runs that start from "
                    "its files (controls, transferred tickets, pruned dense runs)")
    args = ap.parse_args()
    import sparsegan

    commit = subprocess.run(["git", "-C", str(Path(sparsegan.__file__).parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    wanted = (args.runs / "COMMIT").read_text().strip() if (args.runs / "COMMIT").is_file() else None
    if wanted and not wanted.startswith(commit[:7]):
        sys.exit(f"error: {args.runs} was trained at {wanted}; run this with that commit's sources "
                 f"(sparsegan here is at {commit})")
    path = args.runs / "threads.json"
    found = json.loads(path.read_text()) if path.is_file() else {}
    for run in sorted(p for p in args.runs.iterdir() if (p / "config.json").is_file()):
        config = json.loads((run / "config.json").read_text())
        if run.name in found or (config.get("environment") or {}).get("torch_threads"):
            continue
        source = _replayable(run, args.inputs)
        if source is None:
            continue
        own = _first_train(source.parent)
        if own is None or own["step"] != args.steps:
            continue
        threads = None
        with tempfile.TemporaryDirectory() as tmp:
            for n in (1, 2):
                if same(own, replay(source, n, args.steps, Path(tmp), args.inputs)):
                    threads = n
                    break
        found[run.name] = {"threads": threads, "step": args.steps, "commit": commit}
        path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")  # after each run: a stop loses nothing
        print(f"{run.name}: {threads if threads else 'neither 1 nor 2'} thread(s)", flush=True)


if __name__ == "__main__":
    main()
