"""The command line's flags of the training config: one per :class:`~sparsegan.config.TrainConfig`
field, derived from its definition (help, type, choices, default, group heading)."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Callable, Iterable

from sparsegan.config import GROUPS, TrainConfig, applies_to, choice_values, flag_of
from sparsegan.options import field_type, group_fields


def add_config_flags(p: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """One flag per TrainConfig field (or per field of ``names``), from the field's definition: its
    help, type, choices and default, under its group's heading. Defaults are suppressed (a YAML value
    or the field's own default applies), so every verb that takes these options gets them from here,
    and a default exists once."""
    choices = choice_values()
    wanted = None if names is None else set(names)
    by_name = {f.name: f for f in fields(TrainConfig)}
    for group in GROUPS:
        own = [n for n in group_fields(group) if wanted is None or n in wanted]
        if not own:
            continue
        users = applies_to(own[0])
        title = group.title + (f" [methods: {', '.join(users)}]" if users else "")
        section = p.add_argument_group(title) if names is None else p
        for name in own:
            f = by_name[name]
            base, _ = field_type(TrainConfig, name)
            flag = flag_of(name)
            default = f.default if f.default is not MISSING else None
            help_ = f.metadata.get("help", "")
            if name in choices:
                help_ += f" ({'|'.join(choices[name])})"
            help_ += f" [default: {default}]"
            if base is bool:
                section.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                     default=argparse.SUPPRESS, help=help_)
            else:
                section.add_argument(flag, dest=name, type=_typed(base, flag), default=argparse.SUPPRESS,
                                     metavar=base.__name__.upper(), help=help_)


def _typed(base: type, flag: str) -> Callable[[str], object]:
    def convert(text: str):
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__}, got {text!r}") from None

    convert.__name__ = base.__name__
    return convert
