"""Feature-extraction speed and the FID bias vs sample count, on Fashion-MNIST.

    python benchmarks/metrics/metrics_bench.py --extractor domain --sizes 1000 2000 5000 10000 \
        --out benchmarks/metrics/results/metrics_domain_cpu.json
    python benchmarks/metrics/metrics_bench.py --extractor inception --sizes 1000 2000 5000 --device cuda \
        --out benchmarks/metrics/results/metrics_inception_cuda.json

Real vs real: two disjoint sets A, B of the training split (a fixed permutation), each image
padded to 32x32 as the conv models see it; for every N: FID(A[:N], B[:N]) (the bias of the
estimator at N: the true distance is 0) and, for scale, FID(A[:N], untrained DCGAN G). Also
KID and precision/recall for Inception features at every N. Timing: images per second of the
extractor alone (uint8 in, features out; after one warm-up batch).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from sparsegan.metrics import FeatureStats, extract_from_images, fid, kid, precision_recall
from sparsegan.metrics.features import image_batches
from sparsegan.metrics.generator import generator_sampler
from sparsegan.metrics.reference import reference_images
from sparsegan.models import ModelSpec, build_models


def make_extractor(kind: str, device: str):
    if kind == "inception":
        from sparsegan.metrics import InceptionFeatures

        return InceptionFeatures(device=device)
    from sparsegan.metrics import DomainFeatures

    return DomainFeatures("fashion-mnist", device=device)


def time_per_1k(ex, images: torch.Tensor, batch_size: int, device: str) -> float:
    ex(images[:batch_size])  # warm-up (cuDNN autotune, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    extract_from_images(ex, images, batch_size=batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / images.shape[0] * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extractor", choices=("inception", "domain"), required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--timing-images", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--timing-only", action="store_true", help="only the time per 1k images")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    nmax = max(args.sizes)
    ex = make_extractor(args.extractor, args.device)
    real = reference_images("fashion-mnist", "train", 32, max(2 * nmax, args.timing_images))  # A, B: halves
    result = {
        "command": " ".join([Path(sys.executable).name] + sys.argv), "extractor": ex.name,
        "weights_sha256": ex.weights_hash, "device": args.device, "batch_size": args.batch_size,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None},
    }
    result["seconds_per_1k_images"] = time_per_1k(ex, real[: args.timing_images], args.batch_size, args.device)
    print(f"{ex.name} on {args.device}: {result['seconds_per_1k_images']:.2f} s per 1k images", flush=True)
    if args.timing_only:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return 0

    t0 = time.perf_counter()
    feats = extract_from_images(ex, real, batch_size=args.batch_size, progress=True)
    torch.manual_seed(0)
    G, _ = build_models("dcgan", ModelSpec(channels=1))
    fake_images = torch.cat(list(image_batches(generator_sampler(G, seed=0), nmax, 500)))
    fake = extract_from_images(ex, fake_images, batch_size=args.batch_size, progress=True)
    result["extraction_seconds_total"] = time.perf_counter() - t0
    a, b = feats[:nmax], feats[nmax:]
    rows = []
    for n in sorted(args.sizes):
        sa, sb, sg = FeatureStats.of(a[:n]), FeatureStats.of(b[:n]), FeatureStats.of(fake[:n])
        row = {"n": n, "fid_real_vs_real": fid(sa, sb), "fid_real_vs_untrained_g": fid(sa, sg)}
        row["ratio"] = row["fid_real_vs_real"] / row["fid_real_vs_untrained_g"]
        if args.extractor == "inception":
            row["kid_real_vs_real"], row["kid_real_vs_real_std"] = kid(sa.features, sb.features)
            row["precision_real_vs_real"], row["recall_real_vs_real"] = precision_recall(sa.features, sb.features)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result["bias_vs_n"] = rows
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
