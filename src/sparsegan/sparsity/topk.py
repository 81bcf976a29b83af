"""Exact top-k masks with deterministic tie-breaking.

Ties are broken by flat index (lower index wins), so the same scores always give the same mask
and a mask never holds more or fewer than ``k`` entries (REFERENCE §6.5: ties in magnitude
pruning must not remove extra weights).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor


def topk_indices(scores: Tensor, k: int) -> Tensor:
    """Flat indices of the ``k`` largest scores; ties go to the lower index."""
    flat = scores.detach().reshape(-1)
    if not 0 <= k <= flat.numel():
        raise ValueError(f"k={k} outside [0, {flat.numel()}]")
    if k == 0:
        return torch.empty(0, dtype=torch.long, device=flat.device)
    # A stable descending sort keeps equal scores in index order.
    order = torch.sort(flat.float(), descending=True, stable=True).indices
    return order[:k]


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """Bool mask of ``scores``' shape with exactly ``k`` True entries at the largest scores."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[topk_indices(scores, k)] = True
    return mask.view(scores.shape)


def global_topk_masks(scores: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Masks keeping the ``k`` largest scores across all tensors together (global ranking)."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[topk_indices(flat, k)] = True
    out, offset = {}, 0
    for n in names:
        numel = scores[n].numel()
        out[n] = keep[offset : offset + numel].view(scores[n].shape)
        offset += numel
    return out
