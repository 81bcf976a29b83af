"""``sparsegan flops``: parameters and FLOPs per layer, and the training FLOPs of a run."""

from __future__ import annotations

import argparse
import json

from sparsegan.commands.flags import add_config_flags
from sparsegan.config import build_config
from sparsegan.errors import UserError

# The config options of a planned count (no run folder): what the model, its masks and the training
# schedule are; the methods whose masks a plan can draw.
PLANNED = ("method", "sparsity_g", "sparsity_d", "steps", "batch_size", "g_batch_size", "n_dis", "update_interval",
           "grow", "prune_criterion", "probe_batches", "explore", "distribution", "prunable", "z_dim", "model_width",
           "sample_steps")
PLANNED_METHODS = ("dense", "static", "stu")


def _table(rows, totals, human) -> str:
    head = (f"{'net':3} {'layer':28} {'kind':16} {'params':>9} {'prunable':>9} {'active':>9} {'density':>7} "
            f"{'dense FLOPs':>11} {'sparse FLOPs':>12}")
    lines = [head, "-" * len(head)]
    for net, net_rows in rows.items():
        for r in net_rows:
            lines.append(f"{net:3} {r.name[:28]:28} {r.kind[:16]:16} {r.params:9d} {r.prunable:9d} {r.active:9d} "
                         f"{r.density:7.4f} {human(r.dense_flops):>11} {human(r.sparse_flops):>12}")
        t = totals[net]
        lines.append(f"{net:3} {'total':28} {'':16} {t['params']:9d} {t['prunable']:9d} {t['active_prunable']:9d} "
                     f"{t['density']:7.4f} {human(t['dense_flops']):>11} {human(t['sparse_flops']):>12}"
                     f"  ({t['relative_flops']:.3f} x dense)")
        lines.append("")
    return "\n".join(lines)


def _train_lines(train, human) -> list[str]:
    lines = [f"training FLOPs: {human(train['total'])} over {train['steps']} G steps; dense training for "
             f"{train['dense_steps']} steps: {human(train['dense'])}; relative {train['relative']:.4f} "
             f"({1 / train['relative']:.2f}x fewer)" if train["relative"] > 0 else ""]
    for p in train["phases"]:
        upd = ", ".join(f"{k} {v}" for k, v in p["dense_grad_updates"].items() if v) or "none"
        probes = ""
        if p.get("probes"):
            counts = ", ".join(f"{k} {v:g}" for k, v in p["probes"].items())
            probes = f"; loss probes {counts} (gradients of the loss), their cost {human(p['probe_flops'])}"
        lines.append(f"  phase {p['name']}: {p['steps']} steps, {human(p['flops'])} "
                     f"(dense-gradient updates: {upd}; their extra cost {human(p['dense_grad_flops'])}{probes})")
    return lines


def run(args: argparse.Namespace) -> int:
    from sparsegan.efficiency.accounting import layer_counts, net_totals
    from sparsegan.efficiency.training_flops import (
        CONVENTION,
        PROBE_GRADIENTS,
        FlopModel,
        Phase,
        flops_summary,
        human,
        planned_densities,
        rows_as_dicts,
        sampling_flops,
        training_flops,
    )
    from sparsegan.models import MODEL_KIND, ModelSpec, build_models
    from sparsegan.sparsity import UpdateSchedule
    from sparsegan.sparsity.criteria import criterion_needs

    if args.run is not None:
        from sparsegan.run_folder import RunFolder

        rf = RunFolder.open(args.run)
        G, D, _ = rf.build_nets("raw")
        nets = {"G": G} if D is None else {"G": G, "D": D}  # a diffusion model: its denoiser alone
        rows = layer_counts(nets, rf.masks, scope=rf.config.get("prunable", "all"))

        summary = flops_summary(nets, rf.masks, rf.config, rf.records(), rf.steps_done(),
                                external=rf.summary.get("phases"))
        train = summary["train"]
    else:
        if args.model is None:
            raise UserError("give a RUN_DIR, or --model (with --sparsity-g / --sparsity-d)")
        # The options given, over their defaults, validated as train validates them.
        args = argparse.Namespace(**{**vars(args), **vars(build_config(
            {"model": args.model, **{k: v for k, v in vars(args).items() if k in PLANNED}}))})
        if args.method not in PLANNED_METHODS:
            raise UserError(f"a planned count (--model without a run) draws the masks of {', '.join(PLANNED_METHODS)}; "
                            f"for --method {args.method}, count its run folder")
        spec = ModelSpec(channels=args.channels, num_classes=args.num_classes, z_dim=args.z_dim,
                         width=args.model_width, resolution=args.resolution, sample_steps=args.sample_steps)
        G, D = build_models(args.model, spec)
        nets = {"G": G} if D is None else {"G": G, "D": D}
        s = {"G": args.sparsity_g, "D": args.sparsity_d} if args.method != "dense" else {"G": 0.0, "D": 0.0}
        try:
            dens = {net: planned_densities(nets[net], s[net], args.distribution, scope=args.prunable) for net in nets}
        except ValueError as e:
            raise UserError(str(e)) from None
        rows = layer_counts(nets, densities=dens, scope=args.prunable)
        fm = FlopModel(nets, scope=args.prunable, distribution=args.distribution, masks=None)
        updates, probes = {}, {}
        if args.method == "stu":
            n = len(UpdateSchedule(interval=args.update_interval, total_steps=args.steps).update_steps())
            explored = [net for net in nets if net in args.explore and s[net] > 0]
            prune_needs = criterion_needs("prune", args.prune_criterion)
            if criterion_needs("grow", args.grow) is not None or prune_needs is not None:
                updates = {net: n for net in explored}
            if prune_needs == "hessian-gradient":  # GraSP's H g from loss probes at every update
                probes = {net: n * args.probe_batches * PROBE_GRADIENTS[prune_needs] for net in explored}
        phase = Phase(args.method, args.steps, dens, updates, probes=probes)
        kind = MODEL_KIND.get(args.model, "gan")
        train = training_flops(fm, [phase], batch_size=args.batch_size, n_dis=args.n_dis, dense_steps=args.steps,
                               g_batch_size=args.g_batch_size, kind=kind)
        summary = {"convention": CONVENTION, "train": train}
        if kind == "diffusion":
            t = net_totals(rows["G"])
            summary["sampling_per_image"] = sampling_flops({"dense": t["dense_flops"], "sparse": t["sparse_flops"]},
                                                           args.sample_steps)
    totals = {net: net_totals(r) for net, r in rows.items()}
    print(_table(rows, totals, human))
    print("\n".join(_train_lines(train, human)))
    if "sampling_per_image" in summary:  # a diffusion model: its sampler calls the denoiser NFE times per image
        sp = summary["sampling_per_image"]
        print(f"sampling FLOPs per image: {sp['nfe']} denoiser calls (NFE) x the denoiser: dense {human(sp['dense'])}, "
              f"sparse {human(sp['sparse'])} ({sp['relative']:.3f} x dense)")
    print(f"({CONVENTION})")
    if args.json:
        payload = {"layers": rows_as_dicts(rows), "totals": totals, **summary}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("flops", help="parameters and FLOPs per layer; training FLOPs of a run vs dense",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="a completed run folder")
    p.add_argument("--model", help="count a model without a run (masks planned by --distribution)")
    # The training options a planned count needs: defined once, in sparsegan.config (as for train).
    add_config_flags(p, PLANNED)
    p.add_argument("--channels", type=int, default=1, help="image channels of the data the model is built for")
    p.add_argument("--num-classes", type=int, default=0, help="classes (class-conditional models)")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--json", metavar="FILE", help="also write the table and totals as JSON")
    p.set_defaults(func=run)
