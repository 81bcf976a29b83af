"""BigGAN (Brock et al. 2019) as configured by the BigGAN-PyTorch launch scripts.

``biggan32`` (CIFAR-10): G_ch = D_ch = 64, class-conditional BN with per-layer class
embeddings (no shared embedding, no hierarchical z, dim_z 128), no attention, N(0, 0.02) init.
``biggan128`` (ImageNet): G_ch = D_ch = 96, self-attention at 64x64 in G and D, a shared class
embedding (128) concatenated with a chunk of a hierarchical z (dim_z 120 in 6 chunks of 20)
feeding every conditional BN through bias-free linear maps, orthogonal init.
Both: spectral norm on every G and D layer (embeddings of G's BN excepted), projection
discriminator (Miyato & Koyama 2018): logit = linear(h) + <embed(y), h>.

Parameter counts equal BigGAN-PyTorch's (REFERENCE §4): biggan32 G 4,304,387, D 4,207,361;
biggan128 G 70,433,988, D 87,982,370.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.models.base import Discriminator, Generator, ModelSpec, register_model
from sparsegan.models.layers import ConditionalBN, DBlock, GBlock, SelfAttention, conv3x3, init_weights, sn


@dataclass(frozen=True)
class BigGANArch:
    """One resolution's architecture, as BigGAN-PyTorch's ``G_arch`` / ``D_arch`` tables."""

    resolution: int
    g_in: tuple[int, ...]  # multiples of G_ch, one per G block
    g_out: tuple[int, ...]
    d_in: tuple[int, ...]  # multiples of D_ch (the first block takes the image)
    d_out: tuple[int, ...]
    d_down: tuple[bool, ...]
    attention: int | None  # resolution with self-attention (G and D), or None
    ch: int  # default G_ch = D_ch
    z_dim: int
    hier: bool  # hierarchical z + shared embedding
    shared_dim: int
    init: str


ARCH = {
    32: BigGANArch(32, (4, 4, 4), (4, 4, 4), (0, 4, 4, 4), (4, 4, 4, 4), (True, True, False, False),
                   None, 64, 128, False, 0, "normal"),
    128: BigGANArch(128, (16, 16, 8, 4, 2), (16, 8, 4, 2, 1), (0, 1, 2, 4, 8, 16), (1, 2, 4, 8, 16, 16),
                    (True,) * 5 + (False,), 64, 96, 120, True, 128, "ortho"),
}


class BigGANGenerator(Generator):
    def __init__(self, arch: BigGANArch, ch: int, channels: int, num_classes: int, z_dim: int):
        super().__init__()
        self.num_classes, self.channels, self.resolution = num_classes, channels, arch.resolution
        self.hier = arch.hier
        self.bottom, self.ch0 = 4, arch.g_in[0] * ch
        if arch.hier:
            # z is split into one chunk for the first linear layer and one per block.
            self.num_chunks = len(arch.g_in) + 1
            self.chunk = z_dim // self.num_chunks
            self.z_dim = self.chunk * self.num_chunks
            self.shared = nn.Embedding(num_classes, arch.shared_dim)
            norm = functools.partial(ConditionalBN, cond_dim=arch.shared_dim + self.chunk, kind="linear", use_sn=True)
            first_in = self.chunk
        else:
            self.z_dim = z_dim
            self.shared = None
            norm = functools.partial(ConditionalBN, cond_dim=num_classes, kind="embedding", use_sn=True)
            first_in = z_dim
        self.linear = sn(nn.Linear(first_in, self.bottom * self.bottom * self.ch0))
        self.blocks = nn.ModuleList()
        res = self.bottom
        for cin, cout in zip(arch.g_in, arch.g_out):
            res *= 2
            self.blocks.append(GBlock(cin * ch, cout * ch, norm, use_sn=True))
            if arch.attention == res:
                self.blocks.append(SelfAttention(cout * ch, use_sn=True))
        out_ch = arch.g_out[-1] * ch
        self.out_bn = nn.BatchNorm2d(out_ch)
        self.out_conv = conv3x3(out_ch, channels, use_sn=True)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ValueError("BigGAN is class-conditional: pass labels y")
        if self.hier:
            zs = z.split(self.chunk, dim=1)
            shared = self.shared(y)
            conds = [torch.cat([shared, zc], dim=1) for zc in zs[1:]]  # [N, 128 + 20] per block
            h = self.linear(zs[0])
        else:
            conds = [y] * len(self.blocks)
            h = self.linear(z)
        h = h.view(z.shape[0], self.ch0, self.bottom, self.bottom)
        i = 0
        for block in self.blocks:
            if isinstance(block, GBlock):
                h = block(h, conds[i])
                i += 1
            else:
                h = block(h)
        return torch.tanh(self.out_conv(torch.relu(self.out_bn(h))))


class BigGANDiscriminator(Discriminator):
    def __init__(self, arch: BigGANArch, ch: int, channels: int, num_classes: int):
        super().__init__()
        self.blocks = nn.ModuleList()
        res = arch.resolution
        for i, (cin, cout, down) in enumerate(zip(arch.d_in, arch.d_out, arch.d_down)):
            cin_ch = channels if i == 0 else cin * ch
            # The first block sees the image: no ReLU in front of it (BigGAN's preactivation=False).
            self.blocks.append(DBlock(cin_ch, cout * ch, True, down=down, preact=i > 0))
            res = res // 2 if down else res
            if arch.attention == res:
                self.blocks.append(SelfAttention(cout * ch, use_sn=True))
        feat = arch.d_out[-1] * ch
        self.linear = sn(nn.Linear(feat, 1))
        self.embed = sn(nn.Embedding(num_classes, feat))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ValueError("BigGAN's projection discriminator needs labels y")
        h = x
        for block in self.blocks:
            h = block(h)
        h = torch.relu(h).sum(dim=(2, 3))  # [N, C]
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


def _build(name: str, resolution: int, spec: ModelSpec):
    if spec.resolution not in (None, resolution):
        raise UserError(f"{name} is built for {resolution}x{resolution} images, not {spec.resolution}")
    if spec.num_classes < 1:
        raise UserError(f"{name} is class-conditional; dataset has no class labels")
    arch = ARCH[resolution]
    ch = max(1, math.ceil((spec.width or arch.ch) * spec.width_multiplier))
    # The reference dim_z (120 at 128x128, split in 6 chunks) is set by the recipes (--z-dim).
    g = BigGANGenerator(arch, ch, spec.channels, spec.num_classes, spec.z_dim)
    d = BigGANDiscriminator(arch, ch, spec.channels, spec.num_classes)
    init_weights(g, arch.init)
    init_weights(d, arch.init)
    return g, d


@register_model("biggan32", native_resolution=32)
def build_biggan32(spec: ModelSpec):
    return _build("biggan32", 32, spec)


@register_model("biggan128", native_resolution=128)
def build_biggan128(spec: ModelSpec):
    return _build("biggan128", 128, spec)
