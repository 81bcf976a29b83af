"""Frechet distance between Gaussians fitted to features (Heusel et al. 2017), in float64.

    d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from sparsegan.metrics.features import FeatureStats


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # With fewer samples than dimensions the product is singular; sqrtm still converges
        # (checked below), and the estimate's bias at small N is documented, not warned about.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        # Singular product (fewer samples than dimensions): regularise as the TF reference does.
        offset = np.eye(s1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    # sqrtm of a product of PSD matrices is real up to round-off; drop the tiny imaginary part.
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid(fake: FeatureStats, real: FeatureStats) -> float:
    return frechet_distance(fake.mu, fake.sigma, real.mu, real.sigma)
