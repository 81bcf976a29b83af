"""Sparse inference: the generator with its zeros skipped.

A compact export of the trained sparse generator (:mod:`.export`), a runtime that runs its
Linear / Conv / ConvTranspose layers as CSR products (:mod:`.runtime`; one module per layer kind,
:mod:`.linear`, :mod:`.conv`, :mod:`.conv_transpose`, sharing :mod:`.layer`; with the kernels of
:mod:`.kernels`: torch's and scipy's CSR, a numba kernel with the ``inference`` extra, a C kernel
with AVX2 built at install where a compiler is found), and dense-vs-sparse benchmarks
(:mod:`.bench`). Imports :mod:`sparsegan.models` and :mod:`sparsegan.run_folder`; training never
imports it.
"""
