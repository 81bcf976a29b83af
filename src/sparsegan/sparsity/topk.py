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


def _flat_topk_mask(flat: Tensor, k: int) -> Tensor:
    """The set :func:`topk_indices` selects, without sorting: the k-th largest value t by selection,
    every score above t, and the lowest-index scores equal to t until there are ``k``. Exactly the
    stable sort's set, about 10x faster on a million scores; faster still where most scores are
    -inf (a prune score outside the active weights): the selection then runs on the others only."""
    n = flat.numel()
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside [0, {n}]")
    if k in (0, n) or bool(torch.isnan(flat).any()):  # NaN orders differently: take the sort
        mask = torch.zeros(n, dtype=torch.bool, device=flat.device)
        mask[topk_indices(flat, k)] = True
        return mask
    finite = flat > float("-inf")
    n_finite = int(finite.sum())
    if k <= n_finite <= n // 4:  # select among the candidates (kept in index order), scatter back
        idx = finite.nonzero().flatten()
        mask = torch.zeros(n, dtype=torch.bool, device=flat.device)
        mask[idx[_flat_topk_mask(flat[idx], k)]] = True
        return mask
    # the k-th largest value: a partial top-k when k is small, a linear-time selection otherwise
    t = torch.topk(flat, k, sorted=False).values.min() if k <= n // 16 else torch.kthvalue(flat, n - k + 1).values
    above = flat > t
    need = k - int(above.sum())
    tied = flat == t
    if int(tied.sum()) == need:  # the usual case: no tie to break
        return above | tied
    return above | (tied & (torch.cumsum(tied, 0) <= need))


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """Bool mask of ``scores``' shape with exactly ``k`` True entries at the largest scores."""
    return _flat_topk_mask(scores.detach().reshape(-1).float(), k).view(scores.shape)


def global_topk_masks(scores: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Masks keeping the ``k`` largest scores across all tensors together (global ranking)."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    keep = _flat_topk_mask(flat, k)
    out, offset = {}, 0
    for n in names:
        numel = scores[n].numel()
        out[n] = keep[offset : offset + numel].view(scores[n].shape)
        offset += numel
    return out
