"""A run's set-up: the nets, their optimizers, the engine over them, the EMA, the data and the
random streams (:class:`Trainer`, built by :func:`build_trainer`), what config.json records, and
what the loop evaluates during training. The loop itself (sparsegan.training.loop) only steps it."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import sparsegan
from sparsegan.config import TrainConfig, flag_of, method_for
from sparsegan.data import EpochSampler, load_dataset, to_model_range, to_uint8
from sparsegan.engine import SparseTraining
from sparsegan.errors import DivergenceError, UserError
from sparsegan.losses import LOSSES
from sparsegan.methods import Method
from sparsegan.models import MODEL_KIND, NATIVE_RESOLUTION, ModelSpec, build_models, model_nets
from sparsegan.models.ddpm import TIMESTEPS
from sparsegan.random_streams import seeded_generator
from sparsegan.run_folder import RunDir
from sparsegan.sparsity import SparseEMA
from sparsegan.training.batches import Batches, fixed_labels
from sparsegan.training.distributed import DistContext, convert_sync_batchnorm
from sparsegan.training.objectives import autoencoder_loss, diffusion_loss
from sparsegan.training.runtime import forward_view, to_memory_format
from sparsegan.training.sources import load_pf_source, read_ticket
from sparsegan.training.translation import (
    ImagePool,
    UnpairedBatches,
    discriminator_loss,
    generator_loss,
    translation_rows,
)

# Config keys that must match for a run to be resumed (the rest may change, e.g. --steps).
#: The random streams the engine keeps in its own state (SparseTraining's generators).
ENGINE_STREAMS = ("masks", "topology")

RESUME_KEYS = ("dataset", "model", "model_width", "width_multiplier", "z_dim", "method", "sparsity_g",
               "sparsity_d", "distribution", "prunable", "seed", "loss", "ema_warmup", "noise_schedule", "attention")
# What a config.json written before a resume key existed held: that option's value then.
BEFORE = {"ema_warmup": False, "noise_schedule": "linear", "attention": False}


@dataclass
class Trainer:
    """Everything one run holds; built by :func:`build_trainer`, driven by :func:`train`."""

    cfg: TrainConfig
    run: RunDir
    device: torch.device
    G: nn.Module
    D: nn.Module | None  # None: a model trained as one net (diffusion), see nets
    ema: SparseEMA
    method: Method
    sparse: SparseTraining  # the engine's API over G, D and their optimizers (drives ``method``)
    opt: dict[str, torch.optim.Optimizer]
    sampler: Batches  # real batches (this rank's shard) and latents; its state is the data order
    rng: dict[str, torch.Generator]
    images: torch.Tensor | None  # the train split when held in memory (None: decoded lazily)
    resolution: int
    kind: str = "gan"
    step: int = 0
    wall_time: float = 0.0
    dist: DistContext = field(default_factory=DistContext)
    fwd: dict[str, nn.Module] = field(default_factory=dict)  # forward passes: bf16 / compiled views
    data_info: dict[str, int] = field(default_factory=dict)  # config.json's record of the data (data_record)
    pools: dict[str, ImagePool] = field(default_factory=dict)  # translation: each domain's fake history
    source_phases: list[dict[str, Any]] = field(default_factory=list)  # training before this run (PF's --from)

    @property
    def nets(self) -> dict[str, nn.Module]:
        """The nets this run trains by name: G and D, or G alone for a diffusion model (its denoiser).
        Why no placeholder D: the engine takes any named nets, so a one-net family is trained as
        one, and every count (parameters, FLOPs, densities, final files) is of what exists."""
        return {"G": self.G} if self.D is None else {"G": self.G, "D": self.D}

    def phases(self) -> list[dict[str, Any]]:
        """Training phases outside the loop's steps, for FLOPs accounting: before the run (PF's dense
        run) and the method's own (SNIP's probes, early-bird's dense search)."""
        return self.source_phases + self.method.phases()

    def training_state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            **{net: m.state_dict() for net, m in self.nets.items()}, "G_ema": self.ema.state_dict(),
            **{f"opt_{net}": self.opt[net].state_dict() for net in self.nets},
            "sparse": self.sparse.state_dict(), "sampler": self.sampler.state_dict(),
            # the loop's own streams; the engine's (masks, topology) are in its state
            "rng": {k: g.get_state() for k, g in self.rng.items() if k not in ENGINE_STREAMS}
            | {"torch": torch.get_rng_state()},
            "wall_time": self.wall_time,
        } | ({"pools": {k: p.state_dict() for k, p in self.pools.items()}} if self.pools else {})

    def load_training_state(self, state: dict[str, Any]) -> None:
        for net, module in self.nets.items():
            module.load_state_dict(state[net])
            self.opt[net].load_state_dict(state[f"opt_{net}"])
        self.ema.load_state_dict(state["G_ema"])
        if "sparse" in state:
            self.sparse.load_state_dict(state["sparse"])
        else:  # a checkpoint written before the engine's state was saved whole: the method's alone
            self.sparse.load_state_dict({"method": state["method"], "completed": int(state["step"])})
        self.sampler.load_state_dict(state["sampler"])
        for k, g in self.rng.items():
            if k not in ENGINE_STREAMS or "sparse" not in state:  # older checkpoints held every stream here
                g.set_state(state["rng"][k])
        torch.set_rng_state(state["rng"]["torch"])
        self.step = int(state["step"])
        self.wall_time = float(state.get("wall_time", 0.0))
        for k, pool in self.pools.items():
            pool.load_state_dict(state["pools"][k], self.device)


def _adam(params, **kw) -> torch.optim.Adam:
    """Fused Adam where the device has it. Besides being faster, it matters for sparse training:
    the multi-tensor path takes sqrt of every exp_avg_sq entry, and sqrt(0) at the inactive entries
    hits a slow path on some CPUs (measured: 6x slower than on positive values), which made a
    sparse MLP step 20 % slower than a dense one (benchmarks/step-time/results/step_time.json)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, **kw)


def build_nets(cfg: TrainConfig, data, seed: int) -> tuple[nn.Module, nn.Module | None]:
    """G and D as the config and the data define them, initialised from ``seed`` (on the CPU); D is
    None for a model trained as one net (diffusion). Translation nets take the data's resolution;
    the others have their own."""
    spec = ModelSpec(
        channels=data.channels, resolution=getattr(data, "resolution", None) if _translation(cfg) else None,
        num_classes=getattr(data, "num_classes", 0), z_dim=cfg.z_dim, width=cfg.model_width,
        width_multiplier=cfg.width_multiplier, sample_steps=cfg.sample_steps, noise_schedule=cfg.noise_schedule,
        attention=cfg.attention,
    )
    torch.manual_seed(seed)  # module initialisers draw from the global generator
    return build_models(cfg.model, spec)


def _advise_threads(processes: int) -> None:
    """One line when the processes on this machine ask for more threads than it has cores (each
    process's GEMMs then fight for the cores: slower than fewer threads each)."""
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    if processes * threads > cores:
        print(f"sparsegan: warning: {processes} process(es) x {threads} threads on {cores} cores oversubscribe the "
              f"CPU; set OMP_NUM_THREADS={max(1, cores // processes)}", file=sys.stderr)


def _translation(cfg: TrainConfig) -> bool:
    return MODEL_KIND.get(cfg.model) == "translation"


def load_training_data(cfg: TrainConfig):
    """The train split: one dataset, or the two domains of a translation model."""
    if not _translation(cfg):
        return load_dataset(cfg.dataset, "train", cfg.data_root, resolution=NATIVE_RESOLUTION.get(cfg.model))
    from sparsegan.data.unpaired import load_unpaired

    if cfg.dataset != "unpaired":
        raise UserError(f"--model {cfg.model} translates between two domains: use --dataset unpaired --data-root "
                        "DIR (trainA/ trainB/ testA/ testB/)")
    if cfg.data_root is None:
        raise UserError("--dataset unpaired needs --data-root DIR: the folder with trainA/ trainB/ testA/ testB/")
    return load_unpaired(cfg.data_root, "train")


def build_trainer(cfg: TrainConfig, run: RunDir | None) -> Trainer:
    dist = DistContext.from_env(cfg.device)  # one process, or this rank under torchrun
    dist.check_batch(cfg.batch_size, cfg.g_batch_size or cfg.batch_size, accumulation=cfg.grad_accum)
    device = dist.device(cfg.device)
    if device.type == "cpu" and dist.is_main:
        _advise_threads(int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size)))
    data = load_training_data(cfg)
    nets = {net: m for net, m in zip(("G", "D"), build_nets(cfg, data, cfg.seed)) if m is not None}
    for net, m in nets.items():
        m = m.to(device)
        if cfg.sync_bn:
            m = convert_sync_batchnorm(m)
        nets[net] = to_memory_format(m, cfg.channels_last)
        dist.broadcast_module_(nets[net])
    G, D = nets["G"], nets.get("D")
    rng = {"masks": seeded_generator(cfg.seed, 1), "noise": seeded_generator(cfg.seed, 2),
           "topology": seeded_generator(cfg.seed, 3),
           "probe": seeded_generator(cfg.seed, 5)}
    kind = MODEL_KIND[cfg.model]
    resolution = data.resolution if kind == "translation" else NATIVE_RESOLUTION[cfg.model]
    if cfg.method == "pf" and not cfg.from_run:
        raise UserError("--method pf needs --from RUN_DIR: the finished dense run to prune")
    method = method_for(cfg)
    source_phases = load_pf_source(cfg, nets)  # PF prunes --from's weights

    def loss_probe(net: str) -> torch.Tensor:
        """The net's training loss on a batch drawn from the probe stream (SNIP, GraSP)."""
        if kind == "translation":
            a = to_model_range(data.a[torch.randint(len(data.a), (cfg.batch_size,), generator=rng["probe"])],
                               resolution).to(device)
            b = to_model_range(data.b[torch.randint(len(data.b), (cfg.batch_size,), generator=rng["probe"])],
                               resolution).to(device)
            if net == "G":
                return generator_loss(G, D, a, b, cfg.lambda_cycle, cfg.lambda_identity)[0]
            with torch.no_grad():
                fake_a, fake_b = G(b, "ba"), G(a, "ab")
            return discriminator_loss(D, "a", a, fake_a) + discriminator_loss(D, "b", b, fake_b)
        idx = torch.randint(len(data), (cfg.batch_size,), generator=rng["probe"])
        x, y = data.batch(idx)
        real, y = to_model_range(x, resolution).to(device), y.to(device)
        if kind == "diffusion":
            steps = torch.randint(TIMESTEPS, (cfg.batch_size,), generator=rng["probe"]).to(device)
            eps = G.sample_z(cfg.batch_size, rng["probe"], device)
            return diffusion_loss(G.denoiser, G.alpha_bar, real, steps, eps)
        if kind != "gan":
            return autoencoder_loss(kind, G, D, real, cfg.kl_weight, rng["probe"])[0]
        z = G.sample_z(cfg.batch_size, rng["probe"], device)
        loss = LOSSES.get(cfg.loss)
        if net == "G":
            return loss.g(D(G(z, y), y))
        with torch.no_grad():
            fake = G(z, y)
        return loss.d(D(real, y), D(fake, y))

    betas = (cfg.beta1, cfg.beta2)
    lr = {"G": cfg.lr_g, "D": cfg.lr_d}
    opt = {net: _adam(m.parameters(), lr=lr[net], betas=betas, eps=cfg.adam_eps) for net, m in nets.items()}
    # The engine's public API (sparsegan.engine), as any user's loop would use it: masks drawn here,
    # the optimizers' steps masked and kept sparse by its hooks, topology updates in sparse.step().
    # Sparse compute runs fp32 layers eagerly: under torch.compile or bf16 autocast "auto" keeps the
    # masked path ("on" is refused there by the config).
    compute = "off" if cfg.compile or cfg.precision != "fp32" else cfg.sparse_compute
    sparse = SparseTraining(nets, opt, method, loss_probe=loss_probe,
                            generators=(rng["masks"], rng["topology"]), ticket=read_ticket(cfg),
                            sparse_compute=compute)
    sparse.broadcast_masks()  # every rank starts from rank 0's masks (a no-op in one process)
    dist.average_gradients(*nets.values())  # from here on, every backward pass averages gradients over ranks
    n_train = len(data.a) if kind == "translation" else len(data)  # translation: epochs over domain A
    sampler = EpochSampler(n_train, cfg.batch_size, cfg.seed, rank=dist.rank, world_size=dist.world_size)
    view = dict(precision=cfg.precision, compile=cfg.compile, device=device)
    # What the loop's forward passes call: the nets themselves; a diffusion model trains through its denoiser.
    trained = {net: G.denoiser if kind == "diffusion" and net == "G" else m for net, m in nets.items()}
    if kind == "translation":
        rng["augment"], rng["pool"] = seeded_generator(cfg.seed, 6), seeded_generator(cfg.seed, 7)
        batches = UnpairedBatches(data, sampler, load_size=cfg.load_size or round(resolution * 286 / 256),
                                  resolution=resolution, device=device, dist=dist, generator=rng["augment"])
        pools = {d: ImagePool(cfg.pool_size, rng["pool"]) for d in ("A", "B")}
    else:
        batches = Batches(data, sampler, resolution=resolution, device=device, dist=dist, noise=rng["noise"], G=G,
                          workers=cfg.data_workers, channels_last=cfg.channels_last)
        pools = {}
    return Trainer(
        cfg=cfg, run=run, device=device, G=G, D=D,
        # SEMA: restarted at G's topology changes
        ema=sparse.ema("G", cfg.ema_beta, start_step=cfg.ema_start, warmup=cfg.ema_warmup),
        method=method, sparse=sparse, opt=opt, rng=rng, images=getattr(data, "images", None), resolution=resolution,
        kind=kind, sampler=batches, pools=pools,
        dist=dist, fwd={net: forward_view(m, **view) for net, m in trained.items()},
        data_info=data_record(cfg, data), source_phases=source_phases,
    )


def ignored_keys(cfg: TrainConfig) -> dict[str, Any]:
    """config.json's "ignored": the keys given without effect (``sparsegan train --allow-ignored``,
    see config.inapplicable); dense always lists the sparsity flags, which it accepts and ignores."""
    keys = list(getattr(cfg, "ignored", {}))
    if cfg.method == "dense":
        keys = ["sparsity_g", "sparsity_d"] + [k for k in keys if k not in ("sparsity_g", "sparsity_d")]
    return {"ignored": keys} if keys else {}


def data_record(cfg: TrainConfig, data) -> dict[str, int]:
    """What config.json records of the data, which with the config rebuilds the nets (run_folder):
    image channels, classes, and for a translation model (built at the data's size) the resolution."""
    out = {"channels": int(data.channels), "num_classes": int(getattr(data, "num_classes", 0))}
    if _translation(cfg):
        out["resolution"] = int(data.resolution)
    return out


def resolved_config(cfg: TrainConfig, device: torch.device, data: dict[str, int]) -> dict[str, Any]:
    out = cfg.to_dict() | ignored_keys(cfg) | data  # data: data_record()
    out["ema_scope"] = "parameters averaged, buffers copied"
    if model_nets(cfg.model) != ("G", "D"):  # what reads the run learns it has no D (sparsity_d is not D's)
        out["nets"] = list(model_nets(cfg.model))
    out["environment"] = {
        "sparsegan": sparsegan.__version__, "torch": torch.__version__, "python": platform.python_version(),
        "device": str(device), "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
        **source_commit(),
    }
    return out


SEGMENT_KEYS = ("sparsegan", "torch", "commit", "modified", "torch_threads")


def started_record(environment: dict[str, Any], previous_config: dict[str, Any] | None = None,
                   previous_is_first: bool = False) -> dict[str, Any]:
    """config.json's ``environment.started``: the code and thread count of the run's first segment, which
    config.json's rewrite at each resume would otherwise lose (each resume record keeps its own segment's).
    A new run: its own environment's. A resume: the previous config.json's ``started``; for a run written
    before config.json kept it, the previous environment where the caller knows it was the first segment's
    (no resume came between); else {} (unknown, not guessed)."""
    if previous_config is None:
        return {k: environment[k] for k in SEGMENT_KEYS if k in environment}
    before = previous_config.get("environment") or {}
    if "started" in before:
        return dict(before["started"])
    return {k: before[k] for k in SEGMENT_KEYS if k in before} if previous_is_first else {}


def source_commit() -> dict[str, Any]:
    """The git commit of the sparsegan source that runs, and whether its files differ from it
    ({"commit": sha, "modified": bool}; {} outside a git checkout): a run says which code trained it."""
    import subprocess

    where = Path(sparsegan.__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": sha, "modified": bool(dirty)} if sha else {}


def resume_threads(previous_config: dict[str, Any] | None, device: torch.device) -> tuple[dict[str, int], str | None]:
    """The resume record's thread counts, and on the CPU a warning where the count changed since the
    run's last segment: CPU kernels split their float reductions by thread, so another count makes the
    run drift from the uninterrupted one (bitwise at once; measurably once GAN training amplifies it)."""
    now = torch.get_num_threads()
    before = ((previous_config or {}).get("environment") or {}).get("torch_threads")
    if before is None or before == now or device.type != "cpu":
        return {"torch_threads": now}, None
    return {"torch_threads": now, "torch_threads_before": before}, (
        f"sparsegan: warning: resuming with {now} torch threads where the run trained with {before}: the CPU's "
        f"float reductions run in another order, so it will not be bitwise an uninterrupted run "
        f"(OMP_NUM_THREADS={before} keeps it exact)")


def check_resume_compatible(saved: dict[str, Any], cfg: TrainConfig, where: Path) -> None:
    diff = [k for k in RESUME_KEYS if saved.get(k, BEFORE.get(k)) != getattr(cfg, k)]
    if diff:
        k = diff[0]
        was = saved.get(k, BEFORE.get(k))
        hint = ""
        if isinstance(was, bool):  # a switch: the flag that resumes it as it was trained
            hint = f"; pass {flag_of(k) if was else '--no-' + flag_of(k)[2:]} to resume it"
        raise UserError(
            f"cannot resume {where}: it was trained with {k}={was!r}, this command asks for {getattr(cfg, k)!r}"
            + (f" (and {len(diff) - 1} more differences)" if len(diff) > 1 else "") + hint
        )


def check_resume_steps(saved: dict[str, Any], t: Trainer, ckpt_step: int, where: Path) -> None:
    """Refuse resuming with fewer --steps than the run was started with where a schedule spans them:
    the shorter run would not be the first steps of this one. (A checkpoint beyond --steps is refused
    by :func:`~sparsegan.training.lifecycle.resume_plan`; more steps extend a run, as documented.)"""
    before, now = saved.get("steps"), t.cfg.steps
    if not isinstance(before, int) or not ckpt_step <= now < before:
        return
    why = t.method.steps_spanned()
    if why is not None:
        why = f"with --method {t.cfg.method} {why}"
    elif t.kind == "translation" and t.cfg.lr_decay_start < 1:
        why = "the learning rates decay linearly over the last part of --steps (--lr-decay-start)"
    if why is not None:
        raise UserError(f"cannot resume {where} with --steps {now}, fewer than the {before} it was started with: "
                        f"{why}, so it would not be the first {now} steps of this run; resume with --steps {before} or "
                        f"more, or train a new run with --steps {now} into another --out")


def params_summary(t: Trainer) -> dict[str, dict[str, int]]:
    out = {}
    for net, module in t.nets.items():
        m = t.sparse.masks[net]
        total = sum(p.numel() for p in module.parameters())
        out[net] = {"total": total, "prunable": m.numel(), "active": total - m.numel() + m.active()}
    return out


def sample_inputs(t: Trainer) -> tuple:
    """What every sample grid of the run shows: fixed latents (and labels), or a translation
    model's first test images of each domain (up to num_sample_images / 6 of each)."""
    n = t.cfg.num_sample_images
    if t.kind == "translation":
        from sparsegan.data.unpaired import load_unpaired

        test = load_unpaired(t.cfg.data_root, "test", resolution=t.resolution, channels=t.data_info["channels"])
        k = max(1, min(n // 6, len(test.a), len(test.b)))
        return (to_model_range(test.a[:k], t.resolution), to_model_range(test.b[:k], t.resolution))
    z = t.G.sample_z(n, seeded_generator(t.cfg.seed, 4))
    return z, fixed_labels(n, getattr(t.G, "num_classes", 0), t.device)


@torch.no_grad()
def sample_grid(t: Trainer, fixed: tuple) -> tuple[torch.Tensor, int | None]:
    """The EMA generator's images for ``fixed`` (see :func:`sample_inputs`), and the grid's row
    length (translation: input, translation, reconstruction of each domain per row)."""
    t.ema.model.eval()
    if t.kind == "translation":
        a, b = fixed
        return to_uint8(translation_rows(t.ema.model, a.to(t.device), b.to(t.device)).cpu()), 6
    z, y = fixed
    x = t.ema.model(z.to(t.device)) if y is None else t.ema.model(z.to(t.device), y)
    return to_uint8(x.cpu()), None


def check_weights_finite(t: Trainer) -> None:
    for net, module in t.nets.items():
        for name, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise DivergenceError(f"non-finite weights in {net}.{name} at step {t.step}")


def training_evaluation(t: Trainer, sampler=None):
    """The EMA generator's metrics at tick boundaries (sparsegan.metrics.tracking): of its samples,
    or of its translations of the test images (sparsegan.metrics.translation); an autoencoder's
    held-out reconstruction (sparsegan.metrics.reconstruction) when asked for. ``sampler``: G ->
    what ``--eval-runtime sparse`` draws the samples with (the launcher's)."""
    from sparsegan.metrics import METRICS, Evaluator, parse_metrics
    from sparsegan.metrics.reconstruction import heldout_images, reconstruction_error
    from sparsegan.metrics.tracking import BEST_FILE, TrainingEvaluation

    cfg = t.cfg
    metrics = parse_metrics(cfg.eval_metrics)
    sampled = [m for m in metrics if not METRICS.get(m).needs_encoder]
    evaluator = translate = None
    if sampled and t.kind == "translation":
        from sparsegan.data.unpaired import load_unpaired, source_dataset
        from sparsegan.metrics.translation import evaluate_translation

        if "fid_domain" in sampled and source_dataset(cfg.data_root) is None:
            raise UserError(f"fid_domain of a translation needs the dataset its domains come from ({cfg.data_root}/"
                            "dataset.json, written by `sparsegan data fashion-pair`); use --eval-metrics fid")

        test = load_unpaired(cfg.data_root, "test", resolution=t.resolution, channels=t.data_info["channels"])

        def translate(G):
            return evaluate_translation(G, sampled, data_root=cfg.data_root, resolution=t.resolution,
                                        channels=t.data_info["channels"], num_samples=cfg.eval_num_samples,
                                        batch_size=cfg.eval_batch_size, device=t.device,
                                        inception_weights=cfg.inception_weights, dist=t.dist, test=test)
    elif sampled:
        evaluator = Evaluator(
            metrics=sampled, dataset=cfg.dataset, resolution=t.resolution, num_samples=cfg.eval_num_samples,
            num_ref=cfg.eval_num_ref, split=cfg.eval_split, data_root=cfg.data_root, batch_size=cfg.eval_batch_size,
            device=str(t.device), inception_weights=cfg.inception_weights, progress=False,
        )
        if t.dist.is_main:  # extractors and reference statistics now: a bad option fails before training
            evaluator.prepare()
    reconstruct = None
    if len(sampled) < len(metrics):  # recon: the whole held-out (test) split, loaded once
        heldout = heldout_images(cfg.dataset, "test", None, cfg.data_root, resolution=t.resolution)

        def reconstruct():
            values = reconstruction_error(t.D, t.G, heldout, resolution=t.resolution,
                                          batch_size=cfg.eval_batch_size, device=t.device)
            return values, len(heldout)

    return TrainingEvaluation(evaluator, t.run.path, log=t.run.log, seed=cfg.seed, metrics=metrics,
                              reconstruct=reconstruct, translate=translate, dist=t.dist,
                              save_best=lambda sd: t.run.save_final({BEST_FILE: sd}),
                              runtime=_eval_runtime(t, sampler) if evaluator is not None else None)


def _eval_runtime(t: Trainer, sampler):
    """What ``--eval-runtime sparse`` samples from: ``sampler`` (G -> the sparse inference runtime of G),
    which the launcher hands the loop (None: sample G itself)."""
    if t.cfg.eval_runtime == "dense":
        return None
    if t.device.type != "cpu":
        raise UserError(f"--eval-runtime sparse samples on the CPU (its kernels are CPU kernels), not {t.device}: "
                        "use --eval-runtime dense there")
    if sampler is None:
        raise UserError("--eval-runtime sparse needs the sparse runtime, which sparsegan.launch.train_one (the "
                        "`sparsegan train` command) attaches; the bare loop was given none")
    return sampler
