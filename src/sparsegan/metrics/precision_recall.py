"""Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of
balls around its points with radius the distance to the k-th nearest neighbour (k = 3, the
point itself excluded). Precision: fraction of generated points inside the real manifold;
recall: fraction of real points inside the generated manifold."""

from __future__ import annotations

import numpy as np
import torch


def _pairwise(a: torch.Tensor, b: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([torch.cdist(a[i : i + chunk], b) for i in range(0, a.shape[0], chunk)])


def knn_radii(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance of each point to its k-th nearest neighbour in its own set (itself excluded)."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} points, got {x.shape[0]}")
    radii = []
    for i in range(0, x.shape[0], chunk):
        d = torch.cdist(x[i : i + chunk], x)
        # The k+1 smallest include the point itself (distance 0).
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def coverage_fraction(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> float:
    """Fraction of ``points`` within distance radii[j] of some centre j."""
    inside = 0
    for i in range(0, points.shape[0], chunk):
        d = torch.cdist(points[i : i + chunk], centres)
        inside += int((d <= radii.unsqueeze(0)).any(dim=1).sum())
    return inside / points.shape[0]


def precision_recall(fake: np.ndarray, real: np.ndarray, *, k: int = 3) -> tuple[float, float]:
    f = torch.from_numpy(np.asarray(fake, np.float64))
    r = torch.from_numpy(np.asarray(real, np.float64))
    precision = coverage_fraction(f, r, knn_radii(r, k))
    recall = coverage_fraction(r, f, knn_radii(f, k))
    return precision, recall
