"""Prune + fine-tune (PF): the post-hoc baseline of STU-GAN Table 1 and GAN Tickets.

Start from a finished dense run (``--from RUN``), prune its final weights once by magnitude to
the targets, G only or G and D (``--prune-nets``), then train again for ``--steps`` with the
masks fixed. The nets not pruned stay dense whatever their ``--sparsity-*`` says (recorded in the
pf record). ``--ranking`` decides how the removed weights are spread over the layers:

    uniform        every layer keeps the same density 1 - s (to one weight): the same fraction is
                   removed from every layer (STU-GAN Table 1's "PF (uniform)"; the default)
    global         one magnitude ranking over all of the net's layers (Table 1's "PF (global)")
    distribution   per-layer counts from ``--distribution`` (ERK by default), ranked per layer

With spectral-normed layers, global ranking compares raw ``weight_orig`` scales that spectral
norm makes arbitrary (REFERENCE §6.8); prefer layer-wise ranking there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sparsegan.errors import UserError
from sparsegan.methods.base import METHODS, BlockOptions, Method, PruneNetsOptions, RankingOptions, net_names
from sparsegan.methods.transfer import read_final
from sparsegan.options import Options, option
from sparsegan.sparsity import MaskSet, prune_once


@dataclass
class PFOptions(Options):
    title: ClassVar[str] = "the dense run pf prunes"
    api: ClassVar[bool] = False  # through the API, pf prunes the weights the nets hold at set-up
    from_run: str | None = option(None, "pf: the finished dense run to prune (its final weights; same dataset, "
                                  "model and widths)", flag="--from")


@METHODS.register("pf")
class PruneFinetune(Method):
    name = "pf"
    options = (*Method.options, BlockOptions, RankingOptions, PruneNetsOptions, PFOptions)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.source_config = None
        if not cfg.from_run:  # the public API: prune the weights the nets hold at set-up
            return
        src = Path(cfg.from_run)
        try:
            self.source_config = json.loads((src / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            raise UserError(f"--from {src}: no readable config.json; is it a sparsegan run?") from None
        # The dataset too: fine-tuning weights trained on another dataset is a transfer, not PF
        # (``--masks-from RUN --masks-with-weights`` does that, and says so in its ticket record).
        for key in ("dataset", "model", "model_width", "width_multiplier", "z_dim"):
            if self.source_config.get(key) != getattr(cfg, key):
                raise UserError(f"--from {src} was trained with {key}={self.source_config.get(key)!r}, "
                                f"this run asks for {getattr(cfg, key)!r}")

    def target_sparsity(self, net: str) -> float:
        return super().target_sparsity(net) if net in net_names(self.cfg.prune_nets, self.nets) else 0.0

    def initial_masks(self, net, params):
        return MaskSet.dense(params, **self.layout(net))

    def setup(self, ctx) -> None:
        if self.cfg.from_run:
            for net in self.nets:
                ctx.nets[net].load_state_dict(read_final(self.cfg.from_run, net))
        super().setup(ctx)
        for net in self.nets:
            s = self.target_sparsity(net)
            if s > 0:
                prune_once(self.masks[net], s, self.cfg.ranking, self.cfg.distribution, self.cfg.erk_power_scale)
        self.emit({"kind": "pf", "source": str(self.cfg.from_run) if self.cfg.from_run else None,
                   "ranking": self.cfg.ranking,
                   "distribution": self.cfg.distribution if self.cfg.ranking == "distribution" else None,
                   "nets": self.cfg.prune_nets,
                   "density": {net: self.masks[net].density() for net in self.nets}})

    def phases(self):
        sc = self.source_config
        if sc is None:  # pruned from weights trained elsewhere: that training is not this run's to count
            return []
        return [{"phase": "dense-pretrain", "source": str(self.cfg.from_run), "steps": sc.get("steps"),
                 "n_dis": sc.get("n_dis"), "batch_size": sc.get("batch_size"), "density": {"G": 1.0, "D": 1.0}}]
