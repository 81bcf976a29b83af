"""Saliency of whole nets from their training loss, for pruning at initialisation and GraSP
pruning: SNIP's |w * dL/dw| (Lee et al. 2019) and GraSP's w * (H g) (Wang et al. 2020).

``loss_fn`` returns the net's training loss on a fresh batch (with its graph) at every call;
scores are summed over ``batches`` calls.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def snip_scores(params: dict[str, Tensor], loss_fn: Callable[[], Tensor], batches: int) -> dict[str, Tensor]:
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for _ in range(batches):
        g = torch.autograd.grad(loss_fn(), list(params.values()), allow_unused=True)
        for n, gi in zip(params, g):
            if gi is not None:
                grads[n] += gi
    return {n: (p.detach() * grads[n]).abs() for n, p in params.items()}


def hessian_gradient(params: dict[str, Tensor], loss_fn: Callable[[], Tensor], batches: int) -> dict[str, Tensor]:
    """H g over ``batches`` batches, g and H on the same batches (GraSP's two passes).

    g = sum_b g_b and Hg = sum_b H_b g. ``loss_fn`` draws a fresh batch at every call, so it is
    called once per batch: each batch's gradient is taken with its graph kept, g is their
    (detached) sum, and one backward pass of sum_b <g_b, g> gives sum_b H_b g on those very
    batches (a second draw would pair g with the Hessian of other batches). The price: the B
    graphs are held at once (B = ``--probe-batches``, 1 by default)."""
    names, tensors = list(params), list(params.values())
    per_batch = []
    for _ in range(batches):
        per_batch.append(torch.autograd.grad(loss_fn(), tensors, create_graph=True, allow_unused=True))
    g_total = [torch.zeros_like(p) for p in tensors]
    for g in per_batch:
        for acc, gi in zip(g_total, g):
            if gi is not None:
                acc += gi.detach()
    z = sum((gi * gt).sum() for g in per_batch for gi, gt in zip(g, g_total) if gi is not None)
    hg = [torch.zeros_like(p) for p in tensors]
    if torch.is_tensor(z) and z.requires_grad:
        for acc, h in zip(hg, torch.autograd.grad(z, tensors, allow_unused=True)):
            if h is not None:
                acc += h
    return dict(zip(names, hg))


def grasp_scores(params: dict[str, Tensor], loss_fn: Callable[[], Tensor], batches: int) -> dict[str, Tensor]:
    hg = hessian_gradient(params, loss_fn, batches)
    return {n: p.detach() * hg[n] for n, p in params.items()}
