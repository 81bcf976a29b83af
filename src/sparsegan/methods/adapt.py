"""ADAPT (Wang et al., "Balanced Training for Sparse GANs", NeurIPS 2023).

G is trained with dynamic sparse training: every ``--update-interval`` G steps it drops a
cosine-decaying fraction p of its active weights by magnitude and regrows as many by dense
gradient. D's density adapts: the loop measures the balance ratio BR every ``--balance-every``
G steps; every ``--adapt-interval`` G steps its mean over the interval decides: BR >=
``--adapt-high`` (G moves the fakes far: D is too weak) grows D by ``--adapt-step`` of its
prunable weights, by dense gradient; BR <= ``--adapt-low`` (D dominates) prunes D by the same
amount, by magnitude. D's density stays within [adapt_step, 1] ("relaxed") or
[adapt_step, 0.5] ("strict"). Strict at the cap does what ADAPT's code does (``--dd-b``): when
BR asks for a stronger D, D itself does prune-and-regrow (magnitude out, dense gradient in, the
same cosine fraction p as G) instead of growing further, so its density stays 0.5.

``--adapt-ranking global`` (the default, ADAPT's scripts: global_magnitude death,
global_gradient growth) ranks weights over all layers of a net at once, in G's prune-and-regrow
and in every change of D; ``layer`` ranks per layer (G as STU-GAN explores it, D's growth and
pruning per ``--distribution`` counts). Global ranking compares raw ``weight_orig`` scales under
spectral norm (REFERENCE §6.8); ADAPT does it anyway, and the records say which ranking ran.
D starts at 1 - ``--sparsity-d``. Its final density is by design not the requested one; every
change is recorded as a kind=adapt record. Difference from ADAPT's code: BR is averaged over all
samples since the previous adjustment (the code keeps the last 1000 iterations' samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from sparsegan.errors import UserError
from sparsegan.methods.base import METHODS
from sparsegan.methods.stu import STUGAN
from sparsegan.options import Options, option
from sparsegan.sparsity import grow_to, prune_and_regrow, prune_once, target_counts


def balance_ratio(d_real: Tensor | float, d_fake_before: Tensor | float, d_fake_after: Tensor | float) -> float:
    """ADAPT's balance ratio BR = (D(G_after(z)) - D(G_before(z))) / (D(x) - D(G_before(z))): D's
    mean logits on a real batch, and on the fakes of the same z before and after the G step (D
    after its update). How far one G step moves the fakes toward the reals, as D sees them."""
    gap = float(d_real - d_fake_before)
    if abs(gap) < 1e-12:
        return 0.0
    return float(d_fake_after - d_fake_before) / gap


@dataclass
class AdaptOptions(Options):
    title: ClassVar[str] = "ADAPT's control of D's density"
    adapt_interval: int = option(1000, "adapt: G steps between D density adjustments (Delta T_D)")
    adapt_step: float = option(0.05, "adapt: change of D's density per adjustment")
    adapt_low: float = option(0.45, "adapt: prune D when the averaged balance ratio is at or below this (BR may be "
                              "negative)")
    adapt_high: float = option(0.55, "adapt: grow D when the averaged balance ratio is at or above this")
    adapt_variant: str = option("relaxed", "adapt: relaxed (D density up to 1) or strict (capped at 0.5; at the cap "
                                "D does prune-and-regrow instead of growing)", choices=("relaxed", "strict"))
    adapt_ranking: str = option("global", "adapt: rank weights over all of a net's layers (global, ADAPT's scripts: "
                                "G's prune-and-regrow, D's growth and pruning) or per layer (layer: STU-GAN's "
                                "per-layer update)", choices=("global", "layer"))

    def validate(self) -> None:
        self.require_positive("adapt_interval")
        if not 0.0 < self.adapt_step < 1.0 or not self.adapt_low < self.adapt_high:
            raise UserError("need 0 < --adapt-step < 1 and --adapt-low < --adapt-high")


@METHODS.register("adapt")
class ADAPT(STUGAN):
    name = "adapt"
    # ADAPT ranks over all of a net's layers at once (with block masks: all of its blocks)
    options = (*STUGAN.options, AdaptOptions)
    supports_autoencoders = False

    def __init__(self, targets, steps, options=None):
        if set(targets) != {"G", "D"}:
            raise UserError(f"ADAPT balances a generator against its discriminator: name the nets G and D, "
                            f"not {', '.join(targets)}")
        super().__init__(targets, steps, options)
        cfg = self.opts
        if "D" in self.explored:
            raise UserError("--method adapt explores G only (D's density is adapted instead); use --explore G")
        if cfg.adapt_variant == "strict" and self.targets["D"] < 0.5:
            raise UserError(f"--adapt-variant strict caps D's density at 0.5: start D at or below it "
                            f"(--sparsity-d >= 0.5, got {self.targets['D']})")
        if cfg.adapt_ranking == "global" and cfg.prune_criterion == "grasp":
            raise UserError("--method adapt --adapt-ranking global prunes by magnitude, snip or taylor, not grasp; "
                            "use --adapt-ranking layer for grasp")
        if cfg.adapt_interval >= self.steps:
            # D's density would never move: G's exploration with a fixed D is not ADAPT.
            raise UserError(f"--method adapt: --adapt-interval {cfg.adapt_interval} with --steps {self.steps} leaves "
                            "no decision on D's density (one every --adapt-interval G steps, never at the final step); "
                            f"pass --adapt-interval below --steps (e.g. {self.default_update_interval(self.steps)}, "
                            "with --balance-every at most that)")
        self.ratios: list[float] = []

    @property
    def ranking(self) -> str:
        """ADAPT's scripts rank over all of a net's layers (G's updates and D's changes alike)."""
        return self.opts.adapt_ranking

    @property
    def density_bounds(self) -> tuple[float, float]:
        return self.opts.adapt_step, (0.5 if self.opts.adapt_variant == "strict" else 1.0)

    def observe_balance(self, step: int, ratio: float) -> None:
        self.ratios.append(float(ratio))

    def is_adapt_step(self, step: int) -> bool:
        return 0 < step < self.steps and step % self.opts.adapt_interval == 0

    def wants_dense_grad(self, net: str, step: int) -> bool:
        return super().wants_dense_grad(net, step) or (net == "D" and self.is_adapt_step(step))

    def adapt_d(self, mean_ratio: float, optimizer, step: int):
        """Move D's density one step toward balance (or, strict at the cap, prune-and-regrow D);
        returns the topology event."""
        masks = self.masks["D"]
        before = masks.density()
        lo, hi = self.density_bounds
        glob = self.ranking == "global"
        dense = self._dense_grads.pop("D", None)  # captured at every adapt step
        grads = dense or {n: p.detach().abs() for n, p in masks.params.items()}
        if mean_ratio >= self.opts.adapt_high:
            target, action = min(hi, before + self.opts.adapt_step), "grow"
        elif mean_ratio <= self.opts.adapt_low:
            target, action = max(lo, before - self.opts.adapt_step), "prune"
        else:
            target, action = before, "keep"
        if abs(target - before) * masks.numel() < 0.5:
            # D is at a bound. Strict ADAPT at its cap keeps exploring D instead of growing it.
            action = "regrow" if action == "grow" and self.opts.adapt_variant == "strict" else "keep"
        pruned = grown = 0
        fraction = 0.0
        n_before = masks.active()
        if action == "grow":
            total = round(target * masks.numel())
            if glob:
                counts = total
            else:
                counts = target_counts(masks.params, 1.0 - target, self.opts.distribution,
                                       power_scale=self.opts.erk_power_scale)
                # Distribution counts can fall below a layer's current count after earlier changes;
                # never prune while growing, and put the whole increase where the distribution allows.
                counts = _at_least(counts, masks.layer_active(), total)
            grow_to(masks, counts, {n: g.abs() for n, g in grads.items()}, optimizer=optimizer,
                    regrown_state=self.opts.regrown_state, dense_grads=dense)
            grown = masks.active() - n_before
        elif action == "prune":
            prune_once(masks, 1.0 - target, "global" if glob else "distribution", self.opts.distribution,
                       self.opts.erk_power_scale)
            pruned = n_before - masks.active()
        elif action == "regrow":
            fraction = self.schedule.fraction(step)
            changes, _ = prune_and_regrow(masks, fraction, ranking=self.ranking, dense_grads=dense,
                                          optimizer=optimizer, regrown_state=self.opts.regrown_state)
            pruned, grown = sum(c.pruned for c in changes), sum(c.grown for c in changes)
        self.emit({"kind": "adapt", "balance_ratio_mean": mean_ratio, "action": action,
                   "d_density_before": before, "d_density_after": masks.density(),
                   "variant": self.opts.adapt_variant, "ranking": self.opts.adapt_ranking})
        return self.event("D", pruned=pruned, grown=grown, prune_fraction=fraction,
                          extra={"adapt": action, "ranking": self.opts.adapt_ranking})

    def end_of_step(self, step, optimizers, generator):
        events = super().end_of_step(step, optimizers, generator)  # G's prune-and-regrow
        if self.is_adapt_step(step):
            if not self.ratios:
                # A decision without a measurement would keep D's density silently: refuse it.
                raise UserError(f"ADAPT's D-density decision at iteration {step} has no balance ratio since the last "
                                "one: measure it in the loop and feed it with sparse.observe_balance(ratio) (see "
                                "sparsegan.methods.adapt.balance_ratio), at least once per adapt_interval")
            mean = sum(self.ratios) / len(self.ratios)
            self.ratios = []
            events = [e for e in events if e.net != "D"] + [self.adapt_d(mean, optimizers["D"], step)]
        self._dense_grads.pop("D", None)
        return events

    def state_dict(self):
        out = super().state_dict()
        out["adapt"] = {"ratios": list(self.ratios)}
        return out

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.ratios = [float(r) for r in state["adapt"]["ratios"]]


def _at_least(counts: dict[str, int], active: dict[str, int], total: int) -> dict[str, int]:
    """Per-layer counts >= the current ones that sum to ``total`` (filling from ``counts``' excess)."""
    out = {n: max(counts[n], active[n]) for n in counts}
    excess = sum(out.values()) - total
    for n in sorted(out, key=lambda n: out[n] - active[n], reverse=True):
        if excess <= 0:
            break
        cut = min(excess, out[n] - active[n])
        out[n] -= cut
        excess -= cut
    return out
