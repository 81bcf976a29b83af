"""Paired comparisons of runs for a study's verdicts: confidence intervals, Holm's correction.

Runs of two methods with the same seed share their initial weights, masks (where both have
them) and data order, so the per-seed difference removes most of the seed-to-seed variance; a
comparison is made on those differences: their mean, a t-based 95 % confidence interval and a
two-sided one-sample t-test p-value. A family of such tests (one per cell) is corrected with
Holm's step-down procedure, which controls the family-wise error rate without assuming
independence.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from scipy import stats


@dataclass(frozen=True)
class Paired:
    """Per-seed differences a - b over the seeds both sides have."""

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    confidence: float = 0.95

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.diffs) if self.diffs else math.nan

    @property
    def sd(self) -> float:
        return statistics.stdev(self.diffs) if self.n > 1 else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        """The t-interval of the mean difference (nan with fewer than 2 seeds)."""
        if self.n < 2:
            return (math.nan, math.nan)
        half = stats.t.ppf(0.5 + self.confidence / 2, self.n - 1) * self.sd / math.sqrt(self.n)
        return (self.mean - half, self.mean + half)

    @property
    def p(self) -> float:
        """Two-sided p-value of 'mean difference = 0' (nan with fewer than 2 seeds)."""
        if self.n < 2:
            return math.nan
        if self.sd == 0.0:
            return 0.0 if self.mean != 0.0 else 1.0
        t = self.mean / (self.sd / math.sqrt(self.n))
        return float(2 * stats.t.sf(abs(t), self.n - 1))


def paired(a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95) -> Paired:
    """a - b per seed, over the seeds present in both (seed -> value)."""
    seeds = tuple(sorted(set(a) & set(b)))
    return Paired(seeds, tuple(a[s] - b[s] for s in seeds), confidence)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (nan stays nan and takes no part)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(order)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def direction(p_adjusted: float, ci: tuple[float, float], alpha: float = 0.05) -> int:
    """+1: the difference is positive (significant after correction, interval above 0);
    -1: negative likewise; 0: neither."""
    if math.isnan(p_adjusted) or p_adjusted >= alpha:
        return 0
    if ci[0] > 0:
        return 1
    if ci[1] < 0:
        return -1
    return 0
