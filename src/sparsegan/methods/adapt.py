"""ADAPT (Wang et al., "Balanced Training for Sparse GANs", NeurIPS 2023).

G is trained with dynamic sparse training exactly as STU-GAN explores G. D's density adapts:
the loop measures the balance ratio BR every ``--balance-every`` G steps; every
``--adapt-interval`` G steps its mean over the interval decides: BR >= ``--adapt-high`` (G moves
the fakes far: D is too weak) grows D by ``--adapt-step`` of its prunable weights, by dense
gradient; BR <= ``--adapt-low`` (D dominates) prunes D by the same amount, by magnitude. D's
density stays within [adapt_step, 1] ("relaxed") or [adapt_step, 0.5] ("strict").
D starts at 1 - ``--sparsity-d``. Its final density is by design not the requested one; every
change is recorded as a kind=adapt record.
"""

from __future__ import annotations

from sparsegan.errors import UserError
from sparsegan.methods.base import METHODS
from sparsegan.methods.pf import prune_once
from sparsegan.methods.stu import STUGAN
from sparsegan.sparsity import grow_to, target_counts


@METHODS.register("adapt")
class ADAPT(STUGAN):
    name = "adapt"
    supports_autoencoders = False

    def __init__(self, cfg):
        super().__init__(cfg)
        if "D" in cfg.explore:
            raise UserError("--method adapt explores G only (D's density is adapted instead); use --explore G")
        self.ratios: list[float] = []

    @property
    def density_bounds(self) -> tuple[float, float]:
        return self.cfg.adapt_step, (0.5 if self.cfg.adapt_variant == "strict" else 1.0)

    def observe_balance(self, step: int, ratio: float) -> None:
        self.ratios.append(ratio)

    def is_adapt_step(self, step: int) -> bool:
        return 0 < step < self.cfg.steps and step % self.cfg.adapt_interval == 0

    def wants_dense_grad(self, net: str, step: int) -> bool:
        return super().wants_dense_grad(net, step) or (net == "D" and self.is_adapt_step(step))

    def adapt_d(self, mean_ratio: float, optimizer, step: int):
        """Move D's density one step toward balance; returns the topology event, or None."""
        masks = self.masks["D"]
        before = masks.density()
        lo, hi = self.density_bounds
        if mean_ratio >= self.cfg.adapt_high:
            target, action = min(hi, before + self.cfg.adapt_step), "grow"
        elif mean_ratio <= self.cfg.adapt_low:
            target, action = max(lo, before - self.cfg.adapt_step), "prune"
        else:
            target, action = before, "keep"
        if abs(target - before) * masks.numel() < 0.5:
            action = "keep"
        pruned = grown = 0
        n_before = masks.active()
        if action == "grow":
            counts = target_counts(masks.params, 1.0 - target, self.cfg.distribution, power_scale=self.cfg.erk_power_scale)
            active = masks.layer_active()
            # Distribution counts can fall below a layer's current count after earlier changes;
            # never prune while growing, and put the whole increase where the distribution allows.
            counts = _at_least(counts, active, round(target * masks.numel()))
            grads = self._dense_grads.pop("D", None)
            scores = {n: g.abs() for n, g in grads.items()} if grads else {n: p.detach().abs() for n, p in masks.params.items()}
            grow_to(masks, counts, scores, optimizer=optimizer, reset_state=self.cfg.reset_regrown_state,
                    dense_grads=grads)
            grown = masks.active() - n_before
        elif action == "prune":
            prune_once(masks, 1.0 - target, "layer", self.cfg.distribution, self.cfg.erk_power_scale)
            pruned = n_before - masks.active()
        self.emit({"kind": "adapt", "balance_ratio_mean": mean_ratio, "action": action,
                   "d_density_before": before, "d_density_after": masks.density()})
        return self.event("D", pruned=pruned, grown=grown, extra={"adapt": action})

    def end_of_step(self, step, optimizers, generator):
        events = super().end_of_step(step, optimizers, generator)
        if self.is_adapt_step(step) and self.ratios:
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
