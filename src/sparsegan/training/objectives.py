"""Objectives the loop steps on, besides the GAN losses: autoencoders, diffusion models, and ADAPT's
balance ratio."""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsegan.models.ddpm import q_sample


def autoencoder_loss(
    kind: str, decoder: nn.Module, encoder: nn.Module, x: Tensor, kl_weight: float, generator: torch.Generator
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-image loss of an AE (squared error) or VAE (negative ELBO with a unit-variance Gaussian
    decoder: 0.5 * squared error + KL(q(z|x) || N(0, I))), averaged over the batch.

    The VAE's logged parts, per image in nats: ``recon`` = 0.5 * squared error (the loss term),
    ``kl``, and ``elbo`` = log N(x; decoder(z), I) - KL = -(recon + kl) - (D / 2) log(2 pi), with
    D the values per image (pixels in [-1, 1] x channels): the true ELBO, Gaussian constant
    included, so it compares with other papers' numbers. The loss drops the constant (no gradient)."""
    n = x.shape[0]
    if kind == "ae":
        recon = F.mse_loss(decoder(encoder(x)), x, reduction="sum") / n
        return recon, {"recon": recon.detach()}
    mu, logvar = encoder(x)
    eps = torch.randn(mu.shape, generator=generator).to(mu.device)
    z = mu + eps * torch.exp(0.5 * logvar)
    recon = 0.5 * F.mse_loss(decoder(z), x, reduction="sum") / n
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum() / n
    elbo = -(recon + kl) - 0.5 * x[0].numel() * math.log(2.0 * math.pi)
    return recon + kl_weight * kl, {"recon": recon.detach(), "kl": kl.detach(), "elbo": elbo.detach()}


def diffusion_loss(denoiser: Callable[[Tensor, Tensor], Tensor], abar: Tensor, x0: Tensor, t: Tensor,
                   eps: Tensor) -> Tensor:
    """DDPM's simple loss (Ho et al. 2020, Eq. 14): the mean squared error of the noise the
    denoiser predicts from x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, over pixels and images.
    ``t`` (steps, uniform over 0..T-1) and ``eps`` (standard normal, x0's shape) are the caller's
    draws, so that the loop draws them from its own streams (and every process its shard)."""
    return F.mse_loss(denoiser(q_sample(abar, x0, t, eps), t), eps)


@contextlib.contextmanager
def preserved_buffers(*modules: nn.Module) -> Iterator[None]:
    """Run measurement forwards in train mode without moving BN running statistics."""
    saved = [{k: b.clone() for k, b in m.named_buffers()} for m in modules]
    try:
        yield
    finally:
        for m, state in zip(modules, saved):
            for k, b in m.named_buffers():
                b.copy_(state[k])
