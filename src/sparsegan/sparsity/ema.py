"""EMA of the generator's weights, sparse-aware (SEMA, STU-GAN §3.3, Eq. 5).

Plain EMA would give a newly grown weight the value (1 - beta) * theta after its first step and
let it creep up for thousands of steps. SEMA, with T the number of G steps since the weight was
grown: EMA = 0 at T = 0 (the update step itself, where the grown weight is 0), theta_t at T = 1
(the next G step), beta * EMA + (1 - beta) * theta_t for T > 1; pruned weights are 0 in the EMA.
Buffers (BN statistics) are copied, not averaged; the choice is recorded in the run config
(REFERENCE §6.7).

``warmup``: the decay at step t is min(beta, (1 + t) / (10 + t)) (the num_updates rule of
TensorFlow's ExponentialMovingAverage), so the average follows the weights closely while they move
fast and reaches ``beta`` at t = (10 beta - 1) / (1 - beta) (8,990 at 0.999). Without it the average
of a 400-step run at 0.999 is still two thirds the initial weights: its samples are noise.

Use: ``update(model, step)`` after every G optimizer step, and ``on_topology_change(masks,
grown, step)`` when the masks changed at ``step``, before or after that step's ``update``: a
grown weight's average restarts at the first ``update`` of a *later* step, whatever the order.
"""

from __future__ import annotations

import copy
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from sparsegan.kernels import active
from sparsegan.sparsity.masks import MaskSet
from sparsegan.sparsity.topk import count_true


class SparseEMA:
    def __init__(self, model: nn.Module, beta: float, *, start_step: int = 0, sparse: bool = True,
                 masks: Callable[[], MaskSet | None] | None = None, warmup: bool = False):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"EMA beta must be in [0, 1), got {beta}")
        self.beta = beta
        self.warmup = warmup
        self.start_step = start_step
        self.sparse = sparse
        # masks(): the model's current masks when its inactive weights, and so their averages, are
        # held at 0 (the engine's invariant): an update then averages the active entries only
        self.masks = masks
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._fresh: dict[int, dict[str, Tensor]] = {}  # step of the change -> grown entries
        self._zero_outside: dict[str, tuple[Tensor, int, bool]] = {}  # name -> mask, version, average 0 outside

    def _sparse_index(self, masks: MaskSet | None, name: str, p_ema: Tensor) -> Tensor | None:
        """The active entries of weight ``name`` when averaging them alone is the whole update (the
        average is 0 outside the mask, checked once per mask) and cheaper (at most half the weights
        active, a contiguous CPU tensor); else None."""
        if masks is None or name not in masks.masks or p_ema.device.type != "cpu" or not p_ema.is_contiguous():
            return None
        mask = masks.masks[name]
        index = masks.active_index(name)
        if index.numel() > p_ema.numel() // 2:
            return None
        seen = self._zero_outside.get(name)  # (the mask itself, held: a freed mask's id may be reused; version)
        if seen is None or seen[0] is not mask or seen[1] != mask._version:
            seen = self._zero_outside[name] = (mask, mask._version, not bool(p_ema.detach().masked_select(~mask).any()))
        return index if seen[2] else None

    def _pairs(self, model: nn.Module):
        src = dict(model.named_parameters())
        for name, p_ema in self.model.named_parameters():
            yield name, p_ema, src[name]

    @torch.no_grad()
    def on_topology_change(self, masks: MaskSet, grown: Mapping[str, Tensor], step: int) -> None:
        """The masks changed at G step ``step``: pruned weights leave the average (0), grown ones
        take their current value (0, T = 0) and restart their average at the next step (T = 1)."""
        ema_params = dict(self.model.named_parameters())
        for name in masks.masks:
            p_ema, p = ema_params[name], masks.params[name]
            g = grown.get(name)
            if g is not None and count_true(g):
                p_ema.copy_(torch.where(g, p.detach(), p_ema))
                if self.sparse:
                    marks = self._fresh.setdefault(step, {})
                    marks[name] = g.clone() if name not in marks else marks[name] | g
            p_ema.mul_(masks.factor(name).to(p_ema.dtype))
            # 0 outside the new mask by the line above: the update's check of that can be skipped
            self._zero_outside[name] = (masks.masks[name], masks.masks[name]._version, True)

    def decay(self, step: int) -> float:
        """The decay the update after G step ``step`` uses: 0 (a copy) before ``start_step``; with
        ``warmup``, counted from ``start_step``."""
        if step < self.start_step:
            return 0.0
        if not self.warmup:
            return self.beta
        t = step - self.start_step
        return min(self.beta, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, masks: MaskSet | None = None) -> None:
        """Average after the G step that completes ``step``; before ``start_step`` copy."""
        beta = self.decay(step)
        held = self.masks() if self.masks is not None and self.sparse else None
        for name, p_ema, p in self._pairs(model):
            index = self._sparse_index(held, name, p_ema)
            if index is None:
                p_ema.lerp_(p.detach(), 1.0 - beta)
            else:  # inactive: 0 in the weight and in its average, and lerp(0, 0) = 0
                active.lerp_(p_ema, p.detach().contiguous(), index, 1.0 - beta)
        # SEMA's T = 1: weights grown at an earlier step take their current value.
        due = sorted(s for s in self._fresh if s < step)
        if due or masks is not None:
            ema_params, src = dict(self.model.named_parameters()), dict(model.named_parameters())
        for changed_at in due:
            for name, fresh in self._fresh.pop(changed_at).items():
                ema_params[name].copy_(torch.where(fresh, src[name].detach(), ema_params[name]))
        if masks is not None:
            for name, mask in masks.masks.items():
                ema_params[name].mul_(mask)
        src_buffers = dict(model.named_buffers())
        for name, b in self.model.named_buffers():
            b.copy_(src_buffers[name])

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "fresh": {step: {n: t.cpu() for n, t in marks.items()} for step, marks in self._fresh.items()},
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.model.load_state_dict(state["model"])
        self._zero_outside = {}
        dev = next(self.model.parameters()).device
        fresh = state["fresh"]
        if any(isinstance(v, Tensor) for v in fresh.values()):  # written before marks had a step
            fresh = {0: fresh} if fresh else {}
        self._fresh = {int(step): {n: t.to(dev) for n, t in marks.items()} for step, marks in fresh.items()}

