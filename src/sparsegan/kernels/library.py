"""Loading ``_simd_csr.c``'s shared library through ctypes, once.

The extension is optional: it is not built without a C compiler or off x86-64, and it is not used
on a CPU without AVX2 and FMA. Callers fall back to their other paths when :func:`library` returns
None. torch is imported first: the library needs libgomp.so.1, and with PyTorch's already loaded
the loader hands it that one, so its OpenMP threads are PyTorch's own (see _simd_csr.c).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
from pathlib import Path

import torch  # noqa: F401  (loaded before the library: see above)

_P, _I32, _I64, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_float

# name -> argument types of every function the Python side calls (all return void)
_SIGNATURES = {
    "sg_csr_mm": [_P] * 4 + [_I32, _F] + [_P] * 2 + [_I64] * 3,
    "sg_csr_mm_parallel": [_P] * 4 + [_I32, _F] + [_P] * 2 + [_I64, _P, _I32, _I32],
    "sg_csr_mm_acc": [_P] * 5 + [_I64] * 3,
    "sg_csr_chain": [_P, _I32] + [_P] * 3 + [_I64] * 2 + [_I32],
    "sg_group_mm": [_P] * 4 + [_I32, _F] + [_P] * 2 + [_I64] * 2 + [_I32, _P, _I32, _I32],
    "sg_group_mm_acc": [_P] * 5 + [_I64] * 2 + [_I32],
    "sg_sddmm_parallel": [_P] * 5 + [_I64, _P, _I32, _I32],
    "sg_gather": [_P, _P, _I64, _P, _I32],
    "sg_scatter_zero": [_P, _P, _I64, _P, _I64],
    "sg_lerp_active": [_P, _P, _P, _I64, _F, _I32],
    "sg_adam_active": [_P] * 5 + [_I64] + [_F] * 5 + [_I32, _I32, ctypes.c_double, ctypes.c_double, _I32],
    "sg_sgd_active": [_P] * 4 + [_I64] + [_F] * 4 + [_I32] * 4,
    "sg_transpose": [_P, _I64, _I64, _P],
    "sg_conv_gather": [_P] * 6 + [_I64] + [_P] * 3 + [_I32],
    "sg_conv_scatter": [_P] * 6 + [_I64] + [_P] * 3 + [_I32],
    "sg_conv_weight_grad": [_P] * 8 + [_P, _I32, _I32],
    "sg_conv_direct": [_P] * 6 + [_I32, _F, _I64] + [_P] * 4 + [_I32],
    "sg_conv_direct_scratch": [_P, _I32],
    "sg_conv_direct_wgrad": [_P] * 4 + [_I64] + [_P] * 5 + [_I32],
}
_RESTYPES = {"sg_conv_direct_scratch": _I64}  # the others return void


class Geometry(ctypes.Structure):
    """sg_geometry in _conv.c: a convolution's batch, input (big) and output (small) sizes, stride,
    padding and dilation."""

    _fields_ = [(n, ctypes.c_int64) for n in ("batch", "in_h", "in_w", "out_h", "out_w")] + \
        [(n, ctypes.c_int32) for n in ("stride_h", "stride_w", "pad_h", "pad_w", "dil_h", "dil_w")]


class DirectGeometry(ctypes.Structure):
    """sg_direct_geometry in _conv_direct.c: a Conv2d's batch, input channels, input and output
    sizes, kernel size, stride and padding (dilation 1)."""

    _fields_ = [(n, ctypes.c_int64) for n in ("batch", "channels", "in_h", "in_w", "out_h", "out_w")] + \
        [(n, ctypes.c_int32) for n in ("k_h", "k_w", "stride_h", "stride_w", "pad_h", "pad_w")]


@functools.cache
def library() -> ctypes.CDLL | None:
    """The kernels' library with its functions typed, or None where it was not built or the CPU
    lacks AVX2 / FMA."""
    try:
        from sparsegan.kernels import _simd_csr
    except ImportError:
        return None
    lib = ctypes.CDLL(_simd_csr.__file__)
    if not lib.sg_cpu_ok():
        return None
    for name, argtypes in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = _RESTYPES.get(name), argtypes
    return lib


@functools.cache
def build_id() -> str:
    """The built library's identity (the first 12 hex digits of its file's SHA-256; "none" where it was
    not built): rebuilt kernels time differently, so remembered timings name the build they measured."""
    try:
        from sparsegan.kernels import _simd_csr
    except ImportError:
        return "none"
    return hashlib.sha256(Path(_simd_csr.__file__).read_bytes()).hexdigest()[:12]
