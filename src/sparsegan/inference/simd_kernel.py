"""The AVX2 CSR x dense kernel of ``sparsegan/kernels/_simd_csr.c``, called through ctypes.

Same contract as :func:`sparsegan.inference.csr_kernel.csr_mm` (``Y[r0:r1] = act(A[r0:r1] @ X +
bias)``, float32, C order), with the output row's 64-column tiles held in eight AVX2 registers
across all of the row's active weights: about 2x the numba kernel's multiply-add rate at 64
columns on the development machine (benchmarks/efficiency/results/efficiency.md).

The C file is an optional extension: it is not built without a C compiler or off x86-64, and it is
not used on a CPU without AVX2 and FMA. :func:`available` says whether it can run here.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from sparsegan.kernels import library


def _load():
    lib = library()
    if lib is None:  # not built here, or no AVX2: the runtime's other kernels remain
        return None
    return (lib.sg_csr_mm, lib.sg_csr_mm_parallel, lib.sg_csr_mm_acc, lib.sg_csr_chain, lib.sg_group_mm,
            lib.sg_group_mm_acc)


_csr_mm, _csr_mm_parallel, _csr_mm_acc, _csr_chain, _group_mm, _group_mm_acc = _load() or (None,) * 6


def available() -> bool:
    return _csr_mm is not None


def _input(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` as a C-order float32 CPU tensor of ``k`` rows, or a ValueError (the kernels read raw memory)."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 2 or x.shape[0] != k:
        raise ValueError(f"expected a float32 CPU tensor of {k} rows, got {x.dtype} {tuple(x.shape)} on {x.device}")
    return x.contiguous()


def _check_offset_product(rows: int, k: int, x: np.ndarray, offset: int, y: np.ndarray, cols: int) -> None:
    """The accumulating products' bounds: X (k x cols) read from ``x`` at ``offset``, Y (rows x cols)."""
    if x.ndim != 1 or not 0 <= offset or offset + k * cols > x.size or y.size != rows * cols:
        raise ValueError(f"shapes do not match: A {rows} x {k}, {cols} columns, x of {x.size} from {offset}, "
                         f"y of {y.size}")


def _pointer(a: np.ndarray, dtype) -> int:
    if a.dtype != dtype or not a.flags["C_CONTIGUOUS"]:
        raise ValueError(f"expected a C-contiguous {np.dtype(dtype).name} array, got {a.dtype}"
                         f"{'' if a.flags['C_CONTIGUOUS'] else ' (not C-contiguous)'}")
    return a.ctypes.data


class Bound:
    """The kernel bound to one CSR matrix and epilogue (:func:`bind`)."""

    def __init__(self, fixed: tuple, indptr: np.ndarray, k: int):
        self.fixed, self.indptr, self.rows, self.k = fixed, indptr, len(indptr) - 1, k
        self._cuts: dict[int, np.ndarray] = {}
        # ctypes objects made once: converting Python ints on every call costs microseconds, and a
        # batch-1 product takes 5-30 us
        self._fixed_c = (*(ctypes.c_void_p(v) for v in fixed[:4]), ctypes.c_int(fixed[4]), ctypes.c_float(fixed[5]))
        self._rows_c = ctypes.c_int64(self.rows)
        self._zero_c = ctypes.c_int64(0)

    def _check(self, X: np.ndarray, Y: np.ndarray, r0: int, r1: int) -> None:
        if (X.shape[0] != self.k or Y.shape[0] != self.rows or X.shape[1] != Y.shape[1]
                or not 0 <= r0 <= r1 <= self.rows):
            raise ValueError(f"shapes do not match: A {self.rows} x {self.k}, X {X.shape}, Y {Y.shape}, rows {r0}:{r1}")

    def __call__(self, X: np.ndarray, Y: np.ndarray, r0: int, r1: int) -> None:
        """``Y[r0:r1] = act(A[r0:r1] @ X + bias)`` on the calling thread."""
        self._check(X, Y, r0, r1)
        _csr_mm(*self.fixed, _pointer(X, np.float32), _pointer(Y, np.float32), X.shape[1], r0, r1)

    def tensor(self, x: torch.Tensor, threads: int = 1) -> torch.Tensor:
        """``act(A @ x + bias)`` for a float32 CPU tensor ``x`` (k x cols) as a new (rows x cols)
        tensor, on ``threads`` threads: the runtime's path, with no numpy arrays in between."""
        x = _input(x, self.k)
        cols = x.shape[1]
        y = torch.empty(self.rows, cols)
        if threads > 1:
            cuts = self.cuts(4 * threads)
            _csr_mm_parallel(*self._fixed_c, x.data_ptr(), y.data_ptr(), cols, cuts.ctypes.data, len(cuts) - 1,
                             threads)
        else:
            _csr_mm(*self._fixed_c, x.data_ptr(), y.data_ptr(), cols, self._zero_c, self._rows_c)
        return y

    def cuts(self, blocks: int) -> np.ndarray:
        """Row cuts of ``blocks`` blocks of about equal work (:func:`balanced_cuts`), kept."""
        if blocks not in self._cuts:
            self._cuts[blocks] = balanced_cuts(self.indptr, blocks)
        return self._cuts[blocks]


def balanced_cuts(indptr: np.ndarray, blocks: int) -> np.ndarray:
    """Row cuts (int64, 0 .. rows, non-decreasing) of ``blocks`` row blocks of a CSR matrix with
    about equal non-zero counts: balanced work per thread."""
    rows = len(indptr) - 1
    cuts = np.searchsorted(indptr, np.linspace(0, int(indptr[-1]), blocks + 1)).clip(0, rows).astype(np.int64)
    cuts[0], cuts[-1] = 0, rows
    return np.maximum.accumulate(cuts)


def bind(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bias: np.ndarray, act: int, slope: float,
         k: int) -> Bound:
    """The kernel for a fixed CSR matrix A with ``k`` columns and a fixed epilogue: ``bound(X, Y, r0,
    r1)`` computes ``Y[r0:r1] = act(A[r0:r1] @ X + bias[r0:r1, None])`` on numpy arrays,
    ``bound.tensor(x, threads)`` every row of a tensor on OpenMP threads. Everything about A is
    checked here once, the inputs on every call: a wrong pointer would be memory corruption, not an
    exception.
    The caller keeps the arrays alive (the runtime's SparseMatrix and Epilogue own them)."""
    if _csr_mm is None:
        raise RuntimeError("the AVX2 kernel is not available here (not built, or no AVX2/FMA)")
    if len(bias) != len(indptr) - 1:
        raise ValueError("inconsistent CSR arrays")
    _check_csr(indptr, indices, data, k)
    fixed = (_pointer(indptr, np.int32), _pointer(indices, np.int32), _pointer(data, np.float32),
             _pointer(bias, np.float32), int(act), float(slope))
    return Bound(fixed, indptr, k)


class _Layer(ctypes.Structure):  # sg_layer in _simd_csr.c
    _fields_ = [("indptr", ctypes.c_void_p), ("indices", ctypes.c_void_p), ("data", ctypes.c_void_p),
                ("bias", ctypes.c_void_p), ("act", ctypes.c_int), ("slope", ctypes.c_float), ("rows", ctypes.c_int64),
                ("cuts", ctypes.c_void_p), ("blocks", ctypes.c_int), ("parallel", ctypes.c_int)]


class Chain:
    """Bound layers applied one after the other in a single call, ``x -> L_n(... L_1(x))`` (each
    ``act(A @ h + bias)``), for inputs of ``cols`` columns on ``threads`` threads; ``parallel[l]``
    says whether layer l is worth splitting over the threads. Built once per input shape by the
    runtime (at batch 1 the Python around each layer's call costs as much as its product)."""

    def __init__(self, bounds: list[Bound], cols: int, threads: int, parallel: list[bool]):
        if not bounds or len(parallel) != len(bounds):
            raise ValueError("a chain needs one or more layers and a parallel flag for each")
        for a, b in zip(bounds, bounds[1:]):
            if b.k != a.rows:
                raise ValueError(f"layers do not chain: {a.rows} outputs into {b.k} inputs")
        self.bounds, self.cols, self.threads = bounds, cols, max(1, threads)
        self.k, self.rows = bounds[0].k, bounds[-1].rows
        self.max_rows = max(b.rows for b in bounds)
        blocks = 4 * self.threads
        self._cuts = [b.cuts(blocks) for b in bounds]  # kept alive with the structs' pointers
        self.layers = (_Layer * len(bounds))(*(
            _Layer(*b.fixed[:4], b.fixed[4], b.fixed[5], b.rows, c.ctypes.data, len(c) - 1, int(par))
            for b, c, par in zip(bounds, self._cuts, parallel)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu" or tuple(x.shape) != (self.k, self.cols):
            raise ValueError(f"expected a float32 CPU tensor of shape ({self.k}, {self.cols}), got {x.dtype} "
                             f"{tuple(x.shape)} on {x.device}")
        x = x.contiguous()
        out = torch.empty(self.rows, self.cols)
        scratch = torch.empty(2 * self.max_rows * self.cols) if len(self.bounds) > 1 else out
        _csr_chain(self.layers, len(self.bounds), x.data_ptr(), out.data_ptr(), scratch.data_ptr(), self.max_rows,
                   self.cols, self.threads)
        return out


class Accumulate:
    """``Y += A @ X`` for a fixed CSR matrix A (rows x k), X read at an offset into a flat buffer:
    X row c is ``x[offset + c * cols : offset + (c + 1) * cols]``, Y is (rows, cols). The products of
    a transposed convolution's output phases read the taps' shifted inputs this way."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, k: int):
        if _csr_mm_acc is None:
            raise RuntimeError("the AVX2 kernel is not available here (not built, or no AVX2/FMA)")
        _check_csr(indptr, indices, data, k)
        self.arrays = (indptr, indices, data)  # kept alive with the pointers
        self.fixed = (_pointer(indptr, np.int32), _pointer(indices, np.int32), _pointer(data, np.float32))
        self.rows, self.k = len(indptr) - 1, k

    def __call__(self, x: np.ndarray, offset: int, y: np.ndarray, cols: int) -> None:
        _check_offset_product(self.rows, self.k, x, offset, y, cols)
        _csr_mm_acc(*self.fixed, _pointer(x, np.float32) + 4 * offset, _pointer(y, np.float32), cols, 0, self.rows)


def _check_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, k: int) -> None:
    if indptr[0] != 0 or indptr[-1] != len(indices) or len(data) != len(indices) or (np.diff(indptr) < 0).any():
        raise ValueError("inconsistent CSR arrays")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= k):
        raise ValueError("a column index is out of range")


def csr_mm(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bias: np.ndarray, act: int, slope: float,
           X: np.ndarray, Y: np.ndarray, r0: int, r1: int) -> None:
    """One call of the kernel, with every check (the same signature as csr_kernel.csr_mm)."""
    bind(indptr, indices, data, bias, act, slope, X.shape[0])(X, Y, r0, r1)


# --- row groups: the blocked kernel (block masks) ------------------------------------------------
GROUP_SIZES = (8, 4, 2)
#: A matrix runs on the blocked kernel when its row groups store at most this many values per
#: non-zero (1.0 for a mask of R x 1 blocks; unstructured masks at 80-98 % sparsity need ~2).
GROUP_MAX_FILL = 1.1


def row_groups(a: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row groups of ``size`` rows of a dense (rows x k) matrix: ``gptr`` (int32, groups + 1),
    ``gidx`` (int32, the columns any row of the group uses, ascending) and ``gval`` (float32,
    ``size`` values per index, 0 where a row lacks it); the last group is padded with zero rows."""
    rows, k = a.shape
    groups = -(-rows // size)
    padded = np.zeros((groups * size, k), np.float32)
    padded[:rows] = a
    blocks = padded.reshape(groups, size, k)
    used = (blocks != 0).any(axis=1)  # groups x k
    gptr = np.zeros(groups + 1, np.int64)
    gptr[1:] = used.sum(axis=1).cumsum()
    g, c = np.nonzero(used)
    gval = np.ascontiguousarray(blocks[g, :, c], dtype=np.float32).reshape(-1)
    return gptr.astype(np.int32), c.astype(np.int32), gval


def group_size(a: np.ndarray, nnz: int | None = None) -> int | None:
    """The largest of GROUP_SIZES whose row groups store at most GROUP_MAX_FILL values per
    non-zero of ``a`` (its rows come in blocks of that many), or None."""
    nnz = int(np.count_nonzero(a)) if nnz is None else nnz
    if nnz == 0:
        return None
    rows, k = a.shape
    for size in GROUP_SIZES:
        groups = -(-rows // size)
        padded = np.zeros((groups * size, k), bool)
        padded[:rows] = a != 0
        used = padded.reshape(groups, size, k).any(axis=1).sum(axis=1)
        real = np.minimum(size, rows - size * np.arange(groups))  # the last group's rows
        if int((used * real).sum()) <= GROUP_MAX_FILL * nnz:
            return size
    return None


class Grouped:
    """The blocked kernel (``sg_group_mm`` in _simd_csr.c) bound to one matrix in row groups of
    ``size`` and an epilogue: ``tensor(x, threads)`` is ``act(A @ x + bias)``; ``accumulate(x,
    offset, y, cols)`` is ``Y += A @ X`` with X read at an offset, as :class:`Accumulate`."""

    def __init__(self, a: np.ndarray, size: int, bias: np.ndarray | None = None, act: int = 0, slope: float = 0.0):
        if _group_mm is None:
            raise RuntimeError("the AVX2 kernel is not available here (not built, or no AVX2/FMA)")
        if size not in GROUP_SIZES:
            raise ValueError(f"row groups of {size}: the kernel takes {GROUP_SIZES}")
        self.rows, self.k = a.shape
        self.size = size
        self.gptr, self.gidx, self.gval = row_groups(a, size)
        self.bias = np.zeros(self.rows, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
        if len(self.bias) != self.rows:
            raise ValueError(f"bias of {len(self.bias)} for {self.rows} rows")
        self.fixed = (ctypes.c_void_p(self.gptr.ctypes.data), ctypes.c_void_p(self.gidx.ctypes.data),
                      ctypes.c_void_p(self.gval.ctypes.data))
        self._epilogue = (ctypes.c_void_p(self.bias.ctypes.data), ctypes.c_int(act), ctypes.c_float(slope))
        self._cuts: dict[int, np.ndarray] = {}

    @property
    def stored(self) -> int:
        return len(self.gval)

    def cuts(self, blocks: int) -> np.ndarray:
        if blocks not in self._cuts:
            self._cuts[blocks] = balanced_cuts(self.gptr, blocks)
        return self._cuts[blocks]

    def tensor(self, x: torch.Tensor, threads: int = 1) -> torch.Tensor:
        x = _input(x, self.k)
        cols = x.shape[1]
        y = torch.empty(self.rows, cols)
        cuts = self.cuts(4 * threads if threads > 1 else 1)
        _group_mm(*self.fixed, *self._epilogue, x.data_ptr(), y.data_ptr(), cols, self.rows, self.size,
                  cuts.ctypes.data, len(cuts) - 1, threads)
        return y

    def accumulate(self, x: np.ndarray, offset: int, y: np.ndarray, cols: int) -> None:
        _check_offset_product(self.rows, self.k, x, offset, y, cols)
        _group_mm_acc(*self.fixed, _pointer(x, np.float32) + 4 * offset, _pointer(y, np.float32), cols, self.rows,
                      self.size)
