"""Sparse x dense matrix products on the CPU, and a per-shape choice between them by measurement.

Every kernel computes ``A @ X`` for a fixed weight matrix ``A`` (M x K) and a row-major dense
``X`` (K x cols), returning a row-major torch tensor (M x cols). Row-major ``X`` with the weight
on the left is the layout in which CSR wins: each active weight ``A[i, k]`` becomes one
contiguous axpy ``Y[i, :] += A[i, k] * X[k, :]`` over all columns (batch x pixels).

* ``dense``: ``torch.mm`` on the masked dense matrix (MKL / oneDNN, multi-threaded);
* ``torch-csr``: ``torch.sparse_csr`` matmul (MKL sparse BLAS where torch was built with it);
  fast for a few columns (batch 1-64 Linear layers), slow for thousands of columns here;
* ``scipy-csr``: scipy's compiled CSR x dense loop, one thread; the best for many columns
  (transposed convs: batch x H x W columns).
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

KERNELS = ("dense", "torch-csr", "scipy-csr")


class SparseMatrix:
    """One weight matrix in every form a kernel needs, built once at load time."""

    def __init__(self, dense: Tensor):
        dense = dense.detach().to(torch.float32).contiguous()
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
            a = self.scipy_csr
            return lambda x: torch.from_numpy(np.ascontiguousarray(a @ x.numpy()))
        raise ValueError(f"unknown kernel {name!r}; valid: {', '.join(KERNELS)}")


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
