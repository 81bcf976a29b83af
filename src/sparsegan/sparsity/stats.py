"""Mask statistics that are not a MaskSet's own: distances between masks."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor


def mask_distance(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Normalised Hamming distance between two mask sets (early-bird tickets, You et al. 2020)."""
    if set(a) != set(b):
        raise ValueError("mask sets cover different weights")
    diff = sum(int((a[n] != b[n]).sum()) for n in a)
    total = sum(a[n].numel() for n in a)
    return diff / total
