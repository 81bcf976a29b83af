"""How well a translation pair translates: each direction's translated test images against the
target domain's test images (the CycleGAN / GAN Tickets protocol: FID of G_AB(test A) vs test B).

A value of direction ab is named with the suffix ``_ab`` (``fid_domain_ab``, ``fid_ba``); the
metric's own name holds the mean of both directions, the value "best" ranks. fid_domain uses the
domain classifier of the dataset the pair was cut from (``dataset.json`` of ``sparsegan data
fashion-pair``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sparsegan.data import to_model_range, to_uint8
from sparsegan.data.unpaired import load_unpaired, source_dataset
from sparsegan.metrics.evaluate import Evaluator
from sparsegan.metrics.features import ImageSampler
from sparsegan.protocols import PROTOCOL_FIELDS, Protocol

DIRECTIONS = {"ab": ("A", "B"), "ba": ("B", "A")}  # direction -> (source domain, target domain)


def translation_sampler(G: nn.Module, images: Tensor, direction: str, resolution: int,
                        device: torch.device) -> ImageSampler:
    """n -> the next n of ``images`` (uint8, in order) translated by ``G`` in eval mode."""
    cursor = 0

    @torch.no_grad()
    def sample(n: int) -> Tensor:
        nonlocal cursor
        x = images[cursor:cursor + n]
        cursor += n
        was_training = G.training
        G.eval()
        try:
            out = G(to_model_range(x, resolution).to(device), direction)
        finally:
            G.train(was_training)
        return to_uint8(out.float()).cpu()

    def skip(n: int) -> None:  # another rank's share of the images
        nonlocal cursor
        cursor += n

    sample.skip = skip
    return sample


def evaluate_translation(G: nn.Module, metrics: list[str], *, data_root: str, resolution: int, channels: int,
                         num_samples: int | None = None, batch_size: int = 64, device: torch.device | str = "cpu",
                         inception_weights: str | None = None, progress: bool = False,
                         dist=None, test=None) -> tuple[dict[str, dict[str, Any]], Protocol] | tuple[None, None]:
    """{metric_direction: values, metric: mean of both} and the protocol (the test split of each
    source domain, at most ``num_samples`` images, against the whole target test split). With
    ``dist`` the ranks share the translations (Evaluator.run); the other ranks get (None, None).
    ``test``: the test split already loaded (evaluation during training loads it once)."""
    if test is None:
        test = load_unpaired(data_root, "test", resolution=resolution, channels=channels)
    domain = source_dataset(data_root)
    device = torch.device(device)
    out: dict[str, dict[str, Any]] = {}
    counts = []
    for d, (src, dst) in DIRECTIONS.items():
        images = test.a if src == "A" else test.b
        n = len(images) if num_samples is None else min(num_samples, len(images))
        counts.append(n)
        ev = Evaluator(metrics=metrics, dataset="unpaired", resolution=resolution, num_samples=n, num_ref=0,
                       split=f"test{dst}", data_root=data_root, batch_size=batch_size, device=str(device),
                       inception_weights=inception_weights, progress=progress, domain=domain)
        results = ev.run(translation_sampler(G, images, d, resolution, device), dist=dist)
        if results is None:  # a rank other than 0: its share is measured, rank 0 has the values
            continue
        for name, r in results.items():
            values = {f"{k}_{d}": v for k, v in r.items() if k not in PROTOCOL_FIELDS}
            out[f"{name}_{d}"] = {**values, "num_samples": n, "num_ref": r["num_ref"], "split": f"test{dst}"}
    if not out:
        return None, None
    for name in metrics:
        ab, ba = out[f"{name}_ab"], out[f"{name}_ba"]
        means = {k[:-3]: 0.5 * (ab[k] + ba[k[:-3] + "_ba"]) for k in ab
                 if k.endswith("_ab") and isinstance(ab[k], (int, float))}
        out[name] = {**means, "num_samples": min(counts), "num_ref": None, "split": "test"}
    return out, Protocol(min(counts), 0, "test", "ema", True)
