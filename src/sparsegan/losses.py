"""GAN losses. Each is a pair: the discriminator's loss and the generator's loss on logits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from sparsegan.registry import Registry


@dataclass(frozen=True)
class GANLoss:
    d: Callable[[Tensor, Tensor], Tensor]  # (real logits, fake logits) -> scalar
    g: Callable[[Tensor], Tensor]  # fake logits -> scalar


LOSSES: Registry[GANLoss] = Registry("loss")

# Hinge (Lim & Ye 2017; SNGAN, BigGAN, STU-GAN).
LOSSES.register("hinge")(
    GANLoss(
        d=lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
        g=lambda fake: -fake.mean(),
    )
)

# Non-saturating (Goodfellow et al. 2014): D is logistic, G maximises log D(G(z)).
LOSSES.register("ns")(
    GANLoss(
        d=lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
        g=lambda fake: F.softplus(-fake).mean(),
    )
)
