"""Optimizer-state surgery for changing masks."""

from __future__ import annotations

import torch
from torch import Tensor


# State entries shaped like the parameter that carry history (Adam moments, SGD momentum).
_MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


@torch.no_grad()
def reset_optimizer_state(optimizer: torch.optim.Optimizer, param: Tensor, entries: Tensor) -> None:
    """Zero the optimizer's per-entry history of ``param`` where ``entries`` is True.

    A regrown weight starts at 0 and, by default here, with no stale momentum (REFERENCE §6.2:
    the reference code keeps Adam moments of regrown weights, so their first step is not fresh).
    """
    state = optimizer.state.get(param)
    if not state:
        return
    for key in _MOMENT_KEYS:
        buf = state.get(key)
        if isinstance(buf, Tensor) and buf.shape == param.shape:
            buf.masked_fill_(entries, 0.0)
