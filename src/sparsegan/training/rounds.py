"""IMP / GAN Tickets orchestration: rounds of whole runs, each a sub-run folder.

    RUN/config.json, RUN/metrics.jsonl (kind=round records), RUN/summary.json, RUN/final/*
    RUN/rewind/{init,rewind}-{generator,discriminator}.safetensors   weights to rewind to
    RUN/rounds/round-KK/        a full run folder per round (round 0 is dense)
    RUN/tickets/round-KK/final/ the ticket each round trains: masks + rewound weights

Re-running with ``--resume auto`` skips finished rounds and resumes the interrupted one.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from sparsegan.config import TrainConfig
from sparsegan.data import load_dataset
from sparsegan.errors import UserError
from sparsegan.files import save_safetensors
from sparsegan.methods import NETS
from sparsegan.methods.imp import prune_to_density, random_masks_like, round_densities
from sparsegan.models import NATIVE_RESOLUTION
from sparsegan.sparsity import MaskSet, prunable_parameters
from sparsegan.training.run_dir import RunDir, read_json, read_records

FILES = {"G": "generator", "D": "discriminator"}


def _rounds_plan(cfg: TrainConfig) -> dict[str, list[float]]:
    """Density of each net in rounds 1..K (a net that is not pruned stays at 1)."""
    per_net = {net: round_densities(s, cfg.imp_rate) if net in cfg.prune_nets else []
               for net, s in (("G", cfg.sparsity_g), ("D", cfg.sparsity_d))}
    k = max(len(v) for v in per_net.values())
    if k == 0:
        raise UserError("--method imp needs a target: --sparsity-g (or --sparsity-d with --prune-nets GD) > 0")
    return {net: [v[min(i, len(v) - 1)] if v else 1.0 for i in range(k)] for net, v in per_net.items()}


def _done(folder: Path) -> bool:
    try:
        return read_json(folder / "summary.json").get("status") == "completed"
    except (OSError, ValueError):
        return False


def _capture(folder: Path, prefix: str, t) -> None:
    for net, module in (("G", t.G), ("D", t.D)):
        save_safetensors(folder / f"{prefix}-{FILES[net]}.safetensors", module.state_dict())


def train_rounds(cfg: TrainConfig, *, resume: str | None, overwrite: bool, progress: bool) -> Path:
    from sparsegan.training.loop import build_nets, resolved_config, train

    if resume not in (None, "auto"):
        raise UserError("--method imp resumes with --resume auto (rounds are separate runs)")
    RunDir.check(cfg.out, resume=resume is not None, overwrite=overwrite)
    plan = _rounds_plan(cfg)
    if cfg.rewind_step >= cfg.steps:
        raise UserError(f"--rewind-step {cfg.rewind_step} must be below --steps {cfg.steps}")
    load_dataset(cfg.dataset, "train", cfg.data_root, resolution=NATIVE_RESOLUTION.get(cfg.model))
    run = RunDir.prepare(cfg.out, resume=resume is not None, overwrite=overwrite)
    run.write_config(resolved_config(cfg, torch.device(cfg.device)) | {"imp_rounds": plan})
    rewind_dir = run.path / "rewind"
    rewind_prefix = "rewind" if cfg.rewind_step > 0 else "init"
    done_rounds = {r["round"] for r in read_records(run.path, "round")}

    def log_round(k: int, sub: Path, density: dict[str, float]) -> None:
        if k in done_rounds:
            return
        summary = read_json(sub / "summary.json")
        run.log({"kind": "round", "step": k, "round": k, "density": density, "run": str(sub.relative_to(run.path)),
                 "final_density": summary.get("density"), "metrics": summary.get("metrics", {}),
                 "wall_time_s": summary.get("wall_time_s")})
        done_rounds.add(k)

    # Round 0: dense, capturing the weights to rewind to.
    sub0 = run.path / "rounds" / "round-00"
    cfg0 = dataclasses.replace(cfg, method="dense", out=str(sub0), masks_from=None)

    def on_start(t) -> None:
        if t.step == 0:
            _capture(rewind_dir, "init", t)

    def on_step(t) -> None:
        if t.step == cfg.rewind_step:
            _capture(rewind_dir, "rewind", t)

    if not _done(sub0):
        train(cfg0, resume="auto" if sub0.exists() else None, progress=progress, on_start=on_start, on_step=on_step)
    log_round(0, sub0, {"G": 1.0, "D": 1.0})

    data = load_dataset(cfg.dataset, "train", cfg.data_root, resolution=NATIVE_RESOLUTION.get(cfg.model))
    prev = sub0
    n_rounds = len(plan["G"])
    for k in range(1, n_rounds + 1):
        density = {net: plan[net][k - 1] for net in NETS}
        sub = run.path / "rounds" / f"round-{k:02d}"
        ticket = run.path / "tickets" / f"round-{k:02d}"
        if not (ticket / "final" / "masks.safetensors").exists():
            _make_ticket(cfg, data, prev, ticket / "final", rewind_dir, rewind_prefix, density, k, build_nets)
        sub_cfg = dataclasses.replace(
            cfg, method="static", out=str(sub), masks_from=str(ticket), masks_with_weights=True,
            sparsity_g=1.0 - density["G"], sparsity_d=1.0 - density["D"],
        )
        if not _done(sub):
            train(sub_cfg, resume="auto" if sub.exists() else None, progress=progress)
        log_round(k, sub, density)
        prev = sub

    # The last round is the result: its final files and summary, plus every round as a phase.
    for f in prev.joinpath("final").iterdir():
        shutil.copy2(f, run.final / f.name)
    last = read_json(prev / "summary.json")
    phases = []
    for k in range(0, n_rounds + 1):
        sc = read_json(run.path / "rounds" / f"round-{k:02d}" / "config.json")
        phases.append({"phase": f"round-{k:02d}", "steps": sc["steps"], "n_dis": sc["n_dis"],
                       "batch_size": sc["batch_size"],
                       "density": {"G": 1.0 - sc["sparsity_g"], "D": 1.0 - sc["sparsity_d"]} if k else
                       {"G": 1.0, "D": 1.0}})
    run.write_summary({**last, "phases": phases[:-1], "rounds": n_rounds + 1,
                       "wall_time_s": sum(read_json(run.path / "rounds" / f"round-{k:02d}" / "summary.json")
                                          .get("wall_time_s", 0.0) for k in range(n_rounds + 1))})
    # Training FLOPs of all rounds together: the earlier rounds as external phases, the last one here.
    run.write_summary({**read_json(run.path / "summary.json"), "flops": _all_rounds_flops(run.path, phases[:-1])})
    return run.path


def _all_rounds_flops(path: Path, phases: list[dict[str, Any]]) -> dict[str, Any]:
    import sys

    from sparsegan.efficiency import flops_summary
    from sparsegan.efficiency.runs import RunFiles, read_records

    try:
        rf = RunFiles.open(path)
        G, D, _ = rf.nets("raw")
        return flops_summary({"G": G, "D": D}, rf.masks, rf.config, read_records(rf.path), rf.steps_done(),
                             external=phases)
    except Exception as e:  # the summary must still be written
        print(f"sparsegan: warning: FLOPs not counted ({type(e).__name__}: {e})", file=sys.stderr)
        return {"error": f"{type(e).__name__}: {e}"}


def _make_ticket(cfg, data, prev: Path, out: Path, rewind_dir: Path, rewind_prefix: str,
                 density: dict[str, float], k: int, build_nets) -> None:
    """Prune the previous round's final weights, rewind the survivors, write the ticket."""
    G, D = build_nets(cfg, data, cfg.seed)
    nets = {"G": G, "D": D}
    prev_masks = load_file(str(prev / "final" / "masks.safetensors"))
    masks_out, weights_out = {}, {}
    for net in NETS:
        nets[net].load_state_dict(load_file(str(prev / "final" / f"{FILES[net]}.safetensors")))
        params = prunable_parameters(nets[net], cfg.prunable)
        masks = MaskSet(params, {n: prev_masks[f"{net}.{n}"].bool() for n in params})
        if net in cfg.prune_nets and density[net] < masks.density() - 0.5 / masks.numel():
            prune_to_density(masks, density[net], cfg.ranking)
        if cfg.imp_control == "random":
            masks = random_masks_like(masks, torch.Generator().manual_seed(cfg.seed * 7919 + k))
        # Weights the ticket starts from.
        if net == "D" and cfg.imp_d == "keep":
            state = nets["D"].state_dict()
        elif net == "D" and cfg.imp_d == "init":
            state = load_file(str(rewind_dir / f"init-{FILES[net]}.safetensors"))
        else:
            state = load_file(str(rewind_dir / f"{rewind_prefix}-{FILES[net]}.safetensors"))
        if cfg.imp_control == "reinit":
            fresh = build_nets(cfg, data, cfg.seed + 7919 * k)[0 if net == "G" else 1]
            state = fresh.state_dict() if net == "G" or cfg.imp_d != "keep" else state
        nets[net].load_state_dict(state)
        masks.params = prunable_parameters(nets[net], cfg.prunable)
        masks.apply_()
        masks_out.update({f"{net}.{n}": m for n, m in masks.masks.items()})
        weights_out[net] = nets[net].state_dict()
    for net in NETS:
        save_safetensors(out / f"{FILES[net]}.safetensors", weights_out[net])
    save_safetensors(out / "masks.safetensors", masks_out)
