"""Putting the sparse path under a net's layers: :class:`SparseCompute`.

The engine hands it the masks of the nets it trains; each masked Linear / Conv2d /
ConvTranspose2d layer that the sparse path supports gets a forward of its own (an instance
attribute: the module's class, parameters, state dict and hooks stay as they are). At each call
that forward takes the masked dense path or the sparse one:

* dense when the input is not a float32 CPU tensor (GPUs keep the masked path), or when mode
  "auto" measured the dense path faster for this layer and shape (:mod:`.planner`);
* sparse otherwise, from the pattern of the layer's current mask, rebuilt only when the mask
  changed (a topology update), on the kernel "auto" measured fastest or, in mode "on", the last of
  the layer's kernels (:func:`functions.kernels`: the direct one where a Conv2d has it). When the
  engine says the net needs the dense gradient this iteration (gradient regrowth at an update
  step, early-bird's checks, SNIP / GraSP scoring), only the weight's gradient is computed
  dense: it is the one product that reads inactive entries.

Both paths give the same outputs and gradients to float rounding; the sparse one's weight gradient
is 0 outside the mask, as the masked path's is once the engine's hook has masked it. The sparse
path is differentiable once: a second derivative through it (a gradient penalty) fails loudly;
losses built inside :meth:`SparseCompute.dense` (the engine's loss probes for GraSP) take the
masked path, and so does everything with ``sparse_compute="off"``.
"""

from __future__ import annotations

import contextlib
import copy
import types
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from sparsegan.kernels.plans import PlanCache
from sparsegan.sparse_compute import functions
from sparsegan.sparse_compute.pattern import ConvPattern, Pattern, available
from sparsegan.sparse_compute.planner import Planner

MODES = ("auto", "on", "off")


class _Layer:
    """One layer on the sparse path: its net, its mask (by name in the net's MaskSet) and the
    pattern built from it, with the mask's identity and version when it was built."""

    def __init__(self, net: str, name: str, module: nn.Module):
        self.net, self.name, self.module = net, name, module
        self.pattern: Pattern | ConvPattern | None = None
        self._built_from: tuple[Tensor, int] | None = None  # the mask the pattern was built from, its version
        self.decisions: dict[tuple, str] = {}  # this call's shape and gradients -> the planner's choice

    def pattern_of(self, mask: Tensor) -> Pattern | ConvPattern:
        # the mask itself is held, not its id: a freed mask's id may come back as a new mask's
        if self.pattern is None or self._built_from is None or self._built_from[0] is not mask \
                or self._built_from[1] != mask._version:
            self.pattern, self._built_from = functions.pattern_for(self.module, mask), (mask, mask._version)
            self.decisions = {}
        return self.pattern


class _Forward:
    """The forward put on a module. A deep copy of the module (an EMA's copy, an exported net)
    gets its class's own forward back: the copy's weights are not the ones the masks follow."""

    def __init__(self, owner: SparseCompute, layer: _Layer):
        self.owner, self.layer = owner, layer

    def __call__(self, x: Tensor, *args: Any) -> Tensor:
        return self.owner.forward(self.layer, x, *args)

    def __deepcopy__(self, memo: dict) -> Any:
        module = self.layer.module
        return types.MethodType(type(module).forward, memo.get(id(module), copy.deepcopy(module, memo)))


class SparseCompute:
    """Runs the masked layers of the nets on their active weights; see the module documentation.

    ``masks()``: net -> MaskSet, as they are now; ``nets``: net -> module; ``dense_now(net)``: whether the net needs the
    dense gradient this iteration; ``enforced()``: whether masks are in force at all (a method may
    lift them, e.g. early-bird before it draws its ticket)."""

    def __init__(self, mode: str, nets: Mapping[str, nn.Module], masks: Callable[[], Mapping[str, Any]],
                 dense_now: Callable[[str], bool], enforced: Callable[[], bool]):
        if mode not in MODES:
            raise ValueError(f"sparse_compute must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode, self.masks, self.dense_now, self.enforced = mode, masks, dense_now, enforced
        self.planner = Planner(cache=PlanCache.default("training-plans.json") if mode == "auto" else None)
        self.layers: list[_Layer] = []
        self._forced_dense = 0  # depth of dense() blocks
        self.unsupported: dict[str, str] = {}  # "net/param" -> why it stays on the masked path
        # dense_grad: the sparse calls that gave the weight's dense gradient
        self.calls = {"sparse": 0, "dense": 0, "dense_grad": 0}
        self.kernel_calls: dict[str, int] = {}  # the sparse calls by kernel
        if mode == "off" or not available():
            return
        for net, mask_set in masks().items():
            owners = {id(getattr(m, "weight", None)): m for m in nets[net].modules()}
            for name, param in mask_set.params.items():
                module = owners.get(id(param))
                why = "not a layer's own weight" if module is None else functions.supports(module)
                if why:
                    self.unsupported[f"{net}/{name}"] = why
                    continue
                layer = _Layer(net, name, module)
                module.forward = _Forward(self, layer)
                self.layers.append(layer)

    @property
    def active(self) -> bool:
        return bool(self.layers)

    def forward(self, layer: _Layer, x: Tensor, *args: Any) -> Tensor:
        module = layer.module
        kernel = self._path(layer, x)
        if kernel != "dense":
            self.calls["sparse"] += 1
            self.kernel_calls[kernel] = self.kernel_calls.get(kernel, 0) + 1
            dense_grad = torch.is_grad_enabled() and module.weight.requires_grad and self.dense_now(layer.net)
            self.calls["dense_grad"] += dense_grad
            return functions.forward(module, x, layer.pattern, *args, dense_grad=dense_grad, kernel=kernel)
        self.calls["dense"] += 1
        return type(module).forward(module, x, *args)

    @contextlib.contextmanager
    def dense(self):
        """Every layer called inside takes the masked dense path."""
        self._forced_dense += 1
        try:
            yield
        finally:
            self._forced_dense -= 1

    def _path(self, layer: _Layer, x: Tensor) -> str:
        """"dense" or the sparse kernel this call takes."""
        if x.device.type != "cpu" or x.dtype != torch.float32 or not self.enforced() or self._forced_dense:
            return "dense"
        pattern = layer.pattern_of(self.masks()[layer.net].masks[layer.name])
        if self.mode == "on":  # the direct kernel where a layer has one (not for a run saved before them)
            return "sparse" if self.planner.legacy else functions.kernels(layer.module)[-1]
        # the planner's decision for this call, kept per layer until its pattern changes: its key
        # (a string) costs more to build than most of a small layer's product
        seen = (tuple(x.shape), x.requires_grad, layer.module.weight.requires_grad, torch.is_grad_enabled(),
                torch.get_num_threads())
        decision = layer.decisions.get(seen)
        if decision is None:
            decision = layer.decisions[seen] = self.planner.choice(layer.module, x, pattern)
        return decision

    def close(self) -> None:
        """Give every layer its class's forward back."""
        for layer in self.layers:
            if isinstance(layer.module.__dict__.get("forward"), _Forward):
                del layer.module.forward
        self.layers = []

    def state_dict(self) -> dict:
        return {"mode": self.mode, "plan": self.planner.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.planner.load_state_dict(dict(state.get("plan", {})))
        for layer in self.layers:  # choices made before the load (a forward at set-up) give way to the plan's
            layer.decisions = {}
