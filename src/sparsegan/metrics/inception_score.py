"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

It needs the classifier's 1008-way logits, which the shipped TF-Inception file (pool3 features
only) lacks, so IS is computed only with a full Inception supplied by the user as TorchScript:
NVIDIA's ``inception-2015-12-05.pt`` (StyleGAN2-ADA; called on [0, 255] images with
``no_output_bias=True`` and returning probabilities, as their IS protocol does), or any
module mapping preprocessed [N, 3, 299, 299] input in [-1, 1) to logits.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sparsegan.errors import UserError
from sparsegan.metrics.inception import file_sha256, preprocess

NEEDS_WEIGHTS = ("the Inception Score needs a full Inception with logits, which the shipped TF-Inception "
                 "(pool3 features only) lacks: pass --is-weights PATH to a TorchScript Inception with logits "
                 "(e.g. NVIDIA's inception-2015-12-05.pt)")


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of IS over ``splits`` consecutive chunks of class probabilities [N, K]."""
    p = np.asarray(probs, np.float64)
    scores = []
    for chunk in np.array_split(p, min(splits, p.shape[0])):
        py = chunk.mean(axis=0, keepdims=True)
        kl = (chunk * (np.log(chunk + 1e-12) - np.log(py + 1e-12))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


class InceptionProbabilities:
    """Callable: uint8 images -> class probabilities [N, K] from a user-given TorchScript Inception."""

    name = "inception-probabilities"

    def __init__(self, path: str | os.PathLike | None, device: str | torch.device = "cpu"):
        if not path:
            raise UserError(NEEDS_WEIGHTS)
        p = Path(path).expanduser()
        if not p.is_file():
            raise UserError(f"--is-weights: {p} is not a file")
        self.device = torch.device(device)
        try:
            self.model = torch.jit.load(str(p), map_location=self.device).eval()
        except RuntimeError as e:
            raise UserError(f"--is-weights: cannot load {p} as TorchScript ({str(e).splitlines()[0][:120]})") from None
        self.weights_hash = file_sha256(p)
        args = [a.name for a in self.model.forward.schema.arguments]
        self.nvidia = "no_output_bias" in args
        self.dim = 0  # known after the first batch

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = images.to(self.device)
        if self.nvidia:  # resizes and scales itself; returns softmax probabilities
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            out = self.model(x, no_output_bias=True).float()  # uint8 in, as StyleGAN2-ADA calls it
        else:
            out = torch.softmax(self.model(preprocess(x)).float(), dim=1)
        if out.ndim != 2:
            raise UserError(f"--is-weights: the model returned shape {tuple(out.shape)}, expected [N, classes]")
        self.dim = out.shape[1]
        return out.cpu()
