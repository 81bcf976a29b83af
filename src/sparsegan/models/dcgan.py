"""DCGAN (Radford et al. 2016) at 32x32: transposed-conv G, strided-conv D, width configurable.

Channels are (4w, 2w, w) in G and (w, 2w, 4w) in D; ``--model-width 32`` gives the small
32-64-128 DCGAN that trains in minutes on a CPU.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from sparsegan.models.base import Discriminator, Generator, ModelSpec, register_model


class DCGANGenerator(Generator):
    def __init__(self, z_dim: int, channels: int, width: int):
        super().__init__()
        self.z_dim, self.num_classes, self.channels, self.resolution = z_dim, 0, channels, 32
        w = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 4 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(True),  # 4x4
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),  # 8x8
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),  # 16x16
            nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh(),  # 32x32
        )

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(Discriminator):
    def __init__(self, channels: int, width: int):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 16x16
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),  # 8x8
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),  # 4x4
            nn.Conv2d(4 * w, 1, 4, 1, 0),
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(x).flatten()


def _init_dcgan(m: nn.Module) -> None:
    # N(0, 0.02) for convs, N(1, 0.02) for BN gains (Radford et al.).
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@register_model("dcgan", native_resolution=32)
def build_dcgan(spec: ModelSpec):
    if spec.resolution not in (None, 32):
        from sparsegan.errors import UserError

        raise UserError(f"dcgan is built for 32x32 images, not {spec.resolution}x{spec.resolution}")
    width = max(1, math.ceil((spec.width or 64) * spec.width_multiplier))
    g, d = DCGANGenerator(spec.z_dim, spec.channels, width), DCGANDiscriminator(spec.channels, width)
    g.apply(_init_dcgan)
    d.apply(_init_dcgan)
    return g, d
