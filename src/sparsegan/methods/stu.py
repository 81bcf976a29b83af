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
--regrown-state keep``; RigL's zeroed history: ``--regrown-state zero``), the dense gradient
captured from the G step that completes the update step rather than recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sparsegan.errors import UserError
from sparsegan.methods.base import METHODS, Method, RegrowthStateOptions, TopologyEvent, net_names
from sparsegan.methods.prune_at_init import ProbeOptions
from sparsegan.options import Options, option
from sparsegan.sparsity import GROW_CRITERIA, PRUNE_CRITERIA, UpdateSchedule, hessian_gradient, prune_and_regrow


@dataclass
class ExploreOptions(Options):
    """Prune-and-regrow exploration (stu, adapt): Algorithm 1's p, its criteria, the explored nets."""

    title: ClassVar[str] = "exploration"
    prune_fraction: float = option(0.5, "initial prune fraction p of each update (cosine decay)")
    prune_fraction_final: float = option(0.005, "prune fraction at the end of the cosine decay")
    prune_criterion: str = option("magnitude", "which active weights to drop", choices=PRUNE_CRITERIA.names)
    grow: str = option("gradient", "which inactive weights to grow: gradient (RigL), random (SET), momentum",
                       choices=GROW_CRITERIA.names)
    explore: str = option("G", "which net's topology STU-GAN explores", choices=("G", "D", "GD"), nets=True)

    def validate(self) -> None:
        if not 0.0 <= self.prune_fraction_final <= self.prune_fraction <= 1.0:
            raise UserError("need 0 <= --prune-fraction-final <= --prune-fraction <= 1")


@METHODS.register("stu")
class STUGAN(Method):
    name = "stu"
    options = (*Method.options, ExploreOptions, RegrowthStateOptions, ProbeOptions)

    #: How prune-and-regrow ranks: per layer (STU-GAN, RigL) or over all of a net's layers (ADAPT).
    ranking = "layer"

    def __init__(self, targets, steps, options=None):
        super().__init__(targets, steps, options)
        if not self.schedule.update_steps():
            # Without a single update the run is static training under this method's name: refuse it.
            raise UserError(self._no_update())

    @classmethod
    def default_update_interval(cls, steps: int) -> int:
        # The papers' Delta T (1000 for SNGAN's 50k G steps, 500 for BigGAN's 125k) is one update per
        # 50-250 steps of a long run; a fixed 1000 leaves a run of 1000 steps or fewer without a single
        # update. A tenth of the run gives a short run about ten updates, each new connection at least
        # that long to grow before the next one; from 10,000 steps on it is the papers' 1000.
        return min(1000, max(1, steps // 10))

    def _no_update(self) -> str:
        """Why the schedule holds no topology update, and the fix, in one line."""
        steps, interval, end = self.steps, self.schedule.interval, self.opts.update_end
        if steps < 2:
            return (f"--method {self.name} --steps {steps} leaves no G step for a topology update (never at the final "
                    "step), so its masks would stay fixed; use --steps 2 or more, or --method static")
        if end is not None and end < interval < steps:
            return (f"--method {self.name}: --update-end {end} comes before the first topology update "
                    f"(--update-interval {interval}), so its masks would stay fixed; raise --update-end to {interval} "
                    "or more, or lower --update-interval")
        return (f"--method {self.name}: --update-interval {interval} with --steps {steps} leaves no topology update "
                "(one every Delta T completed G steps, never at the final step), so its masks would stay fixed as "
                f"static training's; pass --update-interval below --steps (e.g. {self.default_update_interval(steps)})")

    def make_schedule(self):
        # Algorithm 1's p: a non-periodic cosine from --prune-fraction to --prune-fraction-final
        return UpdateSchedule(interval=self.delta_t(self.opts.update_interval), total_steps=self.steps,
                              initial_fraction=self.opts.prune_fraction, final_fraction=self.opts.prune_fraction_final,
                              end_step=self.opts.update_end)

    def steps_spanned(self):
        end = self.opts.update_end
        if end is not None and end < self.steps:
            return None  # the cosine spans --update-end, which a shorter run still reaches past
        return "the prune fraction decays (cosine) over --steps"

    @property
    def explored(self) -> tuple[str, ...]:
        return net_names(self.opts.explore, self.nets)

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
            if self.opts.prune_criterion == "grasp":
                prune_inputs = hessian_gradient(masks.params, lambda: self.ctx.loss_probe(net), self.opts.probe_batches)
                self.ctx.nets[net].zero_grad(set_to_none=True)
            changes, grown = prune_and_regrow(
                masks, fraction, ranking=self.ranking,
                prune=self.opts.prune_criterion, grow=self.opts.grow,
                dense_grads=self._dense_grads.pop(net, None), optimizer=optimizers[net],
                regrown_state=self.opts.regrown_state, generator=generator, prune_inputs=prune_inputs,
            )
            events.append(self.event(
                net, pruned=sum(c.pruned for c in changes), grown=sum(c.grown for c in changes),
                prune_fraction=fraction, grown_entries=grown,
                extra={"ranking": self.ranking} if self.ranking != "layer" else {},
            ))
        return events
