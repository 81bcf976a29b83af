"""When topology updates happen and how much they change.

Steps are counted in completed generator updates: step ``t`` means ``t`` G optimizer steps are
done. STU-GAN updates every ``interval`` such steps, never at step 0 and never at the final step
(REFERENCE §6.4: the later reference code explores at step 0 and uses a periodic cosine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class UpdateSchedule:
    """Every ``interval`` completed G steps, until ``end_step`` (default: the whole run).

    The prune fraction decays with a non-periodic cosine from ``initial_fraction`` at step 0 to
    ``final_fraction`` at ``end_step`` (RigL's drop-fraction schedule, STU-GAN p = 0.5).
    """

    interval: int
    total_steps: int
    initial_fraction: float = 0.5
    final_fraction: float = 0.005
    end_step: int | None = None

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"update interval must be positive, got {self.interval}")
        if not 0.0 <= self.final_fraction <= self.initial_fraction <= 1.0:
            raise ValueError("need 0 <= final_fraction <= initial_fraction <= 1")

    @property
    def horizon(self) -> int:
        return self.total_steps if self.end_step is None else min(self.end_step, self.total_steps)

    def is_update_step(self, step: int) -> bool:
        return 0 < step < self.total_steps and step <= self.horizon and step % self.interval == 0

    def fraction(self, step: int) -> float:
        t = min(max(step, 0), self.horizon) / max(self.horizon, 1)
        return self.final_fraction + 0.5 * (self.initial_fraction - self.final_fraction) * (
            1.0 + math.cos(math.pi * t)
        )

    def update_steps(self) -> list[int]:
        return [s for s in range(self.interval, self.total_steps, self.interval) if self.is_update_step(s)]


def cubic_sparsity(step: int, *, start: int, end: int, initial: float, final: float) -> float:
    """Zhu & Gupta's gradual pruning: s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3."""
    if step <= start:
        return initial
    if step >= end:
        return final
    frac = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - frac) ** 3
