"""Layers shared by the residual GANs (SNGAN, BigGAN): spectral norm, conditional BN, blocks.

Spectral norm is torch's parametrization: the tensor the optimizer updates (and the sparsity
engine masks) is ``parametrizations.weight.original``; the power-iteration vectors ``_u``/``_v``
are buffers, so they never count as parameters (REFERENCE §4).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

# The BigGAN-PyTorch CIFAR and ImageNet scripts use SN_eps 1e-6 (torch's default is 1e-12).
SN_EPS = 1e-6


def sn(module: nn.Module, enabled: bool = True, eps: float = SN_EPS) -> nn.Module:
    """Spectral-normalise ``module.weight`` (one power iteration per forward, as the references)."""
    return spectral_norm(module, eps=eps) if enabled else module


def conv3x3(cin: int, cout: int, use_sn: bool) -> nn.Module:
    return sn(nn.Conv2d(cin, cout, 3, 1, 1), use_sn)


def conv1x1(cin: int, cout: int, use_sn: bool, bias: bool = True) -> nn.Module:
    return sn(nn.Conv2d(cin, cout, 1, 1, 0, bias=bias), use_sn)


def upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2)


def plain_weight(module: nn.Module) -> Tensor:
    """The raw weight tensor of a layer, spectral-normed or not (for initialisation)."""
    if hasattr(module, "parametrizations"):
        return module.parametrizations.weight.original
    return module.weight


# --- normalisation --------------------------------------------------------------------
class ConditionalBN(nn.Module):
    """Class-conditional BN (BigGAN ``ccbn``): BN without affine, then per-example gain and bias.

    ``cond`` is either class labels (``embedding``: per-layer nn.Embedding tables of
    n_classes x C, BigGAN-32) or a conditioning vector (``linear``: gain/bias are bias-free
    linear maps of [shared embedding, z chunk], BigGAN-128). gain = 1 + f(cond).
    """

    def __init__(self, channels: int, cond_dim: int, *, kind: str, use_sn: bool, eps: float = 1e-5):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=eps, affine=False)
        if kind == "embedding":
            self.gain, self.bias = nn.Embedding(cond_dim, channels), nn.Embedding(cond_dim, channels)
        elif kind == "linear":
            self.gain = sn(nn.Linear(cond_dim, channels, bias=False), use_sn)
            self.bias = sn(nn.Linear(cond_dim, channels, bias=False), use_sn)
            # They produce a norm's gain and bias: norms stay dense, so the sparsity engine must
            # not prune them even under `--prunable all` (it skips modules marked keep_dense).
            self.gain.keep_dense = self.bias.keep_dense = True
        else:
            raise ValueError(f"unknown conditional BN kind {kind!r}")

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gain = (1.0 + self.gain(cond)).view(x.shape[0], -1, 1, 1)
        bias = self.bias(cond).view(x.shape[0], -1, 1, 1)
        return self.bn(x) * gain + bias


class PlainBN(nn.Module):
    """Affine BN that accepts (and ignores) a conditioning input, so blocks have one signature."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=eps)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.bn(x)


NormFactory = Callable[[int], nn.Module]


# --- residual blocks ------------------------------------------------------------------
class GBlock(nn.Module):
    """norm-ReLU-up-conv3x3-norm-ReLU-conv3x3 with a 1x1 shortcut (up-sampled first) whenever
    the block re-samples or changes the channel count (SNGAN / BigGAN generator block)."""

    def __init__(self, cin: int, cout: int, norm: NormFactory, use_sn: bool, up: bool = True):
        super().__init__()
        self.up = up
        self.norm1, self.conv1 = norm(cin), conv3x3(cin, cout, use_sn)
        self.norm2, self.conv2 = norm(cout), conv3x3(cout, cout, use_sn)
        self.shortcut = conv1x1(cin, cout, use_sn) if (cin != cout or up) else None

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h = F.relu(self.norm1(x, cond))
        if self.up:
            h, x = upsample(h), upsample(x)
        h = self.conv1(h)
        h = self.conv2(F.relu(self.norm2(h, cond)))
        return h + (self.shortcut(x) if self.shortcut is not None else x)


class DBlock(nn.Module):
    """(ReLU)-conv3x3-ReLU-conv3x3-(avgpool) with a 1x1 shortcut whenever the block re-samples
    or changes the channel count. ``preact=False`` is SNGAN's "optimized" first block, whose
    shortcut pools before the 1x1 conv; the pre-activated blocks convolve, then pool."""

    def __init__(self, cin: int, cout: int, use_sn: bool, *, down: bool, preact: bool):
        super().__init__()
        self.down, self.preact = down, preact
        self.conv1, self.conv2 = conv3x3(cin, cout, use_sn), conv3x3(cout, cout, use_sn)
        self.shortcut = conv1x1(cin, cout, use_sn) if (cin != cout or down) else None

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preact else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = downsample(h)
        if self.shortcut is None:
            return h + x
        if self.preact:
            s = self.shortcut(x)
            return h + (downsample(s) if self.down else s)
        return h + self.shortcut(downsample(x) if self.down else x)


class SelfAttention(nn.Module):
    """SAGAN self-attention as in BigGAN: theta/phi to C/8, g to C/2 (both pooled 2x2), a
    learned gate gamma starting at 0; 1x1 convs without bias."""

    def __init__(self, ch: int, use_sn: bool):
        super().__init__()
        self.ch = ch
        self.theta = conv1x1(ch, ch // 8, use_sn, bias=False)
        self.phi = conv1x1(ch, ch // 8, use_sn, bias=False)
        self.g = conv1x1(ch, ch // 2, use_sn, bias=False)
        self.o = conv1x1(ch // 2, ch, use_sn, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).view(n, c // 8, h * w)  # [N, C/8, HW]
        phi = F.max_pool2d(self.phi(x), 2).view(n, c // 8, h * w // 4)  # [N, C/8, HW/4]
        g = F.max_pool2d(self.g(x), 2).view(n, c // 2, h * w // 4)  # [N, C/2, HW/4]
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # [N, HW, HW/4]
        o = self.o(torch.bmm(g, beta.transpose(1, 2)).view(n, c // 2, h, w))
        return x + self.gamma * o


# --- initialisation -------------------------------------------------------------------
def init_weights(model: nn.Module, kind: str) -> None:
    """Initialise the weights of every Conv2d / Linear / Embedding as the references do:
    ``xavier`` (SNGAN), ``normal`` N(0, 0.02) or ``ortho`` (BigGAN-PyTorch's G_init/D_init).
    Biases keep torch's default, as in BigGAN-PyTorch."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            w = plain_weight(m)
            with torch.no_grad():
                if kind == "normal":
                    nn.init.normal_(w, 0.0, 0.02)
                elif kind == "ortho":
                    if w.device.type == "meta":
                        continue  # shapes only: nothing to initialise
                    nn.init.orthogonal_(w)
                elif kind == "xavier":
                    nn.init.xavier_uniform_(w)
                else:
                    raise ValueError(f"unknown init {kind!r}")
