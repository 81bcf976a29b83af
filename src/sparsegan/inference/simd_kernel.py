"""The AVX2 CSR x dense kernel of ``_simd_csr.c``, called through ctypes.

Same contract as :func:`sparsegan.inference.csr_kernel.csr_mm` (``Y[r0:r1] = act(A[r0:r1] @ X +
bias)``, float32, C order), with the output row's 64-column tiles held in eight AVX2 registers
across all of the row's active weights: about 2x the numba kernel's multiply-add rate at 64
columns on the development machine (benchmarks/efficiency/results/efficiency.md).

The C file is an optional extension: it is not built without a C compiler or off x86-64, and it is
not used on a CPU without AVX2 and FMA. :func:`available` says whether it can run here.
"""

from __future__ import annotations

import ctypes
from typing import Callable

import numpy as np


def _load():
    try:
        from sparsegan.inference import _simd_csr
    except ImportError:  # not built here: the runtime's other kernels remain
        return None
    lib = ctypes.CDLL(_simd_csr.__file__)
    if not lib.sg_cpu_ok():
        return None
    fn = lib.sg_csr_mm
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int, ctypes.c_float] + [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 3
    return fn


_csr_mm = _load()


def available() -> bool:
    return _csr_mm is not None


def _pointer(a: np.ndarray, dtype) -> int:
    if a.dtype != dtype or not a.flags["C_CONTIGUOUS"]:
        raise ValueError(f"expected a C-contiguous {np.dtype(dtype).name} array, got {a.dtype}"
                         f"{'' if a.flags['C_CONTIGUOUS'] else ' (not C-contiguous)'}")
    return a.ctypes.data


def bind(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bias: np.ndarray, act: int, slope: float,
         k: int) -> Callable[[np.ndarray, np.ndarray, int, int], None]:
    """``(X, Y, r0, r1) -> None`` computing ``Y[r0:r1] = act(A[r0:r1] @ X + bias[r0:r1, None])`` for a
    fixed CSR matrix A with ``k`` columns and a fixed epilogue. Everything about A is checked here
    once, X and Y on every call: a wrong pointer would be memory corruption, not an exception.
    The caller keeps the arrays alive (the runtime's SparseMatrix and Epilogue own them)."""
    if _csr_mm is None:
        raise RuntimeError("the AVX2 kernel is not available here (not built, or no AVX2/FMA)")
    rows = len(indptr) - 1
    if len(bias) != rows or indptr[0] != 0 or indptr[-1] != len(indices) or len(data) != len(indices):
        raise ValueError("inconsistent CSR arrays")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= k):
        raise ValueError("a column index is out of range")
    fixed = (_pointer(indptr, np.int32), _pointer(indices, np.int32), _pointer(data, np.float32),
             _pointer(bias, np.float32), int(act), float(slope))

    def run(X: np.ndarray, Y: np.ndarray, r0: int, r1: int) -> None:
        if X.shape[0] != k or Y.shape[0] != rows or X.shape[1] != Y.shape[1] or not 0 <= r0 <= r1 <= rows:
            raise ValueError(f"shapes do not match: A {rows} x {k}, X {X.shape}, Y {Y.shape}, rows {r0}:{r1}")
        _csr_mm(*fixed, _pointer(X, np.float32), _pointer(Y, np.float32), X.shape[1], r0, r1)

    return run


def csr_mm(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, bias: np.ndarray, act: int, slope: float,
           X: np.ndarray, Y: np.ndarray, r0: int, r1: int) -> None:
    """One call of the kernel, with every check (the same signature as csr_kernel.csr_mm)."""
    bind(indptr, indices, data, bias, act, slope, X.shape[0])(X, Y, r0, r1)
