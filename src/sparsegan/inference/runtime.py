"""Sparse inference: a generator whose Linear / Conv2d / ConvTranspose2d layers run as CSR x dense
products where that is measured to be faster, dense otherwise.

:func:`sparsify` copies a generator, folds each eval-mode BatchNorm that follows a layer in an
``nn.Sequential`` into that layer's rows (exact up to float rounding), wraps the layers as sparse
layers (:mod:`.linear`, :mod:`.conv`, :mod:`.conv_transpose`; what they share, the channel-major
layout and the per-shape kernel choice: :mod:`.layer`), and moves the activations that follow them
into them. Which kernel a layer runs (the original dense module, torch's, scipy's or this
package's CSR products, or a dense GEMM in this layout) is chosen per layer and per input shape by
timing them on the first input of that shape (``mode="auto"``); a fixed ``mode`` forces one.
Outputs equal the dense masked generator's in eval mode up to float rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from sparsegan.inference import csr_kernel, simd_kernel
from sparsegan.inference.conv import SparseConv2d
from sparsegan.inference.conv_transpose import SparseConvTranspose2d
from sparsegan.inference.kernels import Workers
from sparsegan.inference.layer import MODES, SparseLayer, sparse_candidates
from sparsegan.inference.linear import LinearChain, SparseLinear
from sparsegan.kernels.plans import PlanCache

__all__ = ["MODES", "LinearChain", "SparseConv2d", "SparseConvTranspose2d", "SparseLayer", "SparseLinear", "choices",
           "fold_batchnorm", "sparse_candidates", "sparsify"]


def _effective(module: nn.Module) -> nn.Module:
    """A copy whose weight is a plain parameter: the weight the layer computes with (spectral norm
    applied with its stored vectors). Parametrized layers are rebuilt, not un-parametrized in
    place: their dynamically created class is shared with the original module."""
    if not parametrize.is_parametrized(module, "weight"):
        return copy.deepcopy(module)
    m = module
    bias = m.bias is not None
    if isinstance(m, nn.Linear):
        new = nn.Linear(m.in_features, m.out_features, bias=bias)
    elif isinstance(m, nn.ConvTranspose2d):
        new = nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                 m.output_padding, m.groups, bias, m.dilation, m.padding_mode)
    else:
        new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                        m.groups, bias, m.padding_mode)
    with torch.no_grad():
        new.weight = nn.Parameter(m.weight.detach().clone())
        if bias:
            new.bias = nn.Parameter(m.bias.detach().clone())
    return new.to(m.weight.device)


def _out_axis(m: nn.Module) -> int:
    return 1 if isinstance(m, nn.ConvTranspose2d) else 0


def fold_batchnorm(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """``bn(layer(x))`` in eval mode as one layer: output channel c scaled by gamma_c / sqrt(var_c + eps)."""
    m = _effective(layer)
    with torch.no_grad():
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
        shape = [1] * m.weight.dim()
        shape[_out_axis(m)] = -1
        m.weight.mul_(scale.view(shape))
        bias = m.bias if m.bias is not None else torch.zeros_like(scale)
        m.bias = nn.Parameter(bias * scale + shift)
    return m


def _convertible(m: nn.Module) -> bool:
    if isinstance(m, nn.Linear):
        return True
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros" and isinstance(m.padding, tuple)
    return False


def _wrap(m: nn.Module, mode: str, workers: Workers) -> SparseLayer:
    m = _effective(m)
    if isinstance(m, nn.Linear):
        return SparseLinear(m, mode, workers)
    if isinstance(m, nn.ConvTranspose2d):
        return SparseConvTranspose2d(m, mode, workers)
    return SparseConv2d(m, mode, workers)


def _foldable(bn: nn.Module) -> bool:
    return (isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) and bn.track_running_stats
            and bn.running_mean is not None)


@torch.no_grad()
def sparsify(G: nn.Module, mode: str = "auto", *, fold_bn: bool = True, fuse_activations: bool = True,
             min_sparsity: float = 0.0, kernels: tuple[str, ...] | None = None, chain_linear: bool = True,
             plan_cache: PlanCache | bool = True) -> nn.Module:
    """A copy of ``G`` (eval mode) with its Linear / Conv2d / ConvTranspose2d layers wrapped as
    :class:`SparseLayer` s. Layers denser than ``1 - min_sparsity`` stay plain dense modules.
    With ``fuse_activations``, a ReLU / LeakyReLU / Tanh that follows a wrapped layer in an
    ``nn.Sequential`` (after BN folding) moves into the layer, where the numba kernel runs it as
    the product's epilogue. ``kernels`` limits what auto mode times besides the module (e.g.
    ("dense",): the layout alone). With ``chain_linear``, consecutive Linear layers of a Sequential
    that chose the AVX2 kernel run as one C call (:class:`LinearChain`); a forward that indexes the
    Sequential instead of calling it whole needs ``chain_linear=False``. ``plan_cache``: where auto
    mode's choices are remembered for other processes (True: :meth:`PlanCache.default`, the user's
    cache folder unless ``SPARSEGAN_PLAN_CACHE`` says otherwise; False: calibrate every time)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    G = copy.deepcopy(G).eval()
    workers = Workers()  # one thread pool shared by every layer
    cache = PlanCache.default() if plan_cache is True else (plan_cache or None)
    if fold_bn:
        for seq in [m for m in G.modules() if isinstance(m, nn.Sequential)]:
            names = list(seq._modules)
            for a, b in zip(names, names[1:]):
                layer, bn = seq._modules[a], seq._modules[b]
                if _convertible(layer) and _foldable(bn):
                    seq._modules[a] = fold_batchnorm(layer, bn)
                    seq._modules[b] = nn.Identity()
    names = {m: n for n, m in G.named_modules()}
    for parent in list(G.modules()):
        for name, child in list(parent.named_children()):
            if _convertible(child):
                w = child.weight.detach()
                if float((w == 0).float().mean()) >= min_sparsity:
                    layer = _wrap(child, mode, workers)
                    layer.allowed = kernels
                    layer.plan_cache = cache
                    layer.origin = f"{names[parent]}.{name}" if names[parent] else name
                    setattr(parent, name, layer)
    if fuse_activations:
        for seq in [m for m in G.modules() if isinstance(m, nn.Sequential)]:
            names = [n for n in seq._modules if not isinstance(seq._modules[n], nn.Identity)]
            for a, b in zip(names, names[1:]):
                layer, act = seq._modules[a], seq._modules[b]
                if isinstance(layer, SparseLayer) and csr_kernel.activation_code(act) is not None:
                    layer.fuse(act)
                    # an Identity in its place, not a deletion: a forward that indexes the
                    # Sequential (seq[1](seq[0](x))) stays correct
                    seq._modules[b] = nn.Identity()
    if chain_linear and simd_kernel.available():
        for seq in [m for m in G.modules() if isinstance(m, nn.Sequential)]:
            _chain_linear_runs(seq)
    return G


def _chain_linear_runs(seq: nn.Sequential) -> None:
    """Runs of two or more SparseLinear children with only Identities between them become one
    :class:`LinearChain` in the first one's place, for a forward that calls the Sequential as a
    whole; the Identities (folded BNs, fused activations, chained layers) are then removed."""
    names = [n for n in seq._modules if not isinstance(seq._modules[n], nn.Identity)]
    runs, current = [], []
    for n in names:
        if isinstance(seq._modules[n], SparseLinear):
            current.append(n)
        else:
            runs.append(current)
            current = []
    runs.append(current)
    chained = [r for r in runs if len(r) >= 2]
    for run in chained:
        seq._modules[run[0]] = LinearChain([seq._modules[n] for n in run])
        for n in run[1:]:
            seq._modules[n] = nn.Identity()
    if chained:  # the forward calls the Sequential whole (see sparsify): its placeholders can go, ~1 us each
        for n in [n for n, m in seq._modules.items() if isinstance(m, nn.Identity)]:
            del seq._modules[n]


def choices(G: nn.Module) -> dict[str, dict]:
    """Per sparse layer: its density and the kernel chosen for each input shape seen."""
    return {m.origin or name: {"density": m.A.density, "shape": list(m.A.shape),
                   "activation": type(m.activation).__name__ if m.activation is not None else None,
                   "choice": {"x".join(map(str, k)): v for k, v in m.choice.items()},
                   "from_plan_cache": ["x".join(map(str, k)) for k in sorted(m.from_cache)],
                   "timings_ms": {"x".join(map(str, k)): {c: t * 1e3 for c, t in v.items()}
                                  for k, v in m.timings.items()}}
            for name, m in G.named_modules() if isinstance(m, SparseLayer)}
