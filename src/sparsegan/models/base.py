"""What every model provides, and the model registry.

A generator maps ``(z, y)`` to images in [-1, 1]; a discriminator maps ``(x, y)`` to one logit
per image. ``y`` is None for unconditional models. Models know nothing about sparsity. A family
trained as one net (diffusion: the denoiser) registers no discriminator: its builder returns
``(G, None)`` and :func:`model_nets` names G alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from sparsegan.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """What the data and the user decide about a model."""

    channels: int = 1
    resolution: int | None = None  # None: the model's native resolution
    num_classes: int = 0  # 0: unconditional
    z_dim: int = 128
    width: int | None = None  # None: the model's default width
    width_multiplier: float = 1.0
    depth: int | None = None  # residual blocks (cyclegan; unet: per resolution); None: the model's default
    # diffusion models (unet): the sampler and noise schedule its forward runs, attention at 8x8
    sample_steps: int | None = None  # DDIM steps = denoiser calls per image (NFE); None: the model's default
    noise_schedule: str = "linear"
    attention: bool = False


class Generator(nn.Module):
    z_dim: int
    num_classes: int
    channels: int
    resolution: int

    def sample_z(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """Standard normal latents, drawn on the CPU so the same seed gives the same z anywhere."""
        return torch.randn(n, self.z_dim, generator=generator).to(device)


class Discriminator(nn.Module):
    pass


ModelBuilder = Callable[[ModelSpec], tuple[Generator, Discriminator | None]]
MODELS: Registry[ModelBuilder] = Registry("model")
NATIVE_RESOLUTION: dict[str, int] = {}
#: What the pair is trained as: "gan" (G, D adversarial), "vae" or "ae" (decoder as G, encoder as D),
#: "translation" (CycleGAN's pairs), "diffusion" (the denoiser as G, no D).
MODEL_KIND: dict[str, str] = {}
#: The kinds trained as one net, G: they have no discriminator.
SINGLE_NET_KINDS = ("diffusion",)


def register_model(name: str, native_resolution: int, kind: str = "gan"):
    def deco(fn: ModelBuilder) -> ModelBuilder:
        NATIVE_RESOLUTION[name] = native_resolution
        MODEL_KIND[name] = kind
        return MODELS.register(name)(fn)

    return deco


def build_models(name: str, spec: ModelSpec) -> tuple[Generator, Discriminator | None]:
    """(G, D) of model ``name``; D is None for a family trained as one net (:func:`model_nets`)."""
    return MODELS.get(name)(spec)


def model_nets(name: str) -> tuple[str, ...]:
    """The nets model ``name`` trains: ("G", "D"), or ("G",) for a one-net family (diffusion)."""
    return ("G",) if MODEL_KIND.get(name) in SINGLE_NET_KINDS else ("G", "D")
