"""The ``sparsegan`` command: one subcommand per verb, each in :mod:`sparsegan.commands`.

Every user mistake ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from sparsegan.errors import DivergenceError, UserError

# One module per verb; each has add_parser(subparsers) and sets ``func`` on its parser.
COMMANDS = ("train", "eval", "sweep", "report", "flops", "export", "bench")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparsegan", description="Train sparse GANs from scratch (STU-GAN and baselines).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"sparsegan.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as e:
        msg = str(e)
        print(msg if msg.startswith("sparsegan") else f"sparsegan: error: {msg}", file=sys.stderr)
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
    except KeyboardInterrupt:
        print("sparsegan: interrupted; resume with --resume auto", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
