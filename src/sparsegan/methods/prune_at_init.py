"""Pruning at initialisation from the GAN losses, then static training: SNIP and GraSP.

SNIP (Lee et al. 2019): keep the top-k of |w * dL/dw|. GraSP (Wang et al. 2020): keep the
weights whose removal would most reduce gradient flow, i.e. drop the largest -w * (H g) and keep
the top-k of w * (H g). Scores come from ``--probe-batches`` batches of each net's own training
loss (G: the generator loss through D; D: the discriminator loss; autoencoders: the ELBO), and
the top-k is global within each net, as the Generative Tickets comparison does; with block masks
(``--mask-block``) a block's score is the sum of its entries' and the top-k runs over blocks.
Differences from the original papers: no GraSP logit temperature (GAN losses have no softmax);
GraSP's g and Hg come from the same batches (see :func:`sparsegan.sparsity.saliency.hessian_gradient`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from sparsegan.methods.base import METHODS, Method
from sparsegan.options import Options, option
from sparsegan.sparsity import MaskSet, global_topk_masks, grasp_scores, magnitude_prune_to, snip_scores


@dataclass
class ProbeOptions(Options):
    """The methods that score weights by the training loss (snip, grasp; stu's grasp criterion)."""

    title: ClassVar[str] = "loss probes"
    probe_batches: int = option(1, "snip / grasp (and stu's grasp criterion): batches of the training loss used "
                                "to score weights")

    def validate(self) -> None:
        self.require_positive("probe_batches")


class _PruneAtInit(Method):
    options = (*Method.options, ProbeOptions)
    #: Gradients of a net's loss per probe batch (efficiency.training_flops.PROBE_GRADIENTS).
    probe_gradients = 1
    score_fn: Callable = staticmethod(snip_scores)

    @classmethod
    def distribution_unused(cls, values):
        return ""  # masks from the scores at init, not a distribution

    def initial_masks(self, net, params):
        s = self.target_sparsity(net)
        if s == 0.0:
            return MaskSet.dense(params, **self.layout(net))
        scores = self.score_fn(params, lambda: self.ctx.loss_probe(net), self.opts.probe_batches)
        k = round((1.0 - s) * sum(p.numel() for p in params.values()))
        if self.blocks.unstructured:
            return MaskSet(params, global_topk_masks(scores, k), **self.layout(net))
        masks = MaskSet.dense(params, **self.layout(net))
        magnitude_prune_to(masks, k, scores=scores)  # the top-k over blocks of summed scores
        return masks

    def setup(self, ctx) -> None:
        super().setup(ctx)
        for net in self.nets:
            ctx.nets[net].zero_grad(set_to_none=True)

    def phases(self):
        """The scoring at init for FLOPs accounting: no training steps, dense nets, the probes of
        each pruned net (they run even when --masks-from then replaces some of the masks)."""
        probes = {net: self.opts.probe_batches * self.probe_gradients
                  for net in self.nets if self.target_sparsity(net) > 0}
        return [{"phase": "probe", "steps": 0, "density": {net: 1.0 for net in self.nets}, "probes": probes}]


@METHODS.register("snip")
class SNIP(_PruneAtInit):
    name = "snip"
    score_fn = staticmethod(snip_scores)


@METHODS.register("grasp")
class GraSP(_PruneAtInit):
    name = "grasp"
    score_fn = staticmethod(grasp_scores)
    probe_gradients = 3  # H g: the gradient with its graph, then differentiated again
