"""The training loop: one function for every method (STU-GAN Algorithm 1 and its baselines).

It steps a :class:`~sparsegan.training.trainer.Trainer` (nets, optimizers, the sparsity engine,
EMA, data): D and G updates, the engine's topology step, the EMA, records, sample grids,
evaluations and checkpoints at their cadence, exact resume, a clean stop on SIGINT / SIGTERM.
What a run does beyond that (its final files and summary, FLOPs accounting, a TensorBoard
mirror, IMP's rounds) is attached by the launcher as :class:`Hooks`; the loop knows none of it.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from sparsegan.config import TrainConfig
from sparsegan.errors import DivergenceError, UserError
from sparsegan.losses import LOSSES
from sparsegan.methods import METHODS, NETS
from sparsegan.methods.adapt import balance_ratio
from sparsegan.models.ddpm import TIMESTEPS
from sparsegan.run_folder import RunDir, read_records, sample_name
from sparsegan.training.distributed import DistContext
from sparsegan.training.lifecycle import StopRequest, resume_plan
from sparsegan.training.objectives import autoencoder_loss, diffusion_loss, preserved_buffers
from sparsegan.training.state import checkpoint_path, latest_valid_checkpoint, load_checkpoint, save_checkpoint
from sparsegan.training.trainer import (
    Trainer,
    build_trainer,
    check_resume_compatible,
    check_resume_steps,
    check_weights_finite,
    resolved_config,
    resume_threads,
    sample_grid,
    sample_inputs,
    source_commit,
    started_record,
    training_evaluation,
)
from sparsegan.training.translation import discriminator_loss, generator_loss, lr_factor


@dataclass
class Hooks:
    """What the launcher attaches to one run of the loop, called in list order."""

    on_start: list[Callable[[Trainer], None]] = field(default_factory=list)  # set up, before the first step
    on_step: list[Callable[[Trainer], None]] = field(default_factory=list)  # after each step's bookkeeping
    on_log: list[Callable[[Trainer], None]] = field(default_factory=list)  # after each kind=train record
    on_end: list[Callable[[Trainer, str], None]] = field(default_factory=list)  # ended: completed / diverged
    on_close: list[Callable[[Trainer], None]] = field(default_factory=list)  # always, last (a signal too)
    # --eval-runtime sparse: G -> the model the evaluation samples (the sparse inference runtime of G)
    eval_sampler: Callable[[nn.Module], nn.Module] | None = None


def _log_records(run: RunDir, t: Trainer, step: int, records: list[dict]) -> None:
    """The engine's records into metrics.jsonl; a layer emptied of weights is also said on stderr."""
    for rec in records:
        run.log({"step": step, **rec})
        if rec.get("kind") == "empty_layers" and t.dist.is_main:
            named = "; ".join(f"{net}'s {', '.join(names)}" for net, names in rec["layers"].items())
            print(f"sparsegan: warning: step {step}: no active weight left in {named}: such a layer passes on "
                  "nothing but its bias (a global ranking can empty a layer; a per-layer ranking keeps every "
                  "layer)", file=sys.stderr)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def train(
    cfg: TrainConfig,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    hooks: Hooks | None = None,
) -> Path:
    """Train one run of the loop into ``cfg.out``; returns the run folder. Methods made of several
    runs (IMP's rounds) are orchestrated one level above: :func:`sparsegan.training.train`."""
    hooks = hooks or Hooks()
    if cfg.out is None:
        raise UserError("--out is required: the run folder to write")
    if getattr(METHODS.get(cfg.method), "rounds", False):
        raise UserError(f"--method {cfg.method} trains rounds of whole runs: use sparsegan.training.train, "
                        "which orchestrates them, not the loop's train")
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
        check_resume_compatible(state["config"], cfg, path)
        check_resume_steps(state["config"], t, int(state["step"]), run.path)
        if resume_plan(run.path, path, int(state["step"]), cfg.steps):  # complete: change nothing
            return run.path
        t.load_training_state(state)
        # config.json is the first segment's where no resume came before it (counted before the records
        # after the checkpoint go: a later resume's record is one)
        previous_is_first = not read_records(run.path, "resume")
        run.truncate_records_after(t.step)
        previous = run.read_config() if run.config_file.exists() else None
        threads, warning = resume_threads(previous, t.device)
        if warning:
            print(warning, file=sys.stderr)
        run.log({"kind": "resume", "step": t.step, "checkpoint": path.name, **threads, **source_commit()})
    elif resume is not None and run.config_file.exists():
        check_resume_compatible(run.read_config(), cfg, run.path)
    config = resolved_config(cfg, t.device, t.data_info)
    config["environment"]["started"] = (started_record(config["environment"]) if ckpt is None
                                        else started_record(config["environment"], previous, previous_is_first))
    run.write_config(config)
    if ckpt is None:  # set-up records (ticket loaded, PF pruning), once per run
        _log_records(run, t, t.step, t.sparse.drain_records())
    else:
        t.sparse.drain_records()
    for hook in hooks.on_start:
        hook(t)
    # Every rank generates and extracts its share of the evaluation's samples; rank 0 keeps the values.
    evaluate = training_evaluation(t, hooks.eval_sampler) if cfg.eval_every else None

    fixed = sample_inputs(t)  # the sample grids' latents (and labels), or test images to translate
    iteration = {"gan": gan_iteration, "translation": translation_iteration,
                 "diffusion": diffusion_iteration}.get(t.kind, autoencoder_iteration)
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

            # 1-2. D and G updates (or one encoder/decoder update, or one denoiser update), masks enforced
            # by the method.
            stats = iteration(t, step)
            t.step = step
            if not t.dist.all_finite(_finite(*stats.values())):  # every rank stops together
                raise DivergenceError(f"non-finite loss at step {step} ({_fmt(stats)})")

            # 3. Topology: every Delta T completed G steps, never at step 0 or the final step. The
            # engine also resets the moments of deactivated weights (so they stay 0) and restarts
            # the SEMA of G's grown weights at 0 (T = 0).
            for ev in t.sparse.step():
                run.log({"kind": "topology", "step": step, **ev.record(),
                         "mask_checksums": t.dist.mask_checksums(t.sparse.masks[ev.net])})  # one per rank
            _log_records(run, t, step, t.sparse.drain_records())

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
                         **{f"lr_{net.lower()}": t.opt[net].param_groups[0]["lr"] for net in t.nets},
                         "images_per_s": tick_images / max(elapsed, 1e-9), "wall_time_s": t.wall_time})
                acc, n_acc = {}, 0
                tick_start, tick_images = time.perf_counter(), 0
                bar.set_postfix_str(_fmt({k: v for k, v in stats.items() if k.startswith("loss")}))
                for hook in hooks.on_log:
                    hook(t)
            grid = step % cfg.sample_every == 0 or step == cfg.steps
            due = evaluate is not None and (step % cfg.eval_every == 0 and step >= cfg.eval_from
                                            or step == cfg.steps)
            if grid or due:  # these can take minutes (a diffusion grid, thousands of samples): the bar says so
                shown = getattr(bar, "postfix", None) or ""  # the losses, shown again afterwards
                if grid:
                    bar.set_postfix_str(", ".join(filter(None, (shown, "sample grid"))))
                    run.save_grid(*sample_grid(t, fixed), sample_name(step))
                if due:
                    bar.set_postfix_str(", ".join(filter(None, (shown, "evaluating"))))
                    evaluate(step, t.ema.model)  # kind=eval record, summary metrics, best EMA generator
                bar.set_postfix_str(shown, refresh=False)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                check_weights_finite(t)
                if t.dist.is_main:
                    save_checkpoint(run.checkpoints, step, t.training_state(), cfg.keep_checkpoints)
            bar.update(1)
            for hook in hooks.on_step:
                hook(t)
            if stop.requested(t.dist) and t.step < cfg.steps:
                raise stop.stopped(t.step, cfg.steps, _checkpoint_now(t))
    except DivergenceError:
        status = "diverged"
        raise
    finally:
        stop.restore()
        bar.close()
        if status != "completed" or t.step == cfg.steps:
            for end in hooks.on_end:
                end(t, status)
        for hook in hooks.on_close:
            hook(t)
    return run.path


def _checkpoint_now(t: Trainer) -> Path:
    """The checkpoint of the step just completed (saved unless the schedule already did)."""
    path = checkpoint_path(t.run.checkpoints, t.step)
    if not path.exists():
        check_weights_finite(t)
        if t.dist.is_main:
            save_checkpoint(t.run.checkpoints, t.step, t.training_state(), t.cfg.keep_checkpoints)
    return path


def _fmt(stats: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if not k.startswith("_"))


def _micro(k: int, *tensors):
    """The ``k`` micro-batches of an accumulated step: the i-th chunk of every tensor (None stays
    None), in order. ``k`` = 1: the tensors themselves."""
    if k == 1:
        return [tensors]
    return list(zip(*[x.chunk(k) if x is not None else (None,) * k for x in tensors]))


def _part(loss: torch.Tensor, k: int) -> torch.Tensor:
    """A micro-batch's share of the step's mean loss (the micro-batches are equal in size)."""
    return loss if k == 1 else loss / k


def gan_iteration(t: Trainer, step: int) -> dict[str, float]:
    """One iteration of Algorithm 1: n_dis D steps, then one G step, on active weights only. With
    --grad-accum k each step sums the gradients of k micro-batches of its batch (BN statistics per
    micro-batch, as BigGAN's reference), synchronised across processes once, then updates."""
    cfg, opt = t.cfg, t.opt
    G, D = t.fwd["G"], t.fwd["D"]  # the nets themselves, or their bf16 / compiled forward views
    loss = LOSSES.get(cfg.loss)
    bs, bs_g, k = cfg.batch_size, cfg.g_batch_size or cfg.batch_size, cfg.grad_accum
    # Labels: real ones for D on data, sampled ones for fakes; unconditional nets ignore them.

    # 1. Discriminator: n_dis Adam steps on its active weights.
    D.requires_grad_(True)
    for _ in range(cfg.n_dis):
        real, y_real = t.sampler.real()
        with torch.no_grad():
            z, y_fake = t.sampler.latents(bs)
        opt["D"].zero_grad(set_to_none=True)
        loss_d, real_logits, fake_logits = 0.0, [], []
        for i, (r, yr, zz, yf) in enumerate(_micro(k, real, y_real, z, y_fake)):
            with torch.no_grad():
                fake = G(zz, yf)
            rl, fl = D(r, yr), D(fake, yf)
            part = _part(loss.d(rl, fl), k)
            with t.dist.micro_batch(last=i == k - 1):
                part.backward()
            loss_d += part.item()
            real_logits.append(rl.detach())
            fake_logits.append(fl.detach())
        opt["D"].step()  # the engine's hooks: inactive gradients masked, inactive weights kept at 0

    # 2. Generator: one Adam step on its active weights through a frozen D.
    D.requires_grad_(False)
    z, y = t.sampler.latents(bs_g)
    opt["G"].zero_grad(set_to_none=True)
    loss_g, fake_logits_g = 0.0, []
    for i, (zz, yy) in enumerate(_micro(k, z, y)):
        fl = D(G(zz, yy), yy)
        part = _part(loss.g(fl), k)
        with t.dist.micro_batch(last=i == k - 1):
            part.backward()
        loss_g += part.item()
        fake_logits_g.append(fl.detach())
    opt["G"].step()

    # ADAPT's balance ratio on the same z before and after the G step (every method logs it).
    if step % cfg.balance_every == 0:
        with torch.no_grad(), preserved_buffers(t.G, t.D):
            d_real = torch.cat([D(r, yr) for r, yr in _micro(k, real, y_real)]).mean()
            d_after = torch.cat([D(G(zz, yy), yy) for zz, yy in _micro(k, z, y)]).mean()
            d_before = torch.cat(fake_logits_g).mean()
            if t.dist.enabled:  # the global batch's means: every rank measures the same ratio
                d_real, d_before, d_after = t.dist.mean(torch.stack([d_real, d_before, d_after]))
            br = balance_ratio(d_real, d_before, d_after)
        t.run.log({"kind": "balance", "step": step, "balance_ratio": br})
        t.sparse.observe_balance(br)  # what ADAPT decides D's density by

    return {"loss_d": loss_d, "loss_g": loss_g, "d_real": torch.cat(real_logits).mean().item(),
            "d_fake": torch.cat(fake_logits).mean().item(), "_images": bs * cfg.n_dis + bs_g}  # global batch


def autoencoder_iteration(t: Trainer, step: int) -> dict[str, float]:
    """One joint step of decoder (G) and encoder (D) on the ELBO (vae) or reconstruction (ae),
    over --grad-accum micro-batches."""
    real, k = t.sampler.real()[0], t.cfg.grad_accum
    for net in NETS:
        t.opt[net].zero_grad(set_to_none=True)
    stats: dict[str, float] = {}
    for i, (x,) in enumerate(_micro(k, real)):
        total, parts = autoencoder_loss(t.kind, t.G, t.D, x, t.cfg.kl_weight, t.rng["noise"])
        part = _part(total, k)
        with t.dist.micro_batch(last=i == k - 1):
            part.backward()
        for name, v in {"loss_g": part.detach(), **{n: _part(v, k) for n, v in parts.items()}}.items():
            stats[name] = stats.get(name, 0.0) + v.item()
    for net in ("D", "G"):
        t.opt[net].step()
    return {**stats, "_images": real.shape[0]}


def diffusion_iteration(t: Trainer, step: int) -> dict[str, float]:
    """One step of the denoiser (G, the only net) on DDPM's loss: each image of the batch noised at
    a step drawn uniformly from 0..T-1, the noise predicted (sparsegan.training.objectives), over
    --grad-accum micro-batches. The noise and the steps are drawn for the global batch from the
    noise stream, as a GAN's latents, and each process keeps its shard."""
    n, k = t.cfg.batch_size, t.cfg.grad_accum
    real = t.sampler.real()[0]
    eps, _ = t.sampler.latents(n)  # the model's sample_z: standard normal, image-shaped
    steps = t.dist.shard(torch.randint(TIMESTEPS, (n,), generator=t.rng["noise"])).to(t.device)
    t.opt["G"].zero_grad(set_to_none=True)
    loss = 0.0
    for i, (x, e, s) in enumerate(_micro(k, real, eps, steps)):
        part = _part(diffusion_loss(t.fwd["G"], t.G.alpha_bar, x, s, e), k)
        with t.dist.micro_batch(last=i == k - 1):
            part.backward()
        loss += part.item()
    t.opt["G"].step()  # the engine's hooks: inactive gradients masked, inactive weights kept at 0
    return {"loss_g": loss, "_images": n}  # global batch


def translation_iteration(t: Trainer, step: int) -> dict[str, float]:
    """One CycleGAN iteration (sparsegan.training.translation): both generators take one step with
    the discriminators frozen, then both discriminators one step on pooled fakes (each step over
    --grad-accum micro-batches)."""
    cfg, opt, k = t.cfg, t.opt, t.cfg.grad_accum
    G, D = t.fwd["G"], t.fwd["D"]
    factor = lr_factor(step, cfg.steps, cfg.lr_decay_start)  # constant, then linear decay
    for net, lr in (("G", cfg.lr_g), ("D", cfg.lr_d)):
        for group in opt[net].param_groups:
            group["lr"] = lr * factor
    real_a, real_b = t.sampler.real()

    # 1. Generators: adversarial + cycle + identity losses through frozen discriminators.
    D.requires_grad_(False)
    opt["G"].zero_grad(set_to_none=True)
    stats: dict[str, float] = {}
    fakes = []
    for i, (a, b) in enumerate(_micro(k, real_a, real_b)):
        loss_g, parts, (fake_a, fake_b) = generator_loss(G, D, a, b, cfg.lambda_cycle, cfg.lambda_identity)
        part = _part(loss_g, k)
        with t.dist.micro_batch(last=i == k - 1):
            part.backward()
        for name, v in {"loss_g": part.detach(), **{n: _part(v, k) for n, v in parts.items()}}.items():
            stats[name] = stats.get(name, 0.0) + v.item()
        fakes.append((fake_a.detach(), fake_b.detach()))
    opt["G"].step()  # the engine's hooks: inactive gradients masked, inactive weights kept at 0

    # 2. Discriminators: real images against fakes drawn from each domain's history.
    D.requires_grad_(True)
    opt["D"].zero_grad(set_to_none=True)
    for i, ((a, b), (fake_a, fake_b)) in enumerate(zip(_micro(k, real_a, real_b), fakes)):
        loss_da = _part(discriminator_loss(D, "a", a, t.pools["A"].query(fake_a)), k)
        loss_db = _part(discriminator_loss(D, "b", b, t.pools["B"].query(fake_b)), k)
        with t.dist.micro_batch(last=i == k - 1):
            (loss_da + loss_db).backward()
        stats["loss_d_a"] = stats.get("loss_d_a", 0.0) + loss_da.item()
        stats["loss_d_b"] = stats.get("loss_d_b", 0.0) + loss_db.item()
    opt["D"].step()
    return {**stats, "_images": 2 * real_a.shape[0]}
