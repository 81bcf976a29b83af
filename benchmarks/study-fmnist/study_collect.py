"""Copy the light files of a study's finished runs into the repository (no checkpoints, no weights).

    python benchmarks/study-fmnist/study_collect.py RUNS_DIR benchmarks/study-fmnist/runs [--commit SHA]

For every run folder under RUNS_DIR whose summary.json says "completed": config.json,
metrics.jsonl, summary.json, eval/*.json and the newest sample grid; for an IMP run or control, the
same files of each of its rounds (rounds/round-NN/). Paths of the machine the runs
were trained on (RUNS_DIR itself, in "out", "from_run", ...) become relative to RUNS_DIR's parent:
the copies name the sweep folder and run, not a machine. Runs still training are
skipped; a run already collected is replaced (its files may have grown). With --commit, the
commit the runs were trained at is written to DEST/COMMIT, which reports cite.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

LIGHT = ("config.json", "metrics.jsonl", "summary.json")


def completed(run: Path) -> bool:
    try:
        return json.loads((run / "summary.json").read_text()).get("status") == "completed"
    except (OSError, ValueError):
        return False


def collect(src: Path, dest: Path) -> list[str]:
    names = []
    for run in sorted(p for p in src.iterdir() if p.is_dir()):
        if not completed(run):
            continue
        out = dest / run.name
        if out.exists():
            shutil.rmtree(out)
        _copy_light(run, out, src)
        for rnd in sorted((run / "rounds").glob("round-*")) if (run / "rounds").is_dir() else []:
            _copy_light(rnd, out / "rounds" / rnd.name, src)
        names.append(run.name)
    return names


def _copy_light(run: Path, out: Path, src: Path) -> None:
    (out / "eval").mkdir(parents=True)
    (out / "samples").mkdir()
    for f in [run / name for name in LIGHT] + (sorted((run / "eval").glob("*.json"))
                                               if (run / "eval").is_dir() else []):
        if f.exists():
            (out / f.relative_to(run)).write_text(f.read_text().replace(str(src.resolve().parent) + "/", ""))
    grids = sorted((run / "samples").glob("*.png"))
    if grids:
        shutil.copy2(grids[-1], out / "samples" / grids[-1].name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, help="the sweep's output folder")
    ap.add_argument("dest", type=Path, help="where the light copies go, one folder per run")
    ap.add_argument("--commit", help="the commit the runs were trained at")
    args = ap.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    names = collect(args.runs, args.dest)
    if args.commit:
        (args.dest / "COMMIT").write_text(args.commit + "\n")
    print(f"{len(names)} completed runs in {args.dest}: {', '.join(names) or '-'}")


if __name__ == "__main__":
    main()
