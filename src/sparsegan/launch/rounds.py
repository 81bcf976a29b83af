"""IMP / GAN Tickets orchestration: rounds of whole runs, each a sub-run folder.

An IMP run (``--method imp``), laid out by :class:`sparsegan.run_folder.RunLayout`::

    RUN/config.json             the resolved config + "imp_rounds" (density plan) + "imp_ranking_by_net"
    RUN/metrics.jsonl           one kind=round record per round (density, ranking, start step, metrics)
    RUN/summary.json, RUN/final/*   the last round's result (trained weights, not a ticket)
    RUN/rewind/init-{generator,discriminator}.safetensors    both nets at step 0 of round 0
    RUN/rewind/rewind-{generator,discriminator}.safetensors  both nets at --rewind-step k of round 0
    RUN/rewind/rewind-position.json                          the data order / noise state at step k
    RUN/rounds/round-00/        round 0: dense training, where the rewind weights are captured
    RUN/rounds/round-KK/        round K: a ``static`` run of ticket K
    RUN/tickets/round-KK/final/ ticket K: masks.safetensors + the weights round K starts from
                                (survivors rewound, pruned weights 0), same file names as a run's final/

A ticket is what ``--masks-from RUN/tickets/round-KK --masks-with-weights`` starts any method
from (masks + rewound weights); ``--masks-from RUN`` instead takes the last round's *trained*
final weights and masks.

Round K (K >= 1) prunes round K-1's final weights to the planned density by magnitude (per net:
global, or layer-wise for a net with spectral-normed layers, REFERENCE §6.8; ``--imp-ranking``),
then rewinds both nets to their step-k weights (G's survivors, and D per ``--imp-d``: rewound to
the same step by default, its init, or round K-1's final D kept). With late rewinding (k > 0) a
round trains the remaining ``steps - k`` steps from the data order and noise position of step k,
with fresh Adam moments (OpenLTH's convention; the learning rate is constant), so every round
ends at the same point of the schedule as round 0.

Controls (Frankle & Carbin; GAN Tickets) are separate runs that take the tickets of a finished
IMP run instead of running their own pruning chain: ``--imp-control reinit|random --tickets-from
IMP_RUN`` (with the IMP run's model, sparsity and round options). Round K of a control trains
ticket K of IMP_RUN with, for the nets of ``--control-nets`` (G by default):

    reinit   the same masks, fresh random weights (one fresh initialisation for all rounds)
    random   random masks with ticket K's exact per-layer counts, on the IMP run's rewound weights

while the other net keeps the ticket's weights and mask exactly (D's initialisation matters on
its own in GAN Tickets, so the default does not mix the two effects). A control run has rounds
1..K only (round 0 is the IMP run's) and the same layout otherwise (its tickets under
``RUN/tickets``). Keeping controls separate lets several controls and seeds share one IMP chain.

Re-running with ``--resume auto`` skips finished rounds and resumes the interrupted one.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from sparsegan.config import TrainConfig
from sparsegan.errors import UserError
from sparsegan.files import save_safetensors
from sparsegan.launch.single_run import train_one as train
from sparsegan.methods.imp import net_rankings, prune_to_density, random_masks_like, round_densities
from sparsegan.models import model_nets
from sparsegan.run_folder import RunDir, RunFolder, RunLayout, load_tensors, read_json, read_records
from sparsegan.sparsity import MaskSet, output_axes, prunable_parameters
from sparsegan.sparsity.blocks import Blocks
from sparsegan.training.distributed import DistContext, resolve_device
from sparsegan.training.trainer import build_nets, data_record, load_training_data, resolved_config, started_record

# What a control must share with the IMP run whose tickets it trains.
CONTROL_KEYS = ("dataset", "model", "model_width", "width_multiplier", "z_dim", "loss", "prunable", "prune_nets",
                "imp_rate", "rewind_step", "imp_d", "imp_ranking", "steps", "batch_size", "g_batch_size", "n_dis",
                "mask_block")
# What a config.json written before an option existed held: that option's value then.
_BEFORE = {"mask_block": "1x1"}
# What defines an IMP run's (or control's) rounds and tickets, with the "imp_rounds" density plan.
# A resume skips finished rounds and tickets, so resuming with another value of one of these would
# silently mix rounds of the old options into a run whose config.json then claims the new ones.
ROUND_KEYS = CONTROL_KEYS + ("sparsity_g", "sparsity_d", "seed", "imp_control")
REINIT_SEED = 7919  # the reinit control's fresh initialisation: seed + this


def _nets(cfg: TrainConfig, data, seed: int, build=build_nets) -> dict[str, nn.Module]:
    """The model's nets by name, initialised from ``seed``: G and D, or a diffusion model's G alone."""
    return {net: m for net, m in zip(("G", "D"), build(cfg, data, seed)) if m is not None}


def _rounds_plan(cfg: TrainConfig) -> dict[str, list[float]]:
    """Density of each net in rounds 1..K (a net that is not pruned stays at 1)."""
    targets = {"G": cfg.sparsity_g, "D": cfg.sparsity_d}
    per_net = {net: round_densities(targets[net], cfg.imp_rate) if net in cfg.prune_nets else []
               for net in model_nets(cfg.model)}
    k = max(len(v) for v in per_net.values())
    if k == 0:
        raise UserError("--method imp needs a target: --sparsity-g (or --sparsity-d with --prune-nets GD) > 0")
    return {net: [v[min(i, len(v) - 1)] if v else 1.0 for i in range(k)] for net, v in per_net.items()}


def _check_resume(cfg: TrainConfig, resume: str | None) -> None:
    """On --resume auto of an existing IMP run or control, refuse (before anything is written)
    options that would change its rounds: the finished ones would be reused as they are."""
    if resume is None:
        return
    try:
        saved = read_json(RunFolder(cfg.out).config_file)
    except (OSError, ValueError):
        return  # nothing trained yet: nothing to mix
    asked = {key: getattr(cfg, key) for key in ROUND_KEYS} | {"imp_rounds": _rounds_plan(cfg)}
    for key, want in asked.items():
        if saved.get(key, _BEFORE.get(key)) != want:
            raise UserError(f"cannot resume {cfg.out}: its rounds were trained with {key}={saved.get(key)!r}, this "
                            f"command asks for {want!r}; give its options, or use another --out (or --overwrite)")


def _done(folder: Path) -> bool:
    try:
        return read_json(RunFolder(folder).summary_file).get("status") == "completed"
    except (OSError, ValueError):
        return False


def _capture(run: RunDir, prefix: str, t) -> None:
    if not t.dist.is_main:  # rank 0 writes; the others read it after the round (a barrier)
        return
    for net, module in t.nets.items():
        save_safetensors(run.rewind_file(prefix, net), module.state_dict())


def _capture_position(run: RunDir, t) -> None:
    """The data order and noise stream at the rewind step, where late-rewound rounds continue."""
    if not t.dist.is_main:
        return
    run.write_rewind_position({"step": t.step, "sampler": t.sampler.state_dict(),
                               "noise_rng": t.rng["noise"].get_state().numpy().tobytes().hex()})


def _read_position(run: RunLayout) -> dict[str, Any]:
    try:
        return read_json(run.rewind_position)
    except (OSError, ValueError):
        raise UserError(f"{run.rewind} holds no {run.rewind_position.name} (the data position of --rewind-step): "
                        "this IMP run predates late rewinding from that position; start it again with --overwrite"
                        ) from None


def _start_at(position: dict[str, Any] | None) -> Callable | None:
    """An ``on_start`` hook that puts a fresh round at the rewind step's data position."""
    if position is None:
        return None

    def on_start(t) -> None:
        if t.step == 0:  # a resumed round continues from its own checkpoint instead
            t.sampler.load_state_dict(position["sampler"])
            t.rng["noise"].set_state(torch.frombuffer(bytearray.fromhex(position["noise_rng"]), dtype=torch.uint8))

    return on_start


def _round_cfg(cfg: TrainConfig, sub: Path, ticket: Path, density: dict[str, float]) -> TrainConfig:
    """Round K: a ``static`` run of its ticket for the steps left after the rewind step."""
    return dataclasses.replace(
        cfg, method="static", out=str(sub), masks_from=str(ticket), masks_with_weights=True,
        sparsity_g=1.0 - density["G"], sparsity_d=1.0 - density["D"] if "D" in density else cfg.sparsity_d,
        steps=cfg.steps - cfg.rewind_step,
        imp_control="none", tickets_from=None,
    )


class _Rounds:
    """The run folder of an IMP run or of a control, and its kind=round records."""

    def __init__(self, cfg: TrainConfig, resume: str | None, overwrite: bool, data, extra: dict[str, Any]):
        self.steps = cfg.steps
        # Under torchrun rank 0 writes the IMP run's own files (config, rewind weights, tickets,
        # round records, summary); every rank trains every round; the others wait at barriers for
        # what rank 0 writes and they read, and decide from the files only when nobody writes.
        self.dist = DistContext.from_env(cfg.device)
        self.run = self.dist.prepare_run_dir(cfg.out, resume=resume is not None, overwrite=overwrite)
        device = torch.device(resolve_device(cfg.device))
        previous = self.run.read_config() if resume is not None and self.run.config_file.exists() else None
        config = resolved_config(cfg, device, data_record(cfg, data)) | extra
        # the IMP run's folder has no resume records to say whether its config.json was the first segment's
        config["environment"]["started"] = started_record(config["environment"], previous)
        self.run.write_config(config)
        self.done = {r["round"] for r in read_records(self.run.path, "round")}

    def log(self, k: int, sub: Path, density: dict[str, float], **extra) -> None:
        if k in self.done:
            return
        summary = read_json(RunFolder(sub).summary_file)
        self.run.log({"kind": "round", "step": k, "round": k, "density": density,
                      "run": str(sub.relative_to(self.run.path)), **extra,
                      "final_density": summary.get("density"), "metrics": summary.get("metrics", {}),
                      "wall_time_s": summary.get("wall_time_s")})
        self.done.add(k)

    def finish(self, rounds: list[int]) -> Path:
        """The last round is the result: its final files and summary, plus every round as a phase."""
        path = self.run.path
        self.dist.barrier()
        if not self.dist.is_main:
            return path
        subs = [RunFolder(self.run.round_dir(k)) for k in rounds]
        for f in subs[-1].final.iterdir():
            shutil.copy2(f, self.run.final / f.name)
        phases = []
        for sub in subs:
            sc = read_json(sub.config_file)
            phases.append({"phase": sub.path.name, "steps": sc["steps"], "n_dis": sc["n_dis"],
                           "batch_size": sc["batch_size"],
                           "density": _layer_densities(sub.path) if sc["method"] != "dense"
                           else {net: 1.0 for net in model_nets(sc["model"])}})
        wall = sum(read_json(sub.summary_file).get("wall_time_s", 0.0) for sub in subs)
        last = read_json(subs[-1].summary_file)
        # Every round ends at the same point of the schedule, --steps (a late-rewound round starts at
        # step k and trains steps - k): that is the run's "step", so that a finished chain reads as
        # complete (a sweep relaunched it otherwise). The last round's own length is "round_steps".
        # Training FLOPs of all rounds together: the earlier rounds as external phases, the last one here.
        flops = _all_rounds_flops(path, phases[:-1], last["step"])
        self.run.write_summary({**last, "step": self.steps, "round_steps": last["step"], "phases": phases[:-1],
                                "rounds": len(rounds), "wall_time_s": wall, "flops": flops})
        return path


def train_rounds(cfg: TrainConfig, *, resume: str | None, overwrite: bool, progress: bool) -> Path:
    if resume not in (None, "auto"):
        raise UserError("--method imp resumes with --resume auto (rounds are separate runs)")
    RunDir.check(cfg.out, resume=resume is not None, overwrite=overwrite)
    if cfg.rewind_step >= cfg.steps:
        raise UserError(f"--rewind-step {cfg.rewind_step} must be below --steps {cfg.steps}")
    _check_resume(cfg, resume)
    if cfg.imp_control != "none":
        return _train_control(cfg, resume=resume, overwrite=overwrite, progress=progress)
    plan = _rounds_plan(cfg)
    data = load_training_data(cfg)
    ranking = net_rankings(cfg.imp_ranking, _nets(cfg, data, cfg.seed))
    rounds = _Rounds(cfg, resume, overwrite, data, {"imp_rounds": plan, "imp_ranking_by_net": ranking})
    run, dist = rounds.run, rounds.dist
    if dist.is_main:
        run.rewind.mkdir(exist_ok=True)
    dist.barrier()
    k_rewind = cfg.rewind_step

    # Round 0: dense, capturing the weights (and data position) to rewind to.
    sub0 = run.round_dir(0)
    cfg0 = dataclasses.replace(cfg, method="dense", out=str(sub0), masks_from=None, masks_with_weights=False)

    def on_start(t) -> None:
        if t.step == 0:
            _capture(run, "init", t)

    def on_step(t) -> None:
        if t.step == k_rewind:
            _capture(run, "rewind", t)
            _capture_position(run, t)

    if not _done(sub0):
        train(cfg0, resume="auto" if sub0.exists() else None, progress=progress, on_start=on_start, on_step=on_step)
    dist.barrier()
    rounds.log(0, sub0, {net: 1.0 for net in plan}, start_step=0)

    position = _read_position(run) if k_rewind > 0 else None
    n_rounds = len(plan["G"])
    for k in range(1, n_rounds + 1):
        density = {net: plan[net][k - 1] for net in plan}
        sub, ticket = run.round_dir(k), run.ticket_dir(k)
        if dist.is_main and not RunDir(ticket).final_file("masks").exists():
            _make_ticket(cfg, data, run, k, density, ranking, RunDir(ticket), build_nets)
        dist.barrier()  # the ticket is written; every rank sees the same folders
        if not _done(sub):
            train(_round_cfg(cfg, sub, ticket, density), resume="auto" if sub.exists() else None,
                  progress=progress, on_start=_start_at(position))
        dist.barrier()
        rounds.log(k, sub, density, ranking=ranking, start_step=k_rewind, imp_d=cfg.imp_d)
    return rounds.finish(list(range(n_rounds + 1)))


def _layer_densities(round_dir: Path) -> dict[str, Any]:
    """{net: {param name: density}} of a round's final masks. A round's training FLOPs are counted at
    these: IMP's global ranking spreads a net's density over its layers unlike the distribution
    (ERK) a bare density would be allocated with, and a conv layer's weight costs more FLOPs than a
    linear one's, so a bare density miscounts the earlier rounds (it over-counted the Fashion-MNIST
    study's IMP chains by 4 to 61 % in total)."""
    return {net: {name: m.float().mean().item() for name, m in masks.items()} or 1.0
            for net, masks in RunFolder.open(round_dir).masks.items() if masks or net == "G"}


def _all_rounds_flops(path: Path, phases: list[dict[str, Any]], last_round_steps: int) -> dict[str, Any]:
    import sys

    from sparsegan.efficiency import flops_summary

    try:
        rf = RunFolder.open(path)
        G, D, _ = rf.build_nets("raw")
        nets = {"G": G} if D is None else {"G": G, "D": D}
        return flops_summary(nets, rf.masks, rf.config, rf.records(), last_round_steps,
                             external=phases)
    except Exception as e:  # the summary must still be written
        print(f"sparsegan: warning: FLOPs not counted ({type(e).__name__}: {e})", file=sys.stderr)
        return {"error": f"{type(e).__name__}: {e}"}


def _start_weights(imp_run: RunLayout, imp_d: str, rewind_step: int, net: str, k: int) -> dict[str, torch.Tensor]:
    """The unpruned weights round k of an IMP run starts ``net`` from: its rewind-step weights
    (init when 0), D's init (``--imp-d init``), or round k-1's final D (``--imp-d keep``)."""
    if net == "D" and imp_d == "keep":
        return RunFolder(imp_run.round_dir(k - 1)).final_tensors("D")
    prefix = "init" if rewind_step == 0 or (net == "D" and imp_d == "init") else "rewind"
    return load_tensors(imp_run.rewind_file(prefix, net))


def _write_ticket(out: RunDir, nets: dict[str, nn.Module], masks: dict[str, MaskSet]) -> None:
    """The ticket's final/: the nets' (masked) weights, then their masks (which mark it written)."""
    for net in nets:
        masks[net].apply_()
    out.save_final({**{net: nets[net].state_dict() for net in nets},
                    "masks": {f"{net}.{n}": m for net in nets for n, m in masks[net].masks.items()}})


def _masks_of(module: nn.Module, cfg: TrainConfig, saved: dict[str, torch.Tensor], net: str) -> MaskSet:
    params = prunable_parameters(module, cfg.prunable)
    return MaskSet(params, {n: saved[f"{net}.{n}"].bool() for n in params}, blocks=Blocks.parse(cfg.mask_block),
                   out_axes=output_axes(module))


def _make_ticket(cfg: TrainConfig, data, run: RunLayout, k: int, density: dict[str, float], ranking: dict[str, str],
                 out: RunDir, build_nets) -> None:
    """Ticket k: prune round k-1's final weights to the round's densities, rewind the survivors."""
    prev = RunFolder(run.round_dir(k - 1))
    nets = _nets(cfg, data, cfg.seed, build_nets)
    prev_masks = prev.final_tensors("masks")
    masks = {}
    for net in nets:
        nets[net].load_state_dict(prev.final_tensors(net))
        masks[net] = _masks_of(nets[net], cfg, prev_masks, net)
        if net in cfg.prune_nets and density[net] < masks[net].density() - 0.5 / masks[net].numel():
            prune_to_density(masks[net], density[net], ranking[net])
        nets[net].load_state_dict(_start_weights(run, cfg.imp_d, cfg.rewind_step, net, k))
    _write_ticket(out, nets, masks)


def _train_control(cfg: TrainConfig, *, resume: str | None, overwrite: bool, progress: bool) -> Path:
    if cfg.tickets_from is None:
        raise UserError(f"--imp-control {cfg.imp_control} needs --tickets-from IMP_RUN: the finished IMP run "
                        "whose tickets it trains (controls run no pruning chain of their own)")
    src = RunFolder(cfg.tickets_from)
    try:
        src_cfg = read_json(src.config_file)
    except (OSError, ValueError):
        raise UserError(f"--tickets-from {src.path}: no readable {src.config_file.name}; is it a sparsegan imp run?"
                        ) from None
    if src_cfg.get("method") != "imp" or src_cfg.get("imp_control", "none") != "none" or "imp_rounds" not in src_cfg:
        raise UserError(f"--tickets-from {src.path} is not an IMP run (method {src_cfg.get('method')!r}, "
                        f"control {src_cfg.get('imp_control')!r}); give the run of --method imp without a control")
    if not _done(src.path):
        raise UserError(f"--tickets-from {src.path} has not finished all its rounds; finish it first "
                        "(sparsegan train ... --resume auto)")
    for key in CONTROL_KEYS:
        if src_cfg.get(key, _BEFORE.get(key)) != getattr(cfg, key):
            raise UserError(f"--tickets-from {src.path} was trained with {key}={src_cfg.get(key)!r}, this control asks "
                            f"for {getattr(cfg, key)!r}; a control trains the IMP run's tickets: give its options")
    plan = src_cfg["imp_rounds"]
    if plan != _rounds_plan(cfg):
        raise UserError(f"--tickets-from {src.path} reached densities {plan}, this control's --sparsity-g/-d plan "
                        f"{_rounds_plan(cfg)}; give the IMP run's sparsities")
    data = load_training_data(cfg)
    reinit_seed = cfg.seed + REINIT_SEED
    rounds = _Rounds(cfg, resume, overwrite, data, {"imp_rounds": plan, "reinit_seed": reinit_seed})
    run, dist = rounds.run, rounds.dist
    position = _read_position(src) if cfg.rewind_step > 0 else None
    n_rounds = len(plan["G"])
    for k in range(1, n_rounds + 1):
        density = {net: plan[net][k - 1] for net in plan}
        source_ticket, sub, ticket = src.ticket_dir(k), run.round_dir(k), run.ticket_dir(k)
        if dist.is_main and not RunDir(ticket).final_file("masks").exists():
            _make_control_ticket(cfg, data, src, k, RunFolder(source_ticket), RunDir(ticket), reinit_seed, build_nets)
        dist.barrier()
        if not _done(sub):
            train(_round_cfg(cfg, sub, ticket, density), resume="auto" if sub.exists() else None,
                  progress=progress, on_start=_start_at(position))
        dist.barrier()
        rounds.log(k, sub, density, control=cfg.imp_control, control_nets=cfg.control_nets,
                   ticket_from=str(source_ticket), start_step=cfg.rewind_step)
    return rounds.finish(list(range(1, n_rounds + 1)))


def _make_control_ticket(cfg: TrainConfig, data, src: RunLayout, k: int, source: RunFolder, out: RunDir,
                         reinit_seed: int, build_nets) -> None:
    """Ticket k of the IMP run, re-initialised (reinit) or re-drawn with its counts (random), for
    the nets of --control-nets; the other net is the ticket's exactly."""
    nets = _nets(cfg, data, cfg.seed, build_nets)
    fresh = _nets(cfg, data, reinit_seed, build_nets)
    ticket_masks = source.final_tensors("masks")
    masks = {}
    for net in nets:
        nets[net].load_state_dict(source.final_tensors(net))
        masks[net] = _masks_of(nets[net], cfg, ticket_masks, net)
        if net not in cfg.control_nets:
            continue
        if cfg.imp_control == "reinit":
            nets[net].load_state_dict(fresh[net].state_dict())
        else:
            nets[net].load_state_dict(_start_weights(src, cfg.imp_d, cfg.rewind_step, net, k))
            g = torch.Generator().manual_seed(cfg.seed * 7919 + k)
            masks[net] = random_masks_like(masks[net], g)
        masks[net].params = prunable_parameters(nets[net], cfg.prunable)
    _write_ticket(out, nets, masks)
