"""Generators as metrics see them: a callable n -> uint8 images [n, C, H, W].

``load_run_generator`` rebuilds a run's generator from its folder (sparsegan.run_folder) so any
tool can sample a finished run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sparsegan.data import to_uint8
from sparsegan.metrics.features import ImageSampler
from sparsegan.models import NATIVE_RESOLUTION
from sparsegan.run_folder import GENERATOR_FILES, RunFolder


def load_run_generator(run: str | Path, which: str = "ema", *, device: str | torch.device = "cpu",
                       data_root: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(generator with the run's final weights, the run's config). ``which``: ema | raw | ema_best."""
    folder = RunFolder.open(run)
    if which not in GENERATOR_FILES:
        folder.generator_state(which)  # the one-line error naming the valid ones
    G, _, _ = folder.build_nets(which, data_root=data_root, with_d=False)
    return G.to(device), folder.config


def generator_sampler(G: nn.Module, *, seed: int = 0, device: str | torch.device = "cpu",
                      eval_mode: bool = True) -> ImageSampler:
    """n -> uint8 images from G, latents (and labels of conditional G) from a seeded CPU stream.

    eval_mode=True puts G in eval mode (BN running statistics); False samples in train mode
    (BN batch statistics, the BigGAN reference's habit; REFERENCE.md §6.7). G's mode is
    restored after every call."""
    rng = torch.Generator().manual_seed(seed)
    num_classes = int(getattr(G, "num_classes", 0) or 0)

    @torch.no_grad()
    def sample(n: int) -> Tensor:
        was_training = G.training
        G.train(not eval_mode)
        try:
            z = G.sample_z(n, rng, device)
            if num_classes > 0:
                y = torch.randint(num_classes, (n,), generator=rng).to(device)
                x = G(z, y)
            else:
                x = G(z)
        finally:
            G.train(was_training)
        return to_uint8(x.float()).cpu()

    def skip(n: int) -> None:
        """Advance the stream past n samples without generating them (another rank's share)."""
        G.sample_z(n, rng)
        if num_classes > 0:
            torch.randint(num_classes, (n,), generator=rng)

    sample.skip = skip
    return sample


def native_resolution(config: dict[str, Any]) -> int:
    return NATIVE_RESOLUTION[config["model"]]
