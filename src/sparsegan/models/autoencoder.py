"""Convolutional VAE and AE at 32x32 (Generative Tickets trains tickets in both).

The decoder *is* the ``dcgan`` generator (same class, same parameter names), so masks found on a
GAN's generator transfer to the decoder and back (``--masks-from``). The encoder mirrors the DCGAN
discriminator, ending in a 4x4 conv to the latent statistics. In the training loop the decoder
plays G (``--sparsity-g``) and the encoder plays D (``--sparsity-d``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from sparsegan.models.base import Discriminator, ModelSpec, register_model
from sparsegan.models.dcgan import DCGANGenerator, _init_dcgan


class ConvEncoder(Discriminator):
    def __init__(self, channels: int, width: int, z_dim: int, variational: bool):
        super().__init__()
        self.z_dim, self.variational = z_dim, variational
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 16x16
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),  # 8x8
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),  # 4x4
            nn.Conv2d(4 * w, (2 if variational else 1) * z_dim, 4, 1, 0),  # 1x1
        )

    def forward(self, x: Tensor, y: Tensor | None = None):
        h = self.net(x).flatten(1)
        if not self.variational:
            return h
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)


def _build(spec: ModelSpec, variational: bool):
    if spec.resolution not in (None, 32):
        from sparsegan.errors import UserError

        raise UserError(f"the conv {'VAE' if variational else 'AE'} is built for 32x32 images")
    width = max(1, math.ceil((spec.width or 64) * spec.width_multiplier))
    dec = DCGANGenerator(spec.z_dim, spec.channels, width)
    enc = ConvEncoder(spec.channels, width, spec.z_dim, variational)
    dec.apply(_init_dcgan)
    enc.apply(_init_dcgan)
    return dec, enc


@register_model("vae", native_resolution=32, kind="vae")
def build_vae(spec: ModelSpec):
    return _build(spec, variational=True)


@register_model("ae", native_resolution=32, kind="ae")
def build_ae(spec: ModelSpec):
    return _build(spec, variational=False)
