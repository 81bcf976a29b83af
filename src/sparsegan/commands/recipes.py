"""``sparsegan recipes``: the packaged recipes, by the names ``train --config`` and ``sweep`` take."""

from __future__ import annotations

import argparse
from textwrap import shorten


def run(args: argparse.Namespace) -> int:
    from sparsegan.recipes import KINDS, recipe_files, recipes_dir, summary_line

    for kind in (args.kind,) if args.kind else KINDS:
        files = recipe_files(kind)
        print(f"{KINDS[kind][1]} NAME ({len(files)} recipes in {(recipes_dir() / KINDS[kind][0]).resolve()}):")
        width = max(map(len, files), default=0)
        for name, path in files.items():
            print(f"  {name:<{width}}  {shorten(summary_line(path), 90, placeholder=' ...')}".rstrip())
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("recipes", help="list the packaged recipes: the names that sparsegan train --config and "
                                       "sparsegan sweep take in place of a file (a file that exists wins)")
    p.add_argument("kind", nargs="?", choices=("train", "sweep"), help="only this command's recipes")
    p.set_defaults(func=run)
