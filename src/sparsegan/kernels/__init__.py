"""The optional C kernels (``_simd_csr.c``, AVX2 + OpenMP) shared by the inference runtime and by
sparse training: CSR x dense products and the sampled dense-dense product of a weight gradient.
:func:`library` loads them, or says they are not there."""

from sparsegan.kernels.library import library

__all__ = ["library"]
