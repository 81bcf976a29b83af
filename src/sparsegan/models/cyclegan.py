"""CycleGAN (Zhu et al. 2017): two ResNet generators and two PatchGAN discriminators.

The reference architecture (the authors' pytorch-CycleGAN-and-pix2pix, its defaults
``--netG resnet_9blocks --netD basic --norm instance``):

- generator: a 7x7 conv, two stride-2 3x3 convs (channels w -> 2w -> 4w), residual blocks at 4w
  channels, two stride-2 transposed convs back to w, a 7x7 conv to the output channels and Tanh.
  Reflection padding around the 7x7 convs and inside the blocks; every conv but the last is followed
  by InstanceNorm (no affine parameters, no running statistics) and ReLU. 9 blocks at 256 px,
  6 at 128 px.
- discriminator: the 70x70 PatchGAN, strided 4x4 convs (w, 2w, 4w), a stride-1 conv to 8w and a
  stride-1 conv to one channel: a map of logits, each judging one 70x70 patch of the input.

Every conv has a bias: with InstanceNorm the reference keeps them (it drops them only before
BatchNorm), so the parameter counts match its (11,378,179 for G, 2,764,737 for D at w = 64).

Small images (Fashion-MNIST's 28x28) need two adaptations, both made by the builder from the
resolution: fewer residual blocks, 3 below 128 px (the reference itself uses 6 at 128 px; after 3
blocks the receptive field is 61 px, so every output pixel of a 28x28 image already sees every
input pixel), and a 2-layer PatchGAN below 64 px, whose patches are 34x34 instead of 70x70: with
3 layers a 28x28 image shrinks to a single logit that sees the whole image, no longer a patch critic.
The generator itself works at any size divisible by 4 (28 -> 14 -> 7 -> 14 -> 28).
"""

from __future__ import annotations

from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.models.base import ModelSpec, register_model


def _norm(channels: int) -> nn.InstanceNorm2d:
    # The reference's instance norm: no learnable affine, statistics of each image alone (also at eval).
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """x + (pad, conv3x3, IN, ReLU, pad, conv3x3, IN)(x): the reference block without dropout."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Images in [-1, 1] of ``in_channels`` to images of ``out_channels``, same spatial size
    (any size divisible by 4)."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, blocks: int = 9):
        super().__init__()
        w = width
        layers: list[nn.Module] = [
            # Reflection rather than zero padding: no dark border for the 7x7 conv to learn around.
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, w, 7), _norm(w), nn.ReLU(True),
            nn.Conv2d(w, 2 * w, 3, 2, 1), _norm(2 * w), nn.ReLU(True),  # H/2
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1), _norm(4 * w), nn.ReLU(True),  # H/4
        ]
        layers += [ResidualBlock(4 * w) for _ in range(blocks)]
        layers += [
            # output_padding=1 makes each transposed conv exactly double the size (7 -> 14, not 13).
            nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, output_padding=1), _norm(2 * w), nn.ReLU(True),  # H/2
            nn.ConvTranspose2d(2 * w, w, 3, 2, 1, output_padding=1), _norm(w), nn.ReLU(True),  # H
            nn.ReflectionPad2d(3), nn.Conv2d(w, out_channels, 7), nn.Tanh(),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: images to a map of patch logits [N, 1, h, w]. ``layers`` = 3 is the 70x70 PatchGAN;
    each layer fewer halves the patch roughly (2: 34x34) and keeps the map non-empty on small images."""

    def __init__(self, in_channels: int, width: int = 64, layers: int = 3):
        super().__init__()
        w = width
        seq: list[nn.Module] = [nn.Conv2d(in_channels, w, 4, 2, 1), nn.LeakyReLU(0.2, True)]  # no norm on the input
        prev = w
        for n in range(1, layers):
            c = w * min(2 ** n, 8)  # channels double per layer, capped at 8w
            seq += [nn.Conv2d(prev, c, 4, 2, 1), _norm(c), nn.LeakyReLU(0.2, True)]
            prev = c
        c = w * min(2 ** layers, 8)
        seq += [
            nn.Conv2d(prev, c, 4, 1, 1), _norm(c), nn.LeakyReLU(0.2, True),  # stride 1: widens the patch
            nn.Conv2d(c, 1, 4, 1, 1),
        ]
        self.net = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CycleGenerators(nn.Module):
    """The two translators: ``ab`` maps domain A to B, ``ba`` maps B to A."""

    channels: int
    resolution: int
    #: What a translation generator takes besides the images (FLOPs accounting runs each once).
    directions = ("ab", "ba")

    def __init__(self, ab: ResnetGenerator, ba: ResnetGenerator):
        super().__init__()
        self.ab, self.ba = ab, ba

    def forward(self, x: Tensor, direction: str = "ab") -> Tensor:
        if direction not in self.directions:
            raise ValueError(f"unknown direction {direction!r}; valid: ab, ba")
        return self.ab(x) if direction == "ab" else self.ba(x)


class CycleDiscriminators(nn.Module):
    """The two critics: ``a`` judges domain A images, ``b`` domain B images."""

    domains = ("a", "b")  # D(x, "a") judges images of domain A: the target of direction "ba"

    def __init__(self, a: PatchDiscriminator, b: PatchDiscriminator):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: Tensor, domain: str) -> Tensor:
        if domain not in self.domains:
            raise ValueError(f"unknown domain {domain!r}; valid: a, b")
        return self.a(x) if domain == "a" else self.b(x)


def _init_cyclegan(m: nn.Module) -> None:
    # The reference's default init: conv weights N(0, 0.02), biases zero.
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def residual_blocks(resolution: int) -> int:
    """The reference's 9 blocks at 256 px and 6 at 128 px; 3 below (a 7x7 bottleneck at 28 px)."""
    return 9 if resolution >= 256 else 6 if resolution >= 128 else 3


def patch_layers(resolution: int) -> int:
    """3 (the 70x70 PatchGAN) from 64 px; 2 below, so a patch map remains (28 px: 5x5 of 34x34 patches)."""
    return 3 if resolution >= 64 else 2


@register_model("cyclegan", native_resolution=256, kind="translation")
def build_cyclegan(spec: ModelSpec) -> tuple[CycleGenerators, CycleDiscriminators]:
    resolution = spec.resolution or 256
    if resolution % 4:
        # Two stride-2 downsamplings and two exact doublings: other sizes would not come back unchanged.
        raise UserError(f"cyclegan needs a resolution divisible by 4, not {resolution}")
    if spec.depth is not None and spec.depth < 0:
        raise UserError(f"cyclegan's depth is a number of residual blocks (>= 0), not {spec.depth}")
    width = max(1, round((spec.width or 64) * spec.width_multiplier))
    blocks = spec.depth if spec.depth is not None else residual_blocks(resolution)
    layers = patch_layers(resolution)
    c = spec.channels
    g = CycleGenerators(ResnetGenerator(c, c, width, blocks), ResnetGenerator(c, c, width, blocks))
    d = CycleDiscriminators(PatchDiscriminator(c, width, layers), PatchDiscriminator(c, width, layers))
    g.channels, g.resolution = c, resolution
    g.apply(_init_cyclegan)
    d.apply(_init_cyclegan)
    return g, d

