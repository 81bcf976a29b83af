"""TF-Inception feature throughput on the CPU, three ways side by side, against this machine's
FLOP limit.

Each round extracts the same ``--images`` Fashion-MNIST-sized uint8 images in batches of
``--batch`` (what ``extract_from_images`` hands the extractor) three ways, in rotating order so
load hits all alike: the model fed NCHW batches (sparsegan before), fed channels-last batches,
and ``InceptionFeatures`` as shipped (channels-last, micro-batches of ``CPU_MICRO_BATCH``).
Medians over rounds. The limit: the model's FLOPs per image (torch's FLOP counter; a
multiply-add is 2) against the rate of a large float32 matrix product on the same threads.

    python benchmarks/metrics/inception_throughput.py --threads 2 --images 256 --rounds 5 \
        --out benchmarks/metrics/results/metrics_inception_cpu_throughput.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sparsegan.inference.bench import describe_machine
from sparsegan.metrics import InceptionFeatures
from sparsegan.metrics.inception import CPU_MICRO_BATCH, preprocess


@torch.no_grad()
def extract(feats: InceptionFeatures, images: torch.Tensor, batch: int, channels_last: bool) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        x = preprocess(images[i : i + batch])
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
        out.append(feats.model(x).float())
    return torch.cat(out)


def gemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    feats = InceptionFeatures()
    images = torch.randint(0, 256, (args.images, 1, 28, 28), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        extract(feats, images[:2], 2, True)
    gflop_per_image = counter.get_total_flops() / 2 / 1e9
    ref, nhwc = extract(feats, images[:8], 8, False), extract(feats, images[:8], 8, True)  # warm-up too
    rel = float(((nhwc - ref).abs().max() / ref.abs().max()))
    shipped = feats(images[:8])
    rel_shipped = float(((shipped - ref).abs().max() / ref.abs().max()))
    ways = {"nchw": lambda: extract(feats, images, args.batch, False),
            "channels_last": lambda: extract(feats, images, args.batch, True),
            "shipped": lambda: torch.cat([feats(images[i : i + args.batch])
                                          for i in range(0, len(images), args.batch)])}
    rates: dict[str, list[float]] = {k: [] for k in ways}
    names = list(ways)
    for r in range(args.rounds):
        for way in names[r % 3:] + names[: r % 3]:
            t = time.perf_counter()
            ways[way]()
            rates[way].append(args.images / (time.perf_counter() - t))
    gemm = gemm_gflops()
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "command": (f"python benchmarks/metrics/inception_throughput.py --threads {args.threads} "
                    f"--images {args.images} --batch {args.batch} --rounds {args.rounds}"),
        "machine": describe_machine(), "images_per_s": med, "rounds": rates,
        "channels_last_over_nchw": med["channels_last"] / med["nchw"],
        "shipped_over_nchw": med["shipped"] / med["nchw"], "cpu_micro_batch": CPU_MICRO_BATCH,
        "features_max_relative_difference": {"channels_last": rel, "shipped": rel_shipped},
        "gflop_per_image": gflop_per_image,
        "gemm_gflops": gemm, "images_per_s_at_gemm_rate": gemm / gflop_per_image,
    }
    print(f"{args.threads} thread(s), batches of {args.batch}: NCHW {med['nchw']:.2f} img/s, channels-last "
          f"{med['channels_last']:.2f}, as shipped (micro-batches of {CPU_MICRO_BATCH}) {med['shipped']:.2f} img/s "
          f"({result['shipped_over_nchw']:.2f}x NCHW); features differ by {max(rel, rel_shipped):.1e} relative; "
          f"{gflop_per_image:.2f} GFLOP per image, matrix product at {gemm:.0f} GFLOP/s -> "
          f"{result['images_per_s_at_gemm_rate']:.1f} img/s at that rate")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
