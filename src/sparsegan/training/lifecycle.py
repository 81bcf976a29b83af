"""A run's start and stop, so that nothing written is lost: what a resume will do, and a clean stop
on SIGINT / SIGTERM.

- Resuming a completed run changes nothing and says so; a resume with more ``--steps`` than the
  run had continues it and says that its final/ and summary.json will be replaced (and its
  evaluations become stale); a checkpoint beyond ``--steps`` is refused.
- The first SIGINT (Ctrl-C) or SIGTERM lets the current step finish; the loop then saves a
  checkpoint of that step and raises :class:`TrainingStopped`, which the CLI turns into one line
  (where it stopped, the exact resume command) and exit code 128 + signal (130, 143). The handlers
  are the previous ones again from the first signal on, so a second signal aborts at once, as it
  would without sparsegan (no checkpoint of the unfinished step).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sparsegan.errors import RunInterrupted, TrainingStopped, UserError
from sparsegan.run_folder import FINAL, SUMMARY

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def resume_plan(run: Path, checkpoint: Path, ckpt_step: int, steps: int) -> bool:
    """Say (on stderr) what resuming ``run`` from ``checkpoint`` will do; True: nothing to do.

    Nothing has been written when this is called, and nothing is written when it returns True."""
    from sparsegan.run_folder import read_json_or_none

    summary = read_json_or_none(run / SUMMARY) or {}
    done = summary.get("status") == "completed" and isinstance(summary.get("step"), int)
    done_at = summary.get("step") if done else None
    if ckpt_step >= steps:
        if done and done_at >= ckpt_step:
            _say(f"sparsegan: {run} is complete at step {done_at} (--steps {steps}); nothing to do, nothing changed")
            return True
        if ckpt_step > steps:
            raise UserError(f"cannot resume {run}: its checkpoint {checkpoint.name} is at step {ckpt_step}, beyond "
                            f"--steps {steps}; pass --steps {ckpt_step} or more")
        _say(f"sparsegan: resuming {run} at its last step {ckpt_step}: writing {FINAL}/ and {SUMMARY}")
    elif done and done_at == ckpt_step:
        _say(f"sparsegan: {run} was complete at step {done_at}; continuing it to --steps {steps} ({FINAL}/ and "
             f"{SUMMARY} will be replaced at step {steps}; evaluations of step {done_at} become stale)")
    else:
        _say(f"sparsegan: resuming {run} from step {ckpt_step} ({checkpoint.name}) to step {steps}")
    return False


def _say(message: str) -> None:
    """A line on stderr, from rank 0 only under torchrun (every rank decides alike)."""
    if os.environ.get("RANK", "0") == "0":
        print(message, file=sys.stderr)


class StopRequest:
    """Turns the first SIGINT / SIGTERM into a request the loop honours at the end of a step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers live in the main thread only; elsewhere signals act as before
        for sig in SIGNALS:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue  # ignored on purpose (nohup, a background job): keep it so
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        self.signum = signum
        self.restore()  # a second signal aborts at once
        # os.write, not print: a handler may run while the main thread is inside a print to stderr.
        os.write(2, f"\nsparsegan: {signal.Signals(signum).name} received: stopping after this step with a "
                    "checkpoint (send it again to abort without one)\n".encode())

    def requested(self, dist) -> bool:
        """True on every rank as soon as any rank was signalled (they stop at the same step)."""
        return not dist.all_finite(self.signum is None)

    def stopped(self, step: int, steps: int, checkpoint: Path) -> TrainingStopped:
        return TrainingStopped(self.signum or signal.SIGINT, step, steps, checkpoint)


def folder_state(path: str | os.PathLike | None) -> dict[str, tuple[int, int, int]] | None:
    """What changes as soon as a run writes into ``path``: the inode, size and modification time of the
    folder and of each entry at its top (None: no folder). Every run's first write is there (the
    folder or samples/ ... made, config.json written, metrics.jsonl truncated on resume; a file made
    in a subfolder changes that subfolder's time), so one listing tells, however large the folder."""
    if path is None or not Path(path).is_dir():
        return None
    p = Path(path)
    state = {}
    for entry in (p, *p.iterdir()):
        try:
            st = entry.stat()
        except OSError:  # removed meanwhile
            continue
        state[entry.name if entry != p else "."] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return state


@contextmanager
def interrupts_once_written(out: str | os.PathLike | None) -> Iterator[None]:
    """A Ctrl-C in the block becomes :class:`RunInterrupted` once the run folder ``out`` was written to
    (there may be a checkpoint to resume from); before that it stays a plain KeyboardInterrupt: nothing
    was started, so no resume advice is due."""
    before = folder_state(out)
    try:
        yield
    except KeyboardInterrupt as e:
        if not isinstance(e, RunInterrupted) and folder_state(out) != before:
            raise RunInterrupted() from e
        raise
