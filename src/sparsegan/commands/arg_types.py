"""Argument types that several verbs share: each turns a bad value into argparse's one-line error."""

from __future__ import annotations

import argparse

# the sparse inference runtime's kernel modes (sparsegan.inference.runtime.MODES), listed here so that --help
# needs no torch import
MODES = ("auto", "module", "torch-csr", "scipy-csr", "numba-csr", "simd-csr", "simd-block", "scipy-phase", "simd-phase",
         "simd-block-phase", "direct", "dense")
TIMESTEPS = 1000  # the diffusion models' T (sparsegan.models.ddpm.TIMESTEPS; here without importing torch)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def sample_steps(text: str) -> int:
    """A diffusion model's DDIM steps (its NFE): 1..T."""
    v = positive_int(text)
    if v > TIMESTEPS:
        raise argparse.ArgumentTypeError(f"must be in 1..{TIMESTEPS} (DDIM steps of T = {TIMESTEPS}), got {v}")
    return v
