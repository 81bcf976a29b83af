"""Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 estimate with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets."""

from __future__ import annotations

import numpy as np


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size sets [m, d] (diagonal terms excluded)."""
    m, d = x.shape
    if y.shape != (m, d):
        raise ValueError(f"need equal-size sets, got {x.shape} and {y.shape}")
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(off - 2.0 * kxy.mean())


def kid(fake: np.ndarray, real: np.ndarray, *, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of MMD^2 over ``num_subsets`` subsets of min(subset_size, N_fake, N_real)."""
    fake, real = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    m = min(subset_size, fake.shape[0], real.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples per set")
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(fake[rng.choice(fake.shape[0], m, replace=False)],
                          real[rng.choice(real.shape[0], m, replace=False)]) for _ in range(num_subsets)]
    return float(np.mean(vals)), float(np.std(vals))
