"""The training loop: one function for every method (STU-GAN Algorithm 1 and its baselines)."""

from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

import sparsegan
from sparsegan.config import TrainConfig
from sparsegan.data import EpochSampler, load_dataset, to_model_range, to_uint8
from sparsegan.engine import SparseTraining, seeded_generator
from sparsegan.errors import DivergenceError, UserError
from sparsegan.losses import LOSSES
from sparsegan.methods import METHODS, NETS, Method
from sparsegan.models import MODEL_KIND, NATIVE_RESOLUTION, ModelSpec, build_models
from sparsegan.run_folder import RunDir
from sparsegan.sparsity import SparseEMA
from sparsegan.training.batches import Batches, fixed_labels
from sparsegan.training.distributed import DistContext, convert_sync_batchnorm
from sparsegan.training.lifecycle import StopRequest, resume_plan
from sparsegan.training.objectives import autoencoder_loss, balance_ratio, preserved_buffers
from sparsegan.training.runtime import forward_view, to_memory_format
from sparsegan.training.state import checkpoint_path, latest_valid_checkpoint, load_checkpoint, save_checkpoint

# Config keys that must match for a run to be resumed (the rest may change, e.g. --steps).
RESUME_KEYS = ("dataset", "model", "model_width", "width_multiplier", "z_dim", "method", "sparsity_g",
               "sparsity_d", "distribution", "prunable", "seed", "loss")


@dataclass
class Trainer:
    """Everything one run holds; built by :func:`build_trainer`, driven by :func:`train`."""

    cfg: TrainConfig
    run: RunDir
    device: torch.device
    G: nn.Module
    D: nn.Module
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
    data_shape: tuple[int, int] = (1, 0)  # the data's (image channels, classes): what rebuilds the nets

    def training_state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.ema.state_dict(),
            "opt_G": self.opt["G"].state_dict(), "opt_D": self.opt["D"].state_dict(),
            "method": self.method.state_dict(), "sampler": self.sampler.state_dict(),
            "rng": {k: g.get_state() for k, g in self.rng.items()} | {"torch": torch.get_rng_state()},
            "wall_time": self.wall_time,
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.ema.load_state_dict(state["G_ema"])
        self.opt["G"].load_state_dict(state["opt_G"])
        self.opt["D"].load_state_dict(state["opt_D"])
        self.method.load_state_dict(state["method"])
        self.sparse.completed = int(state["step"])
        self.sampler.load_state_dict(state["sampler"])
        for k, g in self.rng.items():
            g.set_state(state["rng"][k])
        torch.set_rng_state(state["rng"]["torch"])
        self.step = int(state["step"])
        self.wall_time = float(state.get("wall_time", 0.0))


def _adam(params, **kw) -> torch.optim.Adam:
    """Fused Adam where the device has it. Besides being faster, it matters for sparse training:
    the multi-tensor path takes sqrt of every exp_avg_sq entry, and sqrt(0) at the inactive entries
    hits a slow path on some CPUs (measured: 6x slower than on positive values), which made a
    sparse MLP step 20 % slower than a dense one (benchmarks/results/step_time.json)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, **kw)


def build_nets(cfg: TrainConfig, data, seed: int) -> tuple[nn.Module, nn.Module]:
    """G and D as the config and the data define them, initialised from ``seed`` (on the CPU)."""
    spec = ModelSpec(
        channels=data.channels, resolution=None, num_classes=data.num_classes, z_dim=cfg.z_dim,
        width=cfg.model_width, width_multiplier=cfg.width_multiplier,
    )
    torch.manual_seed(seed)  # module initialisers draw from the global generator
    return build_models(cfg.model, spec)


def build_trainer(cfg: TrainConfig, run: RunDir | None) -> Trainer:
    dist = DistContext.from_env(cfg.device)  # one process, or this rank under torchrun
    dist.check_batch(cfg.batch_size, cfg.g_batch_size or cfg.batch_size)
    try:
        device = dist.device(cfg.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as e:
        raise UserError(f"--device {cfg.device} is not usable here ({str(e).splitlines()[0]})") from None
    data = load_dataset(cfg.dataset, "train", cfg.data_root, resolution=NATIVE_RESOLUTION.get(cfg.model))
    G, D = build_nets(cfg, data, cfg.seed)
    G, D = G.to(device), D.to(device)
    if cfg.sync_bn:
        G, D = convert_sync_batchnorm(G), convert_sync_batchnorm(D)
    G, D = to_memory_format(G, cfg.channels_last), to_memory_format(D, cfg.channels_last)
    dist.broadcast_module_(G)
    dist.broadcast_module_(D)
    rng = {"masks": seeded_generator(cfg.seed, 1), "noise": seeded_generator(cfg.seed, 2),
           "topology": seeded_generator(cfg.seed, 3),
           "probe": seeded_generator(cfg.seed, 5)}
    kind = MODEL_KIND[cfg.model]
    resolution = NATIVE_RESOLUTION[cfg.model]
    if cfg.method == "pf" and not cfg.from_run:
        raise UserError("--method pf needs --from RUN_DIR: the finished dense run to prune")
    method = METHODS.get(cfg.method)(cfg)
    if kind != "gan" and not method.supports_autoencoders:
        raise UserError(f"--method {cfg.method} applies to GANs only, not to --model {cfg.model}")

    def loss_probe(net: str) -> torch.Tensor:
        """The net's training loss on a batch drawn from the probe stream (SNIP, GraSP)."""
        idx = torch.randint(len(data), (cfg.batch_size,), generator=rng["probe"])
        x, y = data.batch(idx)
        real, y = to_model_range(x, resolution).to(device), y.to(device)
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
    opt = {
        "G": _adam(G.parameters(), lr=cfg.lr_g, betas=betas, eps=cfg.adam_eps),
        "D": _adam(D.parameters(), lr=cfg.lr_d, betas=betas, eps=cfg.adam_eps),
    }
    # The engine's public API (sparsegan.engine), as any user's loop would use it: masks drawn here,
    # the optimizers' steps masked and kept sparse by its hooks, topology updates in sparse.step().
    sparse = SparseTraining({"G": G, "D": D}, opt, method, loss_probe=loss_probe,
                            generators=(rng["masks"], rng["topology"]))
    for net in NETS:
        dist.broadcast_masks_(method.masks[net])  # every rank starts from rank 0's masks
    dist.average_gradients(G, D)  # from here on, every backward pass averages gradients over ranks
    sampler = EpochSampler(len(data), cfg.batch_size, cfg.seed, rank=dist.rank, world_size=dist.world_size)
    view = dict(precision=cfg.precision, compile=cfg.compile, device=device)
    return Trainer(
        cfg=cfg, run=run, device=device, G=G, D=D,
        ema=sparse.ema("G", cfg.ema_beta, start_step=cfg.ema_start),  # SEMA: restarted at G's topology changes
        method=method, sparse=sparse, opt=opt, rng=rng, images=getattr(data, "images", None), resolution=resolution,
        kind=kind,
        sampler=Batches(data, sampler, resolution=resolution, device=device, dist=dist, noise=rng["noise"], G=G,
                        workers=cfg.data_workers, channels_last=cfg.channels_last),
        dist=dist, fwd={"G": forward_view(G, **view), "D": forward_view(D, **view)},
        data_shape=(data.channels, data.num_classes),
    )


def ignored_keys(cfg: TrainConfig) -> dict[str, Any]:
    """config.json's "ignored": the keys given without effect (``sparsegan train --allow-ignored``,
    see config.inapplicable); dense always lists the sparsity flags, which it accepts and ignores."""
    keys = list(getattr(cfg, "ignored", {}))
    if cfg.method == "dense":
        keys = ["sparsity_g", "sparsity_d"] + [k for k in keys if k not in ("sparsity_g", "sparsity_d")]
    return {"ignored": keys} if keys else {}


def resolved_config(cfg: TrainConfig, device: torch.device, data_shape: tuple[int, int]) -> dict[str, Any]:
    out = cfg.to_dict() | ignored_keys(cfg)
    out["channels"], out["num_classes"] = data_shape  # with the config, what rebuilds the nets (run_folder)
    out["ema_scope"] = "parameters averaged, buffers copied"
    out["environment"] = {
        "sparsegan": sparsegan.__version__, "torch": torch.__version__, "python": platform.python_version(),
        "device": str(device), "platform": platform.platform(),
    }
    return out


def _check_resume_compatible(saved: dict[str, Any], cfg: TrainConfig, where: Path) -> None:
    diff = [k for k in RESUME_KEYS if saved.get(k) != getattr(cfg, k)]
    if diff:
        k = diff[0]
        raise UserError(
            f"cannot resume {where}: it was trained with {k}={saved.get(k)!r}, this command asks for "
            f"{getattr(cfg, k)!r}" + (f" (and {len(diff) - 1} more differences)" if len(diff) > 1 else "")
        )


def params_summary(t: Trainer) -> dict[str, dict[str, int]]:
    out = {}
    for net, module in (("G", t.G), ("D", t.D)):
        m = t.method.masks[net]
        total = sum(p.numel() for p in module.parameters())
        out[net] = {"total": total, "prunable": m.numel(), "active": total - m.numel() + m.active()}
    return out


@torch.no_grad()
def sample_grid(t: Trainer, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    t.ema.model.eval()
    x = t.ema.model(z.to(t.device)) if y is None else t.ema.model(z.to(t.device), y)
    return to_uint8(x.cpu())


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def train(
    cfg: TrainConfig,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_step: Callable[[Trainer], None] | None = None,
    on_start: Callable[[Trainer], None] | None = None,
) -> Path:
    """Train one run of the loop into ``cfg.out``; returns the run folder. Methods made of several
    runs (IMP's rounds) are orchestrated one level above: :func:`sparsegan.training.train`."""
    if cfg.out is None:
        raise UserError("--out is required: the run folder to write")
    if getattr(METHODS.get(cfg.method), "rounds", False):
        raise UserError(f"--method {cfg.method} trains rounds of whole runs: use sparsegan.training.train, "
                        "which orchestrates them, not the loop's train")
    if cfg.tensorboard:  # optional dependency, imported only when asked for: fail before writing anything
        from sparsegan.experiments.tensorboard import TensorBoardMirror, summary_writer_class

        summary_writer_class()
    # Under torchrun only rank 0 writes; the other ranks see the folder read-only.
    # Validate everything (folder ownership, data, models, method inputs) before touching the folder.
    RunDir.check(cfg.out, resume=resume is not None, overwrite=overwrite)
    t = build_trainer(cfg, None)
    run = DistContext.from_env(cfg.device).prepare_run_dir(cfg.out, resume=resume is not None, overwrite=overwrite)
    t.run = run

    # --- resume: the newest valid checkpoint, or a given one -----------------------------
    ckpt = None
    if resume == "auto":
        found = latest_valid_checkpoint(run.checkpoints, warn=lambda m: print(m, file=sys.stderr))
        ckpt = found
    elif resume is not None:
        ckpt = (Path(resume), load_checkpoint(Path(resume)))
    if ckpt is not None:
        path, state = ckpt
        _check_resume_compatible(state["config"], cfg, path)
        if resume_plan(run.path, path, int(state["step"]), cfg.steps):  # complete: change nothing
            return run.path
        t.load_training_state(state)
        run.truncate_records_after(t.step)
        run.log({"kind": "resume", "step": t.step, "checkpoint": path.name})
    elif resume is not None and (run.path / "config.json").exists():
        _check_resume_compatible(run.read_config(), cfg, run.path)
    run.write_config(resolved_config(cfg, t.device, t.data_shape))
    if ckpt is None:  # set-up records (ticket loaded, PF pruning), once per run
        for rec in t.method.drain_records():
            run.log({"step": t.step, **rec})
    else:
        t.method.drain_records()
    if on_start is not None:
        on_start(t)
    mirror = TensorBoardMirror(run.path) if cfg.tensorboard and t.dist.is_main else None  # reads the run folder only
    evaluate = _training_evaluation(t) if cfg.eval_every and t.dist.is_main else None  # rank 0 only

    fixed_z = t.G.sample_z(cfg.num_sample_images, seeded_generator(cfg.seed, 4))
    fixed_y = fixed_labels(cfg.num_sample_images, getattr(t.G, "num_classes", 0), t.device)
    iteration = gan_iteration if t.kind == "gan" else autoencoder_iteration
    status = "completed"
    acc: dict[str, float] = {}
    n_acc = 0
    tick_start, tick_images = time.perf_counter(), 0
    bar = tqdm(total=cfg.steps, initial=t.step, desc=f"{cfg.method} {cfg.model}", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    stop = StopRequest()  # SIGINT / SIGTERM: finish the step, checkpoint it, stop (training/lifecycle.py)
    stop.install()
    try:
        while t.step < cfg.steps:
            step_start = time.perf_counter()
            step = t.step + 1  # the G update this iteration completes

            # 1-2. D and G updates (or one encoder/decoder update), masks enforced by the method.
            stats = iteration(t, step)
            t.step = step
            if not t.dist.all_finite(_finite(*stats.values())):  # every rank stops together
                raise DivergenceError(f"non-finite loss at step {step} ({_fmt(stats)})")

            # 3. Topology: every Delta T completed G steps, never at step 0 or the final step. The
            # engine also resets the moments of deactivated weights (so they stay 0) and restarts
            # the SEMA of G's grown weights at 0 (T = 0).
            for ev in t.sparse.step():
                run.log({"kind": "topology", "step": step, **ev.record(),
                         "mask_checksums": t.dist.mask_checksums(t.method.masks[ev.net])})  # one per rank
            for rec in t.sparse.drain_records():
                run.log({"step": step, **rec})

            # 4. EMA of G (SEMA for sparse methods: weights grown above take their value at the next
            # step, T = 1). Inactive entries stay exactly 0 without a mask multiply: G's inactive
            # weights are 0 and every mask change above zeroed the EMA there.
            t.ema.update(t.G, step)

            # 5. Bookkeeping at tick boundaries.
            t.wall_time += time.perf_counter() - step_start
            for k, v in stats.items():
                if not k.startswith("_"):
                    acc[k] = acc.get(k, 0.0) + v
            n_acc += 1
            tick_images += int(stats.get("_images", 0))
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - tick_start
                run.log({"kind": "train", "step": step, **{k: v / n_acc for k, v in acc.items()},
                         "lr_g": t.opt["G"].param_groups[0]["lr"], "lr_d": t.opt["D"].param_groups[0]["lr"],
                         "images_per_s": tick_images / max(elapsed, 1e-9), "wall_time_s": t.wall_time})
                acc, n_acc = {}, 0
                tick_start, tick_images = time.perf_counter(), 0
                bar.set_postfix_str(_fmt({k: v for k, v in stats.items() if k.startswith("loss")}))
                if mirror is not None:
                    mirror.sync()
            if step % cfg.sample_every == 0 or step == cfg.steps:
                run.save_grid(sample_grid(t, fixed_z, fixed_y), f"step-{step:08d}.png")
            if evaluate is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
                evaluate(step, t.ema.model)  # kind=eval record, summary metrics, best EMA generator
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _check_weights_finite(t)
                if t.dist.is_main:
                    save_checkpoint(run.checkpoints, step, t.training_state(), cfg.keep_checkpoints)
            bar.update(1)
            if on_step is not None:
                on_step(t)
            if stop.requested(t.dist) and t.step < cfg.steps:
                raise stop.stopped(t.step, cfg.steps, _checkpoint_now(t))
    except DivergenceError:
        status = "diverged"
        raise
    finally:
        stop.restore()
        bar.close()
        if status != "completed" or t.step == cfg.steps:
            _finish(t, status)
        if mirror is not None:
            mirror.close()
    return run.path


def _checkpoint_now(t: Trainer) -> Path:
    """The checkpoint of the step just completed (saved unless the schedule already did)."""
    path = checkpoint_path(t.run.checkpoints, t.step)
    if not path.exists():
        _check_weights_finite(t)
        if t.dist.is_main:
            save_checkpoint(t.run.checkpoints, t.step, t.training_state(), t.cfg.keep_checkpoints)
    return path


def _training_evaluation(t: Trainer):
    """The EMA generator's metrics at tick boundaries (sparsegan.metrics.tracking), and an
    autoencoder's held-out reconstruction (sparsegan.metrics.reconstruction) when asked for."""
    from sparsegan.metrics import METRICS, Evaluator, parse_metrics
    from sparsegan.metrics.reconstruction import heldout_images, reconstruction_error
    from sparsegan.metrics.tracking import BEST_FILE, TrainingEvaluation

    cfg = t.cfg
    metrics = parse_metrics(cfg.eval_metrics)
    sampled = [m for m in metrics if not METRICS.get(m).needs_encoder]
    evaluator = None
    if sampled:
        evaluator = Evaluator(
            metrics=sampled, dataset=cfg.dataset, resolution=t.resolution, num_samples=cfg.eval_num_samples,
            num_ref=cfg.eval_num_ref, split=cfg.eval_split, data_root=cfg.data_root, batch_size=cfg.eval_batch_size,
            device=cfg.device, inception_weights=cfg.inception_weights, progress=False,
        )
        evaluator.prepare()  # extractors and reference statistics now: a bad option fails before training
    reconstruct = None
    if len(sampled) < len(metrics):  # recon: the whole held-out (test) split, loaded once
        heldout = heldout_images(cfg.dataset, "test", None, cfg.data_root, resolution=t.resolution)

        def reconstruct():
            values = reconstruction_error(t.D, t.G, heldout, resolution=t.resolution,
                                          batch_size=cfg.eval_batch_size, device=t.device)
            return values, len(heldout)

    return TrainingEvaluation(evaluator, t.run.path, log=t.run.log, seed=cfg.seed, metrics=metrics,
                              reconstruct=reconstruct, save_best=lambda sd: t.run.save_final({BEST_FILE: sd}))


def _fmt(stats: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if not k.startswith("_"))


def _real_batch(t: Trainer) -> torch.Tensor:
    return t.sampler.real()[0]


def gan_iteration(t: Trainer, step: int) -> dict[str, float]:
    """One iteration of Algorithm 1: n_dis D steps, then one G step, on active weights only."""
    cfg, opt, method = t.cfg, t.opt, t.method
    G, D = t.fwd["G"], t.fwd["D"]  # the nets themselves, or their bf16 / compiled forward views
    loss = LOSSES.get(cfg.loss)
    bs, bs_g = cfg.batch_size, cfg.g_batch_size or cfg.batch_size
    # Labels: real ones for D on data, sampled ones for fakes; unconditional nets ignore them.

    # 1. Discriminator: n_dis Adam steps on its active weights.
    D.requires_grad_(True)
    for _ in range(cfg.n_dis):
        real, y_real = t.sampler.real()
        with torch.no_grad():
            z, y_fake = t.sampler.latents(bs)
            fake = G(z, y_fake)
        real_logits, fake_logits = D(real, y_real), D(fake, y_fake)
        loss_d = loss.d(real_logits, fake_logits)
        opt["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        opt["D"].step()  # the engine's hooks: inactive gradients masked, inactive weights kept at 0

    # 2. Generator: one Adam step on its active weights through a frozen D.
    D.requires_grad_(False)
    z, y = t.sampler.latents(bs_g)
    fake_logits_g = D(G(z, y), y)
    loss_g = loss.g(fake_logits_g)
    opt["G"].zero_grad(set_to_none=True)
    loss_g.backward()
    opt["G"].step()

    # ADAPT's balance ratio on the same z before and after the G step (every method logs it).
    if step % cfg.balance_every == 0:
        with torch.no_grad(), preserved_buffers(t.G, t.D):
            br = balance_ratio(D(real, y_real).mean(), fake_logits_g.detach().mean(), D(G(z, y), y).mean())
        t.run.log({"kind": "balance", "step": step, "balance_ratio": br})
        method.observe_balance(step, br)

    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": real_logits.mean().item(),
            "d_fake": fake_logits.mean().item(), "_images": bs * cfg.n_dis + bs_g}  # global batch


def autoencoder_iteration(t: Trainer, step: int) -> dict[str, float]:
    """One joint step of decoder (G) and encoder (D) on the ELBO (vae) or reconstruction (ae)."""
    real = _real_batch(t)
    total, parts = autoencoder_loss(t.kind, t.G, t.D, real, t.cfg.kl_weight, t.rng["noise"])
    for net in NETS:
        t.opt[net].zero_grad(set_to_none=True)
    total.backward()
    for net in ("D", "G"):
        t.opt[net].step()
    return {"loss_g": total.item(), **{k: v.item() for k, v in parts.items()}, "_images": real.shape[0]}


def _check_weights_finite(t: Trainer) -> None:
    for net, module in (("G", t.G), ("D", t.D)):
        for name, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise DivergenceError(f"non-finite weights in {net}.{name} at step {t.step}")


def _flops(t: Trainer) -> dict[str, Any]:
    """FLOPs totals for summary.json (sparsegan.efficiency); a failure is reported, not fatal."""
    from sparsegan.efficiency import flops_summary
    from sparsegan.run_folder import read_records

    try:
        return flops_summary({"G": t.G, "D": t.D}, {net: t.method.masks[net].masks for net in NETS},
                             t.cfg.to_dict(), read_records(t.run.path), t.step, t.method.phases())
    except Exception as e:  # the summary must still be written
        print(f"sparsegan: warning: FLOPs not counted ({type(e).__name__}: {e})", file=sys.stderr)
        return {"error": f"{type(e).__name__}: {e}"}


def _finish(t: Trainer, status: str) -> None:
    """final/*.safetensors and summary.json."""
    run, method = t.run, t.method
    if status == "completed":
        masks = {f"{net}.{n}": m for net in NETS for n, m in method.masks[net].masks.items()}
        run.save_final({
            "generator": t.G.state_dict(), "generator_ema": t.ema.model.state_dict(),
            "discriminator": t.D.state_dict(), "masks": masks,
        })
    # The evaluation during training keeps its "metrics" in the same file (merged, not replaced).
    run.merge_summary({
        "step": t.step,
        "params": params_summary(t),
        "density": {net: method.masks[net].density() for net in NETS},
        "itop_rate": {net: method.masks[net].itop_rate() for net in NETS},
        "phases": method.phases(),
        "flops": _flops(t),
        "wall_time_s": t.wall_time,
        "status": status,
    }, defaults={"metrics": {"final": {}, "best": {}}})
