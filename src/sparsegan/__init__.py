"""sparsegan: train sparse GANs, VAEs and AEs from scratch.

STU-GAN dynamic sparse training and the baselines of the sparse-GAN papers through one
model-agnostic sparsity engine (:mod:`sparsegan.sparsity`), its public API for any training loop
(:class:`sparsegan.SparseTraining`, :mod:`sparsegan.engine`) and the built-in loop that uses it.
"""

__version__ = "0.1.0"

__all__ = ["SparseEMA", "SparseTraining", "__version__"]


def __getattr__(name: str):
    # Imported on first use: `import sparsegan` (the CLI's start) stays light.
    if name == "SparseTraining":
        from sparsegan.engine import SparseTraining

        return SparseTraining
    if name == "SparseEMA":
        from sparsegan.sparsity import SparseEMA

        return SparseEMA
    raise AttributeError(f"module 'sparsegan' has no attribute {name!r}")
