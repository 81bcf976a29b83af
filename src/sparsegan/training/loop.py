"""The training loop: one function for every method (STU-GAN Algorithm 1 and its baselines)."""

from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

import sparsegan
from sparsegan.config import TrainConfig
from sparsegan.data import EpochSampler, load_dataset, to_model_range, to_uint8
from sparsegan.errors import DivergenceError, UserError
from sparsegan.losses import LOSSES
from sparsegan.methods import METHODS, NETS, Method
from sparsegan.models import NATIVE_RESOLUTION, ModelSpec, build_models
from sparsegan.sparsity import SparseEMA
from sparsegan.training.run_dir import RunDir
from sparsegan.training.state import latest_valid_checkpoint, load_checkpoint, save_checkpoint

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
    opt: dict[str, torch.optim.Optimizer]
    sampler: EpochSampler
    rng: dict[str, torch.Generator]
    images: torch.Tensor
    resolution: int
    step: int = 0
    wall_time: float = 0.0

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
        self.sampler.load_state_dict(state["sampler"])
        for k, g in self.rng.items():
            g.set_state(state["rng"][k])
        torch.set_rng_state(state["rng"]["torch"])
        self.step = int(state["step"])
        self.wall_time = float(state.get("wall_time", 0.0))


def _seeded(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000 + stream)


def build_trainer(cfg: TrainConfig, run: RunDir) -> Trainer:
    try:
        device = torch.device(cfg.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as e:
        raise UserError(f"--device {cfg.device} is not usable here ({str(e).splitlines()[0]})") from None
    data = load_dataset(cfg.dataset, "train", cfg.data_root)
    spec = ModelSpec(
        channels=data.channels, resolution=None, num_classes=0, z_dim=cfg.z_dim,
        width=cfg.model_width, width_multiplier=cfg.width_multiplier,
    )
    torch.manual_seed(cfg.seed)  # module initialisers draw from the global generator
    G, D = build_models(cfg.model, spec)
    G, D = G.to(device), D.to(device)
    rng = {"masks": _seeded(cfg.seed, 1), "noise": _seeded(cfg.seed, 2), "topology": _seeded(cfg.seed, 3)}
    method = METHODS.get(cfg.method)(cfg)
    method.setup({"G": G, "D": D}, rng["masks"])
    betas = (cfg.beta1, cfg.beta2)
    opt = {
        "G": torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas),
        "D": torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas),
    }
    return Trainer(
        cfg=cfg, run=run, device=device, G=G, D=D,
        ema=SparseEMA(G, cfg.ema_beta, start_step=cfg.ema_start, sparse=method.enforce_masks),
        method=method, opt=opt, sampler=EpochSampler(len(data), cfg.batch_size, cfg.seed), rng=rng,
        images=data.images, resolution=NATIVE_RESOLUTION[cfg.model],
    )


def resolved_config(cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    out = cfg.to_dict()
    if cfg.method == "dense":
        out["ignored"] = ["sparsity_g", "sparsity_d"]  # dense accepts the flags and ignores them
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
def sample_grid(t: Trainer, z: torch.Tensor) -> torch.Tensor:
    t.ema.model.eval()
    return to_uint8(t.ema.model(z.to(t.device)).cpu())


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def train(
    cfg: TrainConfig,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_step: Callable[[Trainer], None] | None = None,
) -> Path:
    """Train one run into ``cfg.out``; returns the run folder."""
    if cfg.out is None:
        raise UserError("--out is required: the run folder to write")
    run = RunDir.prepare(cfg.out, resume=resume is not None, overwrite=overwrite)
    t = build_trainer(cfg, run)

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
        t.load_training_state(state)
        run.truncate_records_after(t.step)
        run.log({"kind": "resume", "step": t.step, "checkpoint": path.name})
    elif resume is not None and (run.path / "config.json").exists():
        _check_resume_compatible(run.read_config(), cfg, run.path)
    run.write_config(resolved_config(cfg, t.device))

    fixed_z = t.G.sample_z(cfg.num_sample_images, _seeded(cfg.seed, 4))
    loss = LOSSES.get(cfg.loss)
    G, D, opt, method = t.G, t.D, t.opt, t.method
    bs = cfg.batch_size
    status = "completed"
    acc = {"loss_d": 0.0, "loss_g": 0.0, "d_real": 0.0, "d_fake": 0.0, "n": 0}
    tick_start, tick_images = time.perf_counter(), 0
    bar = tqdm(total=cfg.steps, initial=t.step, desc=f"{cfg.method} {cfg.model}", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)

    def real_batch() -> torch.Tensor:
        return to_model_range(t.images[t.sampler.next()], t.resolution).to(t.device)

    try:
        while t.step < cfg.steps:
            step_start = time.perf_counter()
            step = t.step + 1  # the G update this iteration completes

            # 1. Discriminator: n_dis Adam steps on its active weights.
            D.requires_grad_(True)
            for _ in range(cfg.n_dis):
                real = real_batch()
                with torch.no_grad():
                    fake = G(G.sample_z(bs, t.rng["noise"], t.device))
                real_logits, fake_logits = D(real), D(fake)
                loss_d = loss.d(real_logits, fake_logits)
                opt["D"].zero_grad(set_to_none=True)
                loss_d.backward()
                method.before_step("D", step)
                opt["D"].step()
                method.after_step("D", step)

            # 2. Generator: one Adam step on its active weights through a frozen D.
            D.requires_grad_(False)
            fake_logits_g = D(G(G.sample_z(bs, t.rng["noise"], t.device)))
            loss_g = loss.g(fake_logits_g)
            opt["G"].zero_grad(set_to_none=True)
            loss_g.backward()
            method.before_step("G", step)
            opt["G"].step()
            method.after_step("G", step)
            t.step = step

            ld, lg = loss_d.item(), loss_g.item()
            if not _finite(ld, lg):
                raise DivergenceError(f"non-finite loss at step {step} (loss_d={ld}, loss_g={lg})")

            # 3. Topology: every Delta T completed G steps, never at step 0 or the final step.
            for ev in method.end_of_step(step, opt, t.rng["topology"]):
                if ev.net == "G" and ev.grown_entries:
                    t.ema.on_topology_change(method.masks["G"], ev.grown_entries)
                run.log({"kind": "topology", "step": step, **ev.record()})

            # 4. EMA of G (SEMA for sparse methods).
            t.ema.update(G, step, method.masks["G"] if method.enforce_masks else None)

            # 5. Bookkeeping at tick boundaries.
            t.wall_time += time.perf_counter() - step_start
            acc["loss_d"] += ld; acc["loss_g"] += lg; acc["n"] += 1
            acc["d_real"] += real_logits.mean().item(); acc["d_fake"] += fake_logits.mean().item()
            tick_images += bs * (cfg.n_dis + 1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                n = acc.pop("n")
                elapsed = time.perf_counter() - tick_start
                run.log({"kind": "train", "step": step, **{k: v / n for k, v in acc.items()},
                         "lr_g": opt["G"].param_groups[0]["lr"], "lr_d": opt["D"].param_groups[0]["lr"],
                         "images_per_s": tick_images / max(elapsed, 1e-9), "wall_time_s": t.wall_time})
                acc = {k: 0.0 for k in acc} | {"n": 0}
                tick_start, tick_images = time.perf_counter(), 0
                bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}")
            if step % cfg.sample_every == 0 or step == cfg.steps:
                run.save_grid(sample_grid(t, fixed_z), f"step-{step:08d}.png")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _check_weights_finite(t)
                save_checkpoint(run.checkpoints, step, t.training_state(), cfg.keep_checkpoints)
            bar.update(1)
            if on_step is not None:
                on_step(t)
    except DivergenceError:
        status = "diverged"
        raise
    finally:
        bar.close()
        if status != "completed" or t.step == cfg.steps:
            _finish(t, status)
    return run.path


def _check_weights_finite(t: Trainer) -> None:
    for net, module in (("G", t.G), ("D", t.D)):
        for name, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise DivergenceError(f"non-finite weights in {net}.{name} at step {t.step}")


def _finish(t: Trainer, status: str) -> None:
    """final/*.safetensors and summary.json."""
    run, method = t.run, t.method
    if status == "completed":
        masks = {f"{net}.{n}": m for net in NETS for n, m in method.masks[net].masks.items()}
        run.save_final({
            "generator": t.G.state_dict(), "generator_ema": t.ema.model.state_dict(),
            "discriminator": t.D.state_dict(), "masks": masks,
        })
    previous = {}
    if (run.path / "summary.json").exists():
        from sparsegan.training.run_dir import read_json

        previous = read_json(run.path / "summary.json")
    run.write_summary({
        **previous,
        "step": t.step,
        "params": params_summary(t),
        "density": {net: method.masks[net].density() for net in NETS},
        "itop_rate": {net: method.masks[net].itop_rate() for net in NETS},
        "metrics": previous.get("metrics", {"final": {}, "best": {}}),
        "wall_time_s": t.wall_time,
        "status": status,
    })
