"""Optimizer steps that touch the active weights only: Adam, AdamW and SGD (with momentum).

A masked net's optimizer step costs as much as a dense one's: torch's Adam sweeps every weight,
its gradient and both moments, though at 95 % sparsity 19 in 20 of them are 0 and stay 0. Where
the engine keeps every inactive weight's history at 0 (gradients masked, removed weights' moments
cleared, regrown ones started fresh: ``SparseTraining._inactive_moments_zero``), a step of the
active entries alone is the whole step: Adam's update of an inactive entry is 0 / (0 + eps) and its
moments decay from 0 to 0. :class:`SparseSteps` takes such weights out of the optimizer's own step
(their ``.grad`` is put aside for it and given back after) and updates their active entries with
the float operations of torch's per-tensor implementation: in one pass of the C kernel
(sparsegan/kernels/_active.c; torch's vectorised kernels fuse some multiply-adds, so results
differ by a few units in the last place), or, where the kernel is not built, with torch's own
operations on the gathered entries (to the last bit).

The optimizer's state stays torch's own, dense-shaped: its ``state_dict()``, checkpoints, the
engine's history surgery and a later dense step all see what they would have.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sparsegan.kernels import active

#: Above this density torch's (fused, vectorised) dense step is as fast as the scattered one (measured:
#: a 50 %-dense mlp discriminator's Adam step took longer on its active entries).
MAX_DENSITY = 0.2


def unsupported(optimizer: torch.optim.Optimizer) -> str | None:
    """Why the active-entries step cannot stand in for this optimizer's (None: it can)."""
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
        return f"{type(optimizer).__name__} (Adam, AdamW and SGD are)"
    for group in optimizer.param_groups:
        # fused=True is the same arithmetic in one kernel: its active entries are stepped here alike
        for flag in ("amsgrad", "capturable", "differentiable"):
            if group.get(flag):
                return f"{type(optimizer).__name__} with {flag}=True"
        if any(isinstance(group.get(k), Tensor) for k in ("lr", "betas", "weight_decay", "momentum")):
            return "tensor-valued hyperparameters"
    return None


class SparseSteps:
    """The active-entries steps of one optimizer's masked weights (see the module documentation)."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self._groups: dict[int, dict] = {}
        self._held: list[tuple[Tensor, Tensor]] = []

    def take(self, weights: list[tuple[Tensor, Tensor]]) -> None:
        """Step ``weights`` ((parameter, active_index) pairs: :meth:`MaskSet.active_index`) on their
        active entries now, and hide their gradients from the optimizer's own step;
        :meth:`give_back` after it returns them. Weights above :data:`MAX_DENSITY`, off the CPU or
        not contiguous are left to the optimizer."""
        # the groups as they are now: load_state_dict replaces them, a scheduler changes their lr
        self._groups = {id(p): g for g in self.optimizer.param_groups for p in g["params"]}
        with torch.no_grad():
            for p, index in weights:
                if (p.grad is None or p.device.type != "cpu" or not p.is_contiguous()
                        or index.numel() > MAX_DENSITY * p.numel() or id(p) not in self._groups):
                    continue
                if isinstance(self.optimizer, torch.optim.SGD):
                    self._sgd(p, index)
                else:
                    self._adam(p, index, decoupled=isinstance(self.optimizer, torch.optim.AdamW)
                               or bool(self._groups[id(p)].get("decoupled_weight_decay")))
                self._held.append((p, p.grad))
                p.grad = None

    def give_back(self) -> None:
        for p, grad in self._held:
            p.grad = grad
        self._held = []

    def _adam(self, p: Tensor, index: Tensor, decoupled: bool) -> None:
        group = self._groups[id(p)]
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        state = self.optimizer.state[p]
        if not state:  # as torch's Adam starts it
            state["step"] = torch.tensor(0.0, dtype=torch.get_default_dtype())
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = state["step"].item()
        grad = p.grad.contiguous()
        if active.adam_(p, grad, state["exp_avg"], state["exp_avg_sq"], index, lr=lr, beta1=beta1, beta2=beta2,
                        eps=eps, weight_decay=wd, decoupled=decoupled, maximize=bool(group.get("maximize")),
                        step=step):
            return
        # torch.optim.adam._single_tensor_adam's operations on the gathered active entries
        flat_p, flat_m, flat_v = p.view(-1), state["exp_avg"].view(-1), state["exp_avg_sq"].view(-1)
        param, grad = flat_p.index_select(0, index), grad.view(-1).index_select(0, index)
        if group.get("maximize"):
            grad = -grad
        exp_avg, exp_avg_sq = flat_m.index_select(0, index), flat_v.index_select(0, index)
        if wd != 0:
            if decoupled:
                param.mul_(1 - lr * wd)
            else:
                grad = grad.add(param, alpha=wd)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1 ** step))
        flat_p.index_copy_(0, index, param)
        flat_m.index_copy_(0, index, exp_avg)
        flat_v.index_copy_(0, index, exp_avg_sq)

    def _sgd(self, p: Tensor, index: Tensor) -> None:
        group = self._groups[id(p)]
        lr, momentum, dampening, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        buf, first = None, False
        if momentum != 0:
            state = self.optimizer.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:  # torch clones the (masked) gradient: 0 at every inactive entry
                buf, first = torch.zeros_like(p), True
                state["momentum_buffer"] = buf
        grad = p.grad.contiguous()
        if active.sgd_(p, grad, buf, index, lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd,
                       nesterov=bool(group["nesterov"]), maximize=bool(group.get("maximize")), first=first):
            return
        # torch.optim.sgd._single_tensor_sgd's operations on the gathered active entries
        flat_p = p.view(-1)
        param, grad = flat_p.index_select(0, index), grad.view(-1).index_select(0, index)
        if group.get("maximize"):
            grad = -grad
        if wd != 0:
            grad = grad.add(param, alpha=wd)
        if buf is not None:
            active_buf = grad.clone() if first else \
                buf.view(-1).index_select(0, index).mul_(momentum).add_(grad, alpha=1 - dampening)
            buf.view(-1).index_copy_(0, index, active_buf)
            grad = grad.add(active_buf, alpha=momentum) if group["nesterov"] else active_buf
        param.add_(grad, alpha=-lr)
        flat_p.index_copy_(0, index, param)
