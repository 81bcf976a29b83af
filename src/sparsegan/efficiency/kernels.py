"""Sparse x dense matrix products on the CPU, and a per-shape choice between them by measurement.

Every kernel computes ``A @ X`` for a fixed weight matrix ``A`` (M x K) and a row-major dense
``X`` (K x cols), returning a row-major torch tensor (M x cols). Row-major ``X`` with the weight
on the left is the layout in which CSR wins: each active weight ``A[i, k]`` becomes one
contiguous axpy ``Y[i, :] += A[i, k] * X[k, :]`` over all columns (batch x pixels).

* ``dense``: ``torch.mm`` on the masked dense matrix (MKL / oneDNN, multi-threaded);
* ``torch-csr``: ``torch.sparse_csr`` matmul (MKL sparse BLAS where torch was built with it);
  fast for a few columns (batch 1-64 Linear layers), slow for thousands of columns here;
* ``scipy-csr``: scipy's compiled CSR x dense loop; the best for many columns (transposed convs:
  batch x H x W columns). scipy releases the GIL inside it, so with ``torch.get_num_threads()``
  > 1 the rows are split into that many blocks of equal non-zero count, run on a thread pool.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

KERNELS = ("dense", "torch-csr", "scipy-csr")

try:  # scipy's CSR x dense kernel that adds into its output, Y += A @ X (releases the GIL)
    from scipy.sparse._sparsetools import csr_matvecs
except ImportError:  # a scipy that moved it: single-threaded ``A @ X`` only, no phase algorithm
    csr_matvecs = None


class Workers:
    """A thread pool for scipy kernels, sized by ``torch.get_num_threads()`` when first used."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self.size = 0

    def threads(self) -> int:
        return max(1, torch.get_num_threads()) if csr_matvecs is not None else 1

    def map(self, fn: Callable, items: list) -> list:
        n = self.threads()
        if n == 1 or len(items) == 1:
            return [fn(i) for i in items]
        if self._pool is None or self.size != n:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool, self.size = ThreadPoolExecutor(n), n
        return list(self._pool.map(fn, items))


class SparseMatrix:
    """One weight matrix in every form a kernel needs, built once at load time."""

    def __init__(self, dense: Tensor, workers: Workers | None = None):
        self.workers = workers or Workers()
        self._blocks: dict[int, list[tuple[int, int, sp.csr_matrix]]] = {}
        dense = dense.detach().to(device="cpu", dtype=torch.float32).contiguous()
        self.shape = tuple(dense.shape)
        self.dense = dense
        self.nnz = int((dense != 0).sum())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            self.torch_csr = dense.to_sparse_csr()
        self.scipy_csr = sp.csr_matrix(dense.numpy())
        self.scipy_csr.sort_indices()

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.dense.numel())

    def kernel(self, name: str) -> Callable[[Tensor], Tensor]:
        if name == "dense":
            return lambda x: torch.mm(self.dense, x)
        if name == "torch-csr":
            return lambda x: torch.mm(self.torch_csr, x)
        if name == "scipy-csr":
            if self.workers.threads() > 1:
                return self._parallel_scipy
            a = self.scipy_csr
            return lambda x: torch.from_numpy(np.ascontiguousarray(a @ x.numpy()))
        raise ValueError(f"unknown kernel {name!r}; valid: {', '.join(KERNELS)}")


    def row_blocks(self, n: int) -> list[tuple[int, int, sp.csr_matrix]]:
        """``n`` row ranges with about equal non-zero counts (balanced work per thread)."""
        if n not in self._blocks:
            a = self.scipy_csr
            cuts = np.searchsorted(a.indptr, np.linspace(0, a.nnz, n + 1)).clip(0, a.shape[0])
            cuts[0], cuts[-1] = 0, a.shape[0]
            self._blocks[n] = [(int(r0), int(r1), a[r0:r1]) for r0, r1 in zip(cuts[:-1], cuts[1:]) if r1 > r0]
        return self._blocks[n]

    def _parallel_scipy(self, x: Tensor) -> Tensor:
        xn = x.numpy()
        cols = xn.shape[1]
        y = np.zeros((self.shape[0], cols), dtype=np.float32)

        def block(b):
            r0, r1, a = b
            csr_matvecs(r1 - r0, a.shape[1], cols, a.indptr, a.indices, a.data, xn.ravel(), y[r0:r1].ravel())

        self.workers.map(block, self.row_blocks(self.workers.threads()))
        return torch.from_numpy(y)


def time_call(fn: Callable[[], object], repeats: int = 3) -> float:
    """Best of ``repeats`` wall-clock seconds after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def fastest(candidates: dict[str, Callable[[], object]], repeats: int = 3) -> tuple[str, dict[str, float]]:
    """Name of the fastest candidate and every candidate's best time (seconds).

    Candidates are timed round-robin so a burst of load on a shared machine hits all of them."""
    times = {name: float("inf") for name in candidates}
    for fn in candidates.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - t)
    return min(times, key=times.get), times
