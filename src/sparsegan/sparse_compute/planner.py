"""Where the sparse path wins: a measured plan, per layer and input shape, kept.

Whether a layer trains faster on its active weights depends on its shape, its density, the
batch, the layout copies around it and the threads, more than any formula here would know: the
planner times one forward + backward of the layer on the input it is given, dense and on each of
its sparse kernels (:func:`functions.kernels`: a stride-1 Conv2d has two), medians of a few
repetitions, outside autograd's graph and the gradients the optimizer reads, and keeps the fastest
(a sparse kernel only by the margin below). A decision is kept per key (layer kind and options, weight
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
#: Layers with a direct kernel are timed at any density: it reads the input in place, and a 1x1 skip
#: convolution 60-70 % dense under ERK, or a dense first layer of one input channel, can run faster on it
#: than on oneDNN's dense one (:mod:`sparsegan.kernels` _conv_direct.c).
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


def measure(module: nn.Module, x: Tensor, pattern: Pattern, reps: int = 5,
            kernels: tuple[str, ...] | None = None) -> dict[str, float]:
    """Milliseconds of one forward of ``module`` on ``x``, with the backward this call will have
    (the gradients of whichever of the weight and the input require one), per path: "dense" and
    each of ``kernels`` (default: all the module's sparse kernels). torch.autograd.grad leaves every
    ``.grad`` untouched."""
    probe = x.detach().requires_grad_(x.requires_grad)
    wants = [probe if t is x else t for t in _needs_backward(module, x)]

    def run(forward) -> Callable[[], None]:
        def once() -> None:
            y = forward()
            if wants:
                torch.autograd.grad(y, wants, torch.ones_like(y))
        return once

    times = {"dense": _median_ms(run(lambda: type(module).forward(module, probe)), reps)}
    for kernel in kernels or functions.kernels(module):
        times[kernel] = _median_ms(run(lambda: functions.forward(module, probe, pattern, kernel=kernel)), reps)
    return times


def choose(times: dict[str, float]) -> str:
    """The path to take: the fastest sparse kernel where it beats dense by the margin, else "dense"."""
    kernel = min((k for k in times if k != "dense"), key=times.__getitem__)
    return kernel if times[kernel] < MARGIN * times["dense"] else "dense"


class Planner:
    """The kept decisions (key -> "dense" or a sparse kernel's name) and their measurements (key ->
    path -> ms). A state saved before a layer had several sparse kernels kept True / False for
    "sparse" / "dense", and (dense ms, sparse ms): it loads as those, and the planner goes on
    planning as then (``legacy``)."""

    def __init__(self, reps: int = 5, cache: PlanCache | None = None):
        self.reps = reps
        self.cache = cache
        self.decisions: dict[str, str] = {}
        self.timings: dict[str, dict[str, float]] = {}
        # a run resumed from a state saved before the direct kernels plans as it did then (one sparse
        # kernel per layer), so that it takes the paths, hence the float rounding, it was trained with
        self.legacy = False

    def choice(self, module: nn.Module, x: Tensor, pattern: Pattern) -> str:
        kernels = ("sparse",) if self.legacy else functions.kernels(module)
        if pattern.density > MAX_DENSITY and "direct" not in kernels:
            return "dense"
        key = plan_key(module, x, pattern)
        if key not in self.decisions:
            kept = self._cached(key, kernels)
            if kept is None:
                kept = measure(module, x, pattern, self.reps, kernels)
                if self.cache is not None:
                    self.cache.put(self._cache_key(key, kernels), " ".join(f"{k}={v!r}" for k, v in kept.items()))
            self.timings[key] = kept
            self.decisions[key] = choose(kept)
        return self.decisions[key]

    def _cache_key(self, key: str, kernels: tuple[str, ...]) -> str:
        # a layer with one sparse kernel keeps the key it had before there were two, so entries
        # measured then still apply; one with more names them, so that old entries (which never
        # timed the others) are measured again
        parts = {"training_plan": key} if kernels == ("sparse",) else {"training_plan": key, "kernels": kernels}
        return self.cache.key(**parts)

    def _cached(self, key: str, kernels: tuple[str, ...]) -> dict[str, float] | None:
        """The times another process measured for ``key`` on this machine."""
        if self.cache is None:
            return None
        entry = self.cache.get(self._cache_key(key, kernels))
        try:
            times = _parse_times(entry)
        except (AttributeError, ValueError):
            return None  # none, or not ours: measure
        return times if set(times) == {"dense", *kernels} else None

    def state_dict(self) -> dict:
        return {"decisions": dict(self.decisions), "timings": {k: dict(v) for k, v in self.timings.items()},
                "kernels": 1 if self.legacy else 2}

    def load_state_dict(self, state: dict) -> None:
        self.legacy = state.get("kernels", 1) < 2  # saved before the direct kernels: plan as then
        legacy = {True: "sparse", False: "dense"}
        self.decisions = {str(k): legacy[v] if isinstance(v, bool) else str(v)
                          for k, v in state.get("decisions", {}).items()}
        self.timings = {str(k): {str(p): float(t) for p, t in v.items()} if isinstance(v, dict)
                        else {"dense": float(v[0]), "sparse": float(v[1])}
                        for k, v in state.get("timings", {}).items()}


def _parse_times(entry: str) -> dict[str, float]:
    """A cache entry: "dense=1.2 sparse=0.8 ...", or "1.2 0.8" (dense, sparse) as written before."""
    parts = entry.split()
    if all("=" not in p for p in parts):
        dense, sparse = (float(v) for v in parts)
        return {"dense": dense, "sparse": sparse}
    return {name: float(v) for name, v in (p.split("=", 1) for p in parts)}
