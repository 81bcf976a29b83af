"""Sparse x dense matrix products on the CPU, and a per-shape choice between them by measurement.

Every kernel computes ``A @ X`` for a fixed weight matrix ``A`` (M x K) and a row-major dense
``X`` (K x cols), returning a row-major torch tensor (M x cols). Row-major ``X`` with the weight
on the left is the layout in which CSR wins: each active weight ``A[i, k]`` becomes one
contiguous axpy ``Y[i, :] += A[i, k] * X[k, :]`` over all columns (batch x pixels).

* ``dense``: ``torch.mm`` on the masked dense matrix (MKL / oneDNN, multi-threaded);
* ``torch-csr``: ``torch.sparse_csr`` matmul (MKL sparse BLAS where torch was built with it);
  fast for a few columns (batch 1-64 Linear layers), slow for thousands of columns here;
* ``scipy-csr``: scipy's compiled CSR x dense loop; better than torch's for many columns
  (transposed convs: batch x H x W columns);
* ``numba-csr``: this package's own CSR x dense kernel (:mod:`.csr_kernel`, compiled by numba
  when it is installed): four active weights of a row per pass over the output row, so the row
  is loaded and stored once per four axpys instead of once per axpy. 1.3-1.7x faster than
  torch's and scipy's CSR products at 64 columns, 4-5x at 1,024 (``benchmarks/efficiency/results/efficiency.md``);
* ``simd-csr``: the same product in C with AVX2 intrinsics (:mod:`.simd_kernel`, an optional
  compiled extension), each output row's 64-column tiles held in registers across the row's
  active weights: about 2x the numba kernel at 64 columns;
* ``simd-block``: for matrices whose rows come in blocks (block masks, ``--mask-block Rx1``): R
  rows that share their columns run together in C (``simd_kernel.Grouped``), one load of X per R
  multiply-adds; a candidate only where the matrix is made of such row groups.

scipy's and numba's kernels release the GIL, so with ``torch.get_num_threads()`` > 1 the rows are
split into that many blocks of equal non-zero count, run on a thread pool.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from sparsegan.inference import csr_kernel, simd_kernel

KERNELS = ("dense", "torch-csr", "scipy-csr", "numba-csr", "simd-csr", "simd-block")

try:  # scipy's CSR x dense kernel that adds into its output, Y += A @ X (releases the GIL)
    from scipy.sparse._sparsetools import csr_matvecs
except ImportError:  # a scipy that moved it: single-threaded ``A @ X`` only, no phase algorithm
    csr_matvecs = None


# Products smaller than this (multiply-adds) run on one thread: ~25 us of work at this package's
# kernels' rate, against a Python thread pool's dispatch of tens of us. The AVX2 kernel's OpenMP
# threads (PyTorch's, usually awake) cost a few us: its threshold is lower.
PARALLEL_MIN_MACS = 2**18
PARALLEL_MIN_MACS_OPENMP = 2**15


class Workers:
    """A thread pool for scipy kernels, sized by ``torch.get_num_threads()`` when first used."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self.size = 0

    def threads(self) -> int:
        return max(1, torch.get_num_threads())

    def map(self, fn: Callable, items: list) -> list:
        n = self.threads()
        if n == 1 or len(items) == 1:
            return [fn(i) for i in items]
        if self._pool is None or self.size != n:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool, self.size = ThreadPoolExecutor(n), n
        return list(self._pool.map(fn, items))


class Epilogue:
    """What follows a layer's product, row by row: ``act(Y + bias[:, None])``.

    The numba kernel runs it fused (on each row while it is in cache); every other kernel runs it
    afterwards with PyTorch's own ops, so each kernel computes exactly the layer's function."""

    def __init__(self, bias: Tensor | None = None, activation: nn.Module | None = None, rows: int = 0):
        code = csr_kernel.activation_code(activation) if activation is not None else (csr_kernel.ACT_NONE, 0.0)
        if code is None:
            raise ValueError(f"cannot fuse {type(activation).__name__}: only ReLU, LeakyReLU and Tanh")
        self.bias = None if bias is None else bias.detach().to(torch.float32).contiguous()
        self.activation = activation
        self.code, self.slope = code
        rows = rows if bias is None else len(bias)
        self.bias_np = np.zeros(rows, np.float32) if bias is None else self.bias.numpy()

    def __bool__(self) -> bool:
        return self.bias is not None or self.activation is not None

    def apply(self, y: Tensor) -> Tensor:
        """The epilogue in PyTorch, on a (rows, cols) product."""
        if self.bias is not None:
            y += self.bias[:, None]
        return self.activation(y) if self.activation is not None else y


class SparseMatrix:
    """One weight matrix in every form a kernel needs, built once at load time."""

    def __init__(self, dense: Tensor, workers: Workers | None = None):
        self.workers = workers or Workers()
        self._blocks: dict[int, list[tuple[int, int, sp.csr_matrix]]] = {}
        self._simd_bound: dict[int, tuple] = {}
        self._grouped: dict[int, tuple] = {}
        self._group_size: int | None | bool = False  # not yet known
        dense = dense.detach().to(device="cpu", dtype=torch.float32).contiguous()
        self.shape = tuple(dense.shape)
        self.dense = dense
        self.nnz = int((dense != 0).sum())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            self.torch_csr = dense.to_sparse_csr()
        self.scipy_csr = sp.csr_matrix(dense.numpy())
        self.scipy_csr.sort_indices()
        # int32 indices for the numba kernel (one compiled signature; matrices here are far
        # below 2^31 non-zeros)
        self.indptr32 = self.scipy_csr.indptr.astype(np.int32)
        self.indices32 = self.scipy_csr.indices.astype(np.int32)

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.dense.numel())

    def kernel(self, name: str, epilogue: Epilogue | None = None) -> Callable[[Tensor], Tensor]:
        """``x -> epilogue(A @ x)`` computed by the kernel ``name``."""
        if name == "numba-csr":
            if not csr_kernel.available():
                raise ValueError("kernel 'numba-csr' needs numba, which is not installed (pip install numba)")
            ep = epilogue if epilogue else Epilogue(rows=self.shape[0])
            fixed = (self.indptr32, self.indices32, self.scipy_csr.data, ep.bias_np, ep.code, ep.slope)
            return lambda x: self._rows(x, lambda X, Y, r0, r1: csr_kernel.csr_mm(*fixed, X, Y, r0, r1))
        if name == "simd-block":
            grouped = self.grouped(epilogue)
            return lambda x: grouped.tensor(x, self._threads_for(x.shape[1], PARALLEL_MIN_MACS_OPENMP))
        if name == "simd-csr":
            if not simd_kernel.available():
                raise ValueError("kernel 'simd-csr' is not available here (its C extension was not built, "
                                 "or the CPU lacks AVX2/FMA)")
            bound = self.simd_bound(epilogue)
            return lambda x: bound.tensor(x, self._threads_for(x.shape[1], PARALLEL_MIN_MACS_OPENMP))
        product = self._product(name)
        if not epilogue:
            return product
        return lambda x: epilogue.apply(product(x))

    def _product(self, name: str) -> Callable[[Tensor], Tensor]:
        if name == "dense":
            return lambda x: torch.mm(self.dense, x)
        if name == "torch-csr":
            return lambda x: torch.mm(self.torch_csr, x)
        if name == "scipy-csr":
            if self.workers.threads() > 1 and csr_matvecs is not None:
                return self._parallel_scipy
            a = self.scipy_csr
            return lambda x: torch.from_numpy(np.ascontiguousarray(a @ x.numpy()))
        raise ValueError(f"unknown kernel {name!r}; valid: {', '.join(KERNELS)}")


    def row_blocks(self, n: int) -> list[tuple[int, int, sp.csr_matrix]]:
        """``n`` row ranges with about equal non-zero counts (balanced work per thread)."""
        if n not in self._blocks:
            a, cuts = self.scipy_csr, simd_kernel.balanced_cuts(self.scipy_csr.indptr, n)
            self._blocks[n] = [(int(r0), int(r1), a[r0:r1]) for r0, r1 in zip(cuts[:-1], cuts[1:]) if r1 > r0]
        return self._blocks[n]

    def simd_bound(self, epilogue: Epilogue | None) -> simd_kernel.Bound:
        """The AVX2 kernel bound to this matrix and epilogue; binding checks the whole matrix, so
        it happens once per epilogue, not per call."""
        key = id(epilogue)
        if key not in self._simd_bound:
            ep = epilogue if epilogue else Epilogue(rows=self.shape[0])
            run = simd_kernel.bind(self.indptr32, self.indices32, self.scipy_csr.data, ep.bias_np, ep.code,
                                   ep.slope, self.shape[1])
            self._simd_bound[key] = (epilogue, ep, run)  # holds the epilogue: its id stays unique
        return self._simd_bound[key][2]

    @property
    def group_size(self) -> int | None:
        """Rows per group of the blocked kernel where this matrix's rows come in blocks, else None."""
        if self._group_size is False:
            self._group_size = simd_kernel.group_size(self.dense.numpy(), self.nnz) if simd_kernel.available() else None
        return self._group_size

    def grouped(self, epilogue: Epilogue | None) -> simd_kernel.Grouped:
        """The blocked kernel bound to this matrix and epilogue (built once per epilogue)."""
        if self.group_size is None:
            raise ValueError("kernel 'simd-block' needs a matrix whose rows come in blocks (block masks) and the "
                             "AVX2 extension")
        key = id(epilogue)
        if key not in self._grouped:
            ep = epilogue if epilogue else Epilogue(rows=self.shape[0])
            run = simd_kernel.Grouped(self.dense.numpy(), self.group_size, ep.bias_np, ep.code, ep.slope)
            self._grouped[key] = (epilogue, run)  # holds the epilogue: its id stays unique
        return self._grouped[key][1]

    def _threads_for(self, cols: int, min_macs: int = PARALLEL_MIN_MACS) -> int:
        """Threads for a product with ``cols`` columns: one for small products (see PARALLEL_MIN_MACS)."""
        return 1 if self.nnz * cols < min_macs else self.workers.threads()

    def _rows(self, x: Tensor, run: Callable[[np.ndarray, np.ndarray, int, int], None]) -> Tensor:
        """``run(X, Y, r0, r1)`` (the numba kernel) over all rows, in balanced row blocks on the
        thread pool."""
        # C order: a row-strided view (a transposed conv's block of input rows) made numba compile
        # a generic-stride variant that LLVM does not vectorise (4x slower than copying first);
        # the C kernel needs it anyway
        xn = np.ascontiguousarray(x.numpy())
        y = np.empty((self.shape[0], xn.shape[1]), dtype=np.float32)
        if self._threads_for(xn.shape[1]) == 1:
            run(xn, y, 0, self.shape[0])
        else:
            self.workers.map(lambda b: run(xn, y, b[0], b[1]), self.row_blocks(self.workers.threads()))
        return torch.from_numpy(y)

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
