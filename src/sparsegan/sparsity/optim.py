"""Optimizer-state surgery for changing masks.

Two operations, one per kind of mask change:

* a **removed** weight loses its history (:func:`reset_optimizer_state`): with masked gradients,
  zero moments make Adam's update there 0 / (0 + eps) = 0, so the weight stays exactly 0;
* a **regrown** weight starts a history of its own (:func:`start_regrown_state`), sized like
  a freshly initialised weight's.

Why the second one is not a plain reset. Adam's bias correction is per tensor: it divides the
moments by 1 - beta^t with the tensor's step count t. For a weight whose moments were zeroed at
step t >> 1 that correction is ~1, so its first update is lr * (1 - b1) g / sqrt((1 - b2) g^2) =
lr (1 - b1) / sqrt(1 - b2): 15.8 lr at betas (0.5, 0.999), 31.6 lr at (0, 0.999), and its steps
stay oversized for ~1/(1 - b2) steps (REFERENCE §2). A fresh Adam's first step is lr: its
bias-corrected moments after one step are exactly g and g^2. We give the regrown entry those
bias-corrected moments from the dense gradient g seen at the update, stored pre-divided by the
tensor's correction, m = g (1 - b1^t) and v = g^2 (1 - b2^t), so that Adam's next step sees
m_hat = b1 g + (1 - b1) g' and v_hat = b2 g^2 + (1 - b2) g'^2 (g' its next gradient): lr in size
when g' ~ g, as a fresh weight's. This costs nothing per step (the per-entry step-count
alternative needs a custom optimizer), so sparse steps keep the speed of dense ones. What it
cannot do is know g': one sample g seeds the second moment, whose memory is ~1 / (1 - b2)
steps, so under noisy gradients a weight grown for its large |g| steps less than lr for a while
(conservative), and v is floored at the layer's mean so a weight grown at |g| ~ 0 never steps
far more than lr.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparsegan.sparsity.topk import count_true

#: What a really new connection's optimizer history starts as (``regrown_state``): "fresh", this
#: project's choice, a fresh weight's history after one step (start_regrown_state); "zero", RigL's
#: (every optimizer slot of a new connection zeroed); "keep", the STU-GAN reference code's (the
#: history stays whatever it was, stale moments included, and removed weights keep theirs too).
REGROWN_STATES = ("fresh", "zero", "keep")

# State entries shaped like the parameter that carry history (Adam moments, SGD momentum).
_MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


def _moments(optimizer: torch.optim.Optimizer, param: Tensor) -> dict[str, Tensor]:
    state = optimizer.state.get(param) or {}
    return {k: state[k] for k in _MOMENT_KEYS
            if isinstance(state.get(k), Tensor) and state[k].shape == param.shape}


def _group_of(optimizer: torch.optim.Optimizer, param: Tensor) -> dict:
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise ValueError("the optimizer does not hold this parameter")


@torch.no_grad()
def reset_optimizer_state(optimizer: torch.optim.Optimizer, param: Tensor, entries: Tensor) -> None:
    """Zero the optimizer's per-entry history of ``param`` where ``entries`` is True (by index: a
    topology update's removals are a few % of the layer, and a bool-masked fill reads all of it)."""
    moments = _moments(optimizer, param)
    if not moments:
        return
    idx = entries.reshape(-1).nonzero().squeeze(1)
    for buf in moments.values():
        if buf.is_contiguous():
            buf.view(-1).index_fill_(0, idx, 0.0)
        else:
            buf.masked_fill_(entries, 0.0)


@torch.no_grad()
def start_regrown_state(
    optimizer: torch.optim.Optimizer,
    param: Tensor,
    entries: Tensor,
    grad: Tensor | None,
    active: Tensor | None = None,
    *,
    entries_idx: Tensor | None = None,
    active_idx: Tensor | None = None,
) -> None:
    """Give the regrown ``entries`` of ``param`` the optimizer history of a weight that has just
    taken its first step with gradient ``grad`` (the dense gradient seen at the update).

    Adam / AdamW (``exp_avg``, ``exp_avg_sq``): bias-corrected moments g and g^2, stored divided
    by the tensor's bias correction at its current step count (module docstring). The second
    moment is floored at the layer's mean over the weights ``active`` before the update: one
    gradient sample near 0 (a random regrowth, SET) would otherwise make the next steps huge
    (|g'| / |g| lr); with the floor they stay at most about lr (1 - b1) |g'| / sqrt(v_layer).
    SGD momentum: 0, which a fresh SGD weight's first step reaches too (its buffer becomes g).
    Without a gradient (none was captured) the history is zeroed, the best that can be done then.
    ``entries_idx`` / ``active_idx``: the flat indices of ``entries`` / ``active`` where the caller
    has them already (a topology update does), to spare recomputing them.
    """
    moments = _moments(optimizer, param)
    if not moments:
        return  # no step taken yet: the optimizer initialises these entries like every other
    if grad is None or "exp_avg" not in moments:
        reset_optimizer_state(optimizer, param, entries)
        return
    step = optimizer.state[param].get("step", 0)
    t = float(step.item() if isinstance(step, Tensor) else step)
    beta1, beta2 = _group_of(optimizer, param)["betas"]
    # Only the regrown entries are computed and written (a few thousand of a layer's million):
    # the same float operations on the same values as on the whole tensor.
    idx = entries.reshape(-1).nonzero().squeeze(1) if entries_idx is None else entries_idx
    if not idx.numel():
        return
    g = grad.detach().to(param.dtype).reshape(-1)[idx]
    m = g * (1.0 - beta1 ** t)
    v = g.square() * (1.0 - beta2 ** t)
    if active is not None and "exp_avg_sq" in moments and count_true(active):
        # the stored (uncorrected) mean; gathering by index gives the same values in the same order
        stored = moments["exp_avg_sq"]
        by_index = active_idx is not None and stored.is_contiguous()
        mean = (stored.view(-1)[active_idx] if by_index else stored[active]).mean()
        v = torch.clamp(v, min=mean)
    for key, value in (("exp_avg", m), ("exp_avg_sq", v), ("max_exp_avg_sq", v)):
        if key in moments:
            _put(moments[key], idx, value)


def start_state(regrown_state: str, optimizer: torch.optim.Optimizer, param: Tensor, entries: Tensor,
                grad: Tensor | None, **kw) -> None:
    """The optimizer history of the really new ``entries`` of ``param`` under ``regrown_state``
    (:data:`REGROWN_STATES`); ``kw`` as :func:`start_regrown_state`'s."""
    if regrown_state == "fresh":
        start_regrown_state(optimizer, param, entries, grad, **kw)
    elif regrown_state == "zero":
        reset_optimizer_state(optimizer, param, entries)


def _put(buf: Tensor, idx: Tensor, values: Tensor) -> None:
    """``buf.view(-1)[idx] = values`` for any layout of ``buf``."""
    if buf.is_contiguous():
        buf.view(-1).index_copy_(0, idx, values)
    else:
        flat = buf.reshape(-1).clone()
        flat.index_copy_(0, idx, values)
        buf.copy_(flat.view(buf.shape))
