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

from dataclasses import dataclass
from typing import ClassVar

from sparsegan.methods.base import METHODS, Method, PruneNetsOptions, RankingOptions, net_names
from sparsegan.options import Options, option
from sparsegan.sparsity import MaskSet, prune_once


@dataclass
class PFOptions(Options):
    title: ClassVar[str] = "the dense run pf prunes"
    api: ClassVar[bool] = False  # through the API, pf prunes the weights the nets hold at set-up
    # The method reads from_run only as the pf record's "source"; the training layer loads the run.
    from_run: str | None = option(None, "pf: the finished dense run to prune (its final weights; same dataset, "
                                  "model and widths)", flag="--from")


@METHODS.register("pf")
class PruneFinetune(Method):
    name = "pf"
    options = (*Method.options, RankingOptions, PruneNetsOptions, PFOptions)

    @classmethod
    def distribution_unused(cls, values):
        # the layer distribution shapes its pruning only under --ranking distribution
        ranking = values.get("ranking")
        return None if ranking == "distribution" else f" --ranking {ranking} (it applies with --ranking distribution)"

    def target_sparsity(self, net: str) -> float:
        return super().target_sparsity(net) if net in net_names(self.opts.prune_nets, self.nets) else 0.0

    def initial_masks(self, net, params):
        return MaskSet.dense(params, **self.layout(net))

    def setup(self, ctx) -> None:
        # The nets hold the weights to prune: --from RUN's final weights, loaded by the training
        # layer (sparsegan.training.sources), or whatever a user's loop trained.
        super().setup(ctx)
        for net in self.nets:
            s = self.target_sparsity(net)
            if s > 0:
                prune_once(self.masks[net], s, self.opts.ranking, self.opts.distribution, self.opts.erk_power_scale)
        self.emit({"kind": "pf", "source": str(self.opts.from_run) if self.opts.from_run else None,
                   "ranking": self.opts.ranking,
                   "distribution": self.opts.distribution if self.opts.ranking == "distribution" else None,
                   "nets": self.opts.prune_nets,
                   "density": {net: self.masks[net].density() for net in self.nets}})
