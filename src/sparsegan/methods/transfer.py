"""Ticket transfer: start a method from another run's final masks (``--masks-from RUN``; the
training layer reads the run folder into a :class:`Ticket`, the method takes it at set-up).

Both lottery-ticket papers move tickets across tasks: a GAN generator's ticket to a VAE decoder
of the same architecture, or a ticket found on one dataset trained on another. G's masks must
match the names and shapes of this run's G exactly; D's are taken when they match too and left
to the method otherwise (a VAE encoder is not a GAN discriminator), which the ticket record says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from sparsegan.errors import UserError
from sparsegan.options import Options, option
from sparsegan.sparsity import MaskSet


@dataclass
class TransferOptions(Options):
    """Every method that draws masks (not dense, not imp): start from another run's."""

    title: ClassVar[str] = "ticket transfer"
    api: ClassVar[bool] = False  # names a run folder: through the API, load masks yourself
    masks_from: str | None = option(None, "start from another run's masks: RUN/final (its trained result) or an "
                                    "IMP ticket RUN/tickets/round-KK (masks + rewound weights)")
    masks_with_weights: bool = option(False, "with --masks-from: also take that folder's weights (RUN: the "
                                      "trained final weights; an IMP ticket: the rewound weights the round "
                                      "starts from)")


@dataclass
class Ticket:
    """Masks to start from (net -> weight name -> bool tensor) and, optionally, the weights they
    came with (net -> state dict), from ``source`` (a label for the records: a run folder, a file)."""

    masks: dict[str, dict[str, torch.Tensor]]
    weights: dict[str, dict[str, torch.Tensor]] | None = None
    source: str = ""


def _describe(names: set[str], limit: int = 3) -> str:
    items = sorted(names)
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def apply_ticket(ticket: Ticket, masks_of: dict[str, MaskSet], nets: dict[str, nn.Module]) -> dict[str, Any]:
    """Take the ticket's masks (and weights, where it has them) into ``masks_of``: G's always, each
    other net's when its weights' names and shapes fit (a VAE encoder is not a GAN discriminator:
    that net keeps the method's masks). Returns the kind=ticket record."""
    source, with_weights = ticket.source, ticket.weights is not None
    taken = []
    for net in masks_of:
        ours = masks_of[net]
        theirs = ticket.masks.get(net, {})
        fits = set(theirs) == set(ours.params) and all(
            tuple(theirs[n].shape) == tuple(ours.params[n].shape) for n in theirs)
        if net != "G" and not fits:
            continue  # a different net (e.g. a VAE encoder vs a GAN discriminator): the method's own masks
        if set(theirs) != set(ours.params):
            raise UserError(
                f"--masks-from {source}: {net}'s weights differ; only in the ticket: "
                f"{_describe(set(theirs) - set(ours.params)) or '-'}; only in this model: "
                f"{_describe(set(ours.params) - set(theirs)) or '-'}"
            )
        bad = {n for n in theirs if tuple(theirs[n].shape) != tuple(ours.params[n].shape)}
        if bad:
            n = sorted(bad)[0]
            raise UserError(
                f"--masks-from {source}: shapes differ for {net}.{_describe(bad)} "
                f"(e.g. {net}.{n}: ticket {tuple(theirs[n].shape)}, model {tuple(ours.params[n].shape)})"
            )
        if with_weights:
            missing, unexpected = nets[net].load_state_dict(ticket.weights[net], strict=False)
            if missing or unexpected:
                raise UserError(f"--masks-from {source}: {net}'s weights do not fit this model "
                                f"(missing {_describe(set(missing))}; unexpected {_describe(set(unexpected))})")
        unblocked = sorted(n for n, m in theirs.items() if not ours.blocks_of(n).is_blocked(m.bool()))
        if unblocked:
            raise UserError(f"--masks-from {source}: {net}'s ticket is not made of {ours.blocks} blocks "
                            f"(e.g. {net}.{unblocked[0]}); train with the ticket's granularity (--mask-block)")
        for n, m in theirs.items():
            ours.set_mask(n, m.bool())
            ours.restart_history([n])
        taken.append(net)
    return {"kind": "ticket", "source": str(source), "nets": taken, "with_weights": with_weights,
            "density": {net: masks_of[net].density() for net in masks_of}}
