"""How far CUDA Inception features (fp32, TF32 off) are from CPU ones, and the CPU time per 1k.

    python benchmarks/metrics/metrics_gpu_vs_cpu.py --out benchmarks/metrics/results/metrics_inception_cuda_vs_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sparsegan.metrics import FeatureStats, InceptionFeatures, extract_from_images, fid
from sparsegan.metrics.reference import reference_images


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    images = reference_images("fashion-mnist", "train", 32, args.n)
    gpu = extract_from_images(InceptionFeatures(device="cuda"), images, batch_size=128)
    cpu_ex = InceptionFeatures(device="cpu")
    cpu_ex(images[:8])
    t0 = time.perf_counter()
    cpu = extract_from_images(cpu_ex, images, batch_size=64)
    cpu_s = time.perf_counter() - t0
    diff = (gpu - cpu).abs()
    half = args.n // 2
    res = {
        "n": args.n, "max_abs_diff": diff.max().item(), "mean_abs_feature": cpu.abs().mean().item(),
        "max_rel_diff": (diff.max() / cpu.abs().max()).item(),
        "fid_half_vs_half_cpu": fid(FeatureStats.of(cpu[:half]), FeatureStats.of(cpu[half:])),
        "fid_half_vs_half_cuda": fid(FeatureStats.of(gpu[:half]), FeatureStats.of(gpu[half:])),
        "cpu_seconds_per_1k_images": cpu_s / args.n * 1000, "cpu_threads": torch.get_num_threads(),
    }
    print(json.dumps(res, indent=2))
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
