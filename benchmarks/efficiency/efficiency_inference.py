"""Dense vs sparse generator inference on the CPU: mlp and dcgan at s_G = 80 / 90 / 95 / 98 %.

Generators are freshly built with ERK masks drawn by the sparsity engine (no training needed for
timing: the kernels only see the sparsity pattern). Each (model, s_G, batch) times the dense
masked PyTorch module against ``sparsegan.inference.runtime.sparsify(G, "auto")`` in alternating
rounds; medians are reported with the ideal speedups 1 / density (prunable weights) and
dense / sparse FLOPs (whole generator, bias and BN included). Controls, each timed against the
same dense masked module in the same rounds:

* sparsity only: the same runtime on the same generator with dense weights (the masks not
  applied), so "runtime, sparse weights" over "runtime, dense weights" is what the zeros buy and
  "PyTorch" over "runtime, dense weights" what BN folding, fusion and layout buy;
* layout only: the sparse generator in the runtime restricted to dense GEMMs;
* library kernels only: the runtime without this package's kernels (torch's and scipy's CSR).

Time to first output: ``sparsify`` plus one call per batch size, with an empty plan cache (the
kernels timed) and again with the plans the first left (a second process).

    python benchmarks/efficiency/efficiency_inference.py --threads 2 --repeats 30 \
        --out benchmarks/efficiency/results/efficiency_inference_<machine>_t2.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import torch

from sparsegan.efficiency.accounting import layer_counts, net_totals
from sparsegan.inference.bench import bench, describe_machine, first_output_ms, max_abs_difference
from sparsegan.inference.runtime import choices, sparsify
from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import MaskSet, prunable_parameters


def sparse_generator(model: str, sparsity: float, seed: int = 0):
    torch.manual_seed(seed)
    G, _ = build_models(model, ModelSpec(channels=1))
    masks = MaskSet.random(prunable_parameters(G), sparsity, "erk", generator=torch.Generator().manual_seed(seed))
    masks.apply_()
    return G.eval(), masks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mlp,dcgan")
    ap.add_argument("--sparsities", default="0.8,0.9,0.95,0.98")
    ap.add_argument("--batch-sizes", default="1,64")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="default: all cores")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    script = "benchmarks/efficiency/efficiency_inference.py"
    results = {"machine": describe_machine(), "command": " ".join(["python", script,
               f"--threads {args.threads}", f"--repeats {args.repeats}", f"--models {args.models}",
               f"--sparsities {args.sparsities}", f"--batch-sizes {args.batch_sizes}"]),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": []}
    for model in args.models.split(","):
        for s in (float(x) for x in args.sparsities.split(",")):
            G, masks = sparse_generator(model, s)
            first = first_output_ms(G, "auto", batch_sizes)
            S = sparsify(G, "auto", plan_cache=False)
            diff = max_abs_difference(G, S)
            totals = net_totals(layer_counts({"G": G}, {"G": masks.masks})["G"])
            timing = bench(G, S, batch_sizes, repeats=args.repeats, warmup=3)
            # Control: sparsity only (the runtime on the same weights, unmasked: dense).
            G_dense = copy.deepcopy(G)
            with torch.no_grad():
                for name, p in G_dense.named_parameters():
                    if name in masks.params:
                        p.copy_(masks.params[name].detach().clone().masked_fill_(~masks.masks[name], 0.0)
                                + torch.randn_like(p) * 0.01 * ~masks.masks[name])
            dense_runtime = bench(G, sparsify(G_dense, "auto", plan_cache=False), batch_sizes, repeats=args.repeats,
                                  warmup=3)
            # Control: the same runtime allowed only dense GEMMs (BN folding + layout, no sparsity).
            layout = bench(G, sparsify(G, "auto", kernels=("dense",), plan_cache=False), batch_sizes,
                           repeats=args.repeats, warmup=3)
            # Control: the runtime without this package's kernels (library kernels only).
            library = bench(G, sparsify(G, "auto", kernels=("torch-csr", "scipy-csr", "scipy-phase", "dense"),
                                        plan_cache=False), batch_sizes, repeats=args.repeats, warmup=3)
            entry = {
                "model": model, "sparsity_g": s, "density": masks.density(),
                "ideal_1_over_density": 1.0 / masks.density(),
                "ideal_flops": totals["dense_flops"] / totals["sparse_flops"],
                "max_abs_diff": diff, "timing": timing, "first_output": first,
                "sparsity_only_control": {bs: {"runtime_dense_weights_ms": dense_runtime[bs]["sparse_ms"],
                                               "runtime_sparse_weights_ms": timing[bs]["sparse_ms"],
                                               "speedup": dense_runtime[bs]["sparse_ms"] / timing[bs]["sparse_ms"],
                                               "fusion_and_layout": dense_runtime[bs]["speedup"]}
                                          for bs in timing},
                "layout_only_control": layout,
                "library_kernels_control": library,
                "layers": {n: {"density": round(c["density"], 4), "shape": c["shape"], "choice": c["choice"],
                               "calibration_ms": c["timings_ms"]}
                           for n, c in choices(S).items()},
            }
            results["runs"].append(entry)
            line = "  ".join(f"bs {bs}: {r['dense_ms']:.3f} -> {r['sparse_ms']:.3f} ms ({r['speedup']:.2f}x)"
                             for bs, r in timing.items())
            ctl = "  ".join(f"bs {bs}: {r['speedup']:.2f}x" for bs, r in entry["sparsity_only_control"].items())
            lib = "  ".join(f"bs {bs}: {r['speedup']:.2f}x" for bs, r in library.items())
            print(f"{model:6} s_G {s:.2f}  ideal {entry['ideal_1_over_density']:5.1f}x "
                  f"(FLOPs {entry['ideal_flops']:5.1f}x)"
                  f"  {line}  | sparsity only {ctl} | library kernels only {lib} | first output "
                  f"{first['cold_ms']:.0f} / {first['warm_ms']:.0f} ms (cold / cached plans)", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
