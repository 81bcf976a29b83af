"""``sparsegan train``: train one run into a run folder."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

from sparsegan import recipes
from sparsegan.commands.flags import add_config_flags
from sparsegan.config import (
    TrainConfig,
    build_config,
    describe_inapplicable,
    flag_of,
    inapplicable,
    load_yaml,
)
from sparsegan.errors import UserError


def run(args: argparse.Namespace) -> int:
    values = load_yaml(recipes.resolve(args.config, "train")) if args.config else {}
    names = {f.name for f in fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    given = set(values)
    resuming = args.resume is not None or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0"
    if resuming and "update_interval" not in given:
        values.update(_resumed_update_interval(values.get("out")))
    cfg = build_config(values)
    # Every key the user gave (YAML or flag) must have an effect for this method, or be recorded as
    # ignored when asked (sweeps share one base across methods); checked before anything is written.
    problems = inapplicable(cfg, given)
    if problems and not args.allow_ignored:
        raise UserError(describe_inapplicable(cfg, problems))
    cfg.ignored = problems  # read by training.trainer.resolved_config into config.json
    if args.dry_run:
        for name, why in problems.items():  # the config below lists them; here is why
            print(f"sparsegan: ignored: {flag_of(name)} {why}", file=sys.stderr)
        from sparsegan.training.trainer import ignored_keys

        print(json.dumps(cfg.to_dict() | ignored_keys(cfg), indent=2))
        print(_check_device_and_data(cfg), file=sys.stderr)
        return 0
    from sparsegan.launch import train
    from sparsegan.training.distributed import is_rank_zero
    from sparsegan.training.lifecycle import interrupts_once_written

    speaks = is_rank_zero()  # under torchrun only rank 0 shows progress and the folder
    if args.resume is None and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        # torchrun --max-restarts relaunched the group after a lost rank: continue from the newest
        # valid checkpoint rather than refuse the run folder the first attempt made.
        args.resume = "auto"
    with interrupts_once_written(cfg.out):  # Ctrl-C: resume advice only once the run folder was written to
        run = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress and speaks)
    if speaks:
        print(f"run folder: {run}")
    return 0


def _resumed_update_interval(out) -> dict[str, int]:
    """The Delta T a resumed run was started with ({} when its folder records none): the default
    depends on --steps, which a resume may extend, so a resume without --update-interval keeps the
    resolved value its config.json holds."""
    from sparsegan.run_folder import RunFolder, read_json_or_none

    saved = read_json_or_none(RunFolder(out).config_file) if out else None
    value = (saved or {}).get("update_interval")
    return {"update_interval": value} if isinstance(value, int) else {}


def _check_device_and_data(cfg) -> str:
    """What a run would use, checked: the device (usable here) and the training data (found, read)."""
    from sparsegan.training.distributed import DistContext
    from sparsegan.training.trainer import load_training_data

    device = str(DistContext().device(cfg.device))
    data = load_training_data(cfg)
    if hasattr(data, "a"):  # two domains
        shape = f"{len(data.a)} + {len(data.b)} images (domains A + B), {data.channels} x {data.resolution}px"
    else:
        classes = f", {data.num_classes} classes" if data.num_classes else ""
        shape = f"{len(data)} images, {data.channels} channel(s){classes}"
    return f"sparsegan: device {device}" + (f" (from {cfg.device})" if device != cfg.device else "") + \
        f"; data {cfg.dataset} train split: {shape}"


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one run into a run folder",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", metavar="FILE.yaml|NAME",
                   help="YAML recipe, or the name of a packaged one (sparsegan recipes lists them; a file that "
                        "exists wins); flags given on the command line win")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config (and what it ignores), check the device and the training data it "
                        "would use, and exit")
    p.add_argument("--allow-ignored", action="store_true",
                   help="record options that have no effect for this method in the run's config (\"ignored\") "
                        "instead of refusing them; sweeps pass it, since one base serves several methods")
    p.add_argument("--resume", metavar="auto|PATH",
                   help="continue from the newest valid checkpoint or a given one; a completed run is left "
                        "unchanged unless --steps grew. Ctrl-C / SIGTERM save a checkpoint of the current step "
                        "and print the command that resumes (exit 130 / 143)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(p)
    p.set_defaults(func=run)
