"""Option groups: the building block of the training configuration.

An option group is a small dataclass of related options, each field defined once with its help,
default and (for a choice) the registry listing its valid values. A group lives with its owner: a
method's own options in the method's module (``methods/gmp.py`` defines ``--gmp-*``), the options
shared by several methods in ``methods/base.py``, the built-in loop's in ``sparsegan.config``.
``sparsegan.config.TrainConfig`` is all groups side by side (flat: ``cfg.gmp_start``, the YAML key
``gmp_start``, the flag ``--gmp-start``); a method says which groups it takes (``Method.options``),
so the options that have no effect for a method are known from that alone.

Each group checks its own fields (``validate``), on construction and as part of the whole config.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Callable, ClassVar, Sequence

from sparsegan.errors import UserError


def option(default: Any, help: str, choices: Sequence[str] | Callable[[], Sequence[str]] | None = None, **kw: Any):
    """A field of an option group with its help text. ``choices``: the valid values, or a function
    that lists them (a registry's names, read when checked). ``flag``: a command-line spelling
    other than ``--name-with-dashes``; ``models``: the only model kinds the option has an effect
    for; ``nets``: True for an option that names nets, whose choices are the command line's GAN
    spellings (G, D, GD) while the public API takes any net names."""
    return field(default=default, metadata={"help": help, "choices": choices, **kw})


def choices_of(f) -> list[str] | None:
    """The valid values of a field (``option(choices=...)``), or None for a free one."""
    c = f.metadata.get("choices")
    if c is None:
        return None
    return list(c() if callable(c) else c)


def check_choices(obj: Any, *, nets: bool = True) -> None:
    """Refuse a value of ``obj``'s choice fields that is not among their choices, in one line;
    ``nets=False`` skips the fields that name nets (the API's values are net names)."""
    for f in fields(obj):
        valid = choices_of(f)
        if valid is None or (not nets and f.metadata.get("nets")):
            continue
        v = getattr(obj, f.name)
        if v not in valid:
            raise UserError(f"unknown {f.name.replace('_', ' ')} {v!r}; valid: {', '.join(valid)}")


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class Options:
    """Base of every option group."""

    #: A heading for the group in ``--help``.
    title: ClassVar[str] = ""
    #: Whether the public API (``SparseTraining`` / ``build_method``) takes the group's options;
    #: False for options that name run folders (``--from``, ``--masks-from``, IMP's rounds).
    api: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse invalid values of this group's own fields, naming the flag, in one line."""

    # --- shared checks -----------------------------------------------------------------
    def require_positive(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            if v is not None and v <= 0:
                kind = "a positive integer" if isinstance(v, int) else "positive"
                raise UserError(f"{flag_name(name)} must be {kind}, got {v}")

    def require_fraction(self, name: str, *, low_open: bool = False, high_closed: bool = False) -> None:
        v = getattr(self, name)
        ok = (low_open and v > 0 or not low_open and v >= 0) and (v <= 1 if high_closed else v < 1)
        if not ok:
            interval = ("(" if low_open else "[") + "0, 1" + ("]" if high_closed else ")")
            raise UserError(f"{flag_name(name)} must be in {interval}, got {v}")


def compose(name: str, groups: Sequence[type[Options]]) -> type[Options]:
    """A dataclass holding exactly the fields of ``groups`` (in their order), each group checking
    its own on construction, choices included: the options object a method is built from. A read
    of anything else is an AttributeError, so a method cannot depend on another's options."""
    groups = tuple(dict.fromkeys(groups))

    def validate(self) -> None:
        for group in groups:
            group.validate(self)
        check_choices(self, nets=False)

    doc = f"The options of {', '.join(g.__name__ for g in groups)}."
    return make_dataclass(name, [], bases=tuple(reversed(groups)),
                          namespace={"validate": validate, "groups": groups, "__doc__": doc})


def group_fields(group: type[Options]) -> list[str]:
    """The names of the fields a group defines itself (not those of the groups it extends)."""
    own = group.__dict__.get("__annotations__", {})
    return [f.name for f in fields(group) if f.name in own]


def field_type(group: type, name: str) -> tuple[type, bool]:
    """(base type, optional) of the field ``name`` of a dataclass ``group``."""
    t = typing.get_type_hints(group)[name]
    args = typing.get_args(t)
    if typing.get_origin(t) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return t, False


def typed_value(group: type, name: str, value: Any, spelling: str | None = None) -> Any:
    """``value`` checked against the type of ``group``'s field ``name`` (an int is taken for a
    float; a bool is not an int); a mismatch is one line naming ``spelling`` (default: the name)."""
    base, optional = field_type(group, name)
    shown = spelling or name
    if value is None:
        if optional:
            return None
        raise UserError(f"{shown} may not be None")
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, base)
    if not ok:
        raise UserError(f"{shown} must be {base.__name__}, got {type(value).__name__} {value!r}")
    return value
