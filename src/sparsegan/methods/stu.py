"""STU-GAN (Liu et al.): sparse unbalanced GAN training with in-time over-parameterization.

Algorithm 1: ERK masks at s_G and s_D; every Delta T completed G steps (never at step 0 nor at
the final step) the explored net drops the fraction p of its active weights with the smallest
magnitude, per layer, and regrows as many with the largest dense-gradient magnitude (RigL).
p decays with a non-periodic cosine from 0.5. New connections start at 0; a weight dropped and
regrown in the same update keeps its value and state. The EMA generator follows SEMA (Eq. 5; the
loop passes the new entries each event carries to :class:`~sparsegan.sparsity.SparseEMA`).

Deliberate differences from the reference code (REFERENCE §6): exact-count masks, gradients
of inactive weights masked, removed weights' Adam moments cleared and new weights given a fresh
weight's Adam history so their first step is ~lr (both switchable: ``--no-mask-gradients
--no-reset-regrown-state``), the dense gradient captured from the G step that completes the
update step rather than recomputed.
"""

from __future__ import annotations

from sparsegan.methods.base import METHODS, Method, TopologyEvent, net_names
from sparsegan.sparsity import hessian_gradient, prune_and_regrow


@METHODS.register("stu")
class STUGAN(Method):
    name = "stu"

    #: How prune-and-regrow ranks: per layer (STU-GAN, RigL) or over all of a net's layers (ADAPT).
    ranking = "layer"

    @property
    def explored(self) -> tuple[str, ...]:
        return net_names(self.cfg.explore, self.nets)

    def wants_dense_grad(self, net: str, step: int) -> bool:
        return net in self.explored and self.schedule.is_update_step(step)

    def end_of_step(self, step, optimizers, generator) -> list[TopologyEvent]:
        if not self.schedule.is_update_step(step):
            return []
        events = []
        fraction = self.schedule.fraction(step)
        for net in self.nets:
            masks = self.masks[net]
            if net not in self.explored or masks.density() == 1.0:
                events.append(self.event(net))
                continue
            prune_inputs = None
            if self.cfg.prune_criterion == "grasp":
                prune_inputs = hessian_gradient(masks.params, lambda: self.ctx.loss_probe(net), self.cfg.probe_batches)
                self.ctx.nets[net].zero_grad(set_to_none=True)
            changes, grown = prune_and_regrow(
                masks, fraction, ranking=self.ranking,
                prune=self.cfg.prune_criterion, grow=self.cfg.grow,
                dense_grads=self._dense_grads.pop(net, None), optimizer=optimizers[net],
                reset_state=self.cfg.reset_regrown_state, generator=generator, prune_inputs=prune_inputs,
            )
            events.append(self.event(
                net, pruned=sum(c.pruned for c in changes), grown=sum(c.grown for c in changes),
                prune_fraction=fraction, grown_entries=grown,
                extra={"ranking": self.ranking} if self.ranking != "layer" else {},
            ))
        return events
