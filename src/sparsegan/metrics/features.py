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


def image_batches(sample: ImageSampler, num: int, batch_size: int) -> Iterable[Tensor]:
    """``num`` images from a sampler in batches of at most ``batch_size``."""
    done = 0
    while done < num:
        n = min(batch_size, num - done)
        out = sample(n)
        if out.dtype != torch.uint8 or out.shape[0] != n:
            raise ValueError(f"an image sampler must return {n} uint8 images, got {out.dtype} {tuple(out.shape)}")
        yield out
        done += n


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
