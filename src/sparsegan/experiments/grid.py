"""Sweep grids: a YAML file of shared TrainConfig keys plus lists to cross, expanded into points.

    out: runs/sweeps/demo          # where the run folders go (``sparsegan sweep --out`` wins)
    base:                          # TrainConfig keys shared by every point
      model: dcgan
      steps: 1500
    grid:                          # the cartesian product of these lists ...
      method: [static, stu]
      sparsity_g: [0.95, 0.9]
      seed: [0, 1, 2]
    eval:                          # optional: ``sparsegan eval`` on every finished point
      metrics: [fid_domain]
      num_samples: 2000            # any other key is a `sparsegan eval` option: --num-samples 2000

``sparsegan sweep --set key=value`` replaces a 'base' key for one call, ``--set eval.key=value`` a key
of 'eval' (e.g. ``--set eval.num_samples=100`` for a cheap smoke run).

String values may name the sweep's folder and the point's own keys, e.g. a prune-and-fine-tune
point's ``from_run: "{out}/dense_seed{seed}"``: the sweep resolves them when it runs and trains the
referenced point first.

``grid`` may also be a list of such mappings: the union of their products. That is how a dense
baseline is run once per seed instead of once per (s_G, s_D) it would ignore. Every point is
validated through :mod:`sparsegan.config` before anything runs, so a typo fails the whole sweep
up front with the key named, not after an hour of training.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sparsegan.config import build_config, coerce, yaml_error
from sparsegan.errors import UserError

TOP_KEYS = ("name", "description", "out", "base", "grid", "eval")
# Keys the sweep itself owns; a grid may not set them.
RESERVED = ("out",)
# Short, fixed-order labels for the axes a reader looks for first; other axes follow, seed last.
ALIASES = {"method": "", "sparsity_g": "sG", "sparsity_d": "sD"}
_UNSAFE = re.compile(r"[^A-Za-z0-9.=+-]+")


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its folder name and the TrainConfig values that define it."""

    name: str
    values: dict[str, Any]


def resolve(values: dict[str, Any], out: Path) -> dict[str, Any]:
    """Fill ``{out}`` and ``{key}`` placeholders in string values (e.g. a PF point's dense run)."""
    fill = {**values, "out": str(out)}
    resolved = {}
    for k, v in values.items():
        if isinstance(v, str) and "{" in v:
            try:
                v = v.format(**fill)
            except (KeyError, IndexError, ValueError) as e:
                raise UserError(f"config value {k}={v!r} names an unknown placeholder ({e})") from None
        resolved[k] = v
    return resolved


def dependencies(points: list[Point], out: Path) -> dict[str, set[str]]:
    """Each point's name -> the names of the points whose run folders its values name."""
    folders = {str(out / p.name): p.name for p in points}
    return {p.name: {folders[v] for v in resolve(p.values, out).values() if isinstance(v, str) and v in folders}
            - {p.name} for p in points}


def dependency_order(points: list[Point], out: Path) -> list[Point]:
    """Points one at a time in grid order, a point whose values name another point's run folder moved
    just after it (not behind every independent point): one worker reaches the grid's entries in the
    order it lists them. A cycle is refused."""
    deps = dependencies(points, out)
    order: list[Point] = []
    placed: set[str] = set()
    while len(order) < len(points):
        nxt = next_ready([p for p in points if p.name not in placed], deps, placed)
        if nxt is None:
            raise UserError("the sweep's points name each other's run folders in a cycle")
        order.append(nxt)
        placed.add(nxt.name)
    return order


def next_ready(pending: list[Point], deps: dict[str, set[str]], finished: set[str]) -> Point | None:
    """The first of ``pending`` whose named points (``deps``, from :func:`dependencies`) have all
    finished; None while each waits for one. What several workers start next: a free worker takes the
    next point of :func:`dependency_order` that can run, so a point waits for what it names only,
    never for a whole wave of unrelated points."""
    return next((p for p in pending if deps[p.name] <= finished), None)


@dataclass
class Grid:
    path: Path
    name: str
    out: str | None
    base: dict[str, Any]
    points: list[Point]
    eval_metrics: list[str] = field(default_factory=list)
    eval_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def eval_args(self) -> list[str]:
        """The ``sparsegan eval`` flags after the run folder."""
        if not self.eval_metrics:
            return []
        args = ["--metrics", ",".join(self.eval_metrics)]
        for k, v in self.eval_options.items():
            if isinstance(v, bool):  # a switch such as train_mode: true
                args += ["--" + k.replace("_", "-")] if v else []
                continue
            args += ["--" + k.replace("_", "-"), ",".join(map(str, v)) if isinstance(v, list) else str(v)]
        return args

    def eval_protocol(self):
        """(evaluator metrics, :class:`sparsegan.protocols.Protocol`) the 'eval' block asks for, read
        by ``sparsegan eval``'s own parser, so a bad key or value fails here, before anything runs."""
        from sparsegan.cli import COMMANDS, build_parser
        from sparsegan.metrics.evaluate import parse_metrics
        from sparsegan.protocols import Protocol

        if "eval" not in COMMANDS:
            raise UserError(f"{self.path} asks for evaluation, but this sparsegan has no 'eval' command")

        try:
            args = build_parser().parse_args(["eval", "RUN", *self.eval_args()])
        except UserError as e:
            raise UserError(f"{self.path}: eval: {str(e).removeprefix('sparsegan eval: ')}") from None
        protocol = Protocol(args.num_samples, args.num_ref, args.split, args.generator, not args.train_mode,
                            args.sample_steps)  # None: each diffusion run's own (protocols.for_run)
        return parse_metrics(args.metrics), protocol


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:g}"
    return _UNSAFE.sub("-", str(v)).strip("-") or "none"


def point_name(values: dict[str, Any], axes: list[str]) -> str:
    """A readable, deterministic folder name from the axes a point sets, e.g. ``stu_sG0.9_sD0.5_seed0``."""
    parts = []
    for key in axes:
        if key not in values or (isinstance(values[key], str) and "{" in values[key]):
            continue  # a placeholder (e.g. a PF point's dense run) says nothing new about the point
        v = _format_value(values[key])
        if key in ALIASES:
            parts.append(ALIASES[key] + v)
        elif key == "seed":
            parts.append(f"seed{v}")
        else:
            parts.append(f"{key}={v}")
    return "_".join(parts) or "point"


def _order_axes(keys: set[str]) -> list[str]:
    first = [k for k in ALIASES if k in keys]
    rest = sorted(k for k in keys if k not in ALIASES and k != "seed")
    return first + rest + (["seed"] if "seed" in keys else [])


def _subgrids(raw: Any, where: str) -> list[dict[str, list[Any]]]:
    subs = raw if isinstance(raw, list) else [raw]
    if not subs:
        raise UserError(f"{where}: 'grid' is empty")
    out = []
    for i, sub in enumerate(subs):
        if not isinstance(sub, dict) or not sub:
            raise UserError(f"{where}: grid entry {i} must be a non-empty mapping of config keys to lists")
        lists = {}
        for key, vals in sub.items():
            if key in RESERVED:
                raise UserError(f"{where}: the grid may not set {key!r} (the sweep names every run folder)")
            vals = vals if isinstance(vals, list) else [vals]
            if not vals:
                raise UserError(f"{where}: grid key {key!r} has an empty list")
            lists[key] = [coerce(key, v) for v in vals]
            if len(set(map(repr, lists[key]))) != len(lists[key]):
                raise UserError(f"{where}: grid key {key!r} lists a value twice")
        out.append(lists)
    return out


def expand(base: dict[str, Any], subgrids: list[dict[str, list[Any]]], where: str) -> list[Point]:
    """The union of the sub-grids' products, in file order, each validated as a TrainConfig."""
    axes = _order_axes({k for sub in subgrids for k in sub})
    points: list[Point] = []
    seen_values: dict[str, str] = {}
    by_name: dict[str, Point] = {}
    for sub in subgrids:
        keys = list(sub)
        for combo in itertools.product(*(sub[k] for k in keys)):
            own = dict(zip(keys, combo))
            values = {**base, **own}
            try:
                build_config(values)
            except UserError as e:
                raise UserError(f"{where}: point {own}: {e}") from None
            name = point_name(own, axes)
            key = repr(sorted(values.items()))
            if key in seen_values:  # the same run listed by two sub-grids: run it once
                continue
            if name in by_name:
                raise UserError(f"{where}: two different points are both named {name!r}; vary a key in both sub-grids")
            seen_values[key] = name
            by_name[name] = Point(name, values)
            points.append(by_name[name])
    return points


EVAL_PREFIX = "eval."


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (YAML values): TrainConfig keys of 'base', checked here, e.g. ``steps=20``,
    and ``eval.<option>`` keys of the 'eval' block, e.g. ``eval.num_samples=100`` (checked by
    :func:`load_grid` against ``sparsegan eval``'s options)."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or key == EVAL_PREFIX.rstrip("."):
            raise UserError(f"--set expects key=value or eval.key=value, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: the value is not valid YAML") from None
        out[key] = value if key.startswith(EVAL_PREFIX) else coerce(key, value)
    return out


def load_grid(path: str | Path, overrides: dict[str, Any] | None = None) -> Grid:
    """Read and validate a sweep file; ``overrides`` replace keys of its 'base' (not grid axes) and,
    as ``eval.<key>``, keys of its 'eval' block."""
    path = Path(path)
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"sweep file {path} not found") from None
    except yaml.YAMLError as e:
        raise yaml_error(f"sweep file {path}", e) from None
    if not isinstance(raw, dict):
        raise UserError(f"{where}: must be a mapping with 'base' and 'grid'")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown top-level key {unknown[0]!r}; valid: {', '.join(TOP_KEYS)}")
    if "grid" not in raw:
        raise UserError(f"{where}: needs a 'grid' mapping of config keys to lists")
    base_raw = raw.get("base") or {}
    if not isinstance(base_raw, dict):
        raise UserError(f"{where}: 'base' must be a mapping of config keys to values")
    for key in RESERVED:
        if key in base_raw:
            raise UserError(f"{where}: 'base' may not set {key!r} (the sweep names every run folder)")
    base = {k: coerce(k, v) for k, v in base_raw.items()}
    subgrids = _subgrids(raw["grid"], where)
    overrides = dict(overrides or {})
    eval_overrides = {k[len(EVAL_PREFIX):]: overrides.pop(k) for k in list(overrides) if k.startswith(EVAL_PREFIX)}
    for key in overrides:
        if key in RESERVED or any(key in sub for sub in subgrids):
            raise UserError(f"--set {key}: {key!r} is {'set by the sweep' if key in RESERVED else 'a grid axis'}; "
                            "edit the sweep file instead")
    base.update(overrides or {})
    points = expand(base, subgrids, where)
    ev = raw.get("eval") or {}
    if not isinstance(ev, dict):
        raise UserError(f"{where}: 'eval' must be a mapping with 'metrics'")
    ev = {**ev, **{k.replace("-", "_"): v for k, v in eval_overrides.items()}}
    if eval_overrides and not ev.get("metrics"):
        raise UserError(f"--set eval.{next(iter(eval_overrides))}: {where} evaluates nothing (no eval.metrics); "
                        "add --set eval.metrics=NAME")
    metrics = ev.get("metrics", [])
    metrics = metrics.split(",") if isinstance(metrics, str) else metrics
    if ev and (not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics)):
        raise UserError(f"{where}: eval.metrics must be a non-empty list of metric names")
    out = raw.get("out")
    if out is not None and not isinstance(out, str):
        raise UserError(f"{where}: 'out' must be a folder path")
    grid = Grid(
        path=path, name=str(raw.get("name") or path.stem), out=out, base=base, points=points,
        eval_metrics=[m.strip() for m in metrics], eval_options={k: v for k, v in ev.items() if k != "metrics"},
        description=str(raw.get("description") or ""),
    )
    if grid.eval_metrics:
        grid.eval_protocol()  # every eval option valid for `sparsegan eval`, before anything runs
    return grid
