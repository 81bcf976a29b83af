"""Recipes by name: ``sparsegan train --config demo``, ``sparsegan sweep demo``.

The checkout's ``configs/`` (training recipes, their ``base/`` files, and ``sweeps/``) ships inside
the package as ``sparsegan/configs`` (a link to it in the source tree, real files in a wheel), so
an installed sparsegan has its recipes without a checkout. A recipe is read from where it lies:
``extends: base/...`` is relative to the recipe, as in the checkout.

A file that exists always wins over a name; a bare name (no folder, ``.yaml`` optional) is looked up
among the packaged recipes of its kind; anything else is one line naming the closest recipes.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from sparsegan.errors import UserError

#: kind -> (folder below the recipes, the command that takes it, what its argument is called)
KINDS = {"train": ("", "sparsegan train --config", "config file"),
         "sweep": ("sweeps", "sparsegan sweep", "sweep file")}
LIST_COMMAND = "sparsegan recipes"


def recipes_dir() -> Path:
    """The packaged recipes (``configs/`` of the checkout). A wheel is installed unpacked, so the
    folder is a real path: a recipe's ``extends`` is read next to it."""
    return Path(str(resources.files("sparsegan") / "configs"))


def recipe_files(kind: str) -> dict[str, Path]:
    """``{name: path}`` of the packaged recipes of ``kind`` (train | sweep), sorted by name."""
    folder = recipes_dir() / KINDS[kind][0]
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def summary_line(path: Path) -> str:
    """The recipe's first comment line: what it is for."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def resolve(text: str, kind: str) -> Path:
    """The file ``text`` names: itself when it is a file, else the packaged recipe of that name."""
    path = Path(text)
    if path.is_file():
        return path
    recipes = recipe_files(kind)
    _, command, what = KINDS[kind]
    name = path.name.removesuffix(".yaml")
    if name in recipes:
        if path.name == text:  # a bare name
            return recipes[name]
        # a path with a folder that is missing: say where the recipe is, never read another file silently
        raise UserError(f"{what} {text} not found; the packaged recipe of that name: {command} {name}")
    close = difflib.get_close_matches(name, recipes, n=3, cutoff=0.5)
    hint = f"; close: {', '.join(close)}" if close else ""
    raise UserError(f"{what} {text} not found, nor a packaged recipe {name!r}{hint} ({LIST_COMMAND} lists them)")
