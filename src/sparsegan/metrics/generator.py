"""Generators as metrics see them: a callable n -> uint8 images [n, C, H, W].

``load_run_generator`` rebuilds a run's generator from its folder (RUN/config.json and
RUN/final/generator[_ema].safetensors) so any tool can sample a finished run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from sparsegan.data import load_dataset, to_uint8
from sparsegan.errors import UserError
from sparsegan.metrics.features import ImageSampler
from sparsegan.models import NATIVE_RESOLUTION, ModelSpec, build_models

WEIGHTS = {"ema": "generator_ema.safetensors", "raw": "generator.safetensors",
           "ema_best": "generator_ema_best.safetensors"}


def read_run_config(run: str | Path) -> dict[str, Any]:
    path = Path(run) / "config.json"
    if not path.is_file():
        raise UserError(f"{run} is not a sparsegan run folder (no config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg})") from None


def model_spec(config: dict[str, Any], channels: int, num_classes: int) -> ModelSpec:
    """The ModelSpec the training loop builds for this config (unconditional models ignore
    ``num_classes``; class-conditional ones need the dataset's)."""
    return ModelSpec(channels=channels, resolution=None, num_classes=num_classes,
                     z_dim=config["z_dim"], width=config.get("model_width"),
                     width_multiplier=config.get("width_multiplier", 1.0))


def load_run_generator(run: str | Path, which: str = "ema", *, device: str | torch.device = "cpu",
                       data_root: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(generator with the run's final weights, the run's config). ``which``: ema | raw | ema_best."""
    if which not in WEIGHTS:
        raise UserError(f"unknown generator {which!r}; valid: {', '.join(WEIGHTS)}")
    config = read_run_config(run)
    weights = Path(run) / "final" / WEIGHTS[which]
    if not weights.is_file():
        hint = " (the run has not finished; final/ is written at the end)" if which != "ema_best" else \
            " (written only by runs trained with --eval-every)"
        raise UserError(f"{weights} not found{hint}")
    data = load_dataset(config["dataset"], "train", data_root if data_root is not None else config.get("data_root"))
    G, _ = build_models(config["model"], model_spec(config, data.channels, data.num_classes))
    state = load_file(str(weights))
    try:
        G.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{weights} does not fit the model of {run}/config.json "
                        f"({str(e).splitlines()[0][:160]})") from None
    return G.to(device), config


def generator_sampler(G: nn.Module, *, seed: int = 0, device: str | torch.device = "cpu",
                      eval_mode: bool = True) -> ImageSampler:
    """n -> uint8 images from G, latents (and labels of conditional G) from a seeded CPU stream.

    eval_mode=True puts G in eval mode (BN running statistics); False samples in train mode
    (BN batch statistics, the BigGAN reference's habit; REFERENCE.md §6.7). G's mode is
    restored after every call."""
    rng = torch.Generator().manual_seed(seed)
    num_classes = int(getattr(G, "num_classes", 0) or 0)

    @torch.no_grad()
    def sample(n: int) -> Tensor:
        was_training = G.training
        G.train(not eval_mode)
        try:
            z = G.sample_z(n, rng, device)
            if num_classes > 0:
                y = torch.randint(num_classes, (n,), generator=rng).to(device)
                x = G(z, y)
            else:
                x = G(z)
        finally:
            G.train(was_training)
        return to_uint8(x.float()).cpu()

    return sample


def native_resolution(config: dict[str, Any]) -> int:
    return NATIVE_RESOLUTION[config["model"]]
