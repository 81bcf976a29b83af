"""Dense training: the baseline. The sparsity flags are accepted and ignored."""

from __future__ import annotations

from sparsegan.methods.base import METHODS, Method


@METHODS.register("dense")
class Dense(Method):
    name = "dense"
    enforce_masks = False

    def target_sparsity(self, net: str) -> float:
        return 0.0
