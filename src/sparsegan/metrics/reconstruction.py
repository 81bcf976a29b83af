"""Held-out reconstruction error of an autoencoder (Generative Tickets' measure of an AE ticket).

An AE is not a sampler: its quality is how well it reconstructs images it did not train on. The
value is the squared error per image on the held-out split, summed over pixels and channels in the
model's [-1, 1] range: the same quantity as the AE's training loss (``recon``), so train and
held-out curves share a scale. ``psnr`` is the same error per pixel, in dB with a peak-to-peak
range of 2. A VAE reconstructs from its posterior mean (deterministic: no sampling noise in the value).

Both nets are measured as they are (the live weights, in eval mode: BN running statistics), since
the decoder's EMA never trained beside this encoder.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sparsegan.data import load_dataset, to_model_range

# The name a reconstruction evaluation goes by in --eval-metrics; it needs the encoder too, so it is
# not one of the sample metrics of sparsegan.metrics.evaluate (those see only a sampler).
RECON_METRIC = "recon"
VALUES = ("recon_mse", "psnr")


@torch.no_grad()
def reconstruction_error(encoder: nn.Module, decoder: nn.Module, images: Tensor, *, resolution: int,
                         batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, float]:
    """{"recon_mse": mean per-image squared error, "psnr": dB} of uint8 ``images`` [N, C, h, w]."""
    modes = encoder.training, decoder.training
    encoder.eval(), decoder.eval()
    total, n, values_per_image = 0.0, 0, None
    try:
        for i in range(0, len(images), batch_size):
            x = to_model_range(images[i : i + batch_size], resolution).to(device)
            code = encoder(x)
            z = code[0] if isinstance(code, tuple) else code  # a VAE: the posterior mean
            total += float((decoder(z) - x).pow(2).sum(dtype=torch.float64))
            n += x.shape[0]
            values_per_image = x[0].numel()
    finally:
        encoder.train(modes[0]), decoder.train(modes[1])
    mse = total / n
    per_pixel = mse / values_per_image
    return {"recon_mse": mse, "psnr": 10.0 * math.log10(4.0 / per_pixel) if per_pixel > 0 else math.inf}


def heldout_images(dataset: str, split: str, count: int | None, data_root=None, *, resolution: int) -> Tensor:
    """uint8 images of ``split``: the first ``count`` (all of them when None or 0), in file order
    (image folders are decoded at ``resolution``; in-memory datasets keep their own size)."""
    data = load_dataset(dataset, split, data_root, resolution=resolution)
    n = len(data) if not count else min(count, len(data))
    if getattr(data, "lazy", False):
        return torch.cat([data.batch(torch.arange(i, min(i + 256, n)))[0] for i in range(0, n, 256)])
    return data.images[:n]
