"""Sparse Linear layers: ``Y (out, N) = A (out, in) @ X (in, N)``, and runs of them in one C call."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from sparsegan.inference import simd_kernel
from sparsegan.inference.kernels import PARALLEL_MIN_MACS_OPENMP, Workers, fastest
from sparsegan.inference.layer import SparseLayer


class SparseLinear(SparseLayer):
    def __init__(self, dense: nn.Linear, mode: str = "auto", workers: Workers | None = None):
        super().__init__(dense, dense.weight, mode, workers)

    def supports(self, x: Tensor) -> bool:
        return x.dim() == 2

    def sparse_forward(self, x: Tensor, name: str) -> Tensor:
        return self.plan(name)(x)

    def plan(self, name: str) -> Callable[[Tensor], Tensor]:
        if name == "module":
            return super().plan(name)
        kernel = self.A.kernel(name, self.epilogue)

        def forward(x: Tensor) -> Tensor:
            X = x.t()  # (in, N): free when x is the transposed view a previous sparse layer returned
            return kernel(X if X.is_contiguous() else X.contiguous()).t()  # (out, N) -> (N, out) view

        return forward


class LinearChain(nn.Module):
    """Consecutive :class:`SparseLinear` layers of an ``nn.Sequential`` (nothing left between them
    once BN is folded and activations fused: an MLP generator's body). Each layer still picks its
    kernel for its own input shape; then every run of two or more consecutive layers that picked
    the AVX2 kernel is bound into one C call (:class:`simd_kernel.Chain`): at batch 1 the Python
    around each layer costs about as much as its product, and the run pays it once. Where some
    layer picked another kernel, all of them in one call is timed against that plan too (auto
    mode), and the faster kept."""

    def __init__(self, layers: list[SparseLinear]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.plans: dict[tuple, Callable[[Tensor], Tensor]] = {}
        self.chosen: str | None = None  # "per-layer" or "one-call", where the two were timed
        self.timings: dict[str, float] = {}

    def forward(self, x: Tensor) -> Tensor:
        key = (x.shape, torch.get_num_threads())
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = self._plan(x)
        return plan(x)

    def _plan(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        x0, shapes = x, []
        for layer in self.layers:  # each layer chooses its kernel on its own input, as alone
            shapes.append(tuple(x.shape))
            x = layer(x)
        per_layer = self._steps([layer.choice.get(shape) == "simd-csr" for layer, shape in zip(self.layers, shapes)],
                                shapes)
        if all(layer.choice.get(shape) == "simd-csr" for layer, shape in zip(self.layers, shapes)) or not (
                self._auto() and x0.device.type == "cpu" and x0.dtype == torch.float32):
            return per_layer
        # A layer that chose another kernel alone (a small, denser first layer at batch 1) may still
        # be faster inside the one C call, which saves the Python around it: time both plans.
        whole = self._steps([True] * len(self.layers), shapes)
        name, self.timings = fastest({"per-layer": lambda: per_layer(x0), "one-call": lambda: whole(x0)}, repeats=5)
        self.chosen = name
        return whole if name == "one-call" else per_layer

    def _auto(self) -> bool:
        return all(layer.mode == "auto" and (layer.allowed is None or "simd-csr" in layer.allowed)
                   for layer in self.layers)

    def _steps(self, in_chain: list[bool], shapes: list[tuple]) -> Callable[[Tensor], Tensor]:
        """The forward with the flagged layers' consecutive runs (two or more) each in one C call."""
        steps: list[Callable[[Tensor], Tensor]] = []
        run: list[SparseLinear] = []

        def flush() -> None:
            if len(run) >= 2:
                cols = shapes[self._index(run[0])][0]
                threads = run[0].workers.threads()
                chain = simd_kernel.Chain([layer.A.simd_bound(layer.epilogue) for layer in run], cols, threads,
                                          [layer.A.nnz * cols >= PARALLEL_MIN_MACS_OPENMP for layer in run])
                steps.append(lambda h: chain(h.t()).t())  # (N, in) -> (N, out), a view as SparseLinear's
            else:
                steps.extend(run)
            run.clear()

        for layer, chained in zip(self.layers, in_chain):
            if chained:
                run.append(layer)
            else:
                flush()
                steps.append(layer)
        flush()

        def forward(h: Tensor) -> Tensor:
            for step in steps:
                h = step(h)
            return h

        return forward

    def _index(self, layer: SparseLinear) -> int:
        return next(i for i, m in enumerate(self.layers) if m is layer)
