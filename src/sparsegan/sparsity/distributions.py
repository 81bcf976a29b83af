"""Sparsity distributions: how much of each layer to keep.

Each function maps layer shapes (PyTorch layout ``(out, in, *kernel)``) and a target sparsity
(fraction of zeros over all given layers) to a per-layer sparsity. The totals match the target
up to rounding; :func:`allocate_active_counts` turns them into exact integer counts.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

Shapes = Mapping[str, Sequence[int]]


def _check(shapes: Shapes, sparsity: float) -> dict[str, int]:
    if not isinstance(sparsity, (int, float)) or not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    if not shapes:
        raise ValueError("shapes is empty: nothing to sparsify")
    numels = {}
    for name, shape in shapes.items():
        if len(shape) < 1 or any(int(d) <= 0 for d in shape):
            raise ValueError(f"layer {name!r} has an invalid shape {tuple(shape)}")
        numels[name] = math.prod(int(d) for d in shape)
    return numels


def uniform(shapes: Shapes, sparsity: float, *, power_scale: float = 1.0) -> dict[str, float]:
    """Every layer gets the same sparsity (``power_scale`` is accepted for a uniform signature)."""
    _check(shapes, sparsity)
    return {name: float(sparsity) for name in shapes}


def _raw_scale_erk(shape: Sequence[int]) -> float:
    return sum(shape) / math.prod(shape)


def _raw_scale_er(shape: Sequence[int]) -> float:
    # Erdos-Renyi (SET): only fan-out and fan-in count, kernel dims dropped.
    n_out, n_in = shape[0], (shape[1] if len(shape) > 1 else 1)
    return (n_out + n_in) / (n_out * n_in)


def _solve(
    shapes: Shapes, sparsity: float, power_scale: float, raw: Callable[[Sequence[int]], float]
) -> dict[str, float]:
    """RigL's allocation: density_l = eps * raw_l ** power_scale, eps solved so the active total
    equals the target; a layer whose density would exceed 1 is made dense and eps re-solved."""
    numels = _check(shapes, sparsity)
    if sparsity == 0.0:
        return {name: 0.0 for name in shapes}
    density = 1.0 - float(sparsity)
    total = sum(numels.values())
    scores = {name: raw([int(d) for d in shape]) ** power_scale for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * total - sum(numels[n] for n in dense)
        divisor = sum(scores[n] * numels[n] for n in shapes if n not in dense)
        if divisor <= 0:  # every layer dense
            break
        eps = budget / divisor
        over = [n for n in shapes if n not in dense and eps * scores[n] > 1.0]
        if not over:
            break
        # Promote only the layer with the largest score, as RigL does, then solve again.
        dense.add(max(over, key=lambda n: scores[n]))
    return {
        name: 0.0 if name in dense else max(0.0, 1.0 - eps * scores[name]) for name in shapes
    }


def erk(shapes: Shapes, sparsity: float, *, power_scale: float = 1.0) -> dict[str, float]:
    """Erdos-Renyi-Kernel (RigL): density proportional to sum(shape) / prod(shape)."""
    return _solve(shapes, sparsity, power_scale, _raw_scale_erk)


def er(shapes: Shapes, sparsity: float, *, power_scale: float = 1.0) -> dict[str, float]:
    """Erdos-Renyi (SET): density proportional to (fan_in + fan_out) / (fan_in * fan_out)."""
    return _solve(shapes, sparsity, power_scale, _raw_scale_er)


DISTRIBUTIONS: dict[str, Callable[..., dict[str, float]]] = {
    "uniform": uniform,
    "er": er,
    "erk": erk,
}


def allocate_active_counts(
    numels: Mapping[str, int], sparsities: Mapping[str, float], total_active: int | None = None
) -> dict[str, int]:
    """Exact per-layer active counts whose sum is ``total_active``.

    Largest-remainder rounding of ``numel * (1 - sparsity)``, so the net's total density is the
    target to within one weight rather than to within one weight per layer.
    """
    want = {n: numels[n] * (1.0 - sparsities[n]) for n in numels}
    if total_active is None:
        total_active = round(sum(want.values()))
    counts = {n: min(numels[n], math.floor(w + 1e-9)) for n, w in want.items()}
    remaining = total_active - sum(counts.values())
    order = sorted(numels, key=lambda n: (-(want[n] - counts[n]), n))
    i = 0
    while remaining > 0 and any(counts[n] < numels[n] for n in numels):
        n = order[i % len(order)]
        if counts[n] < numels[n]:
            counts[n] += 1
            remaining -= 1
        i += 1
    return counts
