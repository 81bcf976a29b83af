"""Scores that decide which weights to prune (lowest first) or grow (highest first).

Every criterion has the same signature: ``(weight, grad, state, generator) -> scores`` with
``weight``'s shape; ``state`` is the optimizer state of the weight (for momentum growth).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from sparsegan.registry import Registry

Criterion = Callable[[Tensor, Optional[Tensor], dict, Optional[torch.Generator]], Tensor]

PRUNE_CRITERIA: Registry[Criterion] = Registry("prune criterion")
GROW_CRITERIA: Registry[Criterion] = Registry("grow criterion")


def _need_grad(grad: Tensor | None, name: str) -> Tensor:
    if grad is None:
        raise RuntimeError(f"criterion {name!r} needs the dense gradient, but none was captured")
    return grad


@PRUNE_CRITERIA.register("magnitude")
def magnitude(weight: Tensor, grad, state, generator) -> Tensor:
    """|w| (STU-GAN, RigL, SET): prune the smallest."""
    return weight.detach().abs()


@PRUNE_CRITERIA.register("snip")
def snip(weight: Tensor, grad, state, generator) -> Tensor:
    """|w * dL/dw| (Lee et al. 2019, connection sensitivity)."""
    return (weight.detach() * _need_grad(grad, "snip")).abs()


@PRUNE_CRITERIA.register("taylor")
def taylor(weight: Tensor, grad, state, generator) -> Tensor:
    """First-order Taylor estimate of the loss change, signed: -w * dL/dw."""
    return -(weight.detach() * _need_grad(grad, "taylor"))


@PRUNE_CRITERIA.register("grasp")
def grasp(weight: Tensor, grad, state, generator) -> Tensor:
    """w * (H g) (Wang et al. 2020, GraSP): the caller passes the Hessian-gradient product in the
    gradient slot; weights with the lowest score are pruned (removing them preserves gradient flow)."""
    return weight.detach() * _need_grad(grad, "grasp")


@GROW_CRITERIA.register("gradient")
def gradient(weight: Tensor, grad, state, generator) -> Tensor:
    """|dL/dw| of the dense gradient (RigL, STU-GAN): grow the largest."""
    return _need_grad(grad, "gradient").abs()


@GROW_CRITERIA.register("momentum")
def momentum(weight: Tensor, grad, state, generator) -> Tensor:
    """|Adam's first moment| (Dettmers & Zettlemoyer's sparse momentum); falls back to |grad|."""
    # Gradients of inactive weights are masked, so their optimizer moment is 0; the score is the
    # moment the weight would have had with this step's dense gradient folded in (beta1 = 0.9).
    buf = state.get("exp_avg", state.get("momentum_buffer")) if state else None
    g = _need_grad(grad, "momentum")
    if buf is None:
        return g.abs()
    return (0.9 * buf.detach() + 0.1 * g).abs()


@GROW_CRITERIA.register("random")
def random(weight: Tensor, grad, state, generator) -> Tensor:
    """Uniform random scores (SET)."""
    return torch.rand(weight.shape, generator=generator, device="cpu").to(weight.device)
