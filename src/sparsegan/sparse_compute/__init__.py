"""Sparse compute for training: Linear, Conv2d and ConvTranspose2d layers run forward and backward
on their active weights only (CPU, the C kernels of :mod:`sparsegan.kernels`)."""
