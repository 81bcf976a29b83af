"""Feature extraction over batches of uint8 images, and the feature statistics metrics share.

An extractor is any callable ``uint8 [n, C, H, W] -> float [n, D]`` with ``name``, ``dim`` and
``weights_hash`` attributes (InceptionFeatures, DomainFeatures, LogitsModel). Images reach the
metrics only as uint8, exactly as a saved PNG would hold them, so generated and real images are
quantised the same way.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

# A source of images: n -> uint8 [n, C, H, W]. Metrics see generators only through this.
ImageSampler = Callable[[int], Tensor]


class Extractor(Protocol):
    name: str
    dim: int
    weights_hash: str

    def __call__(self, images: Tensor) -> Tensor: ...


@dataclass
class FeatureStats:
    """Features [N, D] (float64) with their mean and covariance (float64, unbiased: N - 1)."""

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def of(cls, features: Tensor | np.ndarray) -> "FeatureStats":
        f = np.asarray(features.numpy() if isinstance(features, Tensor) else features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"need features [N >= 2, D], got shape {f.shape}")
        return cls(f, f.mean(axis=0), np.cov(f, rowvar=False))

    @property
    def count(self) -> int:
        return self.features.shape[0]


def image_batches(sample: ImageSampler, num: int, batch_size: int, *, rank: int = 0,
                  world_size: int = 1) -> Iterable[Tensor]:
    """``num`` images from a sampler in batches of at most ``batch_size``; with ``world_size`` > 1,
    only this rank's batches (every ``world_size``-th from ``rank``). The others are skipped in the
    sampler's stream (its ``skip(n)``: latents drawn, nothing generated), so the ranks' batches
    together are exactly one process's."""
    done, index = 0, 0
    while done < num:
        n = min(batch_size, num - done)
        if index % world_size == rank:
            out = sample(n)
            if out.dtype != torch.uint8 or out.shape[0] != n:
                raise ValueError(f"an image sampler must return {n} uint8 images, got {out.dtype} {tuple(out.shape)}")
            yield out
        else:
            getattr(sample, "skip", sample)(n)
        done += n
        index += 1


def gather_batches(features: Tensor, batch_size: int, num: int, dist) -> Tensor | None:
    """Rank 0: every rank's features of :func:`image_batches`, back in one process's order; other
    ranks: None. ``dist``: a sparsegan.training.distributed.DistContext."""
    import torch.distributed as tdist

    parts: list = [None] * dist.world_size
    tdist.all_gather_object(parts, features)
    if not dist.is_main:
        return None
    cursors = [0] * dist.world_size
    out, done, index = [], 0, 0
    while done < num:
        n = min(batch_size, num - done)
        r = index % dist.world_size
        out.append(parts[r][cursors[r]:cursors[r] + n])
        cursors[r] += n
        done += n
        index += 1
    return torch.cat(out)


def extract(extractors: dict[str, Extractor], batches: Iterable[Tensor], total: int, *,
            desc: str = "features", progress: bool = True) -> dict[str, Tensor]:
    """Run every batch through every extractor once (one pass over a generator's samples)."""
    feats: dict[str, list[Tensor]] = {k: [] for k in extractors}
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, file=sys.stderr, dynamic_ncols=True,
              leave=False) as bar:
        for batch in batches:
            for k, ex in extractors.items():
                feats[k].append(ex(batch).to(torch.float32).cpu())
            bar.update(batch.shape[0])
    return {k: torch.cat(v) if v else torch.empty(0, extractors[k].dim) for k, v in feats.items()}


def extract_from_images(extractor: Extractor, images: Tensor, *, batch_size: int = 64, progress: bool = False,
                        desc: str = "features") -> Tensor:
    batches = (images[i : i + batch_size] for i in range(0, images.shape[0], batch_size))
    return extract({"x": extractor}, batches, images.shape[0], desc=desc, progress=progress)["x"]
