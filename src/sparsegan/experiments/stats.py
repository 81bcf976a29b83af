"""Paired comparisons of runs for a study's verdicts: confidence intervals, Holm's correction.

Runs of two methods with the same seed share their initial weights, masks (where both have
them) and data order, so the per-seed difference removes most of the seed-to-seed variance; a
comparison is made on those differences: their mean, a t-based 95 % confidence interval and a
two-sided one-sample t-test p-value. A family of such tests (one per cell) is corrected with
Holm's step-down procedure, which controls the family-wise error rate without assuming
independence.

Where only one seed pair exists, its difference cannot estimate its own spread: :class:`Single`
judges it against a spread estimated elsewhere (the within-cell sd of same-seed differences
pooled over a study's paired cells, :func:`pooled_sd`), with that estimate's degrees of freedom
in the t quantile, so a single pair's false-positive rate is the nominal one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from scipy import stats


@dataclass(frozen=True)
class Paired:
    """Per-seed differences a - b over the seeds both sides have."""

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    confidence: float = 0.95

    @property
    def judgeable(self) -> bool:
        """At least two seed pairs: the differences estimate their own spread."""
        return self.n >= 2

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


@dataclass(frozen=True)
class Single:
    """One same-seed difference a - b of two single runs, judged against a spread of such differences
    estimated elsewhere: ``sd`` with ``df`` degrees of freedom. Under 'no difference' the difference
    over ``sd`` follows Student's t with ``df`` degrees of freedom, which gives its interval (a
    prediction interval: nothing is averaged) and its two-sided p-value.

    ``relative``: ``sd`` is the spread of log(a) - log(b), for metrics whose run-to-run spread grows
    with their level (FID's does); the test is on the log ratio and the interval is mapped back to
    a - b at b's level, b * (exp(log(a / b) ± t · sd) - 1)."""

    seed: int
    a: float
    b: float
    sd: float
    df: int
    relative: bool = False
    confidence: float = 0.95

    n = 1

    @property
    def judgeable(self) -> bool:
        finite = all(math.isfinite(v) for v in (self.a, self.b, self.sd))
        return self.df >= 1 and finite and (not self.relative or (self.a > 0 and self.b > 0))

    @property
    def mean(self) -> float:
        return self.a - self.b

    @property
    def _stat(self) -> float:
        return math.log(self.a / self.b) if self.relative else self.a - self.b

    @property
    def ci(self) -> tuple[float, float]:
        if not self.judgeable:
            return (math.nan, math.nan)
        half = float(stats.t.ppf(0.5 + self.confidence / 2, self.df)) * self.sd
        lo, hi = self._stat - half, self._stat + half
        if self.relative:
            return (self.b * math.expm1(lo), self.b * math.expm1(hi))
        return (lo, hi)

    @property
    def p(self) -> float:
        if not self.judgeable:
            return math.nan
        if self.sd == 0.0:
            return 0.0 if self._stat != 0.0 else 1.0
        return float(2 * stats.t.sf(abs(self._stat) / self.sd, self.df))


def pooled_sd(groups: Iterable[Sequence[float]]) -> tuple[float, int]:
    """The within-group standard deviation pooled over groups, and its degrees of freedom
    (sum of n - 1; groups of one value add nothing): each group's values are deviations from its
    own mean, so groups with different means (cells of a grid) share one spread. (nan, 0) if no
    group has two values."""
    ss, df = 0.0, 0
    for g in groups:
        if len(g) >= 2:
            m = statistics.fmean(g)
            ss += sum((x - m) ** 2 for x in g)
            df += len(g) - 1
    return (math.sqrt(ss / df), df) if df else (math.nan, 0)


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
