"""Efficiency made real: FLOPs / parameter accounting from the masks, a compact sparse export of
the generator, a sparse inference runtime, and dense-vs-sparse benchmarks.

Imports only :mod:`sparsegan.sparsity` and :mod:`sparsegan.models` (plus plain json / safetensors
to read run folders).
"""

from sparsegan.efficiency.accounting import LayerCount, layer_counts, net_totals
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
    "CONVENTION", "FlopModel", "LayerCount", "Phase", "flops_summary", "iteration_flops", "layer_counts",
    "net_totals", "phases_of_run", "planned_densities", "training_flops",
]
