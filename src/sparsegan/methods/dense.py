"""Dense training: the baseline. The sparsity flags are accepted and ignored."""

from __future__ import annotations

from sparsegan.methods.base import METHODS, Method, ScheduleOptions, SparsityOptions
from sparsegan.sparsity.blocks import Blocks


@METHODS.register("dense")
class Dense(Method):
    name = "dense"
    # The sparsity flags are taken (and recorded as ignored): dense is the s = 0 point of every sweep.
    options = (SparsityOptions, ScheduleOptions)
    enforce_masks = False

    @classmethod
    def distribution_unused(cls, values):
        return ""  # dense: no masks to draw

    def target_sparsity(self, net: str) -> float:
        return 0.0

    @property
    def blocks(self) -> Blocks:
        return Blocks()  # dense masks: no granularity
