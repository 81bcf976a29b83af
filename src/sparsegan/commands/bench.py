"""``sparsegan bench``: dense vs sparse generator inference, timed side by side."""

from __future__ import annotations

import argparse
import json

from sparsegan.errors import UserError

# the runtime's kernel modes, listed here so that --help needs no torch import
MODES = ("auto", "module", "torch-csr", "scipy-csr", "numba-csr", "simd-csr", "simd-block", "scipy-phase", "simd-phase",
         "simd-block-phase", "dense")


def _batch_sizes(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or any(b <= 0 for b in out):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from sparsegan.inference.bench import bench, first_output_ms, load_generators, max_abs_difference
    from sparsegan.inference.runtime import choices, sparsify

    if args.repeats <= 0 or args.warmup < 0:
        raise UserError("--repeats must be positive and --warmup >= 0")
    if args.threads is not None:
        if args.threads <= 0:
            raise UserError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    gens = load_generators(args.source, args.generator)
    first = first_output_ms(gens.G, args.mode, args.batch_sizes)
    sparse = sparsify(gens.G, args.mode, plan_cache=not args.no_plan_cache)
    diff = max_abs_difference(gens.G, sparse)
    results = bench(gens.G, sparse, args.batch_sizes, repeats=args.repeats, warmup=args.warmup)
    ideal = 1.0 / gens.density if gens.density > 0 else float("inf")
    print(f"{gens.source}: model {gens.model}, G density {gens.density:.4f} (ideal speedup 1/density = {ideal:.1f}x), "
          f"{torch.get_num_threads()} thread(s), max |dense - sparse| = {diff:.2e}")
    print(f"{'batch':>6} {'dense ms':>10} {'sparse ms':>10} {'speedup':>8}")
    for bs, r in results.items():
        print(f"{bs:>6} {r['dense_ms']:10.3f} {r['sparse_ms']:10.3f} {r['speedup']:7.2f}x")
    print(f"first outputs (sparsify + one call per batch size): {first['cold_ms']:.0f} ms with kernels timed, "
          f"{first['warm_ms']:.0f} ms with the plans cached by a previous process")
    if args.verbose:
        for name, c in choices(sparse).items():
            print(f"  {name}: density {c['density']:.4f}, kernel {c['choice']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**results, "first_output": first}, f, indent=2)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time dense vs sparse generator inference (run folder or export file)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", metavar="RUN_DIR|EXPORT", help="a completed run folder or a `sparsegan export` file")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=[1, 64], metavar="1,64",
                   help="comma-separated batch sizes")
    p.add_argument("--repeats", type=int, default=20,
                   help="timed rounds (dense and sparse alternate); medians reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls of each before timing")
    p.add_argument("--threads", type=int, default=None, help="torch threads (unset: torch's choice)")
    p.add_argument("--generator", choices=("ema", "raw"), default="ema", help="for a run folder")
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="auto: each layer's kernel chosen by timing (remembered in the plan cache); or force one")
    p.add_argument("--no-plan-cache", action="store_true",
                   help="time every layer's kernels afresh instead of reading (and writing) the plan cache")
    p.add_argument("--verbose", action="store_true", help="print each layer's chosen kernel")
    p.add_argument("--json", metavar="FILE",
                   help='write {"<bs>": {"dense_ms", "sparse_ms", "speedup"}, "first_output": {"cold_ms", "warm_ms"}}')
    p.set_defaults(func=run)
