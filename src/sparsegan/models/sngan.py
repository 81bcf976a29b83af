"""SNGAN for 32x32 images, as trained by GAN Tickets and STU-GAN (Miyato et al. 2018).

G: Linear(z -> 4*4*256), three up-sampling residual blocks of 256 channels, BN-ReLU-conv3x3-tanh.
D: the "optimized" first block (3 -> 128, down), one down-sampling block, two plain blocks with
identity shortcuts, ReLU, spatial sum, spectral-normed Linear(128 -> 1, no bias). Spectral norm
on every D layer, none in G. Unconditional: ``y`` is accepted and ignored.

Parameter counts (3 channels, width 256/128): G 4,276,739 (conv weights 3,742,464), D 1,053,824,
equal to the public GAN Tickets code (REFERENCE §4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.models.base import Discriminator, Generator, ModelSpec, register_model
from sparsegan.models.layers import DBlock, GBlock, PlainBN, conv3x3, sn


class SNGANGenerator(Generator):
    def __init__(self, z_dim: int, channels: int, width: int, bottom: int = 4):
        super().__init__()
        self.z_dim, self.num_classes, self.channels, self.resolution = z_dim, 0, channels, bottom * 8
        self.width, self.bottom = width, bottom
        self.linear = nn.Linear(z_dim, bottom * bottom * width)
        self.blocks = nn.ModuleList([GBlock(width, width, PlainBN, use_sn=False) for _ in range(3)])
        self.out_bn = nn.BatchNorm2d(width)
        self.out_conv = conv3x3(width, channels, use_sn=False)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.linear(z).view(z.shape[0], self.width, self.bottom, self.bottom)  # [N, 256, 4, 4]
        for block in self.blocks:
            h = block(h)  # 8x8, 16x16, 32x32
        return torch.tanh(self.out_conv(torch.relu(self.out_bn(h))))


class SNGANDiscriminator(Discriminator):
    def __init__(self, channels: int, width: int):
        super().__init__()
        self.blocks = nn.Sequential(
            DBlock(channels, width, True, down=True, preact=False),  # 16x16
            DBlock(width, width, True, down=True, preact=True),  # 8x8
            DBlock(width, width, True, down=False, preact=True),
            DBlock(width, width, True, down=False, preact=True),
        )
        self.linear = sn(nn.Linear(width, 1, bias=False))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = torch.relu(self.blocks(x)).sum(dim=(2, 3))  # [N, 128]
        return self.linear(h).squeeze(1)


def _init_sngan(model: nn.Module) -> None:
    # The GAN Tickets (AutoGAN-derived) SNGAN code: Xavier-uniform (gain 1) for every conv weight,
    # BN gains N(1, 0.02) and biases 0; Linear layers and conv biases keep torch's defaults.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
                nn.init.xavier_uniform_(w, 1.0)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)


@register_model("sngan32", native_resolution=32)
def build_sngan32(spec: ModelSpec):
    if spec.resolution not in (None, 32):
        raise UserError(f"sngan32 is built for 32x32 images, not {spec.resolution}x{spec.resolution}")
    # --model-width sets G's channels (256); D has half as many (128), as in the reference.
    g_width = max(2, math.ceil((spec.width or 256) * spec.width_multiplier))
    d_width = max(1, g_width // 2)
    g, d = SNGANGenerator(spec.z_dim, spec.channels, g_width), SNGANDiscriminator(spec.channels, d_width)
    _init_sngan(g)
    _init_sngan(d)
    return g, d
