"""Whole training steps of the U-Net denoiser through the CLI: dense, and static sparse on the masked
path (``--sparse-compute off``), with ``auto`` and with ``on``; writes results/unet_training_speed.json
and .md (``--threads 2``: unet_training_speed_2threads.json and .md).

    python benchmarks/training-speed/unet_speed.py --out benchmarks/training-speed/results [--threads 2]

Each repetition trains each variant once (``sparsegan train --model unet ...``, evaluation off), in
turn, so that noise on the machine hits them alike; a run's speed is the median images/s its log
reports over the steps from ``--from-step`` on (the planner's timing, at the first steps of an ``auto``
run, is left out); a variant's speed-up is per repetition, against the dense run of the same
repetition. ``auto`` reads and writes a plan cache of this command's own (``--plan-cache``, fresh by
default), so the first ``auto`` run measures its layers and the others follow its plan, as a second
run on one machine does. Stop other work on the machine first: timings beside a busy core mean little;
the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

# (method, --sparse-compute): the variants, dense first
VARIANTS = (("dense", "off"), ("static", "off"), ("static", "auto"), ("static", "on"))


def _commit() -> str:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent)
    return proc.stdout.strip() or "unknown"


def train_flags(args) -> list[str]:
    return ["--model", "unet", "--model-width", str(args.width), "--batch-size", str(args.batch), "--steps",
            str(args.steps), "--log-every", str(args.log_every), "--eval-every", "0", "--sample-every", str(args.steps),
            "--sparsity-g", str(args.sparsity), "--no-progress", *args.extra]


def stem(threads: int) -> str:
    """The results' file name (no suffix): one file per thread count."""
    return "unet_training_speed" + ("" if threads == 1 else f"_{threads}threads")


def images_per_s(run: Path, from_step: int) -> float:
    """The median images/s the run's log reports from ``from_step`` on."""
    speeds = [r["images_per_s"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if r.get("kind") == "train" and r["step"] >= from_step]
    if not speeds:
        sys.exit(f"error: {run} logged no step at or after {from_step}; use more --steps")
    return statistics.median(speeds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for unet_training_speed.json and .md")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--from-step", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plan-cache", default=None, help="the auto runs' plan cache (default: a fresh file)")
    ap.add_argument("extra", nargs="*", help="more flags for every run (after --), e.g. --data-root DIR")
    args = ap.parse_args()
    flags = train_flags(args)
    load_before = os.getloadavg()
    speeds: dict[str, list[float]] = {f"{m} {c}": [] for m, c in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
               "SPARSEGAN_PLAN_CACHE": args.plan_cache or str(Path(tmp) / "plans.json")}
        for rep in range(args.reps):
            for method, compute in VARIANTS:
                run = Path(tmp) / f"{method}-{compute}-{rep}"
                cmd = [sys.executable, "-m", "sparsegan", "train", *flags, "--method", method,
                       "--sparse-compute", compute, "--out", str(run)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(f"error: {' '.join(cmd[2:])} failed: {proc.stderr.strip().splitlines()[-1:]}")
                speed = images_per_s(run, args.from_step)
                speeds[f"{method} {compute}"].append(speed)
                print(f"rep {rep + 1}: {method} {compute}: {speed:.0f} images/s", flush=True)
    load_after = os.getloadavg()
    dense = speeds["dense off"]
    variants = {name: {"images_per_s": [round(v, 1) for v in vals],
                       "speedup_vs_dense": [round(v / d, 3) for v, d in zip(vals, dense)]}
                for name, vals in speeds.items()}
    result = {
        "command": "sparsegan train " + " ".join(flags) + " --method METHOD --sparse-compute MODE",
        "conditions": {"threads": args.threads, "cpus": os.cpu_count(), "machine": platform.machine(),
                       "torch": torch.__version__, "commit": _commit(), "repetitions": args.reps,
                       "median_from_step": args.from_step,
                       "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)]},
        "variants": variants,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / stem(args.threads)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(f"wrote {out.with_suffix('.json')} and .md")


def render(result: dict) -> str:
    c = result["conditions"]
    threads = "" if c["threads"] == 1 else f" --threads {c['threads']}"
    lines = ["# U-Net denoiser: whole training steps, dense against sparse", "",
             f"`{result['command']}`, {c['repetitions']} repetitions, the variants interleaved; median images/s of "
             f"the logged steps from {c['median_from_step']} on; {c['threads']} thread(s) on a {c['cpus']}-CPU "
             f"{c['machine']} machine, torch {c['torch']}, commit {c['commit']}; load average (1 min) "
             f"{c['load_average_1min'][0]} before, {c['load_average_1min'][1]} after. Written by "
             f"`python benchmarks/training-speed/unet_speed.py{threads}`.", "",
             "| method, --sparse-compute | images/s per repetition | speed-up against dense (same repetition) |",
             "| --- | --- | --- |"]
    for name, v in result["variants"].items():
        ups = v["speedup_vs_dense"]
        lines.append(f"| {name} | {', '.join(f'{x:.0f}' for x in v['images_per_s'])} | "
                     f"{min(ups):.2f}-{max(ups):.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
