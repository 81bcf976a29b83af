"""A small U-Net denoiser for DDPM at 32x32 (Fashion-MNIST padded, CIFAR-10), and the diffusion
model as the rest of sparsegan sees a generator.

The denoiser follows Ho et al. 2020's U-Net, shrunk for the CPU: base width 32 (``--model-width``),
channel multipliers (1, 2, 2) at 32, 16 and 8 px, ``depth`` residual blocks per level (default 1;
GroupNorm, SiLU, the time embedding added between the two 3x3 convs), a sinusoidal time embedding
through a two-layer MLP, and optional single-head self-attention at the lowest resolution
(``--attention``). Every weight product is an nn.Conv2d or nn.Linear, so the engine's masks cover
the whole denoiser; norms and biases stay dense, as in the GANs.

:class:`DiffusionModel` is the registered "generator": its parameters are the denoiser's (the
engine's sparse net G, its sparse EMA the sampled model), ``sample_z`` draws image-shaped noise
x_T, and calling it runs the deterministic DDIM sampler (:mod:`sparsegan.models.ddpm`) for
``sample_steps`` denoiser calls. So sample grids, ``sparsegan eval``, the FLOPs counter, export and
the sparse runtime use it as they use any generator. Training calls ``model.denoiser(x_t, t)``.
A diffusion model has one net: it is registered with no discriminator (``build_models`` returns
``(model, None)``), and the loop trains G alone (training.loop.diffusion_iteration).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.models.base import Generator, ModelSpec, register_model
from sparsegan.models.ddpm import SCHEDULES, TIMESTEPS, alpha_bar, ddim_sample

CHANNEL_MULTS = (1, 2, 2)
DEFAULT_SAMPLE_STEPS = 20


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, ch), ch)  # 8 groups at the default widths; fewer for tiny test widths


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer steps [N] -> [N, dim] (Vaswani et al. 2017, as DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels of a feature map, residual."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm, self.qkv, self.proj = _norm(ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)  # each [N, C, HW]
        attn = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # [N, HW, HW]
        return x + self.proj((v @ attn.transpose(1, 2)).reshape(n, c, h, w))


class UNet(nn.Module):
    """eps_theta(x_t, t): [N, C, R, R] noisy images and [N] steps -> [N, C, R, R] predicted noise."""

    def __init__(self, channels: int, width: int = 32, blocks: int = 1, attention: bool = False,
                 mults: tuple[int, ...] = CHANNEL_MULTS):
        super().__init__()
        self.width, temb = width, 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.down = nn.ModuleList()
        chans, ch = [width], width
        for level, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(ResBlock(ch, width * m, temb))
                ch = width * m
                chans.append(ch)
            if level < len(mults) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))  # downsample
                chans.append(ch)
        self.mid1, self.mid2 = ResBlock(ch, ch, temb), ResBlock(ch, ch, temb)
        self.attn = Attention(ch) if attention else None  # at the lowest resolution only
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(ch + chans.pop(), width * m, temb))
                ch = width * m
            if level > 0:
                self.up.append(nn.Conv2d(ch, ch, 3, padding=1))  # after a nearest-neighbour 2x upsample
        self.norm_out, self.conv_out = _norm(ch), nn.Conv2d(ch, channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.width))
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid1(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        h = self.mid2(h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class DiffusionModel(Generator):
    """The denoiser with its noise schedule: noise x_T in, images out by DDIM (module docstring)."""

    def __init__(self, denoiser: UNet, channels: int, resolution: int, schedule: str = "linear",
                 sample_steps: int = DEFAULT_SAMPLE_STEPS):
        super().__init__()
        self.denoiser = denoiser
        self.channels, self.resolution, self.num_classes = channels, resolution, 0  # unconditional
        self.z_dim = channels * resolution * resolution  # the noise x_T, flattened
        self.schedule, self.sample_steps = schedule, sample_steps
        # A constant of the model, not a weight: rebuilt from the schedule's name, never saved.
        self.register_buffer("alpha_bar", alpha_bar(schedule, TIMESTEPS), persistent=False)

    def sample_z(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """Standard normal x_T, drawn on the CPU so the same seed gives the same noise anywhere."""
        return torch.randn(n, self.channels, self.resolution, self.resolution, generator=generator).to(device)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """DDIM from x_T = ``z`` in ``sample_steps`` denoiser calls; images in [-1, 1]."""
        return ddim_sample(self.denoiser, self.alpha_bar, z, self.sample_steps)


@register_model("unet", native_resolution=32, kind="diffusion")
def build_unet(spec: ModelSpec):
    if spec.resolution not in (None, 32):
        raise UserError("the unet denoiser is built for 32x32 images (Fashion-MNIST is padded to 32)")
    if spec.noise_schedule not in SCHEDULES:
        raise UserError(f"unknown noise schedule {spec.noise_schedule!r}; valid: {', '.join(SCHEDULES)}")
    steps = spec.sample_steps or DEFAULT_SAMPLE_STEPS
    if not 1 <= steps <= TIMESTEPS:
        raise UserError(f"--sample-steps must be in 1..{TIMESTEPS} (the DDIM steps taken of T = {TIMESTEPS}), "
                        f"got {steps}")
    width = max(1, math.ceil((spec.width or 32) * spec.width_multiplier))
    blocks = 1 if spec.depth is None else spec.depth
    if blocks < 1:
        raise UserError(f"the unet's depth is its residual blocks per resolution (>= 1), not {blocks}")
    denoiser = UNet(spec.channels, width, blocks, attention=spec.attention)
    return DiffusionModel(denoiser, spec.channels, 32, spec.noise_schedule, steps), None
