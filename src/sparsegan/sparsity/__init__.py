"""The sparsity engine: model-agnostic, no GAN knowledge.

Four separate axes (as in jaxpruner): *distribution* (how much per layer), *schedule* (when and
how much changes), *criterion* (which weights), *top-k* (how masks are formed), plus the state
that ties them to a module (:class:`MaskSet`), optimizer-state surgery and the sparse EMA.
"""

from sparsegan.sparsity.criteria import GROW_CRITERIA, PRUNE_CRITERIA, criterion_state
from sparsegan.sparsity.distributions import DISTRIBUTIONS, allocate_active_counts, er, erk, uniform
from sparsegan.sparsity.ema import SparseEMA
from sparsegan.sparsity.masks import SCOPES, MaskSet, output_axes, prunable_parameters, target_counts
from sparsegan.sparsity.optim import REGROWN_STATES, reset_optimizer_state, start_regrown_state, start_state
from sparsegan.sparsity.saliency import grasp_scores, hessian_gradient, snip_scores
from sparsegan.sparsity.schedules import UpdateSchedule, cubic_sparsity
from sparsegan.sparsity.stats import mask_distance
from sparsegan.sparsity.topk import count_true, global_topk_masks, topk_indices, topk_mask
from sparsegan.sparsity.updaters import RANKINGS, LayerChange, grow_to, magnitude_prune_to, prune_and_regrow, prune_once

__all__ = [
    "DISTRIBUTIONS", "GROW_CRITERIA", "PRUNE_CRITERIA", "RANKINGS", "SCOPES",
    "LayerChange", "MaskSet", "SparseEMA", "UpdateSchedule",
    "allocate_active_counts", "count_true", "criterion_state", "cubic_sparsity", "er", "erk", "global_topk_masks",
    "grasp_scores", "grow_to", "hessian_gradient", "magnitude_prune_to", "mask_distance", "output_axes",
    "prunable_parameters",
    "prune_and_regrow", "prune_once", "reset_optimizer_state", "snip_scores", "start_regrown_state", "start_state",
    "REGROWN_STATES",
    "target_counts", "topk_indices", "topk_mask", "uniform",
]
