"""Where the sparse path wins: a measured plan, per layer and input shape, kept.

Whether a layer trains faster on its active weights depends on its shape, its density, the
batch, the layout copies around it (convolutions' unfold / fold) and the threads, more than any
formula here would know: the planner times one forward + backward of the layer both ways on the
input it is given (medians of a few repetitions, outside autograd's graph and the gradients the
optimizer reads) and keeps the faster. A decision is kept per key (layer kind and options, weight
shape, input shape, density to 1 %, threads) and travels in the engine's state, so that a resumed
run takes the same paths, hence the same float rounding. Decisions are also remembered across
processes, per machine, in the plan cache (``<cache>/training-plans.json``, see
:mod:`sparsegan.kernels.plans`; ``SPARSEGAN_PLAN_CACHE=off`` turns it off): the same command run
twice on one machine takes the same paths, so it gives the same numbers bitwise, which timing
each run afresh on a busy machine would not.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
from torch import Tensor, nn

from sparsegan.kernels.plans import PlanCache
from sparsegan.sparse_compute import functions
from sparsegan.sparse_compute.pattern import Pattern

#: Above this density the sparse path is not tried: its index traffic costs more than the skipped work.
MAX_DENSITY = 0.5
#: The sparse path is taken when it measured at most this fraction of the dense path's time: the
#: planner times a layer alone, and inside a step its layout changes and colder caches cost more
#: (a small DCGAN with every layer that measured faster on the sparse path ran 2-7 % slower than dense).
MARGIN = 0.8


def _needs_backward(module: nn.Module, x: Tensor) -> list[Tensor]:
    """The tensors this call's backward will differentiate (none under no_grad: sampling, evaluation)."""
    if not torch.is_grad_enabled():
        return []
    return [t for t in (module.weight, x) if t.requires_grad]


def plan_key(module: nn.Module, x: Tensor, pattern: Pattern) -> str:
    """The decision's key: what the relative speed depends on, and whether a backward follows."""
    opts = ""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        opts = f"k{module.kernel_size}s{module.stride}p{module.padding}d{module.dilation}"
    shape = "x".join(str(n) for n in module.weight.shape)
    inp = "x".join(str(n) for n in x.shape)
    grads = "".join("w" if t is module.weight else "x" for t in _needs_backward(module, x)) or "-"
    return (f"{type(module).__name__}{opts}|w{shape}|in{inp}|d{pattern.density:.2f}|t{torch.get_num_threads()}"
            f"|grad{grads}")


def _median_ms(fn: Callable[[], None], reps: int) -> float:
    fn()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def measure(module: nn.Module, x: Tensor, pattern: Pattern, reps: int = 5) -> tuple[float, float]:
    """(dense ms, sparse ms) of one forward of ``module`` on ``x``, with the backward this call
    will have (the gradients of whichever of the weight and the input require one).
    torch.autograd.grad leaves every ``.grad`` untouched."""
    probe = x.detach().requires_grad_(x.requires_grad)
    wants = [probe if t is x else t for t in _needs_backward(module, x)]

    def run(forward) -> Callable[[], None]:
        def once() -> None:
            y = forward()
            if wants:
                torch.autograd.grad(y, wants, torch.ones_like(y))
        return once

    dense = _median_ms(run(lambda: type(module).forward(module, probe)), reps)
    sparse = _median_ms(run(lambda: functions.forward(module, probe, pattern)), reps)
    return dense, sparse


class Planner:
    """The kept decisions (key -> sparse?) and their measurements (key -> (dense ms, sparse ms))."""

    def __init__(self, reps: int = 5, cache: PlanCache | None = None):
        self.reps = reps
        self.cache = cache
        self.decisions: dict[str, bool] = {}
        self.timings: dict[str, tuple[float, float]] = {}

    def sparse(self, module: nn.Module, x: Tensor, pattern: Pattern) -> bool:
        if pattern.density > MAX_DENSITY:
            return False
        key = plan_key(module, x, pattern)
        if key not in self.decisions:
            kept = self._cached(key)
            if kept is None:
                kept = measure(module, x, pattern, self.reps)
                if self.cache is not None:
                    self.cache.put(self.cache.key(training_plan=key), f"{kept[0]!r} {kept[1]!r}")
            self.timings[key] = kept
            self.decisions[key] = kept[1] < MARGIN * kept[0]
        return self.decisions[key]

    def _cached(self, key: str) -> tuple[float, float] | None:
        """(dense ms, sparse ms) another process measured for ``key`` on this machine."""
        if self.cache is None:
            return None
        entry = self.cache.get(self.cache.key(training_plan=key))
        try:
            dense, sparse = (float(v) for v in entry.split())
        except (AttributeError, ValueError):
            return None  # none, or not ours: measure
        return dense, sparse

    def state_dict(self) -> dict:
        return {"decisions": dict(self.decisions), "timings": {k: list(v) for k, v in self.timings.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decisions = {str(k): bool(v) for k, v in state.get("decisions", {}).items()}
        self.timings = {str(k): (float(v[0]), float(v[1])) for k, v in state.get("timings", {}).items()}
