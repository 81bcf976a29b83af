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


def count_true(mask: Tensor) -> int:
    """Number of True entries. ``count_nonzero``, not ``sum``: a bool tensor's sum is the slower of
    the two on the CPU, and a topology update counts often."""
    return int(torch.count_nonzero(mask))


def _has_nan(flat: Tensor) -> bool:
    # a sum is NaN when any value is (or +inf meets -inf): one cheap reduction in the usual case
    return bool(torch.isnan(flat.sum())) and bool(torch.isnan(flat).any())


# Scores sampled to bracket the k-th largest value before the exact selection (see _kth_largest).
_SAMPLE = 4096


def _kth_largest(flat: Tensor, k: int) -> Tensor:
    """The k-th largest value of ``flat`` (1-D, no NaN, 1 <= k <= its size), exactly.

    ``torch.kthvalue`` over all of a large layer's scores runs at memory speed, and a topology
    update selects twice per layer. So a strided sample of ~4,096 scores gives a
    window [lo, hi] that holds the answer with near certainty (the sample's expected rank of it,
    plus and minus 4 binomial standard deviations + 16); one pass counts the scores above hi and
    keeps those inside the window (a few % of them), and the selection recurses on those. Whether
    the window holds the answer is checked on the full scores (the count above hi is < k and with
    the window's it reaches k); where not, or where it does not shrink the problem (ties), the
    plain selection runs. The value is exact either way; only the time depends on the sample."""
    n = flat.numel()
    if n > 4 * _SAMPLE:
        sample = flat[:: n // _SAMPLE].contiguous()
        ns = sample.numel()
        expected = k * ns / n  # the answer's expected rank in the sample, from the top
        margin = 4.0 * (expected * (1.0 - k / n)) ** 0.5 + 16.0
        r_hi, r_lo = int(expected - margin), int(expected + margin) + 1  # 1-based ranks in the sample, from the top
        above, inside = 0, None
        if r_hi >= 1:
            hi = torch.kthvalue(sample, ns - r_hi + 1).values
            above = count_true(flat > hi)
            inside = flat <= hi
        if r_lo <= ns:
            at_least_lo = flat >= torch.kthvalue(sample, ns - r_lo + 1).values
            inside = at_least_lo if inside is None else inside & at_least_lo
        window = flat if inside is None else flat[inside]
        if above < k <= above + window.numel() and window.numel() <= n // 2:
            return _kth_largest(window, k - above)
    return torch.kthvalue(flat, n - k + 1).values


def _flat_topk_mask(flat: Tensor, k: int) -> Tensor:
    """The set :func:`topk_indices` selects, without sorting: the k-th largest value t by selection,
    every score above t, and the lowest-index scores equal to t until there are ``k``. Exactly the
    stable sort's set, found in linear time instead of a sort's."""
    n = flat.numel()
    if not 0 <= k <= n:
        raise ValueError(f"k={k} outside [0, {n}]")
    if k in (0, n) or _has_nan(flat):  # NaN orders differently: take the sort
        mask = torch.zeros(n, dtype=torch.bool, device=flat.device)
        mask[topk_indices(flat, k)] = True
        return mask
    t = _kth_largest(flat, k)
    at_least = flat >= t
    if count_true(at_least) == k:  # the usual case: no tie to break
        return at_least
    above = flat > t
    tied = at_least & ~above
    return above | (tied & (torch.cumsum(tied, 0) <= k - count_true(above)))


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """Bool mask of ``scores``' shape with exactly ``k`` True entries at the largest scores."""
    return _flat_topk_mask(scores.detach().reshape(-1).float(), k).view(scores.shape)


def topk_within(scores: Tensor, where: Tensor, k: int, *, where_idx: Tensor | None = None) -> Tensor:
    """Sorted flat indices of the ``k`` largest scores among the entries of ``where``: exactly the
    set of ``topk_mask(scores.masked_fill(~where, -inf), k)``, found without that copy.

    A topology update selects twice per layer: the weights kept, most of the ~10 % active ones
    (``where_idx``, the active entries' indices, lets the caller reuse them), and the weights
    grown, a sliver of the ~90 % inactive ones. The kept selection runs on the gathered active
    entries (in index order, so ties still go to the lower index). The grown one first brackets
    its k-th value from a strided sample of the candidates (as :func:`_kth_largest`), keeps the
    candidates at or above it, and selects among those; the bracket is checked (at least ``k``
    candidates) and the exact path runs where it fails. Where the two forms could differ (a NaN;
    k reaching into -inf scores) the masked form runs."""
    flat = scores.detach().reshape(-1)
    wflat = where.reshape(-1)
    n = flat.numel()
    if _has_nan(flat):
        return _masked_topk(scores, where, k)
    if where_idx is None:
        n_where = count_true(wflat)
        if n > 4 * _SAMPLE and 0 < k and 8 * k <= n_where:
            stride = n // _SAMPLE
            sample = flat[::stride][wflat[::stride]].float()
            ns = sample.numel()
            rank = k * ns / n_where
            r = int(rank + 4.0 * rank ** 0.5 + 16.0)
            if 0 < r < ns:
                idx = ((flat >= torch.kthvalue(sample, ns - r + 1).values) & wflat).nonzero().squeeze(1)
                if idx.numel() >= k:
                    vals = flat[idx].float()
                    if k <= count_true(vals > float("-inf")):
                        return idx[_flat_topk_mask(vals, k)]
        where_idx = wflat.nonzero().squeeze(1)
    vals = flat[where_idx].float()
    if k > count_true(vals > float("-inf")):
        return _masked_topk(scores, where, k)
    return where_idx[_flat_topk_mask(vals, k)]


def _masked_topk(scores: Tensor, where: Tensor, k: int) -> Tensor:
    return topk_mask(scores.float().masked_fill(~where, float("-inf")), k).reshape(-1).nonzero().squeeze(1)


def mask_of(indices: Tensor, like: Tensor) -> Tensor:
    """A bool tensor shaped like ``like``, True at the flat ``indices``."""
    mask = torch.zeros(like.numel(), dtype=torch.bool, device=like.device)
    return mask.index_fill_(0, indices, True).view(like.shape)


def global_topk_masks(scores: Mapping[str, Tensor], k: int) -> dict[str, Tensor]:
    """Masks keeping the ``k`` largest scores across all tensors together (global ranking)."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    return split_like(_flat_topk_mask(flat, k), scores)


def split_like(flat: Tensor, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``flat`` (the tensors of ``like`` concatenated, flattened, in order) cut back into their shapes."""
    out, offset = {}, 0
    for n, t in like.items():
        out[n] = flat[offset : offset + t.numel()].view(t.shape)
        offset += t.numel()
    return out
