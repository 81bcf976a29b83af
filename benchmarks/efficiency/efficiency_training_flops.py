"""Training FLOPs of STU-GAN vs dense (and static sparse) at the STU-GAN paper's Table 1
sparsities, for sngan32 and biggan32 on CIFAR-10 (3 channels; BigGAN with 10 classes).

Protocols (REFERENCE.md section 4): SNGAN 50k G steps, n_dis 5, D batch 64, G batch 128,
Delta T 1000; BigGAN 500 epochs of 50k images at batch 50 with 4 D steps per G step
(125k G steps), Delta T 500. Masks: ERK over every Linear/Conv weight (sparsegan's default,
``all``) and over conv weights only (``conv``, the reference code's scope). STU-GAN explores G
with gradient regrowth: one dense G weight gradient per update (RigL accounting).

    python benchmarks/efficiency/efficiency_training_flops.py \
        --out benchmarks/efficiency/results/efficiency_training_flops.json
"""

from __future__ import annotations

import argparse
import json

from sparsegan.efficiency import FlopModel, Phase, net_totals, planned_densities, training_flops
from sparsegan.efficiency.training_flops import CONVENTION
from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import UpdateSchedule

PROTOCOLS = {
    "sngan32": {"spec": ModelSpec(channels=3), "steps": 50_000, "n_dis": 5, "batch_size": 64,
                "g_batch_size": 128, "interval": 1000},
    "biggan32": {"spec": ModelSpec(channels=3, num_classes=10), "steps": 125_000, "n_dis": 4,
                 "batch_size": 50, "g_batch_size": 50, "interval": 500},
}
S_G = (0.95, 0.90, 0.80)
S_D = (0.5, 0.7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = []
    for model, p in PROTOCOLS.items():
        G, D = build_models(model, p["spec"])
        nets = {"G": G, "D": D}
        n_updates = len(UpdateSchedule(interval=p["interval"], total_steps=p["steps"]).update_steps())
        for scope in ("all", "conv"):
            fm = FlopModel(nets, scope=scope)
            kw = dict(batch_size=p["batch_size"], n_dis=p["n_dis"], dense_steps=p["steps"],
                      g_batch_size=p["g_batch_size"])
            for s_d in S_D:
                for s_g in S_G:
                    dens = {"G": planned_densities(G, s_g, scope=scope), "D": planned_densities(D, s_d, scope=scope)}
                    stu = training_flops(fm, [Phase("stu", p["steps"], dens, {"G": n_updates})], **kw)
                    static = training_flops(fm, [Phase("static", p["steps"], dens)], **kw)
                    fG, _, _ = fm.forward("G", dens["G"])
                    fG1, _, _ = fm.forward("G", 1.0)
                    rows.append({
                        "model": model, "scope": scope, "s_G": s_g, "s_D": s_d,
                        "G_inference_flops_relative": fG / fG1,
                        "train_relative_stu": stu["relative"], "train_relative_static": static["relative"],
                        "train_flops_stu": stu["total"], "train_flops_dense": stu["dense"],
                        "dense_grad_updates": n_updates,
                    })
                    print(f"{model:9} {scope:4} s_G {s_g:.2f} s_D {s_d:.1f}: G inference {fG / fG1:.3f} x dense; "
                          f"training STU-GAN {stu['relative']:.3f} x dense "
                          f"({stu['total']:.3g} vs {stu['dense']:.3g} FLOPs), "
                          f"static {static['relative']:.3f}", flush=True)
        dense_totals = {net: net_totals(FlopModel(nets).rows[net]) for net in nets}
        rows.append({"model": model,
                     "dense_forward_flops_per_sample": {n: t["dense_flops"] for n, t in dense_totals.items()},
                     "params": {n: t["params"] for n, t in dense_totals.items()},
                     "protocol": {k: v for k, v in p.items() if k != "spec"}})
    with open(args.out, "w") as f:
        json.dump({"convention": CONVENTION, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
