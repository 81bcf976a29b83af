"""Training FLOPs of a whole run, relative to dense training of the same length.

What one iteration (one G update, ``n_dis`` D updates, batch ``b``) costs, with per-sample forward
FLOPs f_G, f_D at the nets' current densities (see :mod:`sparsegan.efficiency.accounting`):

* backward = 2 x forward (gradients w.r.t. activations and w.r.t. weights, each costing about one
  forward: the standard accounting of RigL, Evci et al. 2020, Appendix H);
* D step: G forward on b latents (no grad), D forward + backward on b real and b fake images:
  ``b f_G + 3 (2b) f_D``;
* G step on b_G latents (``g_batch_size``, default b; SNGAN: 128 vs D's 64): G forward, D forward,
  D backward w.r.t. its input only (D is frozen, so the loop computes no D weight gradients:
  1 x forward), G backward: ``3 b_G f_G + 2 b_G f_D``;
* a topology update that grows by gradient (RigL, STU-GAN) needs the *dense* weight gradient of
  the explored net once: its weight-gradient half of the backward is counted at dense cost on that
  step's batch (b for G, 2b for D), i.e. RigL's ``(3 f_S dT + 2 f_S + f_D) / (dT + 1)``;
* a loss probe (SNIP / GraSP scoring at init, the grasp criterion at an update) is one more
  computation of a net's training-loss gradient on a fresh batch: G's costs a G step
  (``3 b_G f_G + 2 b_G f_D``), D's a D step (``b f_G + 3 (2b) f_D``), an autoencoder's
  ``3 b (f_G + f_D)``, at the densities in force. SNIP takes one gradient per probe batch; GraSP's
  Hessian-gradient product H g takes the gradient with its graph and differentiates through it
  again, counted as 3 gradients (torch's FLOP counter measures 2.86 for an MLP: the input layer
  needs no input gradient, as the 2 x convention also ignores).

A run is a list of :class:`Phase` s: G iterations at given densities, plus the dense-gradient
updates in them. They are read from the run folder, never from the method's code:

* inside the loop: the kind=topology records of metrics.jsonl. Each record gives a net's density
  after the event ("density") and before it ("active" + "pruned" - "grown" over the same prunable
  count), so the loop's steps split into segments of constant density (static / STU-GAN: one
  segment; early-bird: dense until the ticket, then sparse; GMP, ADAPT: one segment per change).
  A record that pruned or grew weights counts as one dense-gradient update of its net when the
  run's criteria need a gradient, as each criterion declares (sparsity.criteria.criterion_needs),
  and, with the grasp pruning criterion, as ``--probe-batches`` GraSP probes of the explored net.
* outside the loop: summary.json "phases" (``Method.phases()``), e.g. the dense run that
  prune + fine-tune starts from, with its own ``batch_size`` / ``n_dis`` when given:
  ``[{"phase": "dense-pretrain", "steps": 2000, "density": {"G": 1.0, "D": 1.0}}]``, or SNIP's
  and GraSP's scoring at init, a phase of no steps with its loss probes in gradient equivalents:
  ``{"phase": "probe", "steps": 0, "density": {...}, "probes": {"G": 3, "D": 3}}``. Entries
  marked ``"within_run": true`` (early-bird's dense search) describe the loop itself and are
  already counted from its topology records. IMP's rounds are sub-run folders, each with its
  own "flops"; the chain lists its earlier rounds as phases at their masks' per-layer densities,
  so its count (and ``sparsegan flops`` on it) adds up the rounds' own.

``density`` per net is a float or {param name: density}. A float equal to the final masks'
density uses their per-layer pattern; 1.0 is dense; any other float is spread over the layers
with the run's distribution (ERK by default), the allocation the engine would draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from torch import Tensor, nn

from sparsegan.efficiency.accounting import LayerCount, layer_counts, net_totals
from sparsegan.models import MODEL_KIND
from sparsegan.sparsity import DISTRIBUTIONS, GROW_CRITERIA, PRUNE_CRITERIA, allocate_active_counts, prunable_parameters
from sparsegan.sparsity.criteria import criterion_needs

NETS = ("G", "D")
CONVENTION = ("FLOPs: multiply-add = 2; per sample forward; training: backward = 2 x forward "
              "(D frozen in the G step: 1 x), dense weight gradient at gradient-based topology updates")


@dataclass
class Phase:
    """``steps`` G iterations at ``density`` (per net: a float or {param: density})."""

    name: str
    steps: int
    density: dict[str, Any]
    dense_grad_updates: dict[str, int] = field(default_factory=dict)
    # batch_size / g_batch_size / n_dis of this phase where they differ from the run's (PF's dense run)
    overrides: dict[str, int] = field(default_factory=dict)
    # loss probes per net, in gradient equivalents (SNIP: 1 per batch, GraSP: 3; module docstring)
    probes: dict[str, float] = field(default_factory=dict)

    def record(self, start_step: int) -> dict[str, Any]:
        """The metrics.jsonl record that describes this phase."""
        return {"kind": "phase", "step": start_step, "name": self.name, "steps": self.steps,
                "density": self.density, "dense_grad_updates": self.dense_grad_updates}


def planned_densities(module: nn.Module, sparsity: float, distribution: str = "erk", *,
                      scope: str = "all", power_scale: float = 1.0) -> dict[str, float]:
    """Per-layer densities the engine allocates for ``sparsity`` (exact counts / numel)."""
    params = prunable_parameters(module, scope)
    if sparsity <= 0.0:
        return {n: 1.0 for n in params}
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}; valid: {', '.join(DISTRIBUTIONS)}")
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    numels = {n: p.numel() for n, p in params.items()}
    per_layer = DISTRIBUTIONS[distribution](shapes, sparsity, power_scale=power_scale)
    counts = allocate_active_counts(numels, per_layer, round((1.0 - sparsity) * sum(numels.values())))
    return {n: counts[n] / numels[n] for n in params}


class FlopModel:
    """Per-sample forward FLOPs of G and D at any per-layer densities, from one hooked forward."""

    def __init__(self, nets: Mapping[str, nn.Module], *, scope: str = "all", distribution: str = "erk",
                 power_scale: float = 1.0, masks: Mapping[str, Mapping[str, Tensor]] | None = None):
        self.nets, self.scope, self.distribution, self.power_scale = nets, scope, distribution, power_scale
        self.rows = layer_counts(nets, masks, scope=scope,
                                 densities={net: {} for net in nets} if masks is None else None)
        self.final = {net: {r.weight: r.density for r in rows if r.weight} for net, rows in self.rows.items()}

    def layer_densities(self, net: str, density: Any) -> dict[str, float]:
        if isinstance(density, Mapping):
            return {k: float(v) for k, v in density.items()}
        d = float(density)
        final = self.final[net]
        prunable = sum(r.prunable for r in self.rows[net])
        final_net = sum(final[r.weight] * r.prunable for r in self.rows[net] if r.weight) / max(prunable, 1)
        if d >= 1.0:
            return {n: 1.0 for n in final}
        if abs(d - final_net) <= 1.0 / max(prunable, 1) + 1e-9:
            return dict(final)
        return planned_densities(self.nets[net], 1.0 - d, self.distribution, scope=self.scope,
                                 power_scale=self.power_scale)

    def forward(self, net: str, density: Any) -> tuple[float, float, float]:
        """(forward FLOPs, weight FLOPs at this density, dense weight FLOPs) per sample; 0 for a net
        the model does not have (a diffusion model's D)."""
        if net not in self.rows:
            return 0.0, 0.0, 0.0
        dens = self.layer_densities(net, density)
        fwd = wsp = wdense = 0.0
        for r in self.rows[net]:
            d = dens.get(r.weight, 1.0) if r.weight else 1.0
            fwd += r.weight_flops * d + r.other_flops
            wsp += r.weight_flops * d
            wdense += r.weight_flops
        return fwd, wsp, wdense


def g_uses(kind: str, identity: bool = True) -> int:
    """Forward passes of G per sample in a G step: a translation pair runs both generators for the
    translation, the cycle and (when its loss is on) the identity; any other G once."""
    return (3 if identity else 2) if kind == "translation" else 1


def iteration_flops(fG: float, fD: float, batch_size: int, n_dis: int, g_batch_size: int | None = None,
                    kind: str = "gan", identity: bool = True) -> float:
    """FLOPs of one G iteration (n_dis D steps on ``batch_size`` real + fake images, one G step on
    ``g_batch_size`` latents, default the same); see the module docstring. For a VAE / AE
    (``kind`` "vae" / "ae": G is the decoder, D the encoder) an iteration is one joint forward and
    backward of both on ``batch_size`` images: ``3 b (f_G + f_D)``; for a diffusion model (f_G: one
    denoiser call, no D) one forward and backward of the denoiser: ``3 b f_G``. For a translation pair (f_G:
    both generators once, f_D: both critics once, per image pair): the generators' step runs G
    ``u`` = 3 times (translation, cycle, identity; 2 without identity) and D once with input
    gradients, the critics' step D twice (real, pooled fake): ``3 u b f_G + 2 b f_D + 6 b f_D``."""
    b, bg = batch_size, g_batch_size or batch_size
    if kind == "translation":
        return 3 * g_uses(kind, identity) * b * fG + 8 * b * fD
    if kind != "gan":
        return 3 * b * (fG + fD)
    d_step = b * fG + 3 * (2 * b) * fD
    g_step = 3 * bg * fG + 2 * bg * fD
    return n_dis * d_step + g_step


#: Gradient computations of a net's training loss per probe batch, by what a criterion needs.
PROBE_GRADIENTS = {"gradient": 1, "hessian-gradient": 3}


def probe_flops(net: str, fG: float, fD: float, batch_size: int, g_batch_size: int | None = None,
                kind: str = "gan", identity: bool = True) -> float:
    """FLOPs of one gradient of ``net``'s training loss on a fresh batch (one gradient equivalent)."""
    b, bg = batch_size, g_batch_size or batch_size
    if kind == "translation":  # G: the generators' step; D: fakes without a graph, then the critics' step
        return 3 * g_uses(kind, identity) * b * fG + 2 * b * fD if net == "G" else b * fG + 6 * b * fD
    if kind != "gan":
        return 3 * b * (fG + fD)
    return 3 * bg * fG + 2 * bg * fD if net == "G" else b * fG + 3 * (2 * b) * fD


def training_flops(fm: FlopModel, phases: list[Phase], *, batch_size: int, n_dis: int,
                   dense_steps: int, g_batch_size: int | None = None, kind: str = "gan",
                   identity: bool = True) -> dict[str, Any]:
    """Total training FLOPs of ``phases`` and of dense training for ``dense_steps`` iterations."""
    out_phases, total = [], 0.0
    for ph in phases:
        fG, wG, wG_dense = fm.forward("G", ph.density.get("G", 1.0))
        fD, wD, wD_dense = fm.forward("D", ph.density.get("D", 1.0))
        b = ph.overrides.get("batch_size", batch_size)
        bg = ph.overrides.get("g_batch_size", g_batch_size if "batch_size" not in ph.overrides else None)
        nd = ph.overrides.get("n_dis", n_dis)
        flops = ph.steps * iteration_flops(fG, fD, b, nd, bg, kind, identity)
        # The dense weight gradient at each gradient-based update (RigL): dense instead of sparse,
        # for every sample the net's weights saw in that step.
        b_g, b_d = {"gan": (bg or b, 2 * b), "translation": (g_uses(kind, identity) * b, 2 * b)}.get(kind, (b, b))
        extra = ph.dense_grad_updates.get("G", 0) * b_g * (wG_dense - wG)
        extra += ph.dense_grad_updates.get("D", 0) * b_d * (wD_dense - wD)
        probes = sum(n * probe_flops(net, fG, fD, b, bg, kind, identity) for net, n in ph.probes.items())
        total += flops + extra + probes
        out_phases.append({"name": ph.name, "steps": ph.steps, "flops": flops + extra + probes,
                           "dense_grad_flops": extra, "dense_grad_updates": dict(ph.dense_grad_updates),
                           **({"probe_flops": probes, "probes": dict(ph.probes)} if ph.probes else {}),
                           "forward": {"G": fG, "D": fD}})
    fG1, _, _ = fm.forward("G", 1.0)
    fD1, _, _ = fm.forward("D", 1.0)
    dense = dense_steps * iteration_flops(fG1, fD1, batch_size, n_dis, g_batch_size, kind, identity)
    return {"total": total, "dense": dense, "relative": total / dense if dense else 1.0, "kind": kind,
            "steps": sum(p.steps for p in phases), "dense_steps": dense_steps, "phases": out_phases}


def _grad_based(kind: str, name: Any) -> bool:
    """Whether a criterion reads a gradient at the update (as each declares, sparsity.criteria); a
    GraSP update counts as one dense-gradient update, plus its loss probes (:func:`_probes_in`)."""
    return isinstance(name, str) and name in (PRUNE_CRITERIA if kind == "prune" else GROW_CRITERIA) \
        and criterion_needs(kind, name) is not None


def _needs_dense_grad(config: Mapping[str, Any]) -> bool:
    return _grad_based("grow", config.get("grow")) or _grad_based("prune", config.get("prune_criterion"))


def _updates_in(records: list[dict], lo: int, hi: int, config: Mapping[str, Any]) -> dict[str, int]:
    """Topology records in (lo, hi] that needed a dense gradient: a regrowth by a gradient-based
    criterion, or a pruning by one (a magnitude pruning, e.g. drawing a ticket, needs none)."""
    grow_grad = _grad_based("grow", config.get("grow"))
    prune_grad = _grad_based("prune", config.get("prune_criterion"))
    counts = {net: 0 for net in NETS}
    for r in records:
        if lo < int(r["step"]) <= hi and ((grow_grad and r.get("grown", 0)) or (prune_grad and r.get("pruned", 0))):
            counts[r["net"]] += 1
    return {k: v for k, v in counts.items() if v}


def _probes_in(records: list[dict], lo: int, hi: int, config: Mapping[str, Any]) -> dict[str, float]:
    """Loss probes in (lo, hi]: with a pruning criterion that scores by loss probes (grasp's H g),
    each prune-and-regrow of an explored net took ``probe_batches`` of them (ADAPT's changes of D's
    density, records with an "adapt" key, rank by magnitude and gradient)."""
    crit = config.get("prune_criterion")
    if not _grad_based("prune", crit) or criterion_needs("prune", crit) != "hessian-gradient":
        return {}
    per_update = PROBE_GRADIENTS["hessian-gradient"] * int(config.get("probe_batches", 1))
    counts: dict[str, float] = {}
    for r in records:
        if lo < int(r["step"]) <= hi and r.get("pruned", 0) and "adapt" not in r:
            counts[r["net"]] = counts.get(r["net"], 0) + per_update
    return counts


def _density_before(r: Mapping[str, Any]) -> float:
    d, active = float(r["density"]), int(r.get("active", 0))
    if d <= 0 or not active:
        return d
    prunable = active / d
    return (active + int(r.get("pruned", 0)) - int(r.get("grown", 0))) / prunable


def phases_of_run(config: Mapping[str, Any], records: list[dict], final_density: Mapping[str, Any],
                  steps_done: int, external: list[Mapping[str, Any]] | None = None,
                  final_net_density: Mapping[str, float] | None = None) -> list[Phase]:
    """The phases of a run: ``external`` ones (summary.json "phases"), then the loop's segments of
    constant density, split at the topology records (see the module docstring)."""
    phases = []
    for e in external or []:
        if e.get("within_run") or not isinstance(e.get("steps"), int):
            # Within-run phases (early-bird's dense search) are already in the loop's segments;
            # a phase of unknown length cannot be counted.
            continue
        phases.append(Phase(str(e.get("phase", e.get("name", "external"))), int(e["steps"]),
                            dict(e.get("density", {"G": 1.0, "D": 1.0})), dict(e.get("dense_grad_updates", {})),
                            {k: e[k] for k in ("batch_size", "g_batch_size", "n_dis") if e.get(k)},
                            dict(e.get("probes", {}))))
    nets = tuple(n for n in NETS if n in final_density)  # G and D, or a diffusion model's G alone
    topo = sorted((r for r in records if r.get("kind") == "topology" and r.get("net") in nets
                   and "density" in r and 0 < int(r.get("step", 0)) <= steps_done), key=lambda r: int(r["step"]))
    if not _needs_dense_grad(config):
        grad_records: list[dict] = []
    else:
        grad_records = topo
    final_net = dict(final_net_density or {})

    def resolve(net: str, d: float) -> Any:
        # A density equal to the final masks' keeps their per-layer pattern.
        return final_density[net] if net in final_net and abs(d - final_net[net]) < 1e-9 else d

    # Density in force on each net from the start, and its changes (step -> density after).
    current = {net: final_density[net] for net in nets}
    first = {}
    for r in topo:
        first.setdefault(r["net"], r)
    changes: dict[int, dict[str, float]] = {}
    for net in nets:
        if net in first:
            current[net] = resolve(net, _density_before(first[net]))
    for r in topo:
        after = float(r["density"])
        changes.setdefault(int(r["step"]), {})[r["net"]] = after
    name = str(config.get("method", "train"))
    start = 0
    for step in sorted(changes) + [steps_done]:
        if step > start:
            phases.append(Phase(name, step - start, dict(current), _updates_in(grad_records, start, step, config),
                                probes=_probes_in(topo, start, step, config)))
            start = step
        for net, after in changes.get(step, {}).items():
            current[net] = resolve(net, after)
    return _merge(phases)


def _merge(phases: list[Phase]) -> list[Phase]:
    """Adjacent phases with the same name and densities become one."""
    out: list[Phase] = []
    for p in phases:
        if out and out[-1].name == p.name and out[-1].density == p.density:
            q = out[-1]
            merged, probes = dict(q.dense_grad_updates), dict(q.probes)
            for k, v in p.dense_grad_updates.items():
                merged[k] = merged.get(k, 0) + v
            for k, v in p.probes.items():
                probes[k] = probes.get(k, 0) + v
            out[-1] = Phase(q.name, q.steps + p.steps, q.density, merged, probes=probes)
        else:
            out.append(p)
    return out


def flops_summary(nets: Mapping[str, nn.Module], masks: Mapping[str, Mapping[str, Tensor]],
                  config: Mapping[str, Any], records: list[dict], steps_done: int,
                  external: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """What summary.json carries under "flops": per-sample inference FLOPs and training totals."""
    fm = FlopModel(nets, scope=config.get("prunable", "all"), distribution=config.get("distribution", "erk"),
                   power_scale=float(config.get("erk_power_scale", 1.0)), masks=masks)
    inference, final_net = {}, {}
    for net in fm.rows:
        t = net_totals(fm.rows[net])
        inference[net] = {"dense": t["dense_flops"], "sparse": t["sparse_flops"], "relative": t["relative_flops"]}
        final_net[net] = t["density"]
    kind = MODEL_KIND.get(str(config.get("model")), "gan")
    phases = phases_of_run(config, records, fm.final, steps_done, external, final_net)
    train = training_flops(fm, phases, batch_size=int(config["batch_size"]), n_dis=int(config["n_dis"]),
                           dense_steps=int(config["steps"]), g_batch_size=config.get("g_batch_size"),
                           kind=kind, identity=float(config.get("lambda_identity", 0.0)) > 0)
    for p in train["phases"]:
        p.pop("forward")
    out = {"convention": CONVENTION, "inference_per_sample": inference, "train": train}
    if kind == "diffusion":
        out["sampling_per_image"] = sampling_flops(inference["G"], int(config.get("sample_steps") or 1))
    return out


def sampling_flops(denoiser: Mapping[str, float], nfe: int) -> dict[str, Any]:
    """A diffusion model's FLOPs per generated image: ``nfe`` denoiser calls (DDIM: one per step),
    each at ``denoiser``'s per-sample FLOPs ({"dense", "sparse"}); the sampler's own element-wise
    updates are not counted, by the convention that leaves out activations."""
    return {"nfe": nfe, "dense": nfe * denoiser["dense"], "sparse": nfe * denoiser["sparse"],
            "relative": denoiser["sparse"] / denoiser["dense"] if denoiser["dense"] else 1.0}


def rows_as_dicts(rows: Mapping[str, list[LayerCount]]) -> list[dict]:
    return [r.to_dict() for net in rows for r in rows[net]]


def human(x: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}" if not float(x).is_integer() else str(int(x))


__all__ = ["CONVENTION", "FlopModel", "Phase", "flops_summary", "human", "iteration_flops",
           "phases_of_run", "planned_densities", "rows_as_dicts", "training_flops"]
