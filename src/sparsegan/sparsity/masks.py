"""MaskSet: exact-count binary masks over a module's prunable weights.

The engine knows nothing about GANs: it takes any ``nn.Module``, finds the weights that may be
pruned, and keeps one bool mask per weight plus the union of every mask it has held (for the
ITOP exploration rate). Inactive weights are kept exactly 0 by :meth:`MaskSet.apply_`.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsegan.sparsity.blocks import Blocks, select_blocks
from sparsegan.sparsity.distributions import DISTRIBUTIONS, allocate_active_counts
from sparsegan.sparsity.topk import count_true, topk_mask

_LINEAR = (nn.Linear, nn.Bilinear)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
SCOPES = ("all", "conv")
#: Module attribute that exempts a layer from pruning (set by models, read here; no imports either way).
KEEP_DENSE = "keep_dense"


def _weight_of(module: nn.Module) -> nn.Parameter | None:
    """The tensor the optimizer updates: the original under spectral norm, not the normalised view."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    if isinstance(getattr(module, "weight_orig", None), nn.Parameter):  # legacy spectral_norm
        return module.weight_orig
    w = getattr(module, "weight", None)
    return w if isinstance(w, nn.Parameter) else None


def prunable_parameters(module: nn.Module, scope: str = "all") -> dict[str, nn.Parameter]:
    """Weights of Linear / Conv / ConvTranspose layers (``scope='all'``) or of conv layers only
    (``scope='conv'``, the STU-GAN reference code's choice, REFERENCE §6.9), keyed by their name
    in ``module.named_parameters()``. Biases, norms and embeddings stay dense, and so does any
    layer whose module has a true ``keep_dense`` attribute: a model marks that way the layers
    that are part of a norm (e.g. the linear maps that produce conditional-BN gains and biases)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown prunable scope {scope!r}; valid: {', '.join(SCOPES)}")
    kinds = _CONV if scope == "conv" else _CONV + _LINEAR
    ids = set()
    for m in module.modules():
        if isinstance(m, kinds) and not getattr(m, KEEP_DENSE, False):
            w = _weight_of(m)
            if w is not None:
                ids.add(id(w))
    return {n: p for n, p in module.named_parameters() if id(p) in ids}


def output_axes(module: nn.Module) -> dict[str, int]:
    """The output axis of each Linear / Conv / ConvTranspose weight of ``module`` that is not 0:
    1 for transposed convs, whose weights are stored (in, out, *kernel). Block masks are made in
    each weight's out x in view (sparsity.blocks)."""
    ids = {}
    for m in module.modules():
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            w = _weight_of(m)
            if w is not None:
                ids[id(w)] = 1
    return {n: ids[id(p)] for n, p in module.named_parameters() if id(p) in ids}


def target_counts(
    params: Mapping[str, Tensor], sparsity: float, distribution: str = "erk", *, power_scale: float = 1.0
) -> dict[str, int]:
    """Exact active count per layer for a net-level sparsity under a distribution; the counts sum
    to round((1 - sparsity) * total)."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; valid: {', '.join(DISTRIBUTIONS)}")
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    per_layer = DISTRIBUTIONS[distribution](shapes, sparsity, power_scale=power_scale)
    numels = {n: p.numel() for n, p in params.items()}
    return allocate_active_counts(numels, per_layer, round((1.0 - sparsity) * sum(numels.values())))


class _Counts:
    """Active counts of a dict of bool tensors, recounted only when a tensor was replaced or
    changed in place (its version counter moved)."""

    def __init__(self, tensors: dict[str, Tensor]):
        self.tensors = tensors
        self._seen: dict[str, tuple[Tensor, int, int]] = {}

    def __getitem__(self, name: str) -> int:
        t = self.tensors[name]
        seen = self._seen.get(name)  # the tensor itself is held: a freed tensor's id may come back as another's
        if seen is None or seen[0] is not t or seen[1] != t._version:
            seen = self._seen[name] = (t, t._version, count_true(t))
        return seen[2]

    def total(self) -> int:
        return sum(self[n] for n in self.tensors)


class MaskSet:
    """One bool mask per prunable weight of one net, and the masks' history (ever active)."""

    def __init__(self, params: Mapping[str, nn.Parameter], masks: Mapping[str, Tensor], *,
                 blocks: Blocks = Blocks(), out_axes: Mapping[str, int] | None = None):
        if set(params) != set(masks):
            raise ValueError("params and masks must have the same names")
        # The granularity every mask decision is made in (sparsity.blocks), and each weight's
        # output axis when it is not 0 (:func:`output_axes`): the blocks of layer n are blocks_of(n).
        self.blocks = blocks
        self.out_axes = {n: int(a) for n, a in (out_axes or {}).items() if n in params and a}
        self.params = dict(params)
        self.masks: dict[str, Tensor] = {}
        self._factors: dict[str, Tensor] = {}
        self.ever_active: dict[str, Tensor] = {}
        self.deactivated: dict[str, Tensor] = {}  # entries deactivated since the last take_deactivated()
        self._active, self._ever = _Counts(self.masks), _Counts(self.ever_active)
        self._indices: dict[str, tuple[Tensor, int, Tensor]] = {}
        for name, mask in masks.items():
            self.set_mask(name, mask)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def dense(cls, params: Mapping[str, nn.Parameter], *, blocks: Blocks = Blocks(),
              out_axes: Mapping[str, int] | None = None) -> "MaskSet":
        return cls(params, {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}, blocks=blocks,
                   out_axes=out_axes)

    @classmethod
    def random(
        cls,
        params: Mapping[str, nn.Parameter],
        sparsity: float,
        distribution: str = "erk",
        *,
        power_scale: float = 1.0,
        generator: torch.Generator | None = None,
        blocks: Blocks = Blocks(),
        out_axes: Mapping[str, int] | None = None,
    ) -> "MaskSet":
        """Random masks with exact per-layer counts from a distribution (no Bernoulli draws); with
        ``blocks``, each count to within one block."""
        counts = target_counts(params, sparsity, distribution, power_scale=power_scale)
        return cls.random_with_counts(params, counts, generator=generator, blocks=blocks, out_axes=out_axes)

    @classmethod
    def random_with_counts(
        cls, params: Mapping[str, nn.Parameter], counts: Mapping[str, int], *, generator: torch.Generator | None = None,
        blocks: Blocks = Blocks(),
        out_axes: Mapping[str, int] | None = None,
    ) -> "MaskSet":
        """Uniformly random masks with the given exact active count per layer (in entries; with
        ``blocks``, random blocks whose entries come nearest the count: within one block)."""
        masks = {}
        axes = out_axes or {}
        for n, p in params.items():
            b = blocks.along(axes.get(n, 0))
            # Scores drawn on the CPU so the same seed gives the same masks on every device.
            scores = torch.rand(b.grid(p.shape) if not b.unstructured else p.shape, generator=generator)
            chosen = topk_mask(scores, counts[n]) if b.unstructured else \
                select_blocks({n: scores}, {n: b.sizes(p.shape)}, counts[n])[n]
            masks[n] = b.expand(chosen, p).to(p.device)
        return cls(params, masks, blocks=blocks, out_axes=out_axes)

    def layout(self) -> dict:
        """The keyword arguments that give another MaskSet over these weights the same block
        layout: ``MaskSet.dense(params, **masks.layout())``."""
        return {"blocks": self.blocks, "out_axes": dict(self.out_axes)}

    def blocks_of(self, name: str) -> Blocks:
        """Layer ``name``'s blocks (the granularity along its weight's output axis)."""
        return self.blocks.along(self.out_axes.get(name, 0))

    # --- mask edits ---------------------------------------------------------------------
    def set_mask(self, name: str, mask: Tensor) -> None:
        p = self.params[name]
        if mask.shape != p.shape:
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, weight has {tuple(p.shape)}")
        mask = mask.to(device=p.device, dtype=torch.bool)
        if not self.blocks_of(name).is_blocked(mask):
            raise ValueError(f"mask for {name!r} is not made of {self.blocks} blocks")
        old = self.masks.get(name)
        if old is not None:
            gone = old & ~mask
            self.deactivated[name] = gone if name not in self.deactivated else self.deactivated[name] | gone
        self.masks[name] = mask
        self._factors[name] = mask.to(p.dtype)
        prev = self.ever_active.get(name)
        self.ever_active[name] = mask.clone() if prev is None else prev | mask

    def active_index(self, name: str) -> Tensor:
        """Layer ``name``'s active entries as indices into its flattened weight (int64, ascending),
        kept until its mask is replaced or changed in place: the steps that touch active weights
        only (sparsegan.sparse_compute) gather and scatter through it."""
        mask = self.masks[name]
        kept = self._indices.get(name)  # (the mask itself, held so that its id cannot be reused; its version)
        if kept is None or kept[0] is not mask or kept[1] != mask._version:
            kept = self._indices[name] = (mask, mask._version, mask.reshape(-1).nonzero().squeeze(1))
        return kept[2]

    def factor(self, name: str) -> Tensor:
        """Layer ``name``'s mask in its weight's dtype (1 active, 0 inactive): multiplying by it is
        several times faster than by the bool mask on the CPU."""
        return self._factors[name]

    def restart_history(self, names: Iterable[str] | None = None) -> None:
        """Forget which weights were ever active (ITOP's record) for these layers (all by default):
        their history starts again from the current masks (a transferred ticket, a drawn early-bird
        ticket: the topology the run really starts exploring from)."""
        for name in self.masks if names is None else names:
            self.ever_active[name] = self.masks[name].clone()

    def take_deactivated(self) -> dict[str, Tensor]:
        """The entries deactivated since the last call, and forget them: the engine zeroes their
        optimizer history after each topology change (sparsegan.engine)."""
        out, self.deactivated = self.deactivated, {}
        return out

    # --- the two things done every step -------------------------------------------------
    @torch.no_grad()
    def apply_(self) -> None:
        """Zero every inactive weight."""
        for name, p in self.params.items():
            p.mul_(self._factors[name])

    @torch.no_grad()
    def mask_grads_(self) -> None:
        """Zero the gradients of inactive weights so the optimizer only moves active ones."""
        for name, p in self.params.items():
            if p.grad is not None:
                p.grad.mul_(self._factors[name])

    # --- statistics ---------------------------------------------------------------------
    def numel(self) -> int:
        return sum(m.numel() for m in self.masks.values())

    def active(self) -> int:
        return self._active.total()

    def density(self) -> float:
        return self.active() / self.numel()

    def layer_active(self) -> dict[str, int]:
        return {n: self._active[n] for n in self.masks}

    def itop_rate(self) -> float:
        """In-Time Over-Parameterization exploration rate: weights ever active / prunable weights."""
        return self._ever.total() / self.numel()

    def checksum(self) -> int:
        """Order-sensitive checksum of the masks (for cross-rank agreement checks)."""
        total = 0
        for i, (n, m) in enumerate(self.masks.items()):
            idx = torch.nonzero(m.reshape(-1)).reshape(-1).to(torch.float64)
            total += int(((idx + 1) * (i + 1)).sum().item()) % (2**61 - 1)
        return total % (2**61 - 1)

    # --- persistence --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        out = {f"mask.{n}": m.cpu() for n, m in self.masks.items()}
        out.update({f"ever.{n}": m.cpu() for n, m in self.ever_active.items()})
        return out

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        missing = [n for n in self.params if f"mask.{n}" not in state]
        if missing:
            raise KeyError(f"mask state lacks {missing}")
        for n in self.params:
            self.ever_active.pop(n, None)
            self.masks.pop(n, None)
            self.set_mask(n, state[f"mask.{n}"])
            self.ever_active[n] = state[f"ever.{n}"].to(self.masks[n].device, torch.bool).clone()

    def names(self) -> Iterable[str]:
        return self.params.keys()
