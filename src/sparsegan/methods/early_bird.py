"""Early-bird tickets (You et al. 2020; for GANs, Kalibhat et al. 2021).

Train dense; every ``--eb-interval`` G steps compute the magnitude masks at the targets and keep
the last ``--eb-window``; when the largest normalised Hamming distance between the newest mask
and the others falls below ``--eb-threshold``, draw the ticket (prune to those masks) and go on
training it sparse with fixed masks. If no ticket emerges within ``--eb-max-steps`` (default: half
the run), the ticket is drawn at the end of the budget, and the record says it was not detected.
Differences from You et al.: magnitude masks of all prunable weights instead of BN-scale channel
masks (the Generative Tickets variant), ranked per ``--ranking``.
"""

from __future__ import annotations

from typing import Any

import torch

from sparsegan.methods.base import METHODS, NETS, Method
from sparsegan.methods.pf import prune_once
from sparsegan.sparsity import MaskSet, mask_distance


@METHODS.register("early_bird")
class EarlyBird(Method):
    name = "early_bird"
    enforce_masks = False  # dense until the ticket is drawn

    def __init__(self, cfg):
        super().__init__(cfg)
        self.history: list[dict[str, torch.Tensor]] = []
        self.drawn_at: int | None = None

    @property
    def budget(self) -> int:
        budget = self.cfg.eb_max_steps if self.cfg.eb_max_steps is not None else self.cfg.steps // 2
        return max(1, min(budget, self.cfg.steps - 1))

    def initial_masks(self, net, params):
        return MaskSet.dense(params)

    def _candidate(self) -> dict[str, torch.Tensor]:
        """Magnitude masks at the targets for the current weights, keyed "G.<name>" / "D.<name>"."""
        out = {}
        for net in NETS:
            s = self.target_sparsity(net)
            m = self.masks[net]
            probe = MaskSet.dense(m.params)
            if s > 0:
                prune_once(probe, s, self.cfg.ranking, self.cfg.distribution, self.cfg.erk_power_scale)
            out.update({f"{net}.{n}": t.clone() for n, t in probe.masks.items()})
        return out

    def end_of_step(self, step, optimizers, generator):
        if self.drawn_at is not None or step % self.cfg.eb_interval != 0 and step < self.budget:
            return []
        newest = self._candidate()
        distances = [mask_distance(newest, old) for old in self.history]
        self.history = (self.history + [newest])[-self.cfg.eb_window:]
        self.emit({"kind": "early_bird_check", "distances": distances,
                   "max_distance": max(distances) if distances else None})
        detected = len(distances) == self.cfg.eb_window - 1 and max(distances) < self.cfg.eb_threshold
        if not detected and step < self.budget:
            return []
        # Draw the ticket: prune to the newest masks and train it sparse from here on.
        for net in NETS:
            m = self.masks[net]
            for n in m.params:
                m.set_mask(n, newest[f"{net}.{n}"])
            m.ever_active = {n: t.clone() for n, t in m.masks.items()}
            m.apply_()
        self.enforce_masks = True
        self.drawn_at = step
        self.emit({"kind": "early_bird", "detected": detected, "distances": distances,
                   "threshold": self.cfg.eb_threshold,
                   "density": {net: self.masks[net].density() for net in NETS}})
        return [self.event(net, pruned=self.masks[net].numel() - self.masks[net].active()) for net in NETS]

    def phases(self) -> list[dict[str, Any]]:
        # The dense search phase is part of this run: its first drawn_at steps ran dense.
        steps = self.drawn_at if self.drawn_at is not None else self.cfg.steps
        return [{"phase": "dense-search", "within_run": True, "steps": steps, "density": {"G": 1.0, "D": 1.0}}]

    def state_dict(self):
        out = super().state_dict()
        out["early_bird"] = {"history": self.history, "drawn_at": -1 if self.drawn_at is None else self.drawn_at}
        return out

    def load_state_dict(self, state):
        super().load_state_dict(state)
        eb = state["early_bird"]
        self.history = [dict(h) for h in eb["history"]]
        self.drawn_at = None if eb["drawn_at"] < 0 else int(eb["drawn_at"])
