"""A method is a small object the training loop calls at a few points.

The loop owns the nets, optimizers and data; a method owns the masks and decides when and how
they change. Hooks, in the order the loop calls them for each net's optimizer step:

    before_step(net, step)    gradients are ready: capture dense ones if needed, mask them
    after_step(net, step)     the optimizer moved the weights: re-zero inactive ones
    end_of_step(step, ...)    G step ``step`` is complete: topology updates, their records

``step`` is the number of completed G updates once the current one is done (1-based).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from sparsegan.config import TrainConfig
from sparsegan.registry import Registry
from sparsegan.sparsity import MaskSet, UpdateSchedule, prunable_parameters

NETS = ("G", "D")


@dataclass
class TopologyEvent:
    """What one topology update (or check) did to one net; becomes a kind=topology record."""

    net: str
    density: float
    active: int
    pruned: int = 0
    grown: int = 0
    prune_fraction: float = 0.0
    itop_rate: float = 0.0
    grown_entries: dict[str, Tensor] = field(default_factory=dict, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "net": self.net, "density": self.density, "active": self.active, "pruned": self.pruned,
            "grown": self.grown, "prune_fraction": self.prune_fraction, "itop_rate": self.itop_rate,
            **self.extra,
        }


class Method:
    """Static sparse training: masks drawn once at init, never changed. Others override a hook."""

    name = "static"
    enforce_masks = True  # dense overrides: its all-ones masks are bookkeeping only

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.masks: dict[str, MaskSet] = {}
        self.schedule = UpdateSchedule(
            interval=cfg.update_interval, total_steps=cfg.steps,
            initial_fraction=cfg.prune_fraction, final_fraction=cfg.prune_fraction_final,
            end_step=cfg.update_end,
        )
        self._dense_grads: dict[str, dict[str, Tensor]] = {}

    # --- set-up ------------------------------------------------------------------------
    def target_sparsity(self, net: str) -> float:
        return self.cfg.sparsity_g if net == "G" else self.cfg.sparsity_d

    def setup(self, nets: dict[str, nn.Module], generator: torch.Generator) -> None:
        """Draw the initial masks (ERK by default, exact counts) and zero inactive weights."""
        for net in NETS:
            params = prunable_parameters(nets[net], self.cfg.prunable)
            s = self.target_sparsity(net)
            if s == 0.0:
                self.masks[net] = MaskSet.dense(params)
            else:
                self.masks[net] = MaskSet.random(
                    params, s, self.cfg.distribution, power_scale=self.cfg.erk_power_scale, generator=generator
                )
            if self.enforce_masks:
                self.masks[net].apply_()

    # --- per optimizer step ------------------------------------------------------------
    def wants_dense_grad(self, net: str, step: int) -> bool:
        return False

    def before_step(self, net: str, step: int) -> None:
        masks = self.masks[net]
        if self.wants_dense_grad(net, step):
            self._dense_grads[net] = {
                n: p.grad.detach().clone() for n, p in masks.params.items() if p.grad is not None
            }
        if self.enforce_masks and self.cfg.mask_gradients:
            masks.mask_grads_()

    def after_step(self, net: str, step: int) -> None:
        if self.enforce_masks:
            self.masks[net].apply_()

    # --- per completed G step ----------------------------------------------------------
    def end_of_step(
        self, step: int, optimizers: dict[str, torch.optim.Optimizer], generator: torch.Generator
    ) -> list[TopologyEvent]:
        """At each scheduled update step, report the (unchanged) topology of every net."""
        if not self.schedule.is_update_step(step):
            return []
        return [self.event(net) for net in NETS]

    def event(self, net: str, **kw) -> TopologyEvent:
        m = self.masks[net]
        return TopologyEvent(net=net, density=m.density(), active=m.active(), itop_rate=m.itop_rate(), **kw)

    # --- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"masks": {net: m.state_dict() for net, m in self.masks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for net, m in self.masks.items():
            m.load_state_dict(state["masks"][net])


METHODS: Registry[type[Method]] = Registry("method")
METHODS.register("static")(Method)
