"""The methods by name as the public API builds them (:class:`sparsegan.SparseTraining`): each from
its targets, its steps and its options object, made of the keyword arguments it takes."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

import sparsegan.methods  # noqa: F401  (every method registered before the tables below are made)
from sparsegan.errors import UserError
from sparsegan.methods.base import METHODS, Method, net_names, requested_nets
from sparsegan.options import group_fields, typed_value


# The options of a method through the API: the fields of the option groups it takes
# (``Method.options``), but for the groups that name run folders (--from, --masks-from, IMP's rounds;
# through the API, load the weights yourself or pass ``ticket=``).
def _api_options(groups) -> tuple[str, ...]:
    return tuple(n for g in groups if g.api for n in group_fields(g))


API_METHODS = ("dense", "static", "stu", "gmp", "pf", "snip", "grasp", "early_bird", "adapt")
#: Every option some method of the API takes.
METHOD_OPTIONS = tuple(dict.fromkeys(n for m in API_METHODS for n in _api_options(METHODS.get(m).options)))


def build_method(name: str, *, steps: int, sparsity: Mapping[str, float], **options: Any) -> Method:
    """The method ``name`` for nets with these target sparsities (name -> fraction of zeros), over
    ``steps`` training iterations, its options object built from ``options`` (every other option
    at its default)."""
    if name not in API_METHODS:
        hint = " (IMP trains whole runs in rounds: `sparsegan train --method imp`)" if name == "imp" else ""
        raise UserError(f"unknown sparse method {name!r}{hint}; valid: {', '.join(API_METHODS)}")
    cls = METHODS.get(name)
    takes = _api_options(cls.options)
    unknown = [k for k in options if k not in takes]
    if unknown:
        why = (f"not an option of {name!r} (it has no effect there)" if unknown[0] in METHOD_OPTIONS
               else "not an option of any method (a training-loop setting such as lr_g is your loop's own)")
        raise UserError(f"{unknown[0]!r} is {why}; {name!r} takes: {', '.join(takes)}")
    kind = cls.options_type()
    options = {k: typed_value(kind, k, v, f"{k}=") for k, v in options.items()}
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise UserError(f"steps must be a positive integer (the iterations the method's schedule spans), got {steps!r}")
    for net, s in sparsity.items():
        if not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
            raise UserError(f"the sparsity of net {net!r} must be in [0, 1), got {s!r}")
    # Which nets explore (stu, adapt) / are pruned (pf): net names here, beyond the CLI's G / D / GD.
    for key, default in (("explore", "G"), ("prune_nets", None)):
        if key not in {f.name for f in fields(kind)}:
            continue
        value = options.get(key)
        if value is None:
            # explore: G for a GAN (STU-GAN's unbalanced default); prune_nets: every net given a target
            value = default if default and "G" in sparsity else ",".join(n for n, s in sparsity.items() if s > 0)
        stray = [n for n in requested_nets(value) if n and n not in sparsity]
        if stray:
            raise UserError(f"{key}={value!r} names net {stray[0]!r}, which is not among {', '.join(sparsity)}")
        options[key] = ",".join(net_names(value, tuple(sparsity)))
    left = [n for n, s in sparsity.items() if s > 0 and n not in options.get("prune_nets", "").split(",")]
    if name == "pf" and left:
        raise UserError(f"pf prunes the nets prune_nets={options['prune_nets']!r} names, so net {left[0]!r} would "
                        f"stay dense despite its sparsity {sparsity[left[0]]}: add it to prune_nets or drop its target")
    return cls({net: float(s) for net, s in sparsity.items()}, steps, kind(**options))


def options_doc() -> str:
    """Each API method's options with their defaults and help, for ``help(SparseTraining)``."""
    lines = ["", "    Options by method (keyword arguments; the command line's flags with underscores):", ""]
    for name in API_METHODS:
        kind = METHODS.get(name).options_type()
        lines.append(f"    {name}:")
        for f in fields(kind):
            if f.name in _api_options(METHODS.get(name).options):
                lines.append(f"        {f.name}={f.default!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines) + "\n"
