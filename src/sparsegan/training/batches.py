"""Where the loop's batches come from: real images (+ labels) and latents (+ sampled labels).

Real batches follow :class:`EpochSampler` (this rank's shard of each global batch). Datasets held
in memory are indexed directly; lazily decoded ones (image-folder) are decoded by a torch
DataLoader whose workers receive the sampler's index batches, in order. Prefetching runs the
sampler ahead of training, so the saved state is the sampler state *before the oldest batch
not yet consumed*: resume replays exactly the batches a straight run would have used.

Latents: every rank draws the *global* batch of z (and labels, for a class-conditional G) from
the same seeded stream on the CPU and keeps its shard, so N processes see the same noise as one
process with the same global batch.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator

import torch
from torch import Tensor

from sparsegan.data import EpochSampler, to_model_range
from sparsegan.training.distributed import DistContext


class Batches:
    def __init__(self, data, sampler: EpochSampler, *, resolution: int, device: torch.device,
                 dist: DistContext, noise: torch.Generator, G, workers: int = 0,
                 channels_last: bool = False):
        self.data, self.sampler, self.resolution, self.device = data, sampler, resolution, device
        self.dist, self.noise, self.G = dist, noise, G
        self.workers, self.channels_last = workers, channels_last
        self.lazy = bool(getattr(data, "lazy", False))
        self._pending: deque[dict[str, int]] = deque()  # sampler states of prefetched batches
        self._loader: Iterator | None = None

    # --- real data ---------------------------------------------------------------------
    def _index_batches(self) -> Iterator[list[int]]:
        while True:
            self._pending.append(self.sampler.state_dict())
            yield self.sampler.next().tolist()

    def _next_uint8(self) -> tuple[Tensor, Tensor]:
        if not self.lazy:
            return self.data.batch(self.sampler.next())
        if self.workers == 0:
            return self.data.batch(self.sampler.next())
        if self._loader is None:
            from torch.utils.data import DataLoader

            loader = DataLoader(self.data, batch_sampler=_Once(self._index_batches), num_workers=self.workers,
                                pin_memory=self.device.type == "cuda", persistent_workers=False)
            self._loader = iter(loader)
        x, y = next(self._loader)
        self._pending.popleft()
        return x, y

    def real(self) -> tuple[Tensor, Tensor]:
        """This rank's next real images in [-1, 1] at the model resolution, and their labels."""
        x, y = self._next_uint8()
        x = to_model_range(x, self.resolution).to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)

    # --- latents -------------------------------------------------------------------------
    def latents(self, n: int) -> tuple[Tensor, Tensor | None]:
        """This rank's shard of a global batch of ``n`` latents, and sampled labels (uniform over
        the classes) for a class-conditional G, else None."""
        z = self.dist.shard(self.G.sample_z(n, self.noise))
        y = None
        if getattr(self.G, "num_classes", 0) > 0:
            y = self.dist.shard(torch.randint(self.G.num_classes, (n,), generator=self.noise)).to(self.device)
        return z.to(self.device), y

    # --- exact resume --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return dict(self._pending[0]) if self._pending else self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        self._pending.clear()
        self._loader = None  # restarts the workers from the restored position

    def next(self) -> Tensor:
        """Index batches (for code that indexes the data itself)."""
        return self.sampler.next()


class _Once:
    """A batch sampler that is one shared, endless iterator."""

    def __init__(self, make):
        self._it = make()

    def __iter__(self):
        return self._it


def fixed_labels(n: int, num_classes: int, device) -> Tensor | None:
    """Labels of the sample grids: 0, 1, ..., K-1, 0, 1, ... (one class per column for K = 8, 10)."""
    return torch.arange(n, device=device) % num_classes if num_classes > 0 else None
