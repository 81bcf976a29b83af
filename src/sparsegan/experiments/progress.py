"""The running points' own progress under a sweep's bar: one line per point that is training, e.g.

    sweep demo:  33%|███▎      | 1/3 [01:02<02:04, 62.10s/run]
      static_seed0  41%|████      | 410/1000 steps, 9.8 steps/s, 01:00 left

A line is read from the point's run folder only: the step of the newest record of its metrics.jsonl
(an IMP run's: that of its newest round, ``rounds/round-KK/``), polled from a thread. It is therefore
the same whether the point trains in this process or in a ``python -m sparsegan`` subprocess, needs
no channel into the training, and writes nothing. A line moves at the run's log_every steps.

The rate is measured between records seen by this sweep call (the start of a process, its data and
model set-up are not counted as training); the time left is what the steps still to go take at it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from tqdm import tqdm

from sparsegan.run_folder import RunFolder


def shows_progress(stream: IO) -> bool:
    """Whether ``stream`` is a terminal: progress lines redrawn in place are noise in a log file."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_folder(run: Path) -> tuple[Path, str]:
    """The folder whose records say a run's progress, and its label: an IMP run's newest round
    (" (round-02)"), else the run ("")."""
    rounds = sorted(RunFolder(run).rounds.glob("round-*"))
    return (rounds[-1], f" ({rounds[-1].name})") if rounds else (run, "")


def recorded_step(run: Path) -> tuple[int | None, str]:
    """The newest step a run's records hold (None: none yet), with :func:`progress_folder`'s label."""
    folder, label = progress_folder(run)
    tail = _Tail(RunFolder(folder).metrics_file)
    tail.read()
    return tail.step, label


@dataclass
class _Tail:
    """What has been read of one metrics.jsonl: where to go on, and its newest step."""

    path: Path
    offset: int = 0
    inode: int | None = None
    step: int | None = None

    def read(self) -> tuple[bool, bool]:
        """Read the records appended since the last call: (any new record, the file was replaced or
        truncated: a run overwritten, or a resume dropping the records past its checkpoint)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False, False
        replaced = self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset)
        if replaced:
            self.offset, self.step = 0, None
        self.inode = st.st_ino
        try:
            records, self.offset = RunFolder(self.path.parent).records_from(self.offset)
        except (OSError, UnicodeDecodeError):  # being replaced right now: the next poll reads it
            return False, replaced
        steps = [r["step"] for r in records if isinstance(r.get("step"), int)]
        if steps:
            self.step = max(steps + ([self.step] if self.step is not None else []))
        return bool(records), replaced


@dataclass
class _Watch:
    """One running point: its line and the observations its rate is measured from."""

    run: Path
    steps: int
    bar: tqdm
    slot: int  # the line below the sweep's bar: 1, 2, ...
    clock: Callable[[], float]
    tail: _Tail | None = None
    anchor: tuple[float, int] | None = None  # (when, step) of the first record written after the start
    latest: tuple[float, int] | None = None  # (when, step) the step last grew

    def folder(self) -> tuple[Path, str]:
        return progress_folder(self.run)

    def poll(self, first: bool = False) -> None:
        """Read the newest records into the line. The ``first`` read finds what the folder held
        before the point started (a resumed run's steps): no rate is measured from it."""
        folder, label = self.folder()
        if self.tail is None or self.tail.path.parent != folder:  # a new round counts its own steps
            self.tail, self.anchor, self.latest = _Tail(RunFolder(folder).metrics_file), None, None
        new, replaced = self.tail.read()
        now, step = self.clock(), self.tail.step
        if replaced:
            self.anchor = self.latest = None
        if step is not None:
            if new and not first and self.anchor is None:
                self.anchor = (now, step)
            if self.latest is None or step > self.latest[1]:
                self.latest = (now, step)
        shown = (step or 0, self.rate_text() + label)
        if shown != (self.bar.n, self.bar.postfix):  # redraw a changed line only
            self.bar.n = shown[0]
            self.bar.set_postfix_str(shown[1])

    def rate_text(self) -> str:
        if self.anchor is None or self.latest is None or self.latest[1] <= self.anchor[1]:
            return "steps/s from the next records on"
        (t0, s0), (t1, s1) = self.anchor, self.latest
        rate = (s1 - s0) / max(t1 - t0, 1e-9)
        left = max(self.steps - s1, 0) / rate
        return f"{rate:.3g} steps/s, {tqdm.format_interval(left)} left"


class PointProgress:
    """The lines of the points running now, below the sweep's own bar (tqdm position 0)."""

    BAR_FORMAT = "  {desc} {percentage:3.0f}%|{bar:20}| {n}/{total} steps{postfix}"

    def __init__(self, stream: IO, width: int, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        self.stream, self.width, self.interval, self.clock = stream, width, interval, clock
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-progress", daemon=True)
        self._thread.start()

    def start(self, name: str, run: Path, steps: int) -> None:
        """Show ``name``'s line until :meth:`stop`: ``steps`` is the step count it trains to."""
        with self._lock:
            taken = {w.slot for w in self._watches.values()}
            slot = next(i for i in range(1, len(taken) + 2) if i not in taken)
            bar = tqdm(total=steps, desc=f"{name:<{self.width}}", position=slot, leave=False, file=self.stream,
                       bar_format=self.BAR_FORMAT, dynamic_ncols=True)
            watch = self._watches[name] = _Watch(run, steps, bar, slot, self.clock)
            watch.poll(first=True)  # a resumed run starts at its checkpoint's step, not at 0

    def stop(self, name: str) -> None:
        """Read the point's last records into its line, then take the line away."""
        with self._lock:
            watch = self._watches.pop(name, None)
            if watch is not None:
                watch.poll()
                watch.bar.close()

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        for name in list(self._watches):
            self.stop(name)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            with self._lock:
                for watch in self._watches.values():
                    watch.poll()
