"""DDPM's noise schedule and the deterministic DDIM sampler (plain torch, no training state).

Which formulation, and why: DDPM's epsilon-prediction objective (Ho et al. 2020, "Denoising
Diffusion Probabilistic Models", Eq. 14: ``|| eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t)
eps, t) ||^2`` with t uniform over T = 1000 steps) and its linear beta schedule (1e-4 to 0.02), or
the cosine one (Nichol & Dhariwal 2021), sampled with DDIM at eta = 0 (Song et al. 2021, "Denoising
Diffusion Implicit Models", Eq. 12): a deterministic sampler that takes any number of the T steps
(NFE = denoiser calls), with no retraining. Chosen over EDM's preconditioning and Heun sampler
(Karras et al. 2022) because the objective is the one the sparse diffusion papers train (Jiang et
al. 2023's DDPM tickets; Oliveira et al. 2025's latent DDPMs), so its numbers compare with theirs,
and a DDIM step is one denoiser call where Heun's is two, which halves the sampling cost that
the sparse runtime is measured on.

Index convention: ``t`` = 0 .. T-1 is the (t+1)-th noising step: ``abar[t]`` = prod_{i <= t} (1 -
beta_i), so ``abar[0]`` = 1 - beta_0 and x_0 (the data) has abar = 1, written here as t = -1.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

#: Diffusion steps of training (Ho et al. 2020).
TIMESTEPS = 1000
SCHEDULES = ("linear", "cosine")


def betas(schedule: str = "linear", T: int = TIMESTEPS) -> Tensor:
    """beta_t, t = 0 .. T-1, in float64. linear: Ho et al.'s 1e-4 .. 0.02 (scaled by 1000 / T so that
    another T keeps the same total noise); cosine: Nichol & Dhariwal's abar(t) = f(t) / f(0), f(t) =
    cos^2(((t / T) + s) / (1 + s) pi / 2), s = 0.008, beta clipped at 0.999."""
    if schedule == "linear":
        scale = 1000 / T
        return torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown noise schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")


def alpha_bar(schedule: str = "linear", T: int = TIMESTEPS) -> Tensor:
    """abar_t = prod_{i <= t} (1 - beta_i), t = 0 .. T-1, float32 (computed in float64)."""
    return torch.cumprod(1 - betas(schedule, T), 0).float()


def _at(abar: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """abar at each sample's step, shaped to broadcast over ``like`` ([N, 1, 1, ...]); t = -1: 1."""
    a = torch.where(t >= 0, abar[t.clamp(min=0)], torch.ones((), dtype=abar.dtype, device=abar.device))
    return a.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def q_sample(abar: Tensor, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (DDPM Eq. 4, reparameterised)."""
    a = _at(abar, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def sample_timesteps(steps: int, T: int = TIMESTEPS) -> list[int]:
    """The DDIM sub-sequence of ``steps`` steps, from T-1 down to 0, evenly spaced ("trailing": the
    first call sees pure noise's level, Lin et al. 2024); ``steps`` = T is every step."""
    if not 1 <= steps <= T:
        raise ValueError(f"sampling steps must be in 1..{T}, got {steps}")
    if steps == 1:
        return [T - 1]
    return [round(T - 1 - i * (T - 1) / (steps - 1)) for i in range(steps)]  # spacing >= 1: no repeats


def ddim_step(abar: Tensor, x_t: Tensor, eps: Tensor, t: int, s: int, clip: bool = True) -> Tensor:
    """One deterministic DDIM step (eta = 0) from step t to an earlier step s (s = -1: the data):

        x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)      (clipped to [-1, 1] with ``clip``,
        x_s    = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps        eps then recomputed from x0_hat)
    """
    a_t = abar[t].to(x_t.dtype)
    a_s = abar[s].to(x_t.dtype) if s >= 0 else torch.ones((), dtype=x_t.dtype, device=x_t.device)
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
        eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
    return a_s.sqrt() * x0 + (1 - a_s).sqrt() * eps


def ddim_sample(denoiser: Callable[[Tensor, Tensor], Tensor], abar: Tensor, x_T: Tensor, steps: int,
                clip: bool = True) -> Tensor:
    """x_0 from noise ``x_T`` in ``steps`` denoiser calls (NFE): DDIM at eta = 0 along
    :func:`sample_timesteps`. ``denoiser(x_t, t)`` predicts eps; t is a [N] long tensor."""
    ts = sample_timesteps(steps, abar.numel())
    x = x_T
    for t, s in zip(ts, ts[1:] + [-1]):
        eps = denoiser(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
        x = ddim_step(abar, x, eps, t, s, clip)
    return x
