"""The ``sparsegan`` command: one subcommand per verb, each in :mod:`sparsegan.commands`.

Every user mistake ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import signal
import sys
import time
from typing import Sequence

from sparsegan.errors import DivergenceError, RunInterrupted, TrainingStopped, UserError

# One module per verb; each has add_parser(subparsers) and sets ``func`` on its parser.
COMMANDS = ("train", "eval", "sweep", "report", "flops", "export", "bench", "sample", "data", "recipes")
# How long a rank other than 0 waits before it states its error (say_error).
RANK_GRACE_S = 15.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparsegan", description="Train sparse GANs from scratch (STU-GAN and baselines).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"sparsegan.commands.{name}").add_parser(sub)
    return parser


def resume_command(argv: Sequence[str]) -> str:
    """The command line that continues the run ``argv`` trained: ``--resume auto`` instead of
    ``--overwrite`` or another ``--resume``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif a != "--overwrite" and not a.startswith("--resume="):
            out.append(a)
    return shlex.join(["sparsegan", *out, "--resume", "auto"])


def say_error(msg: str) -> None:
    """A user error's one line on stderr, said once under torchrun. Every rank usually fails alike, so rank 0
    says it at once; another rank first waits RANK_GRACE_S: torchrun stops the other ranks
    as soon as one exits failed, so when rank 0 fails too this rank is stopped before it repeats the line,
    and when the error is its own it still says it, naming its rank. A rank that said nothing and exited
    first would get rank 0 stopped before its line, leaving the user with torchrun's summary alone."""
    line = msg if msg.startswith("sparsegan") else f"sparsegan: error: {msg}"
    rank = os.environ.get("RANK", "0")
    if rank != "0":
        try:  # stopped by torchrun while waiting: die quietly, not through a training run's SIGTERM handler
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except ValueError:  # not the main thread (main() called from a thread): cannot, and need not
            pass
        time.sleep(RANK_GRACE_S)
        line += f" (rank {rank})"
    print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as e:
        say_error(str(e))
        return e.exit_code
    except DivergenceError as e:
        print(f"sparsegan: training diverged: {e}; the last good checkpoint is kept", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except TrainingStopped as e:  # SIGINT / SIGTERM: a checkpoint was saved
        print(f"sparsegan: {e}; resume with: {resume_command(argv)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        if argv[:1] == ["sweep"]:
            print(f"sparsegan: sweep interrupted; run the same command again to go on (completed points are skipped, "
                  f"stopped ones resume from their checkpoint): sparsegan {shlex.join(argv)}", file=sys.stderr)
        elif isinstance(e, RunInterrupted):  # the run folder was written to (commands/train.py)
            print(f"sparsegan: interrupted; resume from the last checkpoint with: {resume_command(argv)}",
                  file=sys.stderr)
        elif argv[:1] == ["train"]:  # in the set-up: data, models, before the run folder's first file
            print("sparsegan: interrupted during set-up: nothing was started and nothing written; run the same "
                  "command again to start", file=sys.stderr)
        else:
            print("sparsegan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
