"""Image-to-image translation (CycleGAN, Zhu et al. 2017), as GAN Tickets trains it.

The nets: G holds both generators (``G(x, "ab")``: domain A to B, ``G(x, "ba")``), D both
discriminators (``D(x, "a")`` judges domain-A images). To the sparsity engine they are two nets,
"G" and "D", so ``--sparsity-g`` sets both generators, ``--sparsity-d`` both discriminators, and
every method applies unchanged (a layer's name says which generator it belongs to: ``ab.*``).

One iteration, the reference's order: the generators take one joint Adam step on

    L_G = LS(D_B(G_AB(a)), 1) + LS(D_A(G_BA(b)), 1)                          least-squares GAN
        + lambda (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)             cycle consistency
        + lambda_id lambda (|G_AB(b) - b|_1 + |G_BA(a) - a|_1)               identity

with the discriminators frozen (lambda = 10, lambda_id = 0.5); then the discriminators take one
joint step on ``0.5 (LS(D(real), 1) + LS(D(fake), 0))`` each, where the fakes come from a history
of 50 earlier generated images (Shrivastava et al. 2017). Both learning rates stay constant for
the first ``--lr-decay-start`` of the run and then decay linearly towards 0 (the options:
``sparsegan.config.TranslationOptions``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lr_factor(step: int, steps: int, decay_start: float) -> float:
    """The learning-rate multiplier of G step ``step`` (1-based): 1 for the first ``decay_start``
    of the run, then linear towards 0 (the reference's ``1 - max(0, e + 1 - n) / (n_decay + 1)`` of
    0-based epoch e, with steps for epochs: the last step trains at 1 / (n_decay + 1))."""
    start = round(decay_start * steps)
    return 1.0 - max(0, step - start) / float(steps - start + 1)


def least_squares(logits: Tensor, target: float) -> Tensor:
    """LSGAN (Mao et al. 2017): the mean squared distance of every patch logit to its target."""
    return F.mse_loss(logits, torch.full_like(logits, target))


class ImagePool:
    """A history of generated images for the discriminator updates: while not full, each new image
    goes in and is returned; then, with probability 1/2, a stored image is returned in its place
    (and the new one stored), else the new image. Draws come from ``generator`` (checkpointed)."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.generator = size, generator
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) > 0.5:
                i = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": torch.stack(self.images).cpu() if self.images else None}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        images = state["images"]
        self.images = [] if images is None else [x.to(device) for x in images]


def generator_loss(G: nn.Module, D: nn.Module, real_a: Tensor, real_b: Tensor, lambda_cycle: float,
                   lambda_identity: float) -> tuple[Tensor, dict[str, Tensor], tuple[Tensor, Tensor]]:
    """L_G of both generators (module docstring), its logged parts, and the fakes (A, B)."""
    fake_b, fake_a = G(real_a, "ab"), G(real_b, "ba")
    parts = {"loss_g_gan": least_squares(D(fake_b, "b"), 1.0) + least_squares(D(fake_a, "a"), 1.0)}
    parts["loss_cycle"] = lambda_cycle * (F.l1_loss(G(fake_b, "ba"), real_a) + F.l1_loss(G(fake_a, "ab"), real_b))
    total = parts["loss_g_gan"] + parts["loss_cycle"]
    if lambda_identity > 0:
        parts["loss_identity"] = lambda_identity * lambda_cycle * (
            F.l1_loss(G(real_b, "ab"), real_b) + F.l1_loss(G(real_a, "ba"), real_a))
        total = total + parts["loss_identity"]
    return total, {k: v.detach() for k, v in parts.items()}, (fake_a, fake_b)


def discriminator_loss(D: nn.Module, domain: str, real: Tensor, fake: Tensor) -> Tensor:
    """One discriminator's loss, halved as the reference does to slow D relative to G."""
    return 0.5 * (least_squares(D(real, domain), 1.0) + least_squares(D(fake.detach(), domain), 0.0))


@torch.no_grad()
def translation_rows(G: nn.Module, a: Tensor, b: Tensor) -> Tensor:
    """Images for a sample grid of 6 columns: a, G_AB(a), G_BA(G_AB(a)), b, G_BA(b), G_AB(G_BA(b))."""
    fake_b, fake_a = G(a, "ab"), G(b, "ba")
    cols = [a, fake_b, G(fake_b, "ba"), b, fake_a, G(fake_a, "ab")]
    return torch.stack(cols, dim=1).flatten(0, 1)


class UnpairedBatches:
    """Real batches of both domains, as the reference's unaligned dataset draws them: domain A in
    epochs (:class:`~sparsegan.data.EpochSampler`, this rank's shard), domain B at random; every
    image resized to ``load_size``, randomly cropped to the model resolution and flipped. The
    random draws come from ``generator`` (checkpointed with the run's other streams)."""

    def __init__(self, data, sampler, *, load_size: int, resolution: int, device: torch.device, dist,
                 generator: torch.Generator):
        self.data, self.sampler, self.load_size, self.resolution = data, sampler, load_size, resolution
        self.device, self.dist, self.generator = device, dist, generator

    def real(self) -> tuple[Tensor, Tensor]:
        from sparsegan.data.unpaired import augment

        idx_a = self.sampler.next()
        # B for the whole global batch from the shared stream, then this rank's shard (as latents).
        idx_b = self.dist.shard(torch.randint(len(self.data.b), (len(idx_a) * self.dist.world_size,),
                                              generator=self.generator))
        a = augment(self.data.a[idx_a], self.load_size, self.resolution, self.generator)
        b = augment(self.data.b[idx_b], self.load_size, self.resolution, self.generator)
        return a.to(self.device), b.to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
