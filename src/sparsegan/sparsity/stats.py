"""Mask statistics that are not a MaskSet's own: distances between masks."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor


def mask_distance(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Normalised Hamming distance between two mask sets of one net, in [0, 1].

    The number of positions where the masks differ, divided by the most that two masks with
    these active counts can differ in: ``min(k_a + k_b, 2n - k_a - k_b)`` for n positions and
    k_a, k_b active ones, i.e. ``2 min(k, n - k)`` for equal counts k. 0: the same masks; 1: as
    different as their counts allow (disjoint kept sets when k <= n/2). For equal counts with
    k <= n/2 it is the fraction of the kept weights that the other mask does not keep (with
    k > n/2, the fraction of the pruned ones).

    Why not divide by n, as You et al. (2020, "Drawing Early-Bird Tickets") do: two masks of
    density d differ in at most 2 min(d, 1 - d) of the positions, so at 95 % sparsity the raw
    distance can never exceed 0.1 and a fixed threshold would mean something different at every
    sparsity (Generative Tickets prune GANs to 90 %+). Both definitions agree at 50 % sparsity.
    """
    if set(a) != set(b):
        raise ValueError("mask sets cover different weights")
    diff = sum(int((a[n] != b[n]).sum()) for n in a)
    n_all = sum(a[n].numel() for n in a)
    k_a = sum(int(a[n].sum()) for n in a)
    k_b = sum(int(b[n].sum()) for n in b)
    most = min(k_a + k_b, 2 * n_all - k_a - k_b)
    return diff / most if most else 0.0  # most == 0: both masks all-empty or all-full, hence equal
