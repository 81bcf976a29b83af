"""How much faster sparse training is on this CPU: per layer, whole runs, where the time goes, memory.

One command measures everything and writes results/training_speed.json and results/training_speed.md:

    python benchmarks/training-speed/training_speed.py --out benchmarks/training-speed/results

Run it with the peers' environment's Python (peers.py says how to make it) to put sparselab's and
sparseprop's sparse Linear layers beside ours in the per-layer table; with another Python they are
left out and the table says so. Stop other work on the machine first: timings beside a busy core
mean little.

* layers: forward + backward (the weight's gradient and the input's) of every Linear, Conv2d and
  ConvTranspose2d shape of the mlp and dcgan (width 16) models, at 80 / 90 / 95 / 98 % sparsity,
  batch 64 and 256, 1 and 2 threads: dense torch against sparsegan's sparse path
  (sparsegan.sparse_compute) and the peers, the implementations interleaved repetition by
  repetition so that noise hits them alike; medians.
* runs: whole training steps of real trainers (the loop's own iteration, the engine's topology step,
  the EMA; evaluation off), dense against static and STU-GAN (update interval 100 and 1000) at
  s_G 95 / 90 / 80 % x s_D dense / 50 / 70 %, --sparse-compute auto, on all cores; the variants of a
  model interleaved in rounds; the mean step time counts the update steps at the rate a run pays them.
* updates: STU-GAN's topology-update steps against the other steps of the same run (s_G 95 / s_D 50,
  updates every 20 steps), --sparse-compute auto and off interleaved: an update step also scores
  every inactive weight by its dense gradient, so it cannot shrink with the active weights.
  Every 10th step measures ADAPT's balance ratio (two more forward passes, for every method), and
  update steps are such steps: they are set beside the other balance steps and the plain ones.
* profile: where a step's time goes (torch.profiler, operator self time grouped: sparse products,
  dense matmuls and convolutions, optimizer, batch norm and activations, copies, the rest) for dense
  and STU-GAN, and the Amdahl limit: the speed-up if the sparse products cost nothing.
* memory: the peak resident memory of a training process after its steps, dense against sparse
  (a process each, the same steps).
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
import time
from pathlib import Path

import torch
from torch import nn

from sparsegan.config import build_config
from sparsegan.models import build_models
from sparsegan.models.base import ModelSpec
from sparsegan.run_folder import RunDir
from sparsegan.sparse_compute import functions
from sparsegan.training.loop import gan_iteration
from sparsegan.training.trainer import build_trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (beside this file)

HERE = Path(__file__).resolve().parent
MODELS = {"mlp": {"model": "mlp"}, "dcgan": {"model": "dcgan", "model_width": 16}}
KINDS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


# --- per layer ----------------------------------------------------------------------------------
def layer_shapes(model: str, batch: int) -> list[dict]:
    """Every Linear / Conv2d / ConvTranspose2d of ``model``'s G and D with the input it sees."""
    spec = ModelSpec(channels=1, resolution=None, num_classes=0, z_dim=128,
                     width=MODELS[model].get("model_width"), width_multiplier=1.0)
    G, D = build_models(model, spec)
    found: list[dict] = []

    def hook(net):
        def record(module, args, out):
            found.append({"net": net, "module": module, "input": tuple(args[0].shape)})
        return record

    for net, m in (("G", G), ("D", D)):
        for layer in m.modules():
            if isinstance(layer, KINDS):
                layer.register_forward_hook(hook(net))
    with torch.no_grad():
        fake = G(torch.randn(batch, 128))
        D(fake)
    return found


def _time_interleaved(fns: dict, reps: int) -> dict[str, float]:
    for fn in fns.values():  # warm
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def bench_layers(models: list[str], sparsities: list[float], batches: list[int], threads: list[int],
                 reps: int) -> list[dict]:
    rows = []
    have_peers = {name: v for name, v in peers.versions().items() if v}
    for model in models:
        for batch in batches:
            for case in layer_shapes(model, batch):
                module, shape = case["module"], case["input"]
                if module.weight.numel() < 4096:  # a 1-output layer: nothing to gain or measure
                    continue
                for sparsity in sparsities:
                    torch.manual_seed(0)
                    mask = torch.rand(module.weight.shape) >= sparsity
                    with torch.no_grad():
                        module.weight.mul_(mask)
                    pattern = functions.pattern_for(module, mask)
                    x = torch.randn(shape, requires_grad=True)
                    wants = [x, module.weight]

                    def run(forward, params=wants):
                        def once():
                            y = forward()
                            torch.autograd.grad(y, params, torch.ones_like(y))
                        return once

                    fns = {"dense": run(lambda: type(module).forward(module, x)),
                           "sparsegan": run(lambda: functions.forward(module, x, pattern))}
                    if isinstance(module, nn.Linear):
                        for name in have_peers:
                            try:
                                peer = peers.build(name, module.weight.detach(), mask, module.bias)
                            except ValueError:
                                continue
                            fns[name] = run(lambda p=peer: p(x), [x] + [q for q in peer.parameters()
                                                                       if q.requires_grad][:1])
                    for n in threads:
                        torch.set_num_threads(n)
                        ms = _time_interleaved(fns, reps)
                        row = {"model": model, "net": case["net"], "layer": _describe(module), "input": list(shape),
                               "batch": batch, "sparsity": sparsity, "threads": n,
                               **{f"{k}_ms": round(v, 4) for k, v in ms.items()}}
                        row["speedup_vs_dense"] = round(ms["dense"] / ms["sparsegan"], 3)
                        rows.append(row)
                        print(f"layer {row['layer']:<34} in {shape} s{sparsity} t{n}: " +
                              ", ".join(f"{k} {v:.3f}" for k, v in ms.items()) + " ms", flush=True)
    return rows


def _describe(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}, {m.out_features})"
    return f"{type(m).__name__}({m.in_channels}, {m.out_channels}, k{m.kernel_size[0]}, s{m.stride[0]})"


# --- whole runs ----------------------------------------------------------------------------------
def _trainer(model: str, method: str, sg: float, sd: float, interval: int, out: str, compute: str):
    cfg = build_config({**MODELS[model], "method": method, "sparsity_g": sg, "sparsity_d": sd,
                        "update_interval": interval, "steps": 10 ** 6, "out": out, "batch_size": 64,
                        "sparse_compute": compute, "dataset": "fashion-mnist"})
    t = build_trainer(cfg, None)
    t.run = RunDir.prepare(out, resume=False, overwrite=True)
    return t


def one_step(t) -> float:
    """One step as the loop takes it: the iteration, the engine's topology step, the EMA."""
    start = time.perf_counter()
    step = t.step + 1
    gan_iteration(t, step)
    t.step = step
    t.sparse.step()
    t.sparse.drain_records()
    t.ema.update(t.G, step)
    return time.perf_counter() - start


def run_variants(model: str, sg_list: list[float], sd_list: list[float], intervals: list[int]) -> list[tuple]:
    variants = [("dense", 0.0, 0.0, 1000, "off")]
    for sg in sg_list:
        for sd in sd_list:
            variants.append(("static", sg, sd, 1000, "auto"))
            variants += [("stu", sg, sd, dt, "auto") for dt in intervals]
    return variants


def bench_runs(models: list[str], sg_list, sd_list, intervals, steps: int, rounds: int, warmup: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            variants = run_variants(model, sg_list, sd_list, intervals)
            trainers = {v: _trainer(model, *v[:4], os.path.join(tmp, f"{model}-{i}"), v[4])
                        for i, v in enumerate(variants)}
            for t in trainers.values():  # warm-up, and the planner's measurements (once per run)
                for _ in range(warmup):
                    one_step(t)
            times = {v: [] for v in variants}
            for _ in range(rounds):
                for v, t in trainers.items():
                    times[v] += [one_step(t) for _ in range(steps)]
            dense = statistics.fmean(times[variants[0]])
            for v in variants:
                method, sg, sd, dt, compute = v
                mean, med = statistics.fmean(times[v]), statistics.median(times[v])
                rows.append({"model": model, "method": method, "sparsity_g": sg, "sparsity_d": sd,
                             "update_interval": dt, "sparse_compute": compute, "mean_ms": round(mean * 1e3, 3),
                             "median_ms": round(med * 1e3, 3), "speedup_vs_dense": round(dense / mean, 3),
                             "steps_timed": len(times[v])})
                print(f"run {model} {method} sG{sg} sD{sd} dT{dt}: mean {mean * 1e3:.2f} ms "
                      f"({dense / mean:.2f}x dense)", flush=True)
            for t in trainers.values():
                t.sparse.close()
    return rows


# --- update steps ---------------------------------------------------------------------------------
def bench_updates(models: list[str], sg: float, sd: float, steps: int, interval: int = 20) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            trainers = {c: _trainer(model, "stu", sg, sd, interval, os.path.join(tmp, f"{model}-{c}"), c)
                        for c in ("auto", "off")}
            for t in trainers.values():
                for _ in range(interval + 5):
                    one_step(t)
            kinds = {c: {"update": [], "balance": [], "plain": []} for c in trainers}
            for _ in range(max(steps // interval, 1) * 3):  # interval-long stretches, interleaved
                for c, t in trainers.items():
                    for _ in range(interval):
                        balance = (t.step + 1) % t.cfg.balance_every == 0
                        start = time.perf_counter()
                        step = t.step + 1
                        gan_iteration(t, step)
                        t.step = step
                        changed = any(ev.pruned or ev.grown for ev in t.sparse.step())
                        t.sparse.drain_records()
                        t.ema.update(t.G, step)
                        dt = time.perf_counter() - start
                        kinds[c]["update" if changed else "balance" if balance else "plain"].append(dt)
            for c, k in kinds.items():
                med = {name: statistics.median(v) for name, v in k.items()}
                rows.append({"model": model, "method": "stu", "sparsity_g": sg, "sparsity_d": sd,
                             "update_interval": interval, "sparse_compute": c,
                             **{f"{name}_median_ms": round(v * 1e3, 3) for name, v in med.items()},
                             "updates_timed": len(k["update"]),
                             "update_vs_plain": round(med["update"] / med["plain"], 3),
                             "update_vs_balance": round(med["update"] / med["balance"], 3)})
                print(f"updates {model} {c}: update {med['update'] * 1e3:.2f} ms, balance {med['balance'] * 1e3:.2f} "
                      f"ms, plain {med['plain'] * 1e3:.2f} ms", flush=True)
            for t in trainers.values():
                t.sparse.close()
    return rows


# --- profile --------------------------------------------------------------------------------------
CATEGORIES = (
    ("sparse products", ("_SparseLinear", "_SparseConv", "_DirectConv")),
    ("dense matmuls and convolutions", ("aten::mm", "aten::addmm", "aten::convolution", "aten::_convolution",
                                        "aten::mkldnn_convolution", "aten::convolution_backward",
                                        "aten::_slow_conv2d", "aten::slow_conv_transpose2d", "aten::bmm")),
    ("im2col / col2im", ("aten::im2col", "aten::col2im")),
    ("optimizer", ("Optimizer.step", "aten::_fused_adam", "aten::_foreach")),
    ("batch norm and activations", ("batch_norm", "threshold", "leaky_relu", "aten::tanh", "aten::relu",
                                    "aten::softplus", "aten::sigmoid")),
    ("copies and layout", ("aten::copy_", "aten::contiguous", "aten::clone")),
)


def _category(name: str) -> str:
    for cat, keys in CATEGORIES:
        if any(k in name for k in keys):
            return cat
    return "other (data, EMA, masks, bookkeeping)"


def bench_profile(models: list[str], sg: float, sd: float, steps: int) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for method, s_g, s_d, compute in (("dense", 0.0, 0.0, "off"), ("stu", sg, sd, "auto")):
                t = _trainer(model, method, s_g, s_d, 1000, os.path.join(tmp, f"{model}-{method}"), compute)
                for _ in range(10):
                    one_step(t)
                start = time.perf_counter()
                for _ in range(steps):
                    one_step(t)
                plain = (time.perf_counter() - start) / steps
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for _ in range(steps):
                        one_step(t)
                shares: dict[str, float] = {}
                for ev in prof.key_averages():
                    shares[_category(ev.key)] = shares.get(_category(ev.key), 0.0) + ev.self_cpu_time_total
                total = sum(shares.values())
                rows.append({"model": model, "method": method, "sparsity_g": s_g, "sparsity_d": s_d,
                             "step_ms": round(plain * 1e3, 3), "generator_ms": round(_generator_ms(t, steps), 3),
                             "shares": {k: round(v / total, 4)
                                        for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}})
                t.sparse.close()
    for model in models:
        dense, stu = (r for r in rows if r["model"] == model)
        # Amdahl: a step whose generator (forward in D's step, forward + backward in its own) cost nothing
        dense["generator_share"] = round(2 * dense["generator_ms"] / dense["step_ms"], 4)
        dense["limit_free_generator"] = round(dense["step_ms"] / (dense["step_ms"] - 2 * dense["generator_ms"]), 3)
        stu["speedup_vs_dense"] = round(dense["step_ms"] / stu["step_ms"], 3)
    return rows


def _generator_ms(t, reps: int) -> float:
    """Half of G's cost in a step, measured alone on a batch: (forward without gradients + forward and
    backward) / 2, the two uses of G in a step."""
    z, y = t.sampler.latents(t.cfg.batch_size)

    def nograd():
        with torch.no_grad():
            t.G(z, y)

    def fwd_bwd():
        out = t.G(z, y)
        torch.autograd.grad(out, [p for p in t.G.parameters() if p.requires_grad], torch.ones_like(out))

    ms = _time_interleaved({"nograd": nograd, "fwd_bwd": fwd_bwd}, reps)
    return (ms["nograd"] + ms["fwd_bwd"]) / 2


# --- memory ---------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_probe(model: str, method: str, sg: float, sd: float, compute: str, steps: int) -> dict:
    """Peak resident memory over ``steps`` training steps, and its rise above the memory held
    before them (the data set and the nets are loaded by then: the rise is what a step allocates).
    Linux: the peak is reset through /proc/self/clear_refs before the steps."""
    with tempfile.TemporaryDirectory() as tmp:
        t = _trainer(model, method, sg, sd, 1000, os.path.join(tmp, "run"), compute)
        for _ in range(3):
            one_step(t)
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        for _ in range(steps):
            one_step(t)
        peak = _status_kib("VmHWM")
    return {"peak_rss_mib": round(peak / 1024, 1), "step_rise_mib": round((peak - before) / 1024, 1)}


def bench_memory(models: list[str], sg: float, sd: float, steps: int) -> list[dict]:
    rows = []
    for model in models:
        for method, s_g, s_d, compute in (("dense", 0.0, 0.0, "off"), ("stu", sg, sd, "off"), ("stu", sg, sd, "auto")):
            cmd = [sys.executable, __file__, "--memory-probe", json.dumps([model, method, s_g, s_d, compute, steps])]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append({"model": model, "method": method, "sparsity_g": s_g, "sparsity_d": s_d,
                         "sparse_compute": compute, **json.loads(out)})
            print(f"memory {model} {method} {compute}: {rows[-1]}", flush=True)
    return rows


# --- report ----------------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Training speed: sparse compute against dense, on this CPU", "",
             f"`{res['command']}`", "",
             f"{m['cpu_count']} cores, torch {m['torch']}, {m['platform']}; peers: "
             + (", ".join(f"{k} {v}" for k, v in m["peers"].items() if v) or "not installed in this environment"), ""]
    if res.get("layers"):
        impls = [k[:-3] for k in res["layers"][0] if k.endswith("_ms")]
        impls += [p for p in peers.PEERS if any(f"{p}_ms" in r for r in res["layers"]) and p not in impls]
        lines += ["## Per layer: forward + backward (weight and input gradients), median ms", "",
                  "| model | net | layer | batch | sparsity | threads | " + " | ".join(impls)
                  + " | sparsegan vs dense |",
                  "|---|---|---|---|---|---|" + "---|" * len(impls) + "---|"]
        for r in res["layers"]:
            cells = [f"{r[f'{k}_ms']:.3f}" if f"{k}_ms" in r else "-" for k in impls]
            lines.append(f"| {r['model']} | {r['net']} | {r['layer']} | {r['batch']} | {r['sparsity']:.0%} | "
                         f"{r['threads']} | " + " | ".join(cells) + f" | {r['speedup_vs_dense']:.2f}x |")
        lines.append("")
    if res.get("runs"):
        lines += ["## Whole training steps (all cores; mean counts update steps at their rate)", "",
                  "| model | method | s_G | s_D | update interval | sparse compute | mean ms | median ms "
                  "| vs dense |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["runs"]:
            lines.append(f"| {r['model']} | {r['method']} | {r['sparsity_g']:.0%} | {r['sparsity_d']:.0%} | "
                         f"{r['update_interval']} | {r['sparse_compute']} | {r['mean_ms']:.2f} | "
                         f"{r['median_ms']:.2f} | {r['speedup_vs_dense']:.2f}x |")
        lines.append("")
    if res.get("updates"):
        lines += ["## STU-GAN's topology-update steps against the other steps of the run (all cores; medians)", "",
                  "An update step also takes G's dense weight gradient and scores every inactive weight by it, "
                  "so its extra cost is O(dense) whatever the sparse path saves on the other steps. Every 10th "
                  "step is a balance step (ADAPT's ratio, measured for every method); update steps are such "
                  "steps.", "",
                  "| model | s_G | s_D | sparse compute | update ms | balance ms | plain ms | update / plain "
                  "| update / balance | updates timed |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["updates"]:
            lines.append(f"| {r['model']} | {r['sparsity_g']:.0%} | {r['sparsity_d']:.0%} | {r['sparse_compute']} | "
                         f"{r['update_median_ms']:.2f} | {r['balance_median_ms']:.2f} | {r['plain_median_ms']:.2f} | "
                         f"{r['update_vs_plain']:.2f}x | {r['update_vs_balance']:.2f}x | {r['updates_timed']} |")
        lines.append("")
    if res.get("profile"):
        lines += ["## Where a step's time goes (share of operator self time)", ""]
        for r in res["profile"]:
            extra = (f"; {r['speedup_vs_dense']:.2f}x dense" if "speedup_vs_dense" in r else
                     f"; G's forward and backward alone {r['generator_share']:.0%} of it, so a step with a free G "
                     f"would be at most {r['limit_free_generator']:.2f}x faster (Amdahl)")
            lines.append(f"- {r['model']} {r['method']} (s_G {r['sparsity_g']:.0%}, s_D {r['sparsity_d']:.0%}): "
                         f"{r['step_ms']:.2f} ms per step{extra}: "
                         + ", ".join(f"{k} {v:.0%}" for k, v in r["shares"].items()))
        lines.append("")
    if res.get("memory"):
        lines += ["## Peak resident memory of a training process", "",
                  "| model | method | s_G | s_D | sparse compute | peak RSS MiB | rise during the steps MiB |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["memory"]:
            lines.append(f"| {r['model']} | {r['method']} | {r['sparsity_g']:.0%} | {r['sparsity_d']:.0%} | "
                         f"{r['sparse_compute']} | {r['peak_rss_mib']:.1f} | {r['step_rise_mib']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "results"), help="folder of training_speed.json / .md")
    ap.add_argument("--sections", default="layers,runs,updates,profile,memory")
    ap.add_argument("--models", default="mlp,dcgan")
    ap.add_argument("--sparsities", default="0.8,0.9,0.95,0.98", help="per-layer sparsities")
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--threads", default="1,2", help="per-layer thread counts")
    ap.add_argument("--reps", type=int, default=30, help="per-layer repetitions (medians)")
    ap.add_argument("--sparsity-g", default="0.95,0.9,0.8")
    ap.add_argument("--sparsity-d", default="0,0.5,0.7")
    ap.add_argument("--intervals", default="100,1000", help="STU-GAN update intervals of the whole runs")
    ap.add_argument("--steps", type=int, default=50, help="whole-run steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(*json.loads(args.memory_probe))))
        return
    cores = os.cpu_count() or 1
    # Every auto plan measured here, now: a plan cached by an earlier process (perhaps on a busy
    # machine) would make this run report that process's choices.
    plans = tempfile.TemporaryDirectory()
    os.environ.setdefault("SPARSEGAN_PLAN_CACHE", os.path.join(plans.name, "training-plans.json"))
    models, sections = args.models.split(","), args.sections.split(",")
    res = {"command": "python benchmarks/training-speed/training_speed.py " + " ".join(argv if argv is not None
                                                                                      else sys.argv[1:]),
           "machine": {"cpu_count": cores, "torch": torch.__version__, "platform": platform.platform(),
                       "peers": peers.versions()}}
    if "layers" in sections:
        res["layers"] = bench_layers(models, _floats(args.sparsities), [int(b) for b in _floats(args.batches)],
                                     [int(n) for n in _floats(args.threads)], args.reps)
    torch.set_num_threads(cores)
    sg, sd = _floats(args.sparsity_g), _floats(args.sparsity_d)
    if "runs" in sections:
        res["runs"] = bench_runs(models, sg, sd, [int(v) for v in _floats(args.intervals)], args.steps, args.rounds,
                                 args.warmup)
    if "updates" in sections:
        res["updates"] = bench_updates(models, sg[0], sd[1] if len(sd) > 1 else sd[0], args.steps)
    if "profile" in sections:
        res["profile"] = bench_profile(models, sg[0], sd[1] if len(sd) > 1 else sd[0], args.steps)
    if "memory" in sections:
        res["memory"] = bench_memory(models, sg[0], sd[1] if len(sd) > 1 else sd[0], args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_speed.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "training_speed.md").write_text(markdown(res) + "\n")
    print(f"wrote {out / 'training_speed.md'}")


if __name__ == "__main__":
    main()
