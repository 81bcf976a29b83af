"""Gradual magnitude pruning (Zhu & Gupta 2017): dense to the target on a cubic schedule.

The window runs from t0 = ``--gmp-start`` to t1 = ``--gmp-end`` (fractions of ``--steps``, in
completed G steps). Pruning happens n times in it, at t_k = t0 + round(k (t1 - t0) / n), k = 1..n,
with n = ``--gmp-prunes`` (20; at most one per step in a shorter window) by default, so every
run length gets a gradual schedule; or every
``--gmp-interval`` (Delta t) steps from t0, plus t1 itself when Delta t does not divide the window.
At a pruning step t each sparse net is pruned by magnitude to

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3,   s_i = 0, s_f = the net's target,

so the last pruning step (t1) lands exactly on the target. Zhu & Gupta prune every layer to the
same s_t: ``--ranking uniform`` (the default); ``distribution`` (per-layer counts from
``--distribution``) and ``global`` are options; each topology record holds the ranking, s_t
("target_sparsity") and every layer's sparsity ("layer_sparsity"). A window with
fewer than two pruning steps is refused: that would be one-shot pruning, not GMP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sparsegan.errors import UserError
from sparsegan.methods.base import (
    METHODS,
    BlockOptions,
    Method,
    RankingOptions,
    RegrowthStateOptions,
    SparsityOptions,
    TopologyEvent,
)
from sparsegan.methods.transfer import TransferOptions
from sparsegan.options import Options, option
from sparsegan.sparsity import MaskSet, cubic_sparsity, prune_once


@dataclass
class GMPOptions(Options):
    title: ClassVar[str] = "gradual magnitude pruning"
    gmp_start: float = option(0.1, "gmp: fraction of training at which pruning starts")
    gmp_end: float = option(0.8, "gmp: fraction of training at which the target is reached")
    gmp_prunes: int = option(20, "gmp: number of pruning steps n spread evenly over the window (Zhu & Gupta's n)")
    gmp_interval: int | None = option(None, "gmp: G steps between pruning steps (Zhu & Gupta's Delta t); default: "
                                      "the window / --gmp-prunes")

    def validate(self) -> None:
        self.require_positive("gmp_prunes", "gmp_interval")
        if not 0.0 <= self.gmp_start < self.gmp_end <= 1.0:
            raise UserError(f"need 0 <= --gmp-start < --gmp-end <= 1, got {self.gmp_start}, {self.gmp_end}")


@METHODS.register("gmp")
class GradualMagnitudePruning(Method):
    name = "gmp"
    # Its own schedule, not Delta T's.
    options = (SparsityOptions, BlockOptions, TransferOptions, RankingOptions, RegrowthStateOptions, GMPOptions)

    def __init__(self, targets, steps, options=None):
        super().__init__(targets, steps, options)
        cfg = self.opts
        self.prune_steps = self._prune_steps()
        if len(self.prune_steps) < 2:
            start, end = self.window
            how = f"--gmp-interval {cfg.gmp_interval}" if cfg.gmp_interval else f"--gmp-prunes {cfg.gmp_prunes}"
            raise UserError(f"--method gmp: the window (G steps {start}..{end} of {self.steps}) with {how} gives "
                            f"{len(self.prune_steps)} pruning step(s); gradual pruning needs at least 2 "
                            "(lengthen --steps or the window, or shorten --gmp-interval)")

    @classmethod
    def distribution_unused(cls, values):
        # the layer distribution shapes its pruning only under --ranking distribution
        ranking = values.get("ranking")
        return None if ranking == "distribution" else f" --ranking {ranking} (it applies with --ranking distribution)"

    def make_schedule(self):
        return None  # its own pruning steps (Zhu & Gupta), not Delta T's

    def steps_spanned(self):
        return "the pruning window (--gmp-start, --gmp-end) is a fraction of --steps"

    def initial_masks(self, net, params):
        return MaskSet.dense(params, **self.layout(net))

    @property
    def window(self) -> tuple[int, int]:
        # The last pruning step is never the final step (DESIGN: no topology change at the end;
        # the pruned net trains at least one step at its target), even with --gmp-end 1.
        end = min(round(self.opts.gmp_end * self.steps), self.steps - 1)
        return round(self.opts.gmp_start * self.steps), max(1, end)

    def _prune_steps(self) -> list[int]:
        start, end = self.window
        if self.opts.gmp_interval is not None:
            steps = list(range(start + self.opts.gmp_interval, end + 1, self.opts.gmp_interval))
            return steps if steps and steps[-1] == end else steps + [end]
        n = min(self.opts.gmp_prunes, end - start)
        return sorted({start + round(k * (end - start) / n) for k in range(1, n + 1)})

    def is_prune_step(self, step: int) -> bool:
        return step in self.prune_steps

    def sparsity_at(self, net: str, step: int) -> float:
        start, end = self.window
        return cubic_sparsity(step, start=start, end=end, initial=0.0, final=self.target_sparsity(net))

    def end_of_step(self, step, optimizers, generator) -> list[TopologyEvent]:
        if not self.is_prune_step(step):
            return []
        events = []
        for net in self.nets:
            masks = self.masks[net]
            before = masks.active()
            s = self.sparsity_at(net, step)
            if s > 0:
                prune_once(masks, s, self.opts.ranking, self.opts.distribution, self.opts.erk_power_scale)
            layer_sparsity = {n: 1.0 - int(m.sum()) / m.numel() for n, m in masks.masks.items()}
            events.append(self.event(net, pruned=before - masks.active(), extra={
                "target_sparsity": s, "ranking": self.opts.ranking, "layer_sparsity": layer_sparsity}))
        return events
