"""Run a sweep: one run folder per grid point, launched through the ``sparsegan`` entry point.

A point's state is read from its run folder only (the run-folder contract of DESIGN.md):

    completed   summary.json says status "completed" at the requested step count -> skipped
    diverged    summary.json says status "diverged" -> skipped: a result, not a crash to retry
    resume      the folder holds a checkpoint -> ``sparsegan train --resume auto``
    new         nothing usable yet -> ``sparsegan train --overwrite`` (a crash before the first
                checkpoint leaves nothing worth keeping)

With one worker every point runs in this process through :func:`sparsegan.cli.main`; with more,
each point is a ``python -m sparsegan`` subprocess whose output goes to ``OUT/logs/<point>.log``.
The sweep never imports the training package itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from tqdm import tqdm

from sparsegan.errors import UserError
from sparsegan.experiments.grid import Grid, Point, dependency_levels, resolve

# Keys that may differ between the run folder and the grid without making it another run:
# where it runs, how often it logs, and how long it trains (a longer run resumes, a shorter one is done).
INTERRUPTED = 130  # the exit code of an interrupted sparsegan command: stop the sweep, not just the point
TOLERATED = {"out", "device", "data_root", "steps", "log_every", "sample_every", "checkpoint_every",
             "keep_checkpoints", "num_sample_images", "tensorboard"}


@dataclass
class PointResult:
    name: str
    action: str  # skipped | ran | resumed | failed | evaluated
    status: str  # the run folder's summary status after the point ran (or "failed")
    seconds: float = 0.0
    message: str = ""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _has_checkpoint(run: Path) -> bool:
    ck = run / "checkpoints"
    return ck.is_dir() and any(p.name.startswith("state-") and p.suffix == ".pt" for p in ck.iterdir())


def point_state(run: Path, point: Point) -> str:
    """completed | diverged | resume | new; refuses a folder that holds a different run."""
    config = _read_json(run / "config.json")
    if config is not None:
        for key, want in resolve(point.values, run.parent).items():
            if key in TOLERATED or key not in config:
                continue
            if config[key] != want:
                raise UserError(
                    f"{run} was trained with {key}={config[key]!r} but the grid now asks for {want!r}; "
                    "use another --out or delete that folder"
                )
    summary = _read_json(run / "summary.json") or {}
    steps = point.values.get("steps")
    if summary.get("status") == "completed" and (steps is None or summary.get("step", 0) >= steps):
        return "completed"
    if summary.get("status") == "diverged":
        return "diverged"
    return "resume" if _has_checkpoint(run) else "new"


def missing_evals(run: Path, metrics: list[str]) -> list[str]:
    return [m for m in metrics if not (run / "eval" / f"{m}.json").exists()]


def write_point_config(out: Path, point: Point) -> Path:
    path = out / "configs" / f"{point.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resolve(point.values, out), sort_keys=True))
    return path


def train_argv(out: Path, point: Point, state: str) -> list[str]:
    cfg = write_point_config(out, point)
    # One base serves points of several methods: a key without effect for a point is recorded in its
    # config.json as ignored, not refused (sparsegan train --allow-ignored).
    argv = ["train", "--config", str(cfg), "--out", str(out / point.name), "--no-progress", "--allow-ignored"]
    return argv + (["--resume", "auto"] if state == "resume" else ["--overwrite"])


class Launcher:
    """Runs ``sparsegan`` argv lists: in this process, or as a subprocess logging to a file."""

    def __init__(self, in_process: bool, threads_per_run: int | None = None):
        self.in_process = in_process
        self.threads_per_run = threads_per_run

    def __call__(self, argv: list[str], log: Path) -> tuple[int, str]:
        if self.in_process:
            from sparsegan.cli import main

            return main(argv), ""
        env = dict(os.environ)
        if self.threads_per_run and "OMP_NUM_THREADS" not in env:
            # N runs side by side must not each spawn one thread per core.
            env["OMP_NUM_THREADS"] = str(self.threads_per_run)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"$ sparsegan {' '.join(argv)}\n")
            f.flush()
            rc = subprocess.call([sys.executable, "-m", "sparsegan", *argv], stdout=f, stderr=subprocess.STDOUT, env=env)
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        return rc, (lines[-1] if rc and lines else "")


def run_point(out: Path, grid: Grid, point: Point, launch: Callable[[list[str], Path], tuple[int, str]]) -> PointResult:
    run = out / point.name
    log = out / "logs" / f"{point.name}.log"
    start = time.perf_counter()
    state = point_state(run, point)
    action = "skipped"
    if state not in ("completed", "diverged"):
        rc, msg = launch(train_argv(out, point, state), log)
        if rc == INTERRUPTED:
            raise KeyboardInterrupt
        diverged = (_read_json(run / "summary.json") or {}).get("status") == "diverged"
        if rc != 0 and not diverged:
            return PointResult(point.name, "failed", "failed", time.perf_counter() - start, f"train exit {rc} {msg}".strip())
        action = "resumed" if state == "resume" else "ran"
    todo = missing_evals(run, grid.eval_metrics)
    summary = _read_json(run / "summary.json") or {}
    if todo and summary.get("status") == "completed":
        rc, msg = launch(["eval", str(run), *grid.eval_args(), "--no-progress"], log)
        if rc == INTERRUPTED:
            raise KeyboardInterrupt
        if rc != 0:
            return PointResult(point.name, "failed", summary.get("status", "?"), time.perf_counter() - start,
                               f"eval exit {rc} {msg}".strip())
        action = "evaluated" if action == "skipped" else action
        summary = _read_json(run / "summary.json") or summary
    return PointResult(point.name, action, summary.get("status", "unknown"), time.perf_counter() - start,
                       _metric_note(run, grid.eval_metrics))


def _metric_note(run: Path, metrics: list[str]) -> str:
    notes = []
    for m in metrics:
        data = _read_json(run / "eval" / f"{m}.json")
        v = data.get("value", data.get(m)) if isinstance(data, dict) else None
        if isinstance(v, (int, float)):
            notes.append(f"{m} {v:.4g}")
    return ", ".join(notes)


def _require_eval_command(grid: Grid) -> None:
    from sparsegan.cli import COMMANDS

    if grid.eval_metrics and "eval" not in COMMANDS:
        raise UserError(f"{grid.path} asks for evaluation, but this sparsegan has no 'eval' command")


def plan(grid: Grid, out: Path) -> list[tuple[Point, str]]:
    return [(p, point_state(out / p.name, p)) for p in grid.points]


def write_manifest(out: Path, grid: Grid, results: dict[str, PointResult]) -> None:
    manifest = {
        "grid": str(grid.path), "name": grid.name, "eval_metrics": grid.eval_metrics,
        "points": [
            {"name": p.name, "values": p.values,
             **({"action": results[p.name].action, "status": results[p.name].status,
                 "seconds": round(results[p.name].seconds, 3), "message": results[p.name].message}
                if p.name in results else {})}
            for p in grid.points
        ],
    }
    tmp = out / ".sweep.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, out / "sweep.json")


def run_sweep(grid: Grid, out: Path, workers: int = 1, progress: bool = True) -> dict[str, PointResult]:
    """Run every point not yet completed; returns each point's result, in grid order."""
    if workers < 1:
        raise UserError(f"--workers must be a positive integer, got {workers}")
    _require_eval_command(grid)
    states = plan(grid, out)  # refuses mismatched folders before anything runs
    out.mkdir(parents=True, exist_ok=True)
    launch = Launcher(in_process=workers == 1, threads_per_run=max(1, (os.cpu_count() or 1) // workers))
    results: dict[str, PointResult] = {}
    n = len(grid.points)
    width = max(len(p.name) for p in grid.points)
    bar = tqdm(total=n, desc=f"sweep {grid.name}", unit="run", disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def done(res: PointResult) -> None:
        results[res.name] = res
        bar.update(1)
        line = f"[{len(results):>{len(str(n))}}/{n}] {res.name:<{width}}  {res.action:<9} {res.status:<10} {res.seconds:7.1f} s"
        tqdm.write(line + (f"  {res.message}" if res.message else ""), file=sys.stderr)
        write_manifest(out, grid, results)

    try:
        for wave in dependency_levels([p for p, _ in states], out):
            if workers == 1:
                for point in wave:
                    done(run_point(out, grid, point, launch))
                continue
            pool = ThreadPoolExecutor(max_workers=workers)
            try:
                futures = [pool.submit(run_point, out, grid, p, launch) for p in wave]
                for fut in as_completed(futures):
                    done(fut.result())
            finally:  # on Ctrl-C or an error, start no further point
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return {p.name: results[p.name] for p in grid.points if p.name in results}
