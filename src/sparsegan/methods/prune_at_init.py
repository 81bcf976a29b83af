"""Pruning at initialisation from the GAN losses, then static training: SNIP and GraSP.

SNIP (Lee et al. 2019): keep the top-k of |w * dL/dw|. GraSP (Wang et al. 2020): keep the
weights whose removal would most reduce gradient flow, i.e. drop the largest -w * (H g) and keep
the top-k of w * (H g). Scores come from ``--probe-batches`` batches of each net's own training
loss (G: the generator loss through D; D: the discriminator loss; autoencoders: the ELBO), and
the top-k is global within each net, as the Generative Tickets comparison does.
Differences from the original papers: no GraSP logit temperature (GAN losses have no softmax);
GraSP's g and Hg come from the same batches (see :func:`sparsegan.sparsity.saliency.hessian_gradient`).
"""

from __future__ import annotations

from typing import Callable

from sparsegan.methods.base import METHODS, Method
from sparsegan.sparsity import MaskSet, global_topk_masks, grasp_scores, snip_scores


class _PruneAtInit(Method):
    score_fn: Callable = staticmethod(snip_scores)

    def initial_masks(self, net, params):
        s = self.target_sparsity(net)
        if s == 0.0:
            return MaskSet.dense(params)
        scores = self.score_fn(params, lambda: self.ctx.loss_probe(net), self.cfg.probe_batches)
        k = round((1.0 - s) * sum(p.numel() for p in params.values()))
        return MaskSet(params, global_topk_masks(scores, k))

    def setup(self, ctx) -> None:
        super().setup(ctx)
        for net in self.nets:
            ctx.nets[net].zero_grad(set_to_none=True)


@METHODS.register("snip")
class SNIP(_PruneAtInit):
    name = "snip"
    score_fn = staticmethod(snip_scores)


@METHODS.register("grasp")
class GraSP(_PruneAtInit):
    name = "grasp"
    score_fn = staticmethod(grasp_scores)
