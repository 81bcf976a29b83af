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
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.methods.transfer import Ticket, TransferOptions, apply_ticket
from sparsegan.options import Options, compose, option
from sparsegan.registry import Registry
from sparsegan.sparsity import (
    DISTRIBUTIONS,
    RANKINGS,
    REGROWN_STATES,
    SCOPES,
    MaskSet,
    UpdateSchedule,
    output_axes,
    prunable_parameters,
)
from sparsegan.sparsity.blocks import Blocks


# --- the options several methods share (a method's own live in its module) ------------------
@dataclass
class SparsityOptions(Options):
    """Every method: how masks are laid out (the targets are the method's ``targets``)."""

    title: ClassVar[str] = "sparsity (every method)"
    distribution: str = option("erk", "layer-wise sparsity distribution of the initial masks (and of pf / gmp / "
                               "early_bird with --ranking distribution)", choices=lambda: sorted(DISTRIBUTIONS))
    erk_power_scale: float = option(1.0, "ERK exponent (< 1 softens the allocation)")
    prunable: str = option("all", "prunable weights: all Linear/Conv/ConvTranspose, or conv only (paper)",
                           choices=lambda: list(SCOPES))
    mask_gradients: bool = option(True, "zero the gradients of inactive weights (reference code: no; inactive "
                                  "weights are then re-zeroed after every step)")


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
    update_interval: int | None = option(None, "topology update every this many completed G steps (Delta T; "
                                         "fixed-mask methods write their topology records at this cadence); default: "
                                         "stu / adapt --steps / 10, at most 1000; other methods 1000")
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
        "step)", choices=REGROWN_STATES)

@dataclass
class RankingOptions(Options):
    """One-shot and gradual magnitude pruning (pf, gmp, early_bird)."""

    title: ClassVar[str] = "magnitude ranking"
    ranking: str = option("uniform", "pf / gmp / early_bird magnitude pruning across layers: uniform (every layer "
                          "at the same density, the papers' 'uniform'), distribution (per-layer counts from "
                          "--distribution) or global (one ranking over all of a net's layers)", choices=RANKINGS)

    def validate(self) -> None:
        if self.ranking == "layer":
            raise UserError("--ranking layer is gone (it meant per-layer counts from --distribution, not the "
                            "papers' 'uniform'); use uniform (same density in every layer), distribution or global")


@dataclass
class PruneNetsOptions(Options):
    """The methods that prune a trained net (pf, imp): which nets."""

    title: ClassVar[str] = "pruned nets"
    prune_nets: str = option("G", "pf / imp: prune G only or G and D", choices=("G", "GD"), nets=True)


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
    #: Masks (and weights) to start from instead of the method's own (ticket transfer), or None.
    ticket: Ticket | None = None


class Method:
    """Static sparse training: masks drawn once at init, never changed. Others override a hook.

    A method is built from its nets' target sparsities, the training iterations its schedules span,
    and an options object holding exactly the option groups it declares (``options``;
    :meth:`options_type` builds it, every field at its default unless given). It reads nothing else.
    """

    name = "static"
    #: The option groups this method takes (an option of another group has no effect for it).
    options: tuple[type[Options], ...] = (SparsityOptions, BlockOptions, ScheduleOptions, TransferOptions)
    supports_autoencoders = True
    #: Whether the masks are enforced on weights and gradients (dense: bookkeeping only; early-bird:
    #: only once the ticket is drawn).
    enforce_masks = True

    def __init__(self, targets: Mapping[str, float], steps: int, options: Options | None = None):
        kind = self.options_type()
        if options is None:
            options = kind()
        if not isinstance(options, kind):
            raise TypeError(f"method {self.name!r} is built from a {kind.__name__} "
                            f"({type(self).__name__}.options_type()), not a {type(options).__name__}")
        self.opts = options
        # The nets (in training order) and their target sparsities: a GAN's G and D, or any named nets.
        self.nets: tuple[str, ...] = tuple(targets)
        self.targets: dict[str, float] = {n: float(s) for n, s in targets.items()}
        self.steps = int(steps)
        self.ctx: MethodContext | None = None
        self.masks: dict[str, MaskSet] = {}
        self.schedule = self.make_schedule()
        self._dense_grads: dict[str, dict[str, Tensor]] = {}
        self._records: list[dict[str, Any]] = []

    @classmethod
    def options_type(cls) -> type[Options]:
        """The dataclass of this method's options: the fields of its ``options`` groups, no others."""
        if "_options_type" not in cls.__dict__:
            cls._options_type = compose(f"{cls.__name__}Options", cls.options)
        return cls._options_type

    @classmethod
    def default_update_interval(cls, steps: int) -> int:
        """Delta T when none is given. The fixed-mask methods only write their topology records at
        this cadence: every 1000 G steps, as they always have."""
        return 1000

    def delta_t(self, given: int | None) -> int:
        """Delta T: ``given`` (--update-interval), or this method's default for the run's steps."""
        return self.default_update_interval(self.steps) if given is None else given

    def make_schedule(self) -> UpdateSchedule | None:
        """The Delta T schedule (topology records at its cadence; a method on a schedule of its own
        overrides this with None)."""
        return UpdateSchedule(interval=self.delta_t(self.opts.update_interval), total_steps=self.steps,
                              initial_fraction=0.0, final_fraction=0.0, end_step=self.opts.update_end)

    def steps_spanned(self) -> str | None:
        """How this method's schedule depends on the run's ``steps`` (a clause, e.g. "the prune fraction
        decays (cosine) over --steps"), or None when a shorter run is exactly the first steps of a
        longer one: resuming a run with fewer ``--steps`` than it was started with is refused for a
        method whose schedule spans them."""
        return None

    # --- which given options have no effect (the command line refuses or records them) --------
    @classmethod
    def distribution_unused(cls, values: Mapping[str, Any]) -> str | None:
        """Why --distribution / --erk-power-scale do nothing for this method given the other
        ``values`` (a reason appended to "has no effect with --method NAME"), or None when they
        shape its masks (the methods that draw initial masks do)."""
        return None

    @classmethod
    def ineffective(cls, values: Mapping[str, Any], given: set[str]) -> dict[str, str]:
        """The options among ``given`` that this method takes but that have no effect with the other
        ``values`` (the run's flat options by name), each with the reason. The options of groups it
        does not take are the caller's to find (``options``)."""
        out: dict[str, str] = {}
        if PruneNetsOptions in cls.options and values.get("prune_nets") == "G" and "sparsity_d" in given \
                and values.get("sparsity_d", 0) > 0:
            out["sparsity_d"] = (f"has no effect with --method {cls.name} --prune-nets G (D stays dense); "
                                 "add --prune-nets GD to prune D too")
        if TransferOptions in cls.options and "masks_with_weights" in given and values.get("masks_with_weights") \
                and values.get("masks_from") is None:
            out["masks_with_weights"] = "has no effect without --masks-from"
        why = cls.distribution_unused(values)
        if why is not None:
            for name in ("distribution", "erk_power_scale"):
                if name in given:
                    out[name] = f"has no effect with --method {cls.name}{why}"
        return out

    # --- set-up ------------------------------------------------------------------------
    def target_sparsity(self, net: str) -> float:
        return self.targets.get(net, 0.0)

    def setup(self, ctx: MethodContext) -> None:
        """Draw the initial masks (ERK by default, exact counts), take a ticket's instead where one
        is given, and zero inactive weights."""
        self.ctx = ctx
        for net in self.nets:
            self.masks[net] = self.initial_masks(net, prunable_parameters(ctx.nets[net], self.opts.prunable))
        if ctx.ticket is not None:
            self.emit(apply_ticket(ctx.ticket, self.masks, ctx.nets))
        if self.enforce_masks:
            for m in self.masks.values():
                m.apply_()

    def initial_masks(self, net: str, params: dict[str, nn.Parameter]) -> MaskSet:
        s = self.target_sparsity(net)
        if s == 0.0:
            return MaskSet.dense(params, **self.layout(net))
        return MaskSet.random(
            params, s, self.opts.distribution, power_scale=self.opts.erk_power_scale, generator=self.ctx.generator,
            **self.layout(net),
        )

    @property
    def blocks(self) -> Blocks:
        """The mask granularity (--mask-block), for the methods that take it."""
        return Blocks.parse(self.opts.mask_block)

    def layout(self, net: str) -> dict[str, Any]:
        """The block layout of ``net``'s masks (set-up only): ``MaskSet(..., **self.layout(net))``."""
        return {"blocks": self.blocks, "out_axes": output_axes(self.ctx.nets[net])}

    def phases(self) -> list[dict[str, Any]]:
        """Training phases of this method outside the loop's steps (SNIP's probes), for FLOPs
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
        if self.schedule is None or not self.schedule.is_update_step(step):
            return []
        return [self.event(net) for net in self.nets]

    def observe_balance(self, step: int, ratio: float) -> None:
        """ADAPT's balance ratio measured at iteration ``step`` (``SparseTraining.observe_balance``)."""

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

    options = Method.options
