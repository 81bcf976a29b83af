"""EMA of the generator's weights, sparse-aware (SEMA, STU-GAN §3.3).

Plain EMA would give a newly grown weight the value (1 - beta) * theta after its first step and
let it creep up for thousands of steps; SEMA starts its average at the weight's current value
instead, and keeps pruned weights at exactly 0. Buffers (BN statistics) are copied, not
averaged; the choice is recorded in the run config (REFERENCE §6.7).
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import Tensor, nn

from sparsegan.sparsity.masks import MaskSet


class SparseEMA:
    def __init__(self, model: nn.Module, beta: float, *, start_step: int = 0, sparse: bool = True):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"EMA beta must be in [0, 1), got {beta}")
        self.beta = beta
        self.start_step = start_step
        self.sparse = sparse
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._fresh: dict[str, Tensor] = {}

    def _pairs(self, model: nn.Module):
        src = dict(model.named_parameters())
        for name, p_ema in self.model.named_parameters():
            yield name, p_ema, src[name]

    @torch.no_grad()
    def on_topology_change(self, masks: MaskSet, grown: Mapping[str, Tensor]) -> None:
        """Pruned weights leave the average; grown ones start from their current value."""
        ema_params = dict(self.model.named_parameters())
        for name, mask in masks.masks.items():
            p_ema, p = ema_params[name], masks.params[name]
            g = grown.get(name)
            if g is not None and g.any():
                p_ema[g] = p.detach()[g]
                if self.sparse:
                    prev = self._fresh.get(name)
                    self._fresh[name] = g.clone() if prev is None else prev | g
            p_ema.mul_(mask)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, masks: MaskSet | None = None) -> None:
        """Average after the G step that completes ``step``; before ``start_step`` copy."""
        beta = self.beta if step >= self.start_step else 0.0
        for name, p_ema, p in self._pairs(model):
            p_ema.lerp_(p.detach(), 1.0 - beta)
            fresh = self._fresh.pop(name, None)
            if fresh is not None:
                p_ema[fresh] = p.detach()[fresh]
        if masks is not None:
            ema_params = dict(self.model.named_parameters())
            for name, mask in masks.masks.items():
                ema_params[name].mul_(mask)
        src_buffers = dict(model.named_buffers())
        for name, b in self.model.named_buffers():
            b.copy_(src_buffers[name])

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "fresh": {n: t.cpu() for n, t in self._fresh.items()},
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.model.load_state_dict(state["model"])
        dev = next(self.model.parameters()).device
        self._fresh = {n: t.to(dev) for n, t in state["fresh"].items()}
