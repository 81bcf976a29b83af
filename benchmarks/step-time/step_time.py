"""Wall time per training step of dense, static and stu, side by side in one process.

Each variant is a real Trainer (same data, model, optimizers and loop body as `sparsegan train`);
the variants run interleaved in rounds so that machine noise hits them alike, and the medians
of the per-step times are compared. Topology updates happen every `--update-interval` steps, so
their cost is included at the rate a real run pays it.

    python benchmarks/step-time/step_time.py --models mlp,dcgan --steps 60 --rounds 5 \
        --json benchmarks/step-time/results/step_time.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import torch

from sparsegan.config import build_config
from sparsegan.run_folder import RunDir
from sparsegan.training.loop import gan_iteration
from sparsegan.training.trainer import build_trainer

MODELS = {"mlp": {"model": "mlp"}, "dcgan": {"model": "dcgan", "model_width": 32, "loss": "ns"}}
METHODS = ("dense", "static", "stu")


def make(model: str, method: str, out: str, interval: int, steps: int, compute: str = "off"):
    cfg = build_config({**MODELS[model], "method": method, "sparsity_g": 0.9, "sparsity_d": 0.5,
                        "update_interval": interval, "steps": steps * 1000, "out": out, "batch_size": 64,
                        "sparse_compute": compute})
    t = build_trainer(cfg, None)
    t.run = RunDir.prepare(out, resume=False, overwrite=True)
    return t


def one_step(t) -> tuple[float, bool]:
    """One step as the loop takes it (the engine's topology step, then the EMA): its wall time and
    whether the topology changed in it. Every ``balance_every``-th step (10) also measures ADAPT's
    balance ratio (two more forward passes, for every method); update steps always are such steps
    at these intervals, so they are compared with the other balance steps too."""
    start = time.perf_counter()
    step = t.step + 1
    gan_iteration(t, step)
    t.step = step
    events = t.sparse.step()  # topology update when due, optimizer-state surgery, SEMA restart
    t.sparse.drain_records()
    t.ema.update(t.G, step)
    return time.perf_counter() - start, any(ev.pruned or ev.grown for ev in events)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mlp,dcgan")
    ap.add_argument("--steps", type=int, default=60, help="steps per variant per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--update-interval", type=int, default=20)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--sparse-compute", default="off", help="the masked path (off, as measured in step_time.md), or "
                    "auto / on (benchmarks/training-speed/ measures those)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            trainers = {m: make(model, m, os.path.join(tmp, f"{model}-{m}"), args.update_interval, args.steps,
                                args.sparse_compute if m != "dense" else "off") for m in METHODS}
            for t in trainers.values():  # warm-up
                for _ in range(5):
                    one_step(t)
            times = {m: [] for m in METHODS}
            updates = {m: [] for m in METHODS}
            balance = {m: [] for m in METHODS}  # balance-ratio steps without a topology change
            for _ in range(args.rounds):
                for m, t in trainers.items():
                    for _ in range(args.steps):
                        is_balance = (t.step + 1) % t.cfg.balance_every == 0
                        dt, changed = one_step(t)
                        times[m].append(dt)
                        if changed:
                            updates[m].append(dt)
                        elif is_balance:
                            balance[m].append(dt)
            med = {m: statistics.median(v) * 1000 for m, v in times.items()}
            # The mean counts the topology-update steps at the rate a run with this interval pays
            # them (every round times whole multiples of the interval when --steps is one).
            mean = {m: statistics.fmean(v) * 1000 for m, v in times.items()}
            results[model] = {m: {"median_ms": round(med[m], 3), "ratio_to_dense": round(med[m] / med["dense"], 4),
                                  "mean_ms": round(mean[m], 3),
                                  "mean_ratio_to_dense": round(mean[m] / mean["dense"], 4),
                                  "steps_timed": len(times[m]),
                                  # a topology-update step against the method's own normal steps
                                  **({"update_median_ms": round(statistics.median(updates[m]) * 1000, 3),
                                      "update_ratio_to_normal": round(statistics.median(updates[m]) * 1000 / med[m], 3),
                                      "updates_timed": len(updates[m])} if updates[m] else {}),
                                  # the update's own cost: against the steps that do the same loop work
                                  # (the balance measurement) without a topology change
                                  **({"balance_step_median_ms": round(statistics.median(balance[m]) * 1000, 3),
                                      "update_ratio_to_balance_step": round(
                                          statistics.median(updates[m]) / statistics.median(balance[m]), 3)}
                                     if updates[m] and balance[m] else {})}
                             for m in METHODS}
            print(model, {m: f"median {med[m]:.2f} ms ({med[m] / med['dense']:.3f}x), "
                             f"mean {mean[m]:.2f} ms ({mean[m] / mean['dense']:.3f}x)" for m in METHODS}, flush=True)
    out = {"command": "python benchmarks/step-time/step_time.py " + " ".join(
               f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "json" and v is not None),
           "machine": {"cpu_count": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
                       "processor": platform.processor(), "torch": torch.__version__},
           "sparsity": {"G": 0.9, "D": 0.5}, "batch_size": 64, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
