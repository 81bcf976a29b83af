"""Scores that decide which weights to prune (lowest first) or grow (highest first).

Every criterion has the same signature: ``(weight, grad, state, generator) -> scores`` with
``weight``'s shape; ``state`` is what :func:`criterion_state` gives: the optimizer state of the
weight plus, under ``"group"``, its param group's hyper-parameters (momentum growth needs Adam's
beta1 or SGD's momentum). Each says what it needs in the ``grad`` slot (``criterion_needs``):
nothing, the dense gradient of the update's step (captured before the engine masks it: an extra
cost the FLOPs accounting counts), or GraSP's Hessian-gradient product (loss probes).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from sparsegan.errors import UserError
from sparsegan.registry import Registry

Criterion = Callable[[Tensor, Optional[Tensor], dict, Optional[torch.Generator]], Tensor]

PRUNE_CRITERIA: Registry[Criterion] = Registry("prune criterion")
GROW_CRITERIA: Registry[Criterion] = Registry("grow criterion")


def criterion_state(optimizer: torch.optim.Optimizer | None, param: Tensor) -> dict:
    """The optimizer's view of ``param`` for a criterion: its state entries and ``"group"``, the
    hyper-parameters of the param group that holds it (empty when there is no optimizer)."""
    if optimizer is None:
        return {}
    group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), {})
    return {**optimizer.state.get(param, {}), "group": {k: v for k, v in group.items() if k != "params"}}


NEEDS = (None, "gradient", "hessian-gradient")


def _needs(what: str | None):
    """Declare what a criterion reads in its ``grad`` slot (see NEEDS)."""
    def deco(fn):
        fn.needs = what
        return fn
    return deco


def criterion_needs(kind: str, name: str) -> str | None:
    """What the ``kind`` ("prune" or "grow") criterion ``name`` needs: None, "gradient" (the dense
    gradient at the update) or "hessian-gradient" (GraSP's H g from loss probes)."""
    return (PRUNE_CRITERIA if kind == "prune" else GROW_CRITERIA).get(name).needs


def _need_grad(grad: Tensor | None, name: str) -> Tensor:
    if grad is None:
        raise UserError(f"criterion {name!r} needs the gradient of every sparse weight at a topology update, but a "
                        "weight had none: every weight of the explored net must take part in the loss of the "
                        "iteration whose optimizer step precedes sparse.step()")
    return grad


@PRUNE_CRITERIA.register("magnitude")
@_needs(None)
def magnitude(weight: Tensor, grad, state, generator) -> Tensor:
    """|w| (STU-GAN, RigL, SET): prune the smallest."""
    return weight.detach().abs()


@PRUNE_CRITERIA.register("snip")
@_needs('gradient')
def snip(weight: Tensor, grad, state, generator) -> Tensor:
    """|w * dL/dw| (Lee et al. 2019, connection sensitivity)."""
    return (weight.detach() * _need_grad(grad, "snip")).abs()


@PRUNE_CRITERIA.register("taylor")
@_needs('gradient')
def taylor(weight: Tensor, grad, state, generator) -> Tensor:
    """First-order Taylor estimate of the loss change, signed: -w * dL/dw."""
    return -(weight.detach() * _need_grad(grad, "taylor"))


@PRUNE_CRITERIA.register("grasp")
@_needs('hessian-gradient')
def grasp(weight: Tensor, grad, state, generator) -> Tensor:
    """w * (H g) (Wang et al. 2020, GraSP): the caller passes the Hessian-gradient product in the
    gradient slot; weights with the lowest score are pruned (removing them preserves gradient flow)."""
    return weight.detach() * _need_grad(grad, "grasp")


@GROW_CRITERIA.register("gradient")
@_needs('gradient')
def gradient(weight: Tensor, grad, state, generator) -> Tensor:
    """|dL/dw| of the dense gradient (RigL, STU-GAN): grow the largest."""
    return _need_grad(grad, "gradient").abs()


@GROW_CRITERIA.register("momentum")
@_needs('gradient')
def momentum(weight: Tensor, grad, state, generator) -> Tensor:
    """|first moment| (Dettmers & Zettlemoyer's sparse momentum); |grad| without optimizer state.

    Gradients of inactive weights are masked, so their moment holds no history; the score is the
    moment the weight would have had with this step's dense gradient folded in by the optimizer's
    own rule and coefficient: Adam beta1 * m + (1 - beta1) * g (beta1 from the param group), SGD
    mu * buf + (1 - dampening) * g."""
    g = _need_grad(grad, "momentum")
    state = state or {}
    group = state.get("group")
    if "exp_avg" in state:
        if not group or "betas" not in group:
            raise RuntimeError("criterion 'momentum' needs the optimizer's betas "
                               "(pass criterion_state(optimizer, param))")
        beta1 = float(group["betas"][0])
        return (beta1 * state["exp_avg"].detach() + (1.0 - beta1) * g).abs()
    if state.get("momentum_buffer") is not None:
        if not group or "momentum" not in group:
            raise RuntimeError("criterion 'momentum' needs the optimizer's momentum "
                               "(pass criterion_state(optimizer, param))")
        mu, damp = float(group["momentum"]), float(group.get("dampening", 0.0))
        return (mu * state["momentum_buffer"].detach() + (1.0 - damp) * g).abs()
    return g.abs()


@GROW_CRITERIA.register("random")
@_needs(None)
def random(weight: Tensor, grad, state, generator) -> Tensor:
    """Uniform random scores (SET)."""
    return torch.rand(weight.shape, generator=generator, device="cpu").to(weight.device)
