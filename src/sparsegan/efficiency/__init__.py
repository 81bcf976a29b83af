"""Efficiency accounting: parameters and FLOPs per layer from the masks, and the training FLOPs of
a run against dense training (the measured speed of sparse inference is :mod:`sparsegan.inference`).

Imports only :mod:`sparsegan.sparsity` and :mod:`sparsegan.models`.
"""

from sparsegan.efficiency.accounting import LayerCount, call_multiply_adds, layer_counts, net_totals
from sparsegan.efficiency.training_flops import (
    CONVENTION,
    FlopModel,
    Phase,
    flops_summary,
    iteration_flops,
    phases_of_run,
    planned_densities,
    training_flops,
)

__all__ = [
    "CONVENTION", "FlopModel", "LayerCount", "Phase", "call_multiply_adds", "flops_summary", "iteration_flops",
    "layer_counts", "net_totals", "phases_of_run", "planned_densities", "training_flops",
]
