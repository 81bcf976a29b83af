"""Run a sweep: one run folder per grid point, launched through the ``sparsegan`` entry point.

A point's state is read from its run folder only (the run-folder contract of DESIGN.md):

    completed   summary.json says status "completed" at the requested step count -> skipped
    diverged    summary.json says status "diverged" -> skipped: a result, not a crash to retry
    resume      the folder holds a checkpoint, or rounds/ (an IMP run or control) -> ``sparsegan train
                --resume auto``
    new         nothing usable yet -> ``sparsegan train --overwrite`` (a crash before the first
                checkpoint leaves nothing worth keeping)

After training, a grid with an 'eval' block runs ``sparsegan eval`` on every completed point that
has no current result for the block's protocol (``eval/<metric>@<protocol>.json`` measured at the
run's present step and weights): a point whose steps were extended is evaluated again.
OUT/sweep.json records every point's values and outcomes, merged over calls, never erased.

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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import yaml
from tqdm import tqdm

from sparsegan.config import build_config
from sparsegan.errors import UserError
from sparsegan.experiments.grid import Grid, Point, dependencies, dependency_order, next_ready, resolve
from sparsegan.experiments.progress import PointProgress, shows_progress
from sparsegan.files import atomic_write_bytes
from sparsegan.protocols import eval_file, for_run, read_eval_file, staleness, value_names
from sparsegan.run_folder import RunFolder, read_json_or_none

# Keys that may differ between the run folder and the grid without making it another run:
# where it runs and on which kernels (the same results to float rounding), how often it logs, from which
# step it evaluates, and how long it trains (a longer run resumes, a shorter one is done).
INTERRUPTED = 130  # the exit code of an interrupted sparsegan command: stop the sweep, not just the point
STOPPED = {INTERRUPTED, 143}  # SIGINT, SIGTERM: the run saved a checkpoint and stopped
TOLERATED = {"out", "device", "sparse_compute", "eval_runtime", "eval_from", "data_root", "steps", "log_every",
             "sample_every", "checkpoint_every", "keep_checkpoints", "num_sample_images", "tensorboard"}


@dataclass
class PointResult:
    name: str
    action: str  # skipped | ran | resumed | failed | evaluated
    status: str  # the run folder's summary status after the point ran (or "failed")
    seconds: float = 0.0
    message: str = ""


def _summary(run: Path) -> dict:
    """The point's summary.json as it is now ({} while it has none)."""
    return read_json_or_none(RunFolder(run).summary_file) or {}


def _config(run: Path) -> dict:
    """The point's config.json ({} while it has none)."""
    return read_json_or_none(RunFolder(run).config_file) or {}


def _resumable(run: Path) -> bool:
    """Whether the folder holds training worth keeping. An IMP run or control (launch/rounds.py)
    checkpoints in its sub-runs RUN/rounds/round-KK/, never in RUN/checkpoints/: its rounds/ folder
    is what marks it, and ``--overwrite`` would delete every finished round of the chain."""
    folder = RunFolder(run)
    return folder.has_checkpoint() or folder.rounds.is_dir()


def point_state(run: Path, point: Point) -> str:
    """completed | diverged | resume | new; refuses a folder that holds a different run."""
    config = read_json_or_none(RunFolder(run).config_file)
    if config is not None:
        for key, want in resolve(point.values, run.parent).items():
            if key in TOLERATED or key not in config:
                continue
            if config[key] != want:
                raise UserError(
                    f"{run} was trained with {key}={config[key]!r} but the grid now asks for {want!r}; "
                    "use another --out or delete that folder"
                )
    summary = _summary(run)
    steps = point.values.get("steps")
    if summary.get("status") == "completed" and (steps is None or summary.get("step", 0) >= steps):
        return "completed"
    if summary.get("status") == "diverged":
        return "diverged"
    return "resume" if _resumable(run) else "new"


def missing_evals(run: Path, grid: Grid) -> list[str]:
    """The grid's eval metrics without a current result for its protocol: no
    ``eval/<metric>@<protocol>.json`` yet, or one of weights the run has since trained past."""
    if not grid.eval_metrics:
        return []
    metrics, protocol = grid.eval_protocol()
    protocol = for_run(protocol, _config(run))  # a diffusion run's NFE
    step = _summary(run).get("step")
    todo = []
    for m in metrics:
        data = read_eval_file(eval_file(run, m, protocol))
        if data is None or staleness(run, data, step) is not None:
            todo.append(m)
    return todo


def write_point_config(out: Path, point: Point) -> Path:
    path = out / "configs" / f"{point.name}.yaml"
    atomic_write_bytes(path, yaml.safe_dump(resolve(point.values, out), sort_keys=True).encode())
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
            rc = subprocess.call([sys.executable, "-m", "sparsegan", *argv], stdout=f, stderr=subprocess.STDOUT,
                                 env=env)
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        return rc, (lines[-1] if rc and lines else "")


def run_point(out: Path, grid: Grid, point: Point, launch: Callable[[list[str], Path], tuple[int, str]],
              lines: PointProgress | None = None) -> PointResult:
    """Train (or resume) and evaluate one point as its state asks; ``lines`` shows its training's
    progress while it runs."""
    run = out / point.name
    log = out / "logs" / f"{point.name}.log"
    start = time.perf_counter()
    state = point_state(run, point)
    action = "skipped"
    if state not in ("completed", "diverged"):
        if lines is not None:
            lines.start(point.name, run, build_config(point.values).steps)
        try:
            rc, msg = launch(train_argv(out, point, state), log)
        finally:
            if lines is not None:
                lines.stop(point.name)
        if rc in STOPPED:
            raise KeyboardInterrupt
        diverged = _summary(run).get("status") == "diverged"
        if rc != 0 and not diverged:
            return PointResult(point.name, "failed", "failed", time.perf_counter() - start,
                               f"train exit {rc} {msg}".strip())
        action = "resumed" if state == "resume" else "ran"
    todo = missing_evals(run, grid)  # also re-measures a point that trained on past its evaluation
    summary = _summary(run)
    if todo and summary.get("status") == "completed":
        rc, msg = launch(["eval", str(run), *grid.eval_args(), "--no-progress"], log)
        if rc in STOPPED:
            raise KeyboardInterrupt
        if rc != 0:
            return PointResult(point.name, "failed", summary.get("status", "?"), time.perf_counter() - start,
                               f"eval exit {rc} {msg}".strip())
        action = "evaluated" if action == "skipped" else action
        summary = _summary(run) or summary
    return PointResult(point.name, action, summary.get("status", "unknown"), time.perf_counter() - start,
                       _metric_note(run, grid))


def _metric_note(run: Path, grid: Grid) -> str:
    """e.g. 'fid_domain@1000 47.4 at step 1000', each value with its protocol and step."""
    if not grid.eval_metrics:
        return ""
    metrics, protocol = grid.eval_protocol()
    protocol = for_run(protocol, _config(run))
    notes = []
    for m in metrics:
        data = read_eval_file(eval_file(run, m, protocol)) or {}
        for name in value_names(data):
            notes.append(f"{protocol.label(name)} {data[name]:.4g} at step {data.get('step')}")
    return ", ".join(notes)


def _require_eval_command(grid: Grid) -> None:
    from sparsegan.cli import COMMANDS

    if grid.eval_metrics and "eval" not in COMMANDS:
        raise UserError(f"{grid.path} asks for evaluation, but this sparsegan has no 'eval' command")


def plan(grid: Grid, out: Path) -> list[tuple[Point, str]]:
    return [(p, point_state(out / p.name, p)) for p in grid.points]


def write_manifest(out: Path, grid: Grid, results: dict[str, PointResult], started: str) -> None:
    """OUT/sweep.json: every point's values and outcome, merged into what earlier calls recorded.

    A point keeps the history of its outcomes ("history", oldest first, one entry per call that
    reached it); the top-level fields are the latest. Points of earlier calls that this grid does
    not list (another grid, a narrower --set) are kept as they were; "calls" lists every call."""
    old = read_json_or_none(out / "sweep.json") or {}
    old_points = {p.get("name"): p for p in old.get("points", []) if isinstance(p, dict)}
    calls = [c for c in old.get("calls", []) if isinstance(c, dict)]
    this_call = {"started": started, "grid": str(grid.path), "name": grid.name, "eval_args": grid.eval_args()}
    if not calls or calls[-1].get("started") != started:
        calls.append(this_call)
    points = []
    for p in grid.points:
        entry = dict(old_points.pop(p.name, {}))
        history = [h for h in entry.get("history", []) if isinstance(h, dict)]
        if not history and "action" in entry:  # written by an older sparsegan: its one outcome
            history = [{k: entry[k] for k in ("action", "status", "seconds", "message") if k in entry}]
        history = [h for h in history if h.get("started") != started]  # this call's entry is rewritten
        entry.update({"name": p.name, "values": p.values})
        if p.name in results:
            r = results[p.name]
            outcome = {"action": r.action, "status": r.status, "seconds": round(r.seconds, 3), "message": r.message}
            entry.update(outcome)
            history.append({"started": started, **outcome, "values": p.values})
        entry["history"] = history
        points.append(entry)
    points += list(old_points.values())
    manifest = {"grid": str(grid.path), "name": grid.name, "eval_metrics": grid.eval_metrics,
                "eval_args": grid.eval_args(), "calls": calls, "points": points}
    atomic_write_bytes(out / "sweep.json", (json.dumps(manifest, indent=2) + "\n").encode())


def _run_side_by_side(order: list[Point], deps: dict[str, set[str]], workers: int,
                      run: Callable[[Point], PointResult], done: Callable[[PointResult], None]) -> None:
    """Up to ``workers`` points at once: each free worker takes the next point of ``order`` whose named
    points have finished (:func:`next_ready`). On Ctrl-C or an error no further point starts; the
    running ones finish (each saves its checkpoint)."""
    pending, finished = list(order), set()
    running: dict[Future, Point] = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        while pending or running:
            while len(running) < workers and (point := next_ready(pending, deps, finished)) is not None:
                pending.remove(point)
                running[pool.submit(run, point)] = point
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in ended:
                finished.add(running.pop(fut).name)
                done(fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_sweep(grid: Grid, out: Path, workers: int = 1, progress: bool = True) -> dict[str, PointResult]:
    """Run every point not yet completed; returns each point's result, in grid order."""
    if workers < 1:
        raise UserError(f"--workers must be a positive integer, got {workers}")
    _require_eval_command(grid)
    states = plan(grid, out)  # refuses mismatched folders before anything runs
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    launch = Launcher(in_process=workers == 1, threads_per_run=max(1, (os.cpu_count() or 1) // workers))
    results: dict[str, PointResult] = {}
    n = len(grid.points)
    width = max(len(p.name) for p in grid.points)
    bar = tqdm(total=n, desc=f"sweep {grid.name}", unit="run", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    # Each training point's own line below the bar, on a terminal only (redrawn lines garble a log).
    lines = PointProgress(sys.stderr, width) if progress and shows_progress(sys.stderr) else None

    def done(res: PointResult) -> None:
        results[res.name] = res
        bar.update(1)
        line = (f"[{len(results):>{len(str(n))}}/{n}] {res.name:<{width}}  {res.action:<9} {res.status:<10} "
                f"{res.seconds:7.1f} s")
        tqdm.write(line + (f"  {res.message}" if res.message else ""), file=sys.stderr)
        write_manifest(out, grid, results, started)

    try:
        order = dependency_order([p for p, _ in states], out)  # refuses a cycle before anything runs
        if workers == 1:  # one at a time in grid order, a point that names another's folder just after it
            for point in order:
                done(run_point(out, grid, point, launch, lines))
        else:
            _run_side_by_side(order, dependencies(order, out), workers,
                              lambda p: run_point(out, grid, p, launch, lines), done)
    finally:
        if lines is not None:
            lines.close()
        bar.close()
    return {p.name: results[p.name] for p in grid.points if p.name in results}
