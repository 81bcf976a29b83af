"""Sparse training inside your own training loop: the engine's public API.

The built-in ``sparsegan train`` loop is its first user; nothing it does to masks, weights or
optimizer state goes around it. A user's loop adds a few lines::

    from sparsegan import SparseTraining

    sparse = SparseTraining({"G": netG, "D": netD}, {"G": optG, "D": optD}, "stu",
                            sparsity={"G": 0.9, "D": 0.5}, steps=num_iterations, update_interval=500)
    ema = sparse.ema("G", beta=0.999)          # optional: the sparse EMA (SEMA) of G
    for i in range(num_iterations):
        ...; optD.step()                       # unchanged: the optimizer's hooks mask the gradients
        ...; optG.step()                       # of inactive weights and keep them exactly 0
        sparse.observe_balance(br)             # ADAPT only: the balance ratio of this iteration
        sparse.step()                          # one iteration done: topology updates when due
        ema.update(netG, sparse.completed)

What happens where:

* ``optimizer.step()`` (hooks registered here): before it, the method sees the gradients (a dense
  copy when a topology update will need one) and masks the inactive entries; after it, inactive
  weights are re-zeroed where the optimizer could have moved them (the reference code's mode).
* :meth:`SparseTraining.step`: the method's topology update of this iteration (prune and regrow,
  GMP's pruning, ADAPT's D density, early-bird's checks, ...), the optimizer-state surgery of the
  changed weights (removed: history zeroed; regrown: a fresh weight's Adam history; SGD momentum:
  zeroed), and the sparse EMA's restart of grown weights. It returns the topology events.
* :meth:`SparseTraining.state_dict` / :meth:`load_state_dict`: masks, the method's state, the
  iteration count and the random streams; with the nets' and optimizers' own state dicts a
  checkpoint resumes exactly.

Any named nets work (a classifier has one; CycleGAN four), with any torch optimizer whose state
is per parameter (Adam, AdamW, SGD with momentum are handled exactly; the moments of other
optimizers are zeroed where weights change). ADAPT needs a GAN's nets named G and D.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from sparsegan.errors import UserError
from sparsegan.methods import Method, MethodContext, TopologyEvent
from sparsegan.methods.build import build_method, options_doc
from sparsegan.methods.transfer import Ticket
from sparsegan.random_streams import seeded_generator
from sparsegan.sparse_compute.attach import MODES as COMPUTE_MODES
from sparsegan.sparse_compute.attach import SparseCompute
from sparsegan.sparse_compute.optim import SparseSteps
from sparsegan.sparse_compute.optim import unsupported as unsupported_optimizer
from sparsegan.sparse_compute.pattern import available as compute_available
from sparsegan.sparsity import SparseEMA, count_true, prunable_parameters, reset_optimizer_state


def _no_probe(net: str) -> Tensor:
    raise UserError("this method scores weights by the training loss (SNIP, GraSP, the grasp criterion): "
                    "pass loss_probe=fn(net_name) -> that net's loss on a fresh batch")


class SparseTraining:
    """Masks, their method and the optimizer-state surgery for a set of named nets; see the module
    documentation.

    ``nets`` / ``optimizers``: name -> module / the optimizer that steps it. ``method``: a method
    name with ``sparsity`` (name -> target sparsity), ``steps`` (the iterations its schedules span)
    and its options as keyword arguments (listed below), or a built
    :class:`~sparsegan.methods.Method`. ``loss_probe``: name -> that net's loss on a fresh batch
    (SNIP, GraSP). ``generators``: the random streams of the masks at set-up and of the topology
    updates (default: seeded from ``seed``, as the loop). ``ticket``: masks (and weights) to start
    from instead of the method's own (:class:`~sparsegan.methods.transfer.Ticket`). ``state``: a
    ``state_dict()`` to resume from when the nets already hold the checkpoint's weights (set-up's
    fresh masks would otherwise zero some of them first). ``sparse_compute``: "auto" (default) runs
    each masked Linear / Conv2d / ConvTranspose2d layer on its active weights only where that
    measured faster on this CPU, "on" wherever the layer supports it, "off" never (the masked
    dense path); GPUs keep the masked path (:mod:`sparsegan.sparse_compute`).

    After construction: ``step()`` once per iteration after the optimizers' steps;
    ``observe_balance(ratio)`` for ADAPT; ``ema(net)`` for the sparse EMA (sample from its
    ``.model``); ``completed`` (iterations done), ``masks``, ``density()``, ``drain_records()``;
    ``state_dict()`` / ``load_state_dict()`` beside the nets', optimizers' and EMA's.
    """

    def __init__(
        self,
        nets: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        method: str | Method = "stu",
        *,
        sparsity: Mapping[str, float] | None = None,
        steps: int | None = None,
        seed: int = 0,
        loss_probe: Callable[[str], Tensor] | None = None,
        generators: tuple[torch.Generator, torch.Generator] | None = None,
        ticket: Ticket | None = None,
        state: Mapping[str, Any] | None = None,
        sparse_compute: str = "auto",
        **options: Any,
    ):
        if not nets:
            raise UserError("SparseTraining needs at least one net")
        self.nets = dict(nets)
        missing = [n for n in self.nets if n not in optimizers]
        if missing:
            raise UserError(f"no optimizer for net {missing[0]!r}: pass optimizers={{name: optimizer}} for every net")
        self.optimizers = {n: optimizers[n] for n in self.nets}
        for net, opt in self.optimizers.items():
            if not isinstance(opt, torch.optim.Optimizer):
                inner = getattr(opt, "optimizer", None)
                hint = f" (it wraps a {type(inner).__name__}: pass that, e.g. opt.optimizer)" \
                    if isinstance(inner, torch.optim.Optimizer) else ""
                raise UserError(f"the optimizer of net {net!r} is a {type(opt).__name__}, not a torch.optim.Optimizer"
                                f"{hint}")
            if isinstance(opt, torch.optim.LBFGS):
                raise UserError(f"net {net!r}: LBFGS evaluates its closure several times per step, which the masks' "
                                "gradient hook cannot follow; use a first-order optimizer (Adam, AdamW, SGD)")
        if isinstance(method, Method):
            if sparsity is not None or steps is not None or options:
                raise UserError("a built method carries its own options: pass sparsity / steps / options with a "
                                "method name instead")
            self.method = method
        else:
            if steps is None:
                raise UserError("steps= is required: the training iterations the method's schedule spans")
            if sparsity is not None and not isinstance(sparsity, Mapping):
                raise UserError(f"sparsity= names each net's target: a dict such as {{{next(iter(self.nets))!r}: "
                                f"{sparsity!r}}}, not {type(sparsity).__name__} {sparsity!r}")
            targets = dict(sparsity or {})
            stray = [n for n in targets if n not in self.nets]
            if stray:
                raise UserError(f"sparsity names net {stray[0]!r}, which is not among the nets "
                                f"({', '.join(self.nets)})")
            self.method = build_method(method, steps=steps, sparsity={n: targets.get(n, 0.0) for n in self.nets},
                                       **options)
        self._check_compute(sparse_compute)
        if set(self.method.nets) != set(self.nets):
            raise UserError(f"the method trains nets {', '.join(self.method.nets)}, not {', '.join(self.nets)}")
        for net in self.method.nets:  # misuse fails here, before any weight is touched
            params = prunable_parameters(self.nets[net], self.method.opts.prunable)
            if self.method.target_sparsity(net) > 0 and not params:
                raise UserError(f"net {net!r} has no prunable weights (Linear / Conv layers' weights) to make sparse")
            held = {id(p) for g in self.optimizers[net].param_groups for p in g["params"]}
            for name, p in params.items():
                if id(p) not in held:
                    raise UserError(f"the optimizer of net {net!r} does not hold its weight {name!r}: give each net "
                                    "the optimizer that steps its parameters")
        self.masks_rng, self.topology_rng = generators or (seeded_generator(seed, 1), seeded_generator(seed, 3))
        # Resuming with state=: the nets already hold the checkpoint's weights, which set-up's fresh
        # masks would zero; they are kept aside and put back under the checkpoint's masks.
        held = None if state is None else {n: {k: v.detach().clone() for k, v in m.state_dict().items()}
                                           for n, m in self.nets.items()}
        self.method.setup(MethodContext(nets=self.nets, generator=self.masks_rng,
                                        loss_probe=self._dense_probe(loss_probe or _no_probe), ticket=ticket))
        # Optimizers may hold state already (a dense warm-up, a resumed dense checkpoint, PF's source
        # run): the history of every weight a mask removes is cleared with the weight, or Adam would
        # move it off 0 at the next step (its moments are not 0 where the gradient is masked).
        self._clear_inactive_history()
        # Weights changed after this point (a re-initialisation, pretrained weights loaded one line
        # too late) would leave inactive weights non-zero: the first optimizer step of each net checks.
        self._unverified = set(self.method.nets)
        self.completed = 0  # iterations done (sparse.step() calls)
        self._stepped: set[str] = set()
        # Layers left with no active weight, reported once each (kind=empty_layers): looked for after
        # set-up and after each topology event, not every step.
        self._empty: dict[str, set[str]] = {net: set() for net in self.method.nets}
        self._look_for_empty = True
        self._listeners: list[Callable[[TopologyEvent, int], None]] = []
        self._hooks = []
        for opt in {id(o): o for o in self.optimizers.values()}.values():
            served = tuple(n for n in self.method.nets if self.optimizers[n] is opt)
            self._hooks.append(opt.register_step_pre_hook(self._before(served)))
            self._hooks.append(opt.register_step_post_hook(self._after(served)))
        self.compute = self._sparse_compute(sparse_compute)
        # The optimizer steps of masked weights on their active entries only, where that is the
        # whole step (every inactive weight's history 0) and the optimizer is one it can mirror.
        self._sparse_steps = {id(o): SparseSteps(o) for o in self.optimizers.values()
                              if sparse_compute != "off" and unsupported_optimizer(o) is None}
        if state is not None:
            for n, module in self.nets.items():
                module.load_state_dict(held[n])
            self.load_state_dict(state)

    def _check_compute(self, mode: str) -> None:
        if mode not in COMPUTE_MODES:
            raise UserError(f"sparse_compute must be one of {', '.join(COMPUTE_MODES)}, not {mode!r}")
        if mode == "on":
            if not compute_available():
                raise UserError("sparse_compute='on' needs the C kernels (an x86-64 CPU with AVX2 and FMA, the package "
                                "built with a C compiler); use 'auto' to fall back to the masked path")
            for net, module in self.nets.items():
                devices = {p.device.type for p in module.parameters()}
                if devices - {"cpu"}:
                    raise UserError(f"sparse_compute='on' runs on CPUs; net {net!r} is on {sorted(devices)[-1]} "
                                    "(GPUs keep the masked path: use 'auto' or 'off')")

    def _dense_probe(self, probe: Callable[[str], Tensor]) -> Callable[[str], Tensor]:
        """The methods' loss probe, its graph built on the masked dense path: a probe's loss may be
        differentiated twice (GraSP's Hessian-gradient product), which the sparse path refuses."""
        def probing(net: str) -> Tensor:
            compute = getattr(self, "compute", None)  # None while set-up's own probes run
            if compute is None:
                return probe(net)
            with compute.dense():
                return probe(net)
        return probing

    def _sparse_compute(self, mode: str) -> SparseCompute:
        return SparseCompute(mode, self.nets, lambda: self.method.masks,
                             dense_now=lambda net: self.method.wants_dense_grad(net, self.completed + 1),
                             enforced=lambda: self.method.enforce_masks)

    # --- the one place that keeps inactive weights at exactly 0 ---------------------------------
    # Mask edits zero the weights they deactivate (MaskSet.apply_ after every change, in set-up and
    # in the updaters); everything else happens here: gradients of inactive weights are masked
    # before each optimizer step, inactive weights re-zeroed after it where the optimizer could
    # have moved them, and after a topology change the optimizer history of every deactivated
    # weight is zeroed (a regrown weight's history is started by the updater that grew it,
    # sparsity.optim.start_regrown_state).
    @property
    def _keeps_history(self) -> bool:
        """The reference code's mode (``regrown_state="keep"``): removed weights keep their history."""
        return getattr(self.method.opts, "regrown_state", "fresh") == "keep"

    @property
    def _inactive_moments_zero(self) -> bool:
        """Whether the optimizer history of every inactive weight is 0. Then, with masked gradients,
        Adam, AdamW and SGD leave inactive weights exactly 0 (Adam's update there is 0 / (0 + eps))
        and no re-zeroing is needed after the step. Not so in the reference code's mode
        (regrown_state="keep": stale moments are kept) or without gradient masking."""
        return self.method.opts.mask_gradients and not self._keeps_history

    def _clear_inactive_history(self) -> None:
        if not self.method.enforce_masks:
            return
        for net, masks in self.method.masks.items():
            masks.take_deactivated()
            for name, mask in masks.masks.items():
                if not bool(mask.all()):
                    reset_optimizer_state(self.optimizers[net], masks.params[name], ~mask)

    def _verify_inactive_zero(self, net: str) -> None:
        """Refuse a net whose inactive weights are not 0 (they changed after the masks were applied)."""
        masks = self.method.masks[net]
        for name, mask in masks.masks.items():
            stray = count_true(masks.params[name].detach().ne(0) & ~mask)
            if stray:
                raise UserError(
                    f"net {net!r}: {stray} weights of {name!r} outside its mask are non-zero, so its weights changed "
                    "after SparseTraining applied the masks (re-initialised or loaded?); set the weights before "
                    "constructing SparseTraining, or call sparse.reapply_masks() after changing them")

    def reapply_masks(self) -> None:
        """Zero every inactive weight and its optimizer history again: after changing a net's weights
        once SparseTraining is attached (loading pretrained weights, a re-initialisation)."""
        for masks in self.method.masks.values():
            masks.apply_()
        self._clear_inactive_history()

    def _before(self, served: tuple[str, ...]):
        def hook(optimizer, args, kwargs):
            # step(closure) computes the gradients inside step(), after this hook: run the closure
            # here (as the optimizer would) and hand step() its result, so that the gradients masked
            # and captured below are this step's (PyTorch Lightning's automatic optimisation).
            # (The hook's args are step()'s own: the optimizer first, then the closure if positional.)
            closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
            replaced = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
                rest = {k: v for k, v in kwargs.items() if k != "closure"}
                replaced = (args[:1], {**rest, "closure": lambda: loss})
            steps = self._sparse_steps.get(id(optimizer))
            for net in served:
                if net in self._unverified:
                    if self.method.enforce_masks:
                        self._verify_inactive_zero(net)
                    self._unverified.discard(net)
                self.method.capture_gradients(net, self.completed + 1)  # before masking: the dense one
                masks = self.method.masks[net]
                if steps is not None and self.method.enforce_masks and self._inactive_moments_zero:
                    # stepped here on their active entries, their gradients put aside until the
                    # optimizer's own step is done (it skips a weight without one); those are not
                    # masked: the step reads no inactive entry
                    steps.take([(p, masks.active_index(n)) for n, p in masks.params.items()])
                if self.method.enforce_masks and self.method.opts.mask_gradients:
                    masks.mask_grads_()
            return replaced
        return hook

    def _after(self, served: tuple[str, ...]):
        def hook(optimizer, args, kwargs):
            if id(optimizer) in self._sparse_steps:
                self._sparse_steps[id(optimizer)].give_back()
            for net in served:
                if self.method.enforce_masks and not self._inactive_moments_zero:
                    self.method.masks[net].apply_()  # the reference code's apply_mask after every step
                self._stepped.add(net)
        return hook

    def _sync_optimizers(self) -> None:
        """Zero the optimizer history of every weight deactivated since the last call, and the weights,
        so that they stay 0. In the reference code's mode (regrown_state="keep") the history is
        kept, as there: a weight regrown later resumes its stale history."""
        if not self.method.enforce_masks:
            return
        for net, masks in self.method.masks.items():
            removed = masks.take_deactivated()
            if not self._keeps_history:
                for name, gone in removed.items():
                    if count_true(gone):
                        reset_optimizer_state(self.optimizers[net], masks.params[name], gone)
            if removed:
                masks.apply_()

    # --- per iteration --------------------------------------------------------------------------
    def step(self) -> list[TopologyEvent]:
        """One training iteration is done (every optimizer step of it taken): the method's topology
        update when one is due, the optimizer-state surgery, the sparse EMA's restarts. Returns the
        topology events (one per net at an update; see TopologyEvent.record)."""
        step = self.completed + 1
        for net in self.method.nets:
            if self.method.wants_dense_grad(net, step) and net not in self._stepped:
                raise UserError(f"sparse.step() at iteration {step}: net {net!r}'s optimizer has not stepped since the "
                                "last sparse.step(), and its topology update needs the gradient of this iteration; "
                                "call sparse.step() once per iteration, after the optimizers' steps")
        events = self.method.end_of_step(step, self.optimizers, self.topology_rng)
        for ev in events:
            for listener in self._listeners:
                listener(ev, step)
        self._sync_optimizers()  # deactivated weights: history zeroed, weight 0
        self._look_for_empty = self._look_for_empty or bool(events)
        self.completed = step
        self._stepped.clear()
        return events

    def observe_balance(self, ratio: float) -> None:
        """Feed ADAPT the balance ratio measured in this iteration (call before :meth:`step`; see
        :func:`sparsegan.methods.adapt.balance_ratio`). ADAPT decides D's density from the mean of the
        ratios fed since its last decision, and refuses a decision with none; other methods ignore it."""
        self.method.observe_balance(self.completed + 1, float(ratio))

    def drain_records(self) -> list[dict[str, Any]]:
        """The method's records since the last call (kind=pf, early_bird_check, adapt, ticket, ...), and
        kind=empty_layers where a layer has newly lost its last active weight."""
        records = self.method.drain_records()
        if self._look_for_empty or records:  # a method's record may come with new masks (a ticket drawn)
            self._look_for_empty = False
            empty = self.empty_layers()
            new = {net: sorted(set(names) - self._empty[net]) for net, names in empty.items()}
            self._empty = {net: set(names) for net, names in empty.items()}
            if any(new.values()):
                records.append({"kind": "empty_layers", "layers": {net: names for net, names in new.items() if names}})
        return records

    def empty_layers(self) -> dict[str, list[str]]:
        """net -> its masked layers with no active weight. Such a layer passes on nothing but its bias:
        in a plain stack, what comes before it no longer reaches the net's output. Global magnitude ranking
        (IMP, as GAN Tickets and Generative Tickets rank; SNIP) can empty a small layer whose weights
        are smaller than the rest, the "layer collapse" of Tanaka et al. (2020)."""
        return {net: [name for name, n in masks.layer_active().items() if n == 0]
                for net, masks in self.method.masks.items()}

    # --- what users read and attach ----------------------------------------------------------
    @property
    def masks(self):
        """net -> MaskSet (its ``masks``: parameter name -> bool tensor; ``density()``, ``itop_rate()``)."""
        return self.method.masks

    def density(self) -> dict[str, float]:
        return {net: m.density() for net, m in self.method.masks.items()}

    def on_topology_change(self, listener: Callable[[TopologyEvent, int], None]) -> None:
        """Call ``listener(event, iteration)`` for every topology event, before the optimizer surgery."""
        self._listeners.append(listener)

    def ema(self, net: str, beta: float = 0.999, *, start_step: int = 0, warmup: bool = False,
            ema: SparseEMA | None = None) -> SparseEMA:
        """The sparse EMA of ``net`` (SEMA, STU-GAN Eq. 5), kept in step with its topology: a weight
        pruned out is 0 in the EMA at once, a grown one starts at 0 and takes the weight's value at
        the next update. Call ``ema.update(module, sparse.completed)`` after each ``sparse.step()``.
        ``warmup``: the decay ramps up to ``beta`` as min(beta, (1 + t) / (10 + t)), so that a short
        run's average is its trained net, not its initial one (:class:`SparseEMA`)."""
        if net not in self.nets:
            raise UserError(f"no net {net!r} to average (nets: {', '.join(self.nets)})")
        held = (lambda: self.method.masks[net] if self.method.enforce_masks else None) \
            if self._sparse_steps else None  # with sparse compute: the active entries' averages only
        ema = ema or SparseEMA(self.nets[net], beta, start_step=start_step, sparse=self.method.enforce_masks,
                               masks=held, warmup=warmup)

        def restart(ev: TopologyEvent, step: int) -> None:
            if ev.net == net and self.method.enforce_masks:
                ema.on_topology_change(self.method.masks[net], ev.grown_entries, step)

        self.on_topology_change(restart)
        return ema

    # --- several processes -------------------------------------------------------------------------
    def broadcast_masks(self, src: int = 0) -> None:
        """Under torch.distributed (DDP): rank ``src``'s masks on every rank, their weights zeroed.
        Ranks given the same ``seed`` draw the same masks and, with DDP's averaged gradients, make
        the same topology updates, so this is a check made true at set-up (the built-in loop does
        the same); it is a no-op without an initialised process group."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        for net in self.method.nets:
            masks = self.method.masks[net]
            state = masks.state_dict()
            for k in sorted(state):
                buf = state[k].to(torch.uint8)
                dist.broadcast(buf, src)
                state[k] = buf.bool()
            masks.load_state_dict(state)
            masks.apply_()

    # --- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"completed": self.completed, "method": self.method.state_dict(), "method_name": self.method.name,
                "rng": {"masks": self.masks_rng.get_state(), "topology": self.topology_rng.get_state()},
                "compute": self.compute.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or not {"completed", "method"} <= set(state):
            raise UserError("not a SparseTraining state (no 'completed' / 'method'): pass sparse.state_dict()'s output")
        saved = state.get("method_name", self.method.name)
        if saved != self.method.name:
            raise UserError(f"this state is of method {saved!r}, not {self.method.name!r}: load it into a "
                            f"SparseTraining built with method {saved!r}")
        masks = state["method"].get("masks", {})
        if set(masks) != set(self.method.masks):
            raise UserError(f"this state holds the masks of nets {', '.join(masks) or '-'}, not of "
                            f"{', '.join(self.method.masks)}")
        for net, m in self.method.masks.items():
            theirs = {k.split(".", 1)[1] for k in masks[net] if k.startswith("mask.")}
            if theirs != set(m.params):
                odd = sorted(theirs ^ set(m.params))[0]
                raise UserError(f"this state's masks of net {net!r} do not fit its weights (e.g. {odd!r}): it was "
                                "saved from another model")
        self.method.load_state_dict(state["method"])
        self.completed = int(state["completed"])
        self._unverified = set(self.method.nets)  # the weights loaded with this state are checked too
        if "compute" in state:  # the sparse path's measured plan: the same layers take the same paths
            self.compute.load_state_dict(state["compute"])
        else:  # saved before sparse compute existed, so on the masked path: resume there, exactly
            self.compute.close()
        if "rng" in state:
            self.masks_rng.set_state(state["rng"]["masks"])
            self.topology_rng.set_state(state["rng"]["topology"])

    def close(self) -> None:
        """Remove the optimizer hooks and the sparse path's forwards (the masks stay as they are)."""
        self.compute.close()
        for h in self._hooks:
            h.remove()
        self._hooks = []


SparseTraining.__doc__ = (SparseTraining.__doc__ or "") + options_doc()
