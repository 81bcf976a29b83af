"""sparsegan: train sparse GANs, VAEs and AEs from scratch.

STU-GAN dynamic sparse training and the baselines of the sparse-GAN papers through one
model-agnostic sparsity engine (:mod:`sparsegan.sparsity`) and one training loop.
"""

__version__ = "0.1.0"
