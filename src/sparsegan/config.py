"""Typed training configuration: one dataclass, validated on construction, the CLI derived from it.

Every field is a ``--flag`` of ``sparsegan train`` (underscores become dashes) and a key of the
YAML recipes in ``configs/``. Unknown keys and wrong types are refused with the key named.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from sparsegan.errors import UserError


def _f(default, help: str, choices: str | None = None, **kw):
    """A config field with its help text; ``choices`` names a registry that lists valid values."""
    return field(default=default, metadata={"help": help, "choices": choices, **kw})


@dataclass
class TrainConfig:
    # --- data and model --------------------------------------------------------------
    dataset: str = _f("fashion-mnist", "dataset name", choices="dataset")
    data_root: str | None = _f(None, "folder with the dataset files; when given, the only place looked in")
    model: str = _f("mlp", "model name", choices="model")
    model_width: int | None = _f(None, "base channel / unit count (model default when unset)")
    width_multiplier: float = _f(1.0, "multiply the model's widths (0.5: the papers' 'small dense')")
    z_dim: int = _f(128, "latent dimension")
    loss: str = _f("hinge", "GAN loss", choices="loss")
    # --- method and sparsity ----------------------------------------------------------
    method: str = _f("stu", "training method", choices="method")
    sparsity_g: float = _f(0.9, "generator sparsity: fraction of zeros among G's prunable weights")
    sparsity_d: float = _f(0.5, "discriminator sparsity")
    distribution: str = _f("erk", "layer-wise sparsity distribution", choices="distribution")
    erk_power_scale: float = _f(1.0, "ERK exponent (< 1 softens the allocation)")
    prunable: str = _f("all", "prunable weights: all Linear/Conv/ConvTranspose, or conv only (paper)", choices="prunable")
    update_interval: int = _f(1000, "topology update every this many completed G steps (Delta T)")
    update_end: int | None = _f(None, "last step at which the topology may change (default: whole run)")
    prune_fraction: float = _f(0.5, "initial prune fraction p of each update (cosine decay)")
    prune_fraction_final: float = _f(0.005, "prune fraction at the end of the cosine decay")
    prune_criterion: str = _f("magnitude", "which active weights to drop", choices="prune_criterion")
    grow: str = _f("gradient", "which inactive weights to grow: gradient (RigL), random (SET), momentum", choices="grow")
    explore: str = _f("G", "which net's topology STU-GAN explores", choices="explore")
    reset_regrown_state: bool = _f(True, "zero the optimizer moments of regrown weights (reference code: no)")
    mask_gradients: bool = _f(True, "zero the gradients of inactive weights (reference code: no)")
    # --- optimisation ------------------------------------------------------------------
    steps: int = _f(2000, "generator updates")
    batch_size: int = _f(64, "images per D step (and per G step)")
    n_dis: int = _f(1, "D steps per G step")
    lr_g: float = _f(2e-4, "generator learning rate (Adam)")
    lr_d: float = _f(2e-4, "discriminator learning rate (Adam)")
    beta1: float = _f(0.5, "Adam beta1")
    beta2: float = _f(0.999, "Adam beta2")
    ema_beta: float = _f(0.999, "EMA decay of the sampled generator")
    ema_start: int = _f(0, "G step from which the EMA averages (copies before)")
    g_batch_size: int | None = _f(None, "images per G step (default: --batch-size; SNGAN: 128 vs D's 64)")
    adam_eps: float = _f(1e-8, "Adam epsilon (BigGAN ImageNet: 1e-6)")
    data_workers: int = _f(4, "worker processes decoding lazily loaded images (image-folder); 0: in the main process")
    # --- devices and processes ---------------------------------------------------------
    precision: str = _f("fp32", "fp32, or bf16 autocast for G and D forward passes (CPU or GPU)", choices="precision")
    channels_last: bool = _f(False, "NHWC weights and images (faster convolutions on tensor-core GPUs)")
    compile: bool = _f(False, "torch.compile the G and D forward passes")
    sync_bn: bool = _f(False, "under torchrun: batch-norm statistics over the global batch (all processes)")
    # --- run -----------------------------------------------------------------------------
    seed: int = _f(0, "random seed (weights, masks, data order, noise)")
    device: str = _f("cpu", "torch device: cpu, cuda, cuda:1, mps")
    out: str | None = _f(None, "run folder")
    log_every: int = _f(50, "write a kind=train record every this many steps")
    sample_every: int = _f(500, "write a sample grid every this many steps (and at the end)")
    checkpoint_every: int = _f(500, "write a full training state every this many steps (and at the end)")
    keep_checkpoints: int = _f(2, "how many checkpoints to keep")
    num_sample_images: int = _f(64, "images in each sample grid")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("sparsity_g", "sparsity_d"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {v}")
        positive = ("steps", "batch_size", "n_dis", "update_interval", "log_every", "sample_every",
                    "checkpoint_every", "keep_checkpoints", "z_dim", "num_sample_images")
        for name in positive:
            v = getattr(self, name)
            if v <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {v}")
        for name in ("lr_g", "lr_d", "width_multiplier"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.g_batch_size is not None and self.g_batch_size <= 0:
            raise UserError(f"--g-batch-size must be a positive integer, got {self.g_batch_size}")
        if self.data_workers < 0 or self.adam_eps <= 0:
            raise UserError("--data-workers must be >= 0 and --adam-eps positive")
        if self.model_width is not None and self.model_width <= 0:
            raise UserError(f"--model-width must be positive, got {self.model_width}")
        if not 0.0 <= self.ema_beta < 1.0:
            raise UserError(f"--ema-beta must be in [0, 1), got {self.ema_beta}")
        if not 0.0 <= self.prune_fraction_final <= self.prune_fraction <= 1.0:
            raise UserError("need 0 <= --prune-fraction-final <= --prune-fraction <= 1")
        for name, choices in choice_values().items():
            v = getattr(self, name)
            if v not in choices:
                raise UserError(f"unknown {name.replace('_', ' ')} {v!r}; valid: {', '.join(choices)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def choice_values() -> dict[str, list[str]]:
    """Valid values of every choice field, read from the registries (imported lazily)."""
    from sparsegan.data import DATASETS
    from sparsegan.losses import LOSSES
    from sparsegan.methods import METHODS
    from sparsegan.models import MODELS
    from sparsegan.sparsity import DISTRIBUTIONS, GROW_CRITERIA, PRUNE_CRITERIA, SCOPES

    by_registry = {
        "dataset": DATASETS.names(), "model": MODELS.names(), "loss": LOSSES.names(),
        "method": METHODS.names(), "distribution": sorted(DISTRIBUTIONS), "prunable": list(SCOPES),
        "prune_criterion": PRUNE_CRITERIA.names(), "grow": GROW_CRITERIA.names(),
        "explore": ["G", "D", "GD"], "precision": ["fp32", "bf16"],
    }
    return {f.name: by_registry[f.metadata["choices"]] for f in fields(TrainConfig) if f.metadata.get("choices")}


def field_type(f: dataclasses.Field) -> tuple[type, bool]:
    """(base type, optional) of a config field."""
    hints = typing.get_type_hints(TrainConfig)
    t = hints[f.name]
    args = typing.get_args(t)
    if typing.get_origin(t) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return t, False


def coerce(name: str, value: Any) -> Any:
    """Check a YAML / override value against the field's type; ints are accepted for floats."""
    by_name = {f.name: f for f in fields(TrainConfig)}
    if name not in by_name:
        raise UserError(f"unknown config key {name!r}")
    base, optional = field_type(by_name[name])
    if value is None:
        if optional:
            return None
        raise UserError(f"config key {name!r} may not be null")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is str:
        if isinstance(value, str):
            return value
    raise UserError(f"config key {name!r} must be {base.__name__}, got {type(value).__name__} {value!r}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return {k: coerce(k, v) for k, v in data.items()}


def build_config(values: Mapping[str, Any]) -> TrainConfig:
    return TrainConfig(**{k: coerce(k, v) for k, v in values.items()})
