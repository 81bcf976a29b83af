"""Gradual magnitude pruning (Zhu & Gupta 2017): dense to the target on a cubic schedule.

Every ``--update-interval`` G steps between ``--gmp-start`` and ``--gmp-end`` (fractions of the
run) each sparse net is pruned by magnitude, per layer, to s_t = s_f (1 - (1 - frac)^3); the
last pruning step lands exactly on the target. Each pruning step writes a topology record.
"""

from __future__ import annotations

from sparsegan.methods.base import METHODS, NETS, Method, TopologyEvent
from sparsegan.methods.pf import prune_once
from sparsegan.sparsity import MaskSet, cubic_sparsity


@METHODS.register("gmp")
class GradualMagnitudePruning(Method):
    name = "gmp"

    def initial_masks(self, net, params):
        return MaskSet.dense(params)

    @property
    def window(self) -> tuple[int, int]:
        return round(self.cfg.gmp_start * self.cfg.steps), max(1, round(self.cfg.gmp_end * self.cfg.steps))

    def is_prune_step(self, step: int) -> bool:
        start, end = self.window
        return start < step <= end and ((step - start) % self.cfg.update_interval == 0 or step == end)

    def sparsity_at(self, net: str, step: int) -> float:
        start, end = self.window
        return cubic_sparsity(step, start=start, end=end, initial=0.0, final=self.target_sparsity(net))

    def end_of_step(self, step, optimizers, generator) -> list[TopologyEvent]:
        if not self.is_prune_step(step):
            return []
        events = []
        for net in NETS:
            masks = self.masks[net]
            before = masks.active()
            s = self.sparsity_at(net, step)
            if s > 0:
                prune_once(masks, s, "layer", self.cfg.distribution, self.cfg.erk_power_scale)
            events.append(self.event(net, pruned=before - masks.active(), extra={"target_sparsity": s}))
        return events
