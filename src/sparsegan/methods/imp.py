"""GAN Tickets: iterative magnitude pruning (IMP) with rewinding (Chen et al. 2021; Kalibhat et
al. 2021 for late rewinding, VAEs and AEs).

Round 0 trains dense. After each round, ``--imp-rate`` (20 %) of the remaining weights of each
pruned net (``--prune-nets G|GD``) are removed by magnitude. ``--imp-ranking paper`` (default)
ranks globally within a net, as the paper does, except in a net with spectral-normed layers
(e.g. SNGAN's D), where raw ``weight_orig`` scales are not comparable across layers and the
ranking is layer-wise (REFERENCE §6.8); the choice per net is recorded in config.json
("imp_ranking_by_net") and in every kind=round record. The survivors are rewound to their values
at ``--rewind-step`` k of round 0 (0: initialisation), D likewise by default (``--imp-d rewind``;
``init``: D's initial weights even when k > 0; ``keep``: the previous round's final trained D and
its mask), and the ticket is trained again for the remaining ``steps - k`` steps from round 0's
data position at step k. Densities are 0.8^k per round until the target, the last round pruning
exactly to it: 80 % sparsity takes ceil(log 0.2 / log 0.8) = 8 rounds (0.8, ..., 0.8^7, 0.2).

Controls run on the tickets of a finished IMP run (``--imp-control reinit|random --tickets-from
IMP_RUN``), not a pruning chain of their own: ``reinit`` trains each round's ticket masks from a
fresh random initialisation; ``random`` trains random masks with the ticket's exact per-layer
counts on the rewound weights; only the nets of ``--control-nets`` (G) change, D stays the
ticket's. Each round is a sub-run folder (``RUN/rounds/round-KK``) and each ticket a folder
``RUN/tickets/round-KK`` that ``--masks-from ... --masks-with-weights`` accepts; the
orchestration lives in :mod:`sparsegan.launch.rounds`. This module holds the IMP arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from sparsegan.errors import UserError
from sparsegan.methods.base import METHODS, BlockOptions, Method, PruneNetsOptions, ScheduleOptions, SparsityOptions
from sparsegan.options import Options, option
from sparsegan.sparsity import MaskSet, allocate_active_counts, magnitude_prune_to


@dataclass
class IMPOptions(Options):
    title: ClassVar[str] = "iterative magnitude pruning: GAN Tickets' rounds and their controls"
    api: ClassVar[bool] = False  # rounds are whole runs: `sparsegan train --method imp`
    imp_rate: float = option(0.2, "imp: fraction of the remaining weights pruned per round")
    imp_ranking: str = option("paper", "imp: magnitude ranking of each round: paper (global within a net, "
                              "layer-wise for a net with spectral-normed layers, e.g. SNGAN's D), global or layer",
                              choices=("paper", "global", "layer"))
    rewind_step: int = option(0, "imp: rewind survivors (and D, see --imp-d) to their weights at this step of the "
                              "dense round 0 (0: init); rounds then train the remaining --steps minus this, from the "
                              "data position of that step (late rewinding)")
    imp_d: str = option("rewind", "imp: D at the start of each round: rewind (its weights at --rewind-step, the same "
                        "point as G; init when 0), init (its initial weights even with late rewinding), or keep "
                        "(the previous round's final trained D, with its mask)", choices=("rewind", "init", "keep"))
    imp_control: str = option("none", "imp: lottery-ticket control of the IMP run --tickets-from: reinit (each "
                              "round's ticket masks, fresh random weights) or random (random masks with the "
                              "ticket's per-layer counts, the ticket's rewound weights)",
                              choices=("none", "reinit", "random"))
    tickets_from: str | None = option(None, "imp controls: the finished IMP run whose tickets (RUN/tickets/round-KK) "
                                      "the control trains")
    control_nets: str = option("G", "imp controls: the nets re-initialised / given random masks; the other net keeps "
                               "the ticket's weights and mask (GAN Tickets: D's init matters on its own)",
                               choices=("G", "GD"), nets=True)

    def validate(self) -> None:
        self.require_fraction("imp_rate", low_open=True)
        if self.rewind_step < 0:
            raise UserError(f"--rewind-step must be >= 0, got {self.rewind_step}")


def round_densities(sparsity: float, rate: float) -> list[float]:
    """Densities of rounds 1..K: (1 - rate)^k, the last one exactly 1 - sparsity."""
    if sparsity <= 0.0:
        return []
    k = math.ceil(math.log(1.0 - sparsity) / math.log(1.0 - rate) - 1e-12)
    return [max((1.0 - rate) ** i, 1.0 - sparsity) for i in range(1, k)] + [1.0 - sparsity]


def prune_to_density(masks: MaskSet, density: float, ranking: str) -> None:
    """Magnitude-prune (among active weights) so that exactly round(density * numel) remain.
    Layer-wise ranking removes the same fraction of each layer's remaining weights."""
    total = round(density * masks.numel())
    if ranking == "global":
        magnitude_prune_to(masks, total)
        return
    active = masks.layer_active()
    frac = total / max(1, masks.active())
    counts = allocate_active_counts(active, {n: 1.0 - frac for n in active}, total)
    magnitude_prune_to(masks, counts)


def has_spectral_norm(module: nn.Module) -> bool:
    """Whether any layer of ``module`` is spectral-normed (parametrization or legacy hook)."""
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight") and any(
                "SpectralNorm" in type(p).__name__ for p in m.parametrizations.weight):
            return True
        if isinstance(getattr(m, "weight_orig", None), nn.Parameter):
            return True
    return False


def net_rankings(choice: str, nets: dict[str, nn.Module]) -> dict[str, str]:
    """The magnitude ranking of each net: ``paper`` is global, layer-wise for spectral-normed nets."""
    if choice != "paper":
        return {net: choice for net in nets}
    return {net: "layer" if has_spectral_norm(m) else "global" for net, m in nets.items()}


def random_masks_like(masks: MaskSet, generator: torch.Generator) -> MaskSet:
    """The random-mask control: fresh uniform masks with the same per-layer counts (and blocks)."""
    return MaskSet.random_with_counts(masks.params, masks.layer_active(), generator=generator, **masks.layout())


@METHODS.register("imp")
class IterativeMagnitudePruning(Method):
    """Marker for the orchestrated method: each round is a ``static`` run of its ticket
    (``--masks-from`` the ticket folder, with its weights)."""

    name = "imp"
    # Each round is a static run of its ticket (the ticket is its masks: no --masks-from of its own).
    options = (SparsityOptions, BlockOptions, ScheduleOptions, PruneNetsOptions, IMPOptions)
    rounds = True  # orchestrated by launch.rounds

    @classmethod
    def distribution_unused(cls, values):
        return ""  # rounds prune by magnitude ranking (--imp-ranking), not a distribution

    @classmethod
    def ineffective(cls, values, given):
        out = super().ineffective(values, given)
        if values.get("imp_control") == "none":
            for name in ("tickets_from", "control_nets"):
                if name in given:
                    out[name] = "has no effect without --imp-control reinit|random"
        return out

