"""Deterministic, resumable batch order: epoch permutations from (seed, epoch)."""

from __future__ import annotations

import torch
from torch import Tensor


class EpochSampler:
    """Yields index batches; epoch e uses randperm(n) seeded by (seed, e).

    The whole state is (epoch, position), so resume reproduces the data order exactly.
    ``rank``/``world_size`` take a strided shard of each global batch (DDP).
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, rank: int = 0, world_size: int = 1):
        if batch_size <= 0:
            raise ValueError("batch size must be positive")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.pos = 0, 0
        self._perm: Tensor | None = None

    def _permutation(self) -> Tensor:
        if self._perm is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(self.n, generator=g)
        return self._perm

    def next(self) -> Tensor:
        """The next global batch's indices for this rank (wrapping into the next epoch)."""
        out = []
        need = self.batch_size
        while need > 0:
            perm = self._permutation()
            take = perm[self.pos : self.pos + need]
            out.append(take)
            need -= take.numel()
            self.pos += take.numel()
            if self.pos >= self.n:
                self.epoch, self.pos, self._perm = self.epoch + 1, 0, None
        batch = torch.cat(out)
        return batch[self.rank :: self.world_size]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos, self._perm = int(state["epoch"]), int(state["pos"]), None
