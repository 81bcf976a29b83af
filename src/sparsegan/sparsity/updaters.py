"""Topology updaters: the rules that turn scores into new masks.

``prune_and_regrow`` is SET / RigL / STU-GAN: per layer, drop the ``fraction`` of active weights
with the lowest prune score, then grow as many among the inactive weights with the highest grow
score, so each layer's active count never changes (or, ranked globally as ADAPT does, the net's).
The variants differ only in their criteria. ``prune_once`` is one-shot magnitude pruning to a
target (PF, GMP's steps, early-bird's candidate masks, ADAPT's D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from sparsegan.sparsity.blocks import select_blocks
from sparsegan.sparsity.criteria import GROW_CRITERIA, PRUNE_CRITERIA, criterion_state
from sparsegan.sparsity.masks import MaskSet, target_counts
from sparsegan.sparsity.optim import REGROWN_STATES, start_state
from sparsegan.sparsity.topk import count_true, global_topk_masks, mask_of, topk_mask, topk_within


@dataclass
class LayerChange:
    """One layer's update: ``pruned`` connections really removed, ``grown`` really new ones
    (a weight dropped and regrown in the same update counts in neither)."""

    name: str
    active: int
    pruned: int
    grown: int


def _minus_inf_where(scores: Tensor, where: Tensor) -> Tensor:
    return scores.float().masked_fill(where, float("-inf"))


def _zero_at(param: Tensor, idx: Tensor) -> None:
    if param.is_contiguous():
        param.data.view(-1).index_fill_(0, idx, 0.0)
    else:
        param.data.masked_fill_(mask_of(idx, param), 0.0)


def _commit(masks: MaskSet, name: str, now: Tensor, new_idx: Tensor, grad: Tensor | None,
            optimizer: torch.optim.Optimizer | None, regrown_state: str = "fresh", *,
            active_idx: Tensor | None = None) -> tuple[LayerChange, Tensor]:
    """Layer ``name``'s new mask ``now``, with ``new_idx`` the flat indices of its really new
    connections: they start at 0 and, given an optimizer, with the history ``regrown_state`` says. Returns
    the layer's change and its new entries (for SEMA)."""
    old, param = masks.masks[name], masks.params[name]
    n_old = masks.layer_active()[name]
    new = mask_of(new_idx, old)
    masks.set_mask(name, now)
    _zero_at(param, new_idx)
    if optimizer is not None:
        start_state(regrown_state, optimizer, param, new, grad, active=old, entries_idx=new_idx, active_idx=active_idx)
    # |now| = |old & now| + |new|, so the removed count |old| - |old & now| needs no third count
    n_now, n_new = masks.layer_active()[name], new_idx.numel()
    return LayerChange(name, n_now, n_old - n_now + n_new, n_new), new


@torch.no_grad()
def prune_and_regrow(
    masks: MaskSet,
    fraction: float,
    *,
    ranking: str = "layer",
    prune: str = "magnitude",
    grow: str = "gradient",
    dense_grads: Mapping[str, Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    regrown_state: str = "fresh",
    generator: torch.Generator | None = None,
    prune_inputs: Mapping[str, Tensor] | None = None,
) -> tuple[list[LayerChange], dict[str, Tensor]]:
    """One prune-and-regrow update of the weights in ``masks``.

    ``ranking="layer"`` (SET, RigL, STU-GAN): per layer, the ``fraction`` of its active weights
    with the lowest prune score is dropped and as many weights are grown among all the others,
    so each layer's active count never changes; a dense layer is left alone. ``"global"``
    (ADAPT's global magnitude death / global gradient growth): the same over all layers ranked
    together, so only the net's active count is fixed.

    The just-dropped weights compete for regrowth (RigL). A weight dropped and regrown in the same
    update was never removed: it keeps its value and optimizer state (RigL's
    ``reinit_when_same=False``, the STU-GAN code). Really new connections start at 0 and, with
    the optimizer history ``regrown_state`` names (:func:`~sparsegan.sparsity.optim.start_state`):
    ``"fresh"`` a fresh weight's after one step (from ``dense_grads``), ``"zero"`` none (RigL),
    ``"keep"`` whatever history the optimizer has there (the STU-GAN reference code).
    Removed weights are zeroed here; their optimizer history is the caller's to clear (the
    MaskSet remembers them until :meth:`MaskSet.take_deactivated`).

    Returns the per-layer changes (real removals and new connections) and the really new entries
    (for SEMA). ``prune_inputs`` replaces the gradient seen by the prune criterion (GraSP's
    Hessian-gradient product); by default it sees ``dense_grads``.
    """
    if ranking not in ("layer", "global"):
        raise ValueError(f"unknown ranking {ranking!r}; valid: layer, global")
    if regrown_state not in REGROWN_STATES:
        raise ValueError(f"unknown regrown_state {regrown_state!r}; valid: {', '.join(REGROWN_STATES)}")
    prune_fn, grow_fn = PRUNE_CRITERIA.get(prune), GROW_CRITERIA.get(grow)
    grads = dense_grads or {}
    prune_in = grads if prune_inputs is None else prune_inputs
    if not masks.blocks.unstructured:
        return _prune_and_regrow_blocks(masks, fraction, prune_fn, grow_fn, grads, prune_in, optimizer, regrown_state,
                                        generator, ranking)
    old = dict(masks.masks)
    active = masks.layer_active()
    if ranking == "global":
        n_swap = int(fraction * sum(active.values()))
        swaps = {n: n_swap if 0 < sum(active.values()) < masks.numel() else 0 for n in old}  # one pool
    else:
        swaps = {n: int(fraction * active[n]) if active[n] < old[n].numel() else 0 for n in old}
    moving = [n for n in old if swaps[n] > 0]
    states = {n: criterion_state(optimizer, masks.params[n]) for n in moving}
    # Keep the active weights with the highest prune score; grow among those not kept.
    keep_scores = {n: prune_fn(masks.params[n], prune_in.get(n), states[n], generator) for n in moving}
    old_idx: dict[str, Tensor] = {}  # the active entries' flat indices, where computed
    if ranking == "global":
        kept = global_topk_masks({n: _minus_inf_where(keep_scores[n], ~old[n]) for n in moving},
                                 sum(active.values()) - n_swap) if moving else {}
    else:
        kept = {}
        for n in moving:
            old_idx[n] = masks.active_index(n)  # kept by the MaskSet until the mask changes
            kept[n] = mask_of(topk_within(keep_scores[n], old[n], active[n] - swaps[n], where_idx=old_idx[n]), old[n])
    del keep_scores
    grow_scores = {n: grow_fn(masks.params[n], grads.get(n), states[n], generator) for n in moving}
    if ranking == "global":
        grow_ranked = {n: _minus_inf_where(grow_scores[n], kept[n]) for n in moving}
        grown = global_topk_masks(grow_ranked, n_swap) if moving else {}
        grown_idx = {n: grown[n].reshape(-1).nonzero().squeeze(1) for n in moving}
    else:
        grown_idx = {n: topk_within(grow_scores[n], ~kept[n], swaps[n]) for n in moving}
    del grow_scores
    changes, grown_entries = [], {}
    for name in masks.params:
        if name not in kept:
            changes.append(LayerChange(name, active[name], 0, 0))
            grown_entries[name] = torch.zeros_like(old[name])
            continue
        # really new connections; grown weights that were active were dropped and taken back
        new_idx = grown_idx[name][~old[name].reshape(-1)[grown_idx[name]]]
        now = kept[name] | mask_of(grown_idx[name], old[name])
        change, grown_entries[name] = _commit(masks, name, now, new_idx, grads.get(name),
                                              optimizer, regrown_state, active_idx=old_idx.get(name))
        changes.append(change)
    masks.apply_()
    return changes, grown_entries


def _size_classes(sizes: Mapping[str, Tensor]) -> list[tuple[int, dict[str, Tensor] | None]]:
    """The block sizes present (most layers have one: every block full) and, where there are
    several, which blocks hold each (None: all of them)."""
    present = sorted({int(v) for t in sizes.values() for v in t.unique().tolist()})
    if len(present) == 1:
        return [(present[0], None)]
    return [(c, {n: t == c for n, t in sizes.items()}) for c in present]


def _within(where: Tensor, cls: Tensor | None) -> Tensor:
    return where if cls is None else where & cls


def _prune_and_regrow_blocks(masks, fraction, prune_fn, grow_fn, grads, prune_in, optimizer, regrown_state,
                             generator, ranking) -> tuple[list[LayerChange], dict[str, Tensor]]:
    """prune_and_regrow in block units (masks.blocks): a block's score is its entries' (see
    :meth:`Blocks.pool`); the fraction is of the layer's active blocks (``"global"``: of the net's,
    all layers' blocks ranked together). Where a layer's dimensions leave smaller edge blocks, the
    blocks of each size swap among themselves (a dropped edge block is replaced by an edge block),
    so the active count stays exact. The rest as unstructured."""
    b = {n: masks.blocks_of(n) for n in masks.params}
    old_b = {n: b[n].pool_mask(masks.masks[n]) for n in masks.params}
    size_b = {n: b[n].sizes(masks.params[n].shape).to(old_b[n].device) for n in masks.params}
    if ranking == "global":
        classes = _size_classes(size_b)
        swaps: dict[int, int] = {}
        for c, cls in classes:
            active = sum(count_true(_within(old_b[n], None if cls is None else cls[n])) for n in masks.params)
            cap = sum(int(old_b[n].numel() if cls is None else count_true(cls[n])) for n in masks.params)
            swaps[c] = int(fraction * active) if 0 < active < cap else 0
        moving = [n for n in masks.params] if any(swaps.values()) else []
    else:
        classes_of = {n: _size_classes({n: size_b[n]}) for n in masks.params}
        layer_swaps: dict[str, list[tuple[Tensor | None, int, int]]] = {}
        for n in masks.params:
            layer_swaps[n] = []
            for _, cls in classes_of[n]:
                c_mask = None if cls is None else cls[n]
                active = count_true(_within(old_b[n], c_mask))
                cap = old_b[n].numel() if c_mask is None else count_true(c_mask)
                layer_swaps[n].append((c_mask, active, int(fraction * active) if active < cap else 0))
        moving = [n for n in masks.params if any(k for _, _, k in layer_swaps[n])]
    states = {n: criterion_state(optimizer, masks.params[n]) for n in moving}
    keep_b = {n: b[n].pool(prune_fn(masks.params[n], prune_in.get(n), states[n], generator)) for n in moving}
    kept_b: dict[str, Tensor] = {n: torch.zeros_like(old_b[n]) for n in moving}
    if ranking == "global":
        for c, cls in classes:
            where = {n: _within(old_b[n], None if cls is None else cls[n]) for n in moving}
            k = sum(count_true(w) for w in where.values()) - swaps[c]
            chosen = global_topk_masks({n: _minus_inf_where(keep_b[n], ~where[n]) for n in moving}, k)
            kept_b = {n: kept_b[n] | chosen[n] for n in moving}
    else:
        for n in moving:
            for c_mask, active, k in layer_swaps[n]:
                kept_b[n] |= mask_of(topk_within(keep_b[n], _within(old_b[n], c_mask), active - k), keep_b[n])
    grow_b = {n: b[n].pool(grow_fn(masks.params[n], grads.get(n), states[n], generator)) for n in moving}
    grown_b: dict[str, Tensor] = {n: torch.zeros_like(old_b[n]) for n in moving}
    if ranking == "global":
        for c, cls in classes:
            free = {n: _within(~kept_b[n], None if cls is None else cls[n]) for n in moving}
            chosen = global_topk_masks({n: _minus_inf_where(grow_b[n], ~free[n]) for n in moving}, swaps[c])
            grown_b = {n: grown_b[n] | chosen[n] for n in moving}
    else:
        for n in moving:
            for c_mask, _, k in layer_swaps[n]:
                grown_b[n] |= mask_of(topk_within(grow_b[n], _within(~kept_b[n], c_mask), k), grow_b[n])
    changes, grown_entries = [], {}
    for name in masks.params:
        old = masks.masks[name]
        if name not in kept_b:
            changes.append(LayerChange(name, masks.layer_active()[name], 0, 0))
            grown_entries[name] = torch.zeros_like(old)
            continue
        now = b[name].expand(kept_b[name] | grown_b[name], old)
        new_idx = (now & ~old).reshape(-1).nonzero().squeeze(1)  # really new connections
        change, grown_entries[name] = _commit(masks, name, now, new_idx, grads.get(name),
                                              optimizer, regrown_state)
        changes.append(change)
    masks.apply_()
    return changes, grown_entries


def _magnitude_prune_blocks(masks: MaskSet, counts: Mapping[str, int] | int, raw: Mapping[str, Tensor]) -> None:
    """magnitude_prune_to in block units (masks.blocks): a block's score is its entries' (see
    :meth:`Blocks.pool`), only active blocks compete, and each count is met to within one block
    (:func:`~sparsegan.sparsity.blocks.select_blocks`)."""
    b = {n: masks.blocks_of(n) for n in masks.params}
    old_b = {n: b[n].pool_mask(masks.masks[n]) for n in masks.params}
    ranked = {n: _minus_inf_where(b[n].pool(raw[n]), ~old_b[n]) for n in masks.params}
    sizes = {n: b[n].sizes(masks.params[n].shape) for n in masks.params}
    if isinstance(counts, int):
        chosen = select_blocks(ranked, sizes, counts)
        new = {n: chosen[n] & old_b[n] for n in masks.params}
    else:
        new = {n: select_blocks({n: ranked[n]}, {n: sizes[n]}, counts[n])[n] for n in masks.params}
    for n, m in new.items():
        masks.set_mask(n, b[n].expand(m, masks.masks[n]))
    masks.apply_()


@torch.no_grad()
def magnitude_prune_to(
    masks: MaskSet,
    counts: Mapping[str, int] | int,
    *,
    scores: Mapping[str, Tensor] | None = None,
) -> None:
    """Prune to exact active counts by score (default |w|): a dict of per-layer counts ranks
    layer-wise, a single int ranks globally across all layers. Only active weights compete."""
    raw = scores if scores is not None else {n: p.detach().abs() for n, p in masks.params.items()}
    if not masks.blocks.unstructured:
        _magnitude_prune_blocks(masks, counts, raw)
        return
    ranked = {n: _minus_inf_where(raw[n], ~masks.masks[n]) for n in masks.params}
    if isinstance(counts, int):
        new = global_topk_masks(ranked, counts)
    else:
        new = {n: topk_mask(ranked[n], counts[n]) for n in masks.params}
    for n, m in new.items():
        masks.set_mask(n, m & masks.masks[n] if isinstance(counts, int) else m)
    masks.apply_()


@torch.no_grad()
def grow_to(
    masks: MaskSet,
    counts: Mapping[str, int] | int,
    scores: Mapping[str, Tensor],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    regrown_state: str = "fresh",
    dense_grads: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Grow each layer to ``counts[name]`` active weights, taking the inactive weights with the
    highest score; a single int is a total for the net, the inactive weights ranked across all
    layers together (global). Grown weights start at 0, with the optimizer history
    ``regrown_state`` names (as in :func:`prune_and_regrow`). Returns the grown entries."""
    if not masks.blocks.unstructured:
        return _grow_blocks(masks, counts, scores, optimizer, regrown_state, dense_grads or {})
    if isinstance(counts, int):
        extra = max(0, counts - masks.active())
        chosen = global_topk_masks({n: _minus_inf_where(scores[n], masks.masks[n]) for n in masks.params}, extra)
        counts = {n: count_true(masks.masks[n]) + count_true(chosen[n]) for n in masks.params}
    grown_entries = {}
    for name, param in masks.params.items():
        mask = masks.masks[name]
        extra = counts[name] - count_true(mask)
        if extra <= 0:
            grown_entries[name] = torch.zeros_like(mask)
            continue
        grown = topk_mask(_minus_inf_where(scores[name], mask), extra)
        before = mask
        masks.set_mask(name, mask | grown)
        param.masked_fill_(grown, 0.0)
        if optimizer is not None:
            start_state(regrown_state, optimizer, param, grown, (dense_grads or {}).get(name), active=before)
        grown_entries[name] = grown
    masks.apply_()
    return grown_entries


def _grow_blocks(masks: MaskSet, counts: Mapping[str, int] | int, scores: Mapping[str, Tensor],
                 optimizer: torch.optim.Optimizer | None, regrown_state: str,
                 dense_grads: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """grow_to in block units (masks.blocks): a block's score is its entries' (see
    :meth:`Blocks.pool`), only inactive blocks compete, and each count is met to within one block
    (:func:`~sparsegan.sparsity.blocks.select_blocks`)."""
    b = {n: masks.blocks_of(n) for n in masks.params}
    old_b = {n: b[n].pool_mask(masks.masks[n]) for n in masks.params}
    ranked = {n: _minus_inf_where(b[n].pool(scores[n]), old_b[n]) for n in masks.params}
    sizes = {n: b[n].sizes(masks.params[n].shape) for n in masks.params}
    if isinstance(counts, int):
        chosen = select_blocks(ranked, sizes, max(0, counts - masks.active()))
    else:
        active = masks.layer_active()
        chosen = {n: select_blocks({n: ranked[n]}, {n: sizes[n]}, max(0, counts[n] - active[n]))[n]
                  for n in masks.params}
    grown_entries = {}
    for name, param in masks.params.items():
        before = masks.masks[name]
        grown = b[name].expand(chosen[name], before) & ~before
        if not bool(grown.any()):
            grown_entries[name] = torch.zeros_like(before)
            continue
        masks.set_mask(name, before | grown)
        param.masked_fill_(grown, 0.0)
        if optimizer is not None:
            start_state(regrown_state, optimizer, param, grown, dense_grads.get(name), active=before)
        grown_entries[name] = grown
    masks.apply_()
    return grown_entries


RANKINGS = ("uniform", "distribution", "global")


def prune_once(masks: MaskSet, sparsity: float, ranking: str, distribution: str, power_scale: float) -> None:
    """One-shot magnitude pruning of (dense or sparse) masks to ``sparsity``, among active weights.

    ``uniform``: layer l keeps round((1 - s) * numel_l) weights (largest-remainder rounding, so the
    net total is exact); ``distribution``: the counts of ``distribution`` at ``s``; ``global``: the
    round((1 - s) * numel) largest magnitudes of the whole net. A layer already below its count
    (sparse masks) keeps what it has."""
    if ranking == "global":
        magnitude_prune_to(masks, round((1.0 - sparsity) * masks.numel()))
        return
    if ranking not in RANKINGS:
        raise ValueError(f"unknown ranking {ranking!r}; valid: {', '.join(RANKINGS)}")
    by = "uniform" if ranking == "uniform" else distribution
    counts = target_counts(masks.params, sparsity, by, power_scale=power_scale)
    active = masks.layer_active()
    magnitude_prune_to(masks, {n: min(c, active[n]) for n, c in counts.items()})
