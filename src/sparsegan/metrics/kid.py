"""Kernel Inception Distance (Binkowski et al. 2018): the unbiased MMD^2 estimate with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.

Subset size: 1000 (the papers' and the TF reference's), but never more than half of the smaller
set. Subsets are drawn without replacement, so with a subset as large as the set every subset is
the same and the reported spread is 0 by construction (KID at 128 samples used to report
std 2e-16). At most half keeps the subsets different, so the std over subsets means something;
the mean is unbiased at any subset size. The size used is recorded with the value
("kid_subset_size"); fewer than 4 images per set are refused.
"""

from __future__ import annotations

import numpy as np

SUBSET_SIZE = 1000
NUM_SUBSETS = 100


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


def kid_subset_size(n_fake: int, n_real: int, subset_size: int = SUBSET_SIZE) -> int:
    """min(subset_size, n_fake // 2, n_real // 2); a ValueError below 2."""
    m = min(subset_size, n_fake // 2, n_real // 2)
    if m < 2:
        raise ValueError(f"KID needs at least 4 images per set (subsets of at least 2 that differ), "
                         f"got {n_fake} generated and {n_real} real")
    return m


def kid(fake: np.ndarray, real: np.ndarray, *, num_subsets: int = NUM_SUBSETS, subset_size: int = SUBSET_SIZE,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std) of MMD^2 over ``num_subsets`` subsets of :func:`kid_subset_size` images."""
    fake, real = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    m = kid_subset_size(fake.shape[0], real.shape[0], subset_size)
    rng = np.random.default_rng(seed)
    vals = [mmd2_unbiased(fake[rng.choice(fake.shape[0], m, replace=False)],
                          real[rng.choice(real.shape[0], m, replace=False)]) for _ in range(num_subsets)]
    return float(np.mean(vals)), float(np.std(vals))
