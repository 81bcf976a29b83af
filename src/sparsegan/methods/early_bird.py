"""Early-bird tickets (You et al. 2020; for GANs, Kalibhat et al. 2021).

Train dense; every ``--eb-interval`` G steps compute the magnitude masks at the targets on
detached copies of the weights (a check never changes the live weights: until the ticket is
drawn the run is exactly dense training), and keep the newest ``--eb-window`` masks. At every
check from the ``--eb-window``-th on, compare the newest mask with each of the window's older
ones, per pruned net; when the largest of these distances, over the pruned nets and the older
masks, is below ``--eb-threshold``, draw the ticket: prune the current (dense-trained) weights to
the newest masks and go on training them sparse with fixed masks. If no ticket emerges within
``--eb-max-steps`` (default: half the run), the ticket is drawn at the end of the budget from
that step's masks, and the record says it was not detected.

Distance (``sparsegan.sparsity.mask_distance``): per net, the Hamming distance between two masks
divided by the most two masks of that density can differ in (2 min(k, n - k) of a net's n
prunable weights, k active), so it lies in [0, 1] at every sparsity. A threshold of 0.1 means: at
most 10 % of the kept weights (of the pruned ones if the density is above 0.5) changed between
the newest mask and any mask of the window. A net whose target sparsity is 0 is never pruned and
takes no part in the criterion (a dense D would otherwise dilute G's distance).

Records (metrics.jsonl). Each check, kind=early_bird_check:
    "check"         1-based index of this check
    "distances"     {net: [distance from the newest mask to each older mask of the window,
                    oldest first]}, pruned nets only
    "max_distance"  the largest of them over nets and masks (None at the first check); the
                    ticket is drawn when it is below the threshold and the window is full
    "window_full"   whether the window held ``--eb-window`` masks (the newest included)
    "threshold"
The draw, kind=early_bird: the keys of its check's record, "detected" (False: drawn at the end of
the budget) and the ticket's "density" per net; its "step" is the draw step.

Differences from You et al.: magnitude masks of all prunable weights instead of BN-scale channel
masks (the Generative Tickets variant), ranked per ``--ranking``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sparsegan.errors import UserError
from sparsegan.methods.base import (
    METHODS,
    BlockOptions,
    Method,
    RankingOptions,
    RegrowthStateOptions,
    SparsityOptions,
)
from sparsegan.methods.transfer import TransferOptions
from sparsegan.options import Options, option
from sparsegan.sparsity import MaskSet, mask_distance, prune_once


@dataclass
class EarlyBirdOptions(Options):
    title: ClassVar[str] = "early-bird ticket search"
    eb_interval: int = option(100, "early_bird: G steps between mask checks")
    eb_window: int = option(5, "early_bird: masks compared at each check from the window-th on: the newest and the "
                            "previous window-1 (at least 2)")
    eb_threshold: float = option(0.1, "early_bird: draw the ticket when the largest distance between the newest "
                                 "mask and the window's older ones, per pruned net, is below this; distance = "
                                 "differing positions / the most two masks of that density can differ in "
                                 "(2 min(k, n-k)), in [0, 1]: 0.1 = at most 10%% of the kept weights changed")
    eb_max_steps: int | None = option(None, "early_bird: search budget in G steps (default: half the run)")

    def validate(self) -> None:
        self.require_positive("eb_interval", "eb_max_steps")
        if self.eb_window < 2:
            raise UserError(f"--eb-window must be at least 2 (the newest mask and an older one), got {self.eb_window}")
        if not 0.0 <= self.eb_threshold <= 1.0:
            raise UserError(f"--eb-threshold must be in [0, 1] (mask distances are normalised to it), "
                            f"got {self.eb_threshold}")


@METHODS.register("early_bird")
class EarlyBird(Method):
    name = "early_bird"
    # Its own schedule (the checks), not Delta T's.
    options = (SparsityOptions, BlockOptions, TransferOptions, RankingOptions, RegrowthStateOptions, EarlyBirdOptions)
    enforce_masks = False  # dense until the ticket is drawn

    def __init__(self, targets, steps, options=None):
        super().__init__(targets, steps, options)
        if not self.pruned_nets:
            raise UserError("--method early_bird needs --sparsity-g or --sparsity-d above 0: "
                            "with both at 0 there is no ticket to search for")
        # The older masks of the window (at most eb_window - 1), oldest first, keyed "<net>.<name>".
        self.history: list[dict[str, torch.Tensor]] = []
        self.checks = 0
        self.drawn_at: int | None = None

    @property
    def pruned_nets(self) -> list[str]:
        return [net for net in self.nets if self.target_sparsity(net) > 0]

    @property
    def budget(self) -> int:
        budget = self.opts.eb_max_steps if self.opts.eb_max_steps is not None else self.steps // 2
        return max(1, min(budget, self.steps - 1))

    @classmethod
    def distribution_unused(cls, values):
        # the layer distribution shapes its pruning only under --ranking distribution
        ranking = values.get("ranking")
        return None if ranking == "distribution" else f" --ranking {ranking} (it applies with --ranking distribution)"

    def make_schedule(self):
        return None  # its own checks every --eb-interval, not Delta T's

    def steps_spanned(self):
        if self.opts.eb_max_steps is not None and self.opts.eb_max_steps < self.steps:
            return None  # the search budget is --eb-max-steps, within the shorter run too
        return "the ticket search budget (--eb-max-steps, default half of --steps) depends on --steps"

    def initial_masks(self, net, params):
        return MaskSet.dense(params, **self.layout(net))

    def _candidate(self) -> dict[str, torch.Tensor]:
        """Magnitude masks at the targets for the current weights, keyed "<net>.<name>", pruned
        nets only. The ranking runs on detached copies: ``prune_once`` (shared with PF, so both
        rank alike) zeroes the weights it prunes, and the live weights must stay dense."""
        out = {}
        for net in self.pruned_nets:
            live = self.masks[net]
            probe = MaskSet.dense({n: p.detach().clone() for n, p in live.params.items()}, **live.layout())
            prune_once(probe, self.target_sparsity(net), self.opts.ranking, self.opts.distribution,
                       self.opts.erk_power_scale)
            out.update({f"{net}.{n}": t for n, t in probe.masks.items()})
        return out

    def distances(self, newest: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        """Per pruned net, the distance from ``newest`` to each older mask of the window."""
        out = {}
        for net in self.pruned_nets:
            keys = [k for k in newest if k.startswith(f"{net}.")]
            out[net] = [mask_distance({k: newest[k] for k in keys}, {k: old[k] for k in keys})
                        for old in self.history]
        return out

    def end_of_step(self, step, optimizers, generator):
        if self.drawn_at is not None or step % self.opts.eb_interval != 0 and step < self.budget:
            return []
        newest = self._candidate()
        self.checks += 1
        distances = self.distances(newest)
        flat = [d for ds in distances.values() for d in ds]
        max_distance = max(flat) if flat else None
        window_full = len(self.history) == self.opts.eb_window - 1
        # Keep the window's older masks for the next check: the newest and the eb_window - 2 before it.
        self.history = (self.history + [newest])[-(self.opts.eb_window - 1):]
        record = {"check": self.checks, "distances": distances, "max_distance": max_distance,
                  "window_full": window_full, "threshold": self.opts.eb_threshold}
        self.emit({"kind": "early_bird_check", **record})
        detected = window_full and max_distance < self.opts.eb_threshold
        if not detected and step < self.budget:
            return []
        # Draw the ticket: prune the current weights to the newest masks and train them sparse
        # from here on (You et al.: the ticket keeps the weights trained so far).
        for net in self.pruned_nets:
            m = self.masks[net]
            for n in m.params:
                m.set_mask(n, newest[f"{net}.{n}"])
            m.restart_history()
            m.apply_()
        self.enforce_masks = True
        self.drawn_at = step
        self.history = []  # no further checks
        self.emit({"kind": "early_bird", "detected": detected, **record,
                   "density": {net: self.masks[net].density() for net in self.nets}})
        return [self.event(net, pruned=self.masks[net].numel() - self.masks[net].active()) for net in self.nets]

    def phases(self) -> list[dict[str, Any]]:
        # The dense search phase is part of this run: its first drawn_at steps ran dense.
        steps = self.drawn_at if self.drawn_at is not None else self.steps
        return [{"phase": "dense-search", "within_run": True, "steps": steps, "density": {"G": 1.0, "D": 1.0}}]

    def state_dict(self):
        out = super().state_dict()
        out["early_bird"] = {"history": self.history, "checks": self.checks,
                             "drawn_at": -1 if self.drawn_at is None else self.drawn_at}
        return out

    def load_state_dict(self, state):
        super().load_state_dict(state)
        eb = state["early_bird"]
        self.history = [dict(h) for h in eb["history"]][-(self.opts.eb_window - 1):]
        self.checks = int(eb.get("checks", len(self.history)))
        self.drawn_at = None if eb["drawn_at"] < 0 else int(eb["drawn_at"])
