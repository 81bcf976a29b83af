"""GAN Tickets: iterative magnitude pruning (IMP) with rewinding (Chen et al. 2021; Kalibhat et
al. 2021 for late rewinding, VAEs and AEs).

Round 0 trains dense. After each round, ``--imp-rate`` (20 %) of the remaining weights of each
pruned net (``--prune-nets G|GD``) are removed by magnitude (``--ranking global``, the paper's
choice, or ``layer``), the survivors are rewound to their values at ``--rewind-step`` of round 0
(0: initialisation), D is reset to init, rewound or kept (``--imp-d``), and the ticket is trained
again for ``--steps``. Densities are 0.8^k per round until the target, the last round pruning
exactly to it: 80 % sparsity takes ceil(log 0.2 / log 0.8) = 8 rounds (0.8, ..., 0.8^7, 0.2).

Controls: ``--imp-control reinit`` trains the same masks from a fresh random initialisation;
``random`` trains random masks with the ticket's layer-wise counts. Each round is a sub-run folder
(``RUN/rounds/round-KK``); the orchestration lives in :mod:`sparsegan.training.rounds`. This class
holds the per-round training (a ticket with fixed masks) and the IMP arithmetic.
"""

from __future__ import annotations

import math

import torch

from sparsegan.methods.base import METHODS, Method
from sparsegan.sparsity import MaskSet, allocate_active_counts, magnitude_prune_to


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


def random_masks_like(masks: MaskSet, generator: torch.Generator) -> MaskSet:
    """The random-mask control: fresh uniform masks with the same per-layer counts."""
    return MaskSet.random_with_counts(masks.params, masks.layer_active(), generator=generator)


@METHODS.register("imp")
class IterativeMagnitudePruning(Method):
    """Marker for the orchestrated method: each round is a ``static`` run of its ticket
    (``--masks-from`` the ticket folder, with its weights)."""

    name = "imp"
    rounds = True  # orchestrated by training.rounds

