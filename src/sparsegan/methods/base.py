"""A method is a small object the training loop calls at a few points.

The engine (:class:`sparsegan.engine.SparseTraining`) owns the nets, their optimizers and the
invariant that inactive weights stay exactly 0; a method owns the masks and decides when and how
they change. The engine calls, in this order:

    setup(ctx)                        draw the initial masks (and zero the inactive weights)
    capture_gradients(net, step)      before each optimizer step: keep a dense gradient if needed
    end_of_step(step, ...)            iteration ``step`` is complete: topology updates, their events

``step`` is the number of completed G updates once the current one is done (1-based).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.methods.transfer import TransferOptions
from sparsegan.options import Options, option
from sparsegan.registry import Registry
from sparsegan.sparsity import MaskSet, UpdateSchedule, output_axes, prunable_parameters
from sparsegan.sparsity.blocks import Blocks


# --- the options several methods share (a method's own live in its module) ------------------
@dataclass
class SparsityOptions(Options):
    """Every method: the targets and the masks' layout."""

    title: ClassVar[str] = "sparsity (every method)"
    sparsity_g: float = option(0.9, "generator sparsity: fraction of zeros among G's prunable weights")
    sparsity_d: float = option(0.5, "discriminator sparsity")
    distribution: str = option("erk", "layer-wise sparsity distribution of the initial masks (and of pf / gmp / "
                               "early_bird with --ranking distribution)", choices="distribution")
    erk_power_scale: float = option(1.0, "ERK exponent (< 1 softens the allocation)")
    prunable: str = option("all", "prunable weights: all Linear/Conv/ConvTranspose, or conv only (paper)",
                           choices="prunable")
    mask_gradients: bool = option(True, "zero the gradients of inactive weights (reference code: no; inactive "
                                  "weights are then re-zeroed after every step)")

    def validate(self) -> None:
        self.require_fraction("sparsity_g")
        self.require_fraction("sparsity_d")


@dataclass
class BlockOptions(Options):
    """The methods whose masks can be made of blocks (every sparse method)."""

    title: ClassVar[str] = "mask granularity"
    mask_block: str = option("1x1", "keep and prune weights in RxC blocks of each weight's out x in matrix view "
                             "(out x in for Linear, out x in*k*k for convs and transposed convs), e.g. 4x1 (4 "
                             "outputs sharing an input: the sparse runtime's blocked kernel); 1x1: weight by "
                             "weight")

    def validate(self) -> None:
        try:
            Blocks.parse(self.mask_block)
        except ValueError as e:
            raise UserError(f"--mask-block: {e}") from None


@dataclass
class ScheduleOptions(Options):
    """The methods on the Delta T schedule (gmp and early_bird have schedules of their own)."""

    title: ClassVar[str] = "topology schedule"
    update_interval: int = option(1000, "topology update every this many completed G steps (Delta T; fixed-mask "
                                  "methods write their topology records at this cadence)")
    update_end: int | None = option(None, "last step at which the topology may change (default: whole run)")

    def validate(self) -> None:
        self.require_positive("update_interval")


@dataclass
class RegrowthStateOptions(Options):
    """The methods that change masks during training."""

    title: ClassVar[str] = "optimizer state at topology changes"
    regrown_state: str = option(
        "fresh", "optimizer history of a really new connection: fresh (this project's choice: a fresh weight's "
        "Adam history after one step, seeded from its gradient, so its first step is ~lr), zero (RigL: every slot "
        "zeroed; Adam's first step is then ~lr (1-b1)/sqrt(1-b2), 15.8 lr at betas 0.5/0.999), keep (the STU-GAN "
        "code: the stale history stays, removed weights keep theirs, inactive weights are re-zeroed after every "
        "step)", choices="regrown_state")

    def validate(self) -> None:
        from sparsegan.sparsity import REGROWN_STATES

        if self.regrown_state not in REGROWN_STATES:
            raise UserError(f"unknown regrown state {self.regrown_state!r}; valid: {', '.join(REGROWN_STATES)}")


@dataclass
class RankingOptions(Options):
    """One-shot and gradual magnitude pruning (pf, gmp, early_bird)."""

    title: ClassVar[str] = "magnitude ranking"
    ranking: str = option("uniform", "pf / gmp / early_bird magnitude pruning across layers: uniform (every layer "
                          "at the same density, the papers' 'uniform'), distribution (per-layer counts from "
                          "--distribution) or global (one ranking over all of a net's layers)", choices="ranking")

    def validate(self) -> None:
        if self.ranking == "layer":
            raise UserError("--ranking layer is gone (it meant per-layer counts from --distribution, not the "
                            "papers' 'uniform'); use uniform (same density in every layer), distribution or global")


@dataclass
class PruneNetsOptions(Options):
    """The methods that prune a trained net (pf, imp): which nets."""

    title: ClassVar[str] = "pruned nets"
    prune_nets: str = option("G", "pf / imp: prune G only or G and D", choices="prune_nets")


NETS = ("G", "D")  # the nets of the built-in GAN loop (an autoencoder's decoder and encoder play them)


def requested_nets(spec) -> list[str]:
    """The nets an option names: "G", "D" or "GD" (the CLI's GAN spellings: each letter a net), a
    comma-separated string or a sequence of names."""
    if isinstance(spec, str):
        return spec.split(",") if "," in spec else (list(spec) if spec and set(spec) <= {"G", "D"} else [spec])
    return list(spec)


def net_names(spec, nets) -> tuple[str, ...]:
    """The nets among ``nets`` (in their order) that an option names (:func:`requested_nets`)."""
    names = requested_nets(spec)
    return tuple(n for n in nets if n in names)


@dataclass
class TopologyEvent:
    """What one topology update (or check) did to one net; becomes a kind=topology record."""

    net: str
    density: float
    active: int
    pruned: int = 0
    grown: int = 0
    prune_fraction: float = 0.0
    itop_rate: float = 0.0
    grown_entries: dict[str, Tensor] = field(default_factory=dict, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "net": self.net, "density": self.density, "active": self.active, "pruned": self.pruned,
            "grown": self.grown, "prune_fraction": self.prune_fraction, "itop_rate": self.itop_rate,
            **self.extra,
        }


@dataclass
class MethodContext:
    """What a method may use at set-up and at topology updates.

    ``loss_probe(net)`` returns that net's training loss (with its graph) on a fresh batch, for
    criteria that need gradients or Hessian-vector products (SNIP, GraSP).
    """

    nets: dict[str, nn.Module]
    generator: torch.Generator
    loss_probe: Callable[[str], Tensor]


class Method:
    """Static sparse training: masks drawn once at init, never changed. Others override a hook."""

    name = "static"
    #: The option groups this method takes (an option of another group has no effect for it).
    options: tuple[type[Options], ...] = (SparsityOptions, ScheduleOptions, TransferOptions)
    supports_autoencoders = True
    #: Whether the masks are enforced on weights and gradients (dense: bookkeeping only; early-bird:
    #: only once the ticket is drawn).
    enforce_masks = True

    def __init__(self, cfg: Any):
        # ``cfg``: a sparsegan.config.TrainConfig (all option groups side by side, flat). A method
        # reads the fields of the groups in ``options`` (and the run's steps); it never builds one,
        # and this package does not import the config, which is assembled from its groups.
        self.cfg = cfg
        # The nets and their target sparsities: the GAN's G and D by default; the public API
        # (sparsegan.engine) gives any named nets through :meth:`use_nets` before set-up.
        self.nets: tuple[str, ...] = NETS
        self.targets: dict[str, float] = {"G": cfg.sparsity_g, "D": cfg.sparsity_d}
        self.ctx: MethodContext | None = None
        self.masks: dict[str, MaskSet] = {}
        self.schedule = UpdateSchedule(
            interval=cfg.update_interval, total_steps=cfg.steps,
            initial_fraction=cfg.prune_fraction, final_fraction=cfg.prune_fraction_final,
            end_step=cfg.update_end,
        )
        self._dense_grads: dict[str, dict[str, Tensor]] = {}
        self._records: list[dict[str, Any]] = []

    # --- set-up ------------------------------------------------------------------------
    def use_nets(self, targets: dict[str, float]) -> None:
        """Train these nets (name -> target sparsity, in this order) instead of the GAN's G and D."""
        self.nets, self.targets = tuple(targets), dict(targets)

    def target_sparsity(self, net: str) -> float:
        return self.targets.get(net, 0.0)

    def setup(self, ctx: MethodContext) -> None:
        """Draw the initial masks (ERK by default, exact counts) and zero inactive weights."""
        self.ctx = ctx
        for net in self.nets:
            self.masks[net] = self.initial_masks(net, prunable_parameters(ctx.nets[net], self.cfg.prunable))
        if self.cfg.masks_from is not None:
            from sparsegan.methods.transfer import load_ticket

            self.emit(load_ticket(self.cfg.masks_from, self.masks, ctx.nets, self.cfg.masks_with_weights))
        if self.enforce_masks:
            for m in self.masks.values():
                m.apply_()

    def initial_masks(self, net: str, params: dict[str, nn.Parameter]) -> MaskSet:
        s = self.target_sparsity(net)
        if s == 0.0:
            return MaskSet.dense(params, **self.layout(net))
        return MaskSet.random(
            params, s, self.cfg.distribution, power_scale=self.cfg.erk_power_scale, generator=self.ctx.generator,
            **self.layout(net),
        )

    @property
    def blocks(self) -> Blocks:
        """The mask granularity (--mask-block), for the methods that take it."""
        return Blocks.parse(getattr(self.cfg, "mask_block", "1x1")) if BlockOptions in self.options else Blocks()

    def layout(self, net: str) -> dict[str, Any]:
        """The block layout of ``net``'s masks (set-up only): ``MaskSet(..., **self.layout(net))``."""
        return {"blocks": self.blocks, "out_axes": output_axes(self.ctx.nets[net])}

    def phases(self) -> list[dict[str, Any]]:
        """Training phases outside this run's loop (e.g. PF's dense pre-training), for FLOPs
        accounting: [{"phase", "steps", "density": {"G", "D"}, "source"}]."""
        return []

    # --- per optimizer step ------------------------------------------------------------
    def wants_dense_grad(self, net: str, step: int) -> bool:
        return False

    def capture_gradients(self, net: str, step: int) -> None:
        """Keep the dense gradient of ``net`` when this step's topology update will need it (called
        by the engine before each optimizer step, before it masks the gradients)."""
        if not self.wants_dense_grad(net, step):
            return
        # D takes n_dis steps per G step: the last one's gradient is kept, in one buffer.
        kept = self._dense_grads.setdefault(net, {})
        for n, p in self.masks[net].params.items():
            if p.grad is None:
                kept.pop(n, None)
            elif n in kept and kept[n].shape == p.grad.shape:
                kept[n].copy_(p.grad)
            else:
                kept[n] = p.grad.detach().clone()

    # --- per completed G step ----------------------------------------------------------
    def end_of_step(
        self, step: int, optimizers: dict[str, torch.optim.Optimizer], generator: torch.Generator
    ) -> list[TopologyEvent]:
        """At each scheduled update step, report the (unchanged) topology of every net."""
        if not self.schedule.is_update_step(step):
            return []
        return [self.event(net) for net in self.nets]

    def observe_balance(self, step: int, ratio: float) -> None:
        """ADAPT's balance ratio, measured by the loop every ``balance_every`` G steps."""

    def drain_records(self) -> list[dict[str, Any]]:
        """Extra metrics.jsonl records (each with a "kind") produced since the last call."""
        out, self._records = self._records, []
        return out

    def emit(self, record: dict[str, Any]) -> None:
        self._records.append(record)

    def event(self, net: str, **kw) -> TopologyEvent:
        m = self.masks[net]
        return TopologyEvent(net=net, density=m.density(), active=m.active(), itop_rate=m.itop_rate(), **kw)

    # --- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"masks": {net: m.state_dict() for net, m in self.masks.items()},
                "enforce_masks": self.enforce_masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for net, m in self.masks.items():
            m.load_state_dict(state["masks"][net])
        self.enforce_masks = bool(state.get("enforce_masks", self.enforce_masks))


METHODS: Registry[type[Method]] = Registry("method")


@METHODS.register("static")
class Static(Method):
    """Static sparse training: the initial masks, kept."""

    options = (*Method.options, BlockOptions)
