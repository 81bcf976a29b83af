"""A CSR x dense product for float32 with a fused epilogue, compiled by numba:
``Y[r0:r1] = act(A[r0:r1] @ X + bias[r0:r1, None])``.

``X`` is row-major (K x cols), so every active weight ``A[i, k]`` is an axpy of the contiguous row
``X[k]`` into the output row ``Y[i]``. A plain axpy loop (torch's and scipy's CSR kernels) loads
and stores ``Y[i]`` once per active weight: with 64 columns that is as many memory operations as
multiply-adds, and the kernel runs at a fifth of the core's multiply-add rate. Here four active
weights share one pass, ``Y[i] += a0 X[k0] + a1 X[k1] + a2 X[k2] + a3 X[k3]``: the output row
moves a quarter as often, and the four loads of ``X`` feed four multiply-adds per output value
(two or eight at a time did no better; register accumulators over column tiles stay scalar under
LLVM). X is indexed in 2-D, not
through row views (no reference counting per active weight).

The epilogue (bias, then ReLU / LeakyReLU / tanh) runs on each output row while it is still in
L1, instead of as separate passes over the whole output. tanh is a rational approximation that
vectorises (PyTorch's CPU tanh costs as much as the sparse product of a generator's last layer at
95 % sparsity).

The function releases the GIL (``nogil``) so row blocks can run on a thread pool. numba compiles it
on the first call (a few seconds) and caches the machine code on disk. Without numba installed,
:func:`available` is False and the runtime does not offer this kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from torch import nn

try:
    import numba
except ImportError:  # an optional speed-up: the other kernels still work
    numba = None

# Activation codes of the fused epilogue.
ACT_NONE, ACT_RELU, ACT_LEAKY_RELU, ACT_TANH = 0, 1, 2, 3

# tanh(v) = v P(v^2) / Q(v^2) on [-c, c], saturating beyond c: the coefficients are defined once, in
# tanh_rational.h, which the C kernel includes and this module reads (tests/inference checks the
# error: at most 2.6e-7 against float64 tanh over [-10, 10]).
def _read_tanh() -> tuple[np.float32, tuple, tuple]:
    text = (Path(__file__).parents[1] / "kernels" / "tanh_rational.h").read_text()
    clamp = float(re.search(r"#define SG_TANH_CLAMP (\S+)", text).group(1))
    lists = [re.search(rf"#define SG_TANH_{k} \{{([^}}]*)\}}", text).group(1) for k in ("P", "Q")]
    p, q = (tuple(np.float32(float(c)) for c in body.split(",")) for body in lists)
    return np.float32(clamp), p, q


_TANH_CLAMP, _TANH_P, _TANH_Q = _read_tanh()


def available() -> bool:
    return numba is not None


def activation_code(module: nn.Module) -> tuple[int, float] | None:
    """(code, negative slope) of an activation module the epilogue can run, else None."""
    if isinstance(module, nn.ReLU):
        return ACT_RELU, 0.0
    if isinstance(module, nn.LeakyReLU):
        return ACT_LEAKY_RELU, float(module.negative_slope)
    if isinstance(module, nn.Tanh):
        return ACT_TANH, 0.0
    return None


def _tanh(v):
    v = min(max(v, -_TANH_CLAMP), _TANH_CLAMP)
    v2 = v * v
    p0, p1, p2, p3, p4, p5, p6 = _TANH_P
    q0, q1, q2, q3 = _TANH_Q
    p = ((((((p0 * v2 + p1) * v2 + p2) * v2 + p3) * v2 + p4) * v2 + p5) * v2 + p6)
    q = (((q0 * v2 + q1) * v2 + q2) * v2 + q3)
    return v * p / q


def _epilogue(y, b, act, slope):
    cols = y.shape[0]
    zero, s = np.float32(0.0), np.float32(slope)
    if act == ACT_RELU:
        for c in range(cols):
            y[c] = max(y[c] + b, zero)
    elif act == ACT_LEAKY_RELU:
        for c in range(cols):
            v = y[c] + b
            y[c] = v if v > zero else v * s
    elif act == ACT_TANH:
        for c in range(cols):
            y[c] = _tanh(y[c] + b)
    elif b != 0:
        for c in range(cols):
            y[c] += b


def _csr_mm(indptr, indices, data, bias, act, slope, X, Y, r0, r1):
    cols = X.shape[1]
    for i in range(r0, r1):
        p, end = indptr[i], indptr[i + 1]
        if end - p >= 4:  # the first pass writes the row: no zero fill
            a0, a1, a2, a3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            k0, k1, k2, k3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
            for c in range(cols):
                Y[i, c] = a0 * X[k0, c] + a1 * X[k1, c] + a2 * X[k2, c] + a3 * X[k3, c]
            p += 4
        else:
            Y[i, :] = 0.0
        last4 = end - (end - p) % 4
        while p < last4:
            a0, a1, a2, a3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            k0, k1, k2, k3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
            for c in range(cols):
                Y[i, c] += a0 * X[k0, c] + a1 * X[k1, c] + a2 * X[k2, c] + a3 * X[k3, c]
            p += 4
        while p < end:
            a, k = data[p], indices[p]
            for c in range(cols):
                Y[i, c] += a * X[k, c]
            p += 1
        _epilogue(Y[i], bias[i], act, slope)


if numba is not None:
    # "contract" lets LLVM fuse multiply and add (FMA); no reassociation is needed to vectorise
    # over the columns. error_model="numpy": no ZeroDivisionError check in tanh's division, which
    # otherwise keeps the loop scalar (8x slower).
    _jit = dict(nogil=True, cache=True, boundscheck=False, fastmath={"contract"}, error_model="numpy")
    _tanh = numba.njit(inline="always", **_jit)(_tanh)
    _epilogue = numba.njit(**_jit)(_epilogue)
    csr_mm = numba.njit(**_jit)(_csr_mm)
else:
    def csr_mm(indptr, indices, data, bias, act, slope, X, Y, r0, r1):
        raise RuntimeError("the numba CSR kernel needs numba (pip install numba)")
