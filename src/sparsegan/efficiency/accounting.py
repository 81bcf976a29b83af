"""Per-layer parameters and forward FLOPs of any generator / discriminator (or a diffusion model's
denoiser: one call of it per sample, the sampler's cost being NFE of them), from its masks.

Conventions (stated once, used everywhere in sparsegan):

* A multiply-add counts as **2 FLOPs**. A bias add, and a norm layer's per-element scale and
  shift (statistics folded in), count 1 FLOP per output element each.
* Activations, pooling, up-sampling, residual adds and the spectral-norm power iteration are not
  counted: they are element-wise and small next to the weight products.
* Sparse FLOPs of a layer = its weight FLOPs x the density of its weight (the fraction of active
  entries), plus its dense bias / norm FLOPs. This is what RigL and the sparse-GAN papers report.

The counter is generic: it runs one tiny real forward (eval mode, no grad, batch 2) with forward
hooks on every Linear, Conv*, ConvTranspose*, norm and embedding layer, so a newly registered model
is counted without changes here. Embeddings are lookups: parameters, no FLOPs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from sparsegan.sparsity import prunable_parameters

_LINEAR = (nn.Linear,)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONVT = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORM = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_EMBED = (nn.Embedding,)
COUNTED = _LINEAR + _CONV + _CONVT + _NORM + _EMBED
PROBE_BATCH = 2


@dataclass
class LayerCount:
    """One counted layer of one net; FLOPs are per sample, per forward pass."""

    net: str
    name: str  # module name inside the net ("" for params outside every counted layer)
    kind: str  # class name, or "other"
    weight: str | None  # the prunable weight's parameter name, None when the layer has none
    params: int  # every parameter of the layer (weight, bias, norm gains, embeddings)
    prunable: int
    active: int
    weight_flops: float  # dense FLOPs of the weight product (the part sparsity removes)
    other_flops: float  # bias adds and norm scale/shift, never sparse
    calls: int = 0

    @property
    def density(self) -> float:
        return self.active / self.prunable if self.prunable else 1.0

    @property
    def dense_flops(self) -> float:
        return self.weight_flops + self.other_flops

    @property
    def sparse_flops(self) -> float:
        return self.weight_flops * self.density + self.other_flops

    def to_dict(self) -> dict:
        return asdict(self) | {"density": self.density, "dense_flops": self.dense_flops,
                               "sparse_flops": self.sparse_flops}


def _flops_of(module: nn.Module, inp: Tensor, out: Tensor) -> tuple[float, float]:
    """(weight FLOPs, other FLOPs) of one call, for the whole batch."""
    if isinstance(module, _LINEAR):
        rows = out.numel() // module.out_features
        w = 2.0 * module.in_features * module.out_features * rows
        return w, float(out.numel()) if module.bias is not None else 0.0
    if isinstance(module, _CONV):
        per_out = module.in_channels // module.groups * math.prod(module.kernel_size)
        return 2.0 * out.numel() * per_out, float(out.numel()) if module.bias is not None else 0.0
    if isinstance(module, _CONVT):
        # Every input element is scattered through a (C_out / groups) x kernel patch.
        per_in = module.out_channels // module.groups * math.prod(module.kernel_size)
        return 2.0 * inp.numel() * per_in, float(out.numel()) if module.bias is not None else 0.0
    if isinstance(module, _NORM):
        return 0.0, 2.0 * out.numel()
    return 0.0, 0.0  # embeddings: lookups


def _probe_inputs(G: nn.Module, batch: int, device) -> tuple[Tensor, Tensor | None]:
    z = torch.randn(batch, int(G.z_dim), generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.zeros(batch, dtype=torch.long, device=device) if getattr(G, "num_classes", 0) else None
    return z, y


def _device_of(module: nn.Module):
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def _hooked_forward(nets: Mapping[str, nn.Module], batch: int) -> dict[str, dict[str, list]]:
    """Run G (and D on G's output) once with hooks; {net: {module name: [calls, wflops, oflops]}}."""
    counts: dict[str, dict[str, list]] = {net: {} for net in nets}
    handles, modes = [], {}
    for net, module in nets.items():
        modes[net] = [(m, m.training) for m in module.modules()]
        module.eval()  # no BN statistics updated, no spectral-norm power iteration
        for name, m in module.named_modules():
            if isinstance(m, COUNTED):
                def hook(mod, args, out, net=net, name=name):
                    inp = args[0] if args else out
                    o = out[0] if isinstance(out, tuple) else out
                    w, other = _flops_of(mod, inp, o)
                    c = counts[net].setdefault(name, [0, 0.0, 0.0])
                    c[0] += 1
                    c[1] += w / batch
                    c[2] += other / batch

                handles.append(m.register_forward_hook(hook))
    try:
        G = nets["G"]
        if hasattr(G, "directions"):  # a translation pair: each generator, then each critic, once per sample
            gen = torch.Generator().manual_seed(0)
            x = torch.rand(batch, G.channels, G.resolution, G.resolution, generator=gen) * 2 - 1
            fakes = {d: G(x.to(_device_of(G)), d) for d in G.directions}  # "ab" makes domain b's images
            if "D" in nets:
                for d, fake in fakes.items():
                    nets["D"](fake.to(_device_of(nets["D"])), d[-1])
            return counts
        if hasattr(G, "denoiser"):  # a diffusion model: one denoiser call per sample (sampling takes NFE of them)
            x = G.sample_z(batch, torch.Generator().manual_seed(0), _device_of(G))
            G.denoiser(x, torch.full((batch,), G.alpha_bar.numel() - 1, dtype=torch.long, device=x.device))
            return counts
        z, y = _probe_inputs(G, batch, _device_of(G))
        x = G(z) if y is None else G(z, y)
        if isinstance(x, tuple):
            x = x[0]
        if "D" in nets:
            D = nets["D"]
            x = x.to(_device_of(D))
            D(x) if y is None else D(x, y)
    finally:
        for h in handles:
            h.remove()
        for pairs in modes.values():
            for m, was_training in pairs:
                m.training = was_training
    return counts


def layer_counts(
    nets: Mapping[str, nn.Module],
    masks: Mapping[str, Mapping[str, Tensor]] | None = None,
    *,
    scope: str = "all",
    densities: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, list[LayerCount]]:
    """Per-layer counts of ``nets`` ({"G": G, "D": D}; D optional). Active weights come from
    ``masks`` ({net: {param name: bool mask}}), or from ``densities`` ({net: {param name: density}}),
    or are read off the weights themselves (non-zero entries) when neither is given."""
    calls = _hooked_forward(nets, PROBE_BATCH)
    out: dict[str, list[LayerCount]] = {}
    for net, module in nets.items():
        prunable = prunable_parameters(module, scope)
        name_of = {id(p): n for n, p in module.named_parameters()}
        net_masks = (masks or {}).get(net)
        net_dens = (densities or {}).get(net)

        def active_of(pname: str, p: Tensor) -> int:
            if net_masks is not None and pname in net_masks:
                return int(net_masks[pname].sum())
            if net_dens is not None and pname in net_dens:
                return round(net_dens[pname] * p.numel())
            if net_masks is None and net_dens is None:
                return int((p != 0).sum())
            return p.numel()

        rows, seen = [], set()
        for name, m in module.named_modules():
            if not isinstance(m, COUNTED):
                continue
            own = [p for p in m.parameters() if id(p) not in seen]
            seen.update(id(p) for p in own)
            weight = next((name_of[id(p)] for p in own if name_of[id(p)] in prunable), None)
            n_prunable = prunable[weight].numel() if weight else 0
            c = calls.get(net, {}).get(name, [0, 0.0, 0.0])
            rows.append(LayerCount(
                net=net, name=name, kind=type(m).__name__, weight=weight,
                params=sum(p.numel() for p in own), prunable=n_prunable,
                active=active_of(weight, prunable[weight]) if weight else 0,
                weight_flops=c[1], other_flops=c[2], calls=c[0],
            ))
        rest = [(n, p) for n, p in module.named_parameters() if id(p) not in seen]
        if rest:  # parameters outside every counted layer (custom layers): counted, never pruned
            extra = [n for n, _ in rest if n in prunable]
            rows.append(LayerCount(
                net=net, name="(other)", kind="other", weight=None, params=sum(p.numel() for _, p in rest),
                prunable=sum(prunable[n].numel() for n in extra),
                active=sum(active_of(n, prunable[n]) for n in extra), weight_flops=0.0, other_flops=0.0,
            ))
        out[net] = rows
    return out


def net_totals(rows: list[LayerCount]) -> dict[str, float]:
    """params (total / prunable / active) and per-sample forward FLOPs (dense / sparse) of a net."""
    prunable = sum(r.prunable for r in rows)
    active = sum(r.active for r in rows)
    total = sum(r.params for r in rows)
    dense = sum(r.dense_flops for r in rows)
    sparse = sum(r.sparse_flops for r in rows)
    return {
        "params": total, "prunable": prunable, "active_prunable": active,
        "active": total - prunable + active, "density": active / prunable if prunable else 1.0,
        "dense_flops": dense, "sparse_flops": sparse,
        "weight_flops": sum(r.weight_flops for r in rows),
        "sparse_weight_flops": sum(r.weight_flops * r.density for r in rows),
        "relative_flops": sparse / dense if dense else 1.0,
    }


@torch.no_grad()
def call_multiply_adds(module: nn.Module, *args) -> tuple[float, float]:
    """(dense, sparse) weight multiply-adds of the one call ``module(*args)``, whole batch: every
    Linear / Conv / ConvTranspose product, the sparse count at the fraction of non-zero entries of
    its weight (masked weights are zero). Counted on the call itself, not on a probe forward, so a
    translation pair's one direction is counted once and the batch is the caller's."""
    dense, sparse = [0.0], [0.0]

    def hook(mod, inp, out):
        w, _ = _flops_of(mod, inp[0] if inp else out, out[0] if isinstance(out, tuple) else out)
        weight = mod.weight  # after any spectral-norm pre-hook: zeros stay zeros
        dense[0] += w / 2
        sparse[0] += w / 2 * float((weight != 0).sum()) / weight.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, _LINEAR + _CONV + _CONVT)]
    try:
        module(*args)
    finally:
        for h in handles:
            h.remove()
    return dense[0], sparse[0]
