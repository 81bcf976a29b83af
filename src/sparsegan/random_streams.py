"""The random streams of a run: one torch.Generator per use, seeded from the run's seed, so that
adding a use never shifts another's draws (and a resumed run restores each one)."""

from __future__ import annotations

import torch


def seeded_generator(seed: int, stream: int) -> torch.Generator:
    """The random streams of a run: seed * 1000 + stream (1: masks at set-up, 2: the loop's noise,
    3: topology updates, 4: sample grids, 5: loss probes)."""
    return torch.Generator().manual_seed(seed * 1_000 + stream)
