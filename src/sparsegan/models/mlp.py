"""Fully connected G and D: the fastest GAN on a CPU (28x28 images, flattened)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from sparsegan.models.base import Discriminator, Generator, ModelSpec, register_model


class MLPGenerator(Generator):
    def __init__(self, z_dim: int, channels: int, resolution: int, width: int):
        super().__init__()
        self.z_dim, self.num_classes, self.channels, self.resolution = z_dim, 0, channels, resolution
        out = channels * resolution * resolution
        self.net = nn.Sequential(
            nn.Linear(z_dim, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, 2 * width), nn.BatchNorm1d(2 * width), nn.ReLU(inplace=True),
            nn.Linear(2 * width, 4 * width), nn.BatchNorm1d(4 * width), nn.ReLU(inplace=True),
            nn.Linear(4 * width, out), nn.Tanh(),
        )

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(z).view(-1, self.channels, self.resolution, self.resolution)


class MLPDiscriminator(Discriminator):
    def __init__(self, channels: int, resolution: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(channels * resolution * resolution, 2 * width), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(2 * width, width), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width, 1),
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


@register_model("mlp", native_resolution=28)
def build_mlp(spec: ModelSpec):
    res = spec.resolution or 28
    width = max(1, math.ceil((spec.width or 256) * spec.width_multiplier))
    return (
        MLPGenerator(spec.z_dim, spec.channels, res, width),
        MLPDiscriminator(spec.channels, res, width),
    )
