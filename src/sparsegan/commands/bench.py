"""``sparsegan bench``: dense vs sparse generator inference, timed side by side."""

from __future__ import annotations

import argparse
import json

from sparsegan.commands.arg_types import MODES
from sparsegan.errors import UserError


def _batch_sizes(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or any(b <= 0 for b in out):
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return out


def _rate(gflop_s: float) -> str:
    return f"{gflop_s:.3g}" if gflop_s < 100 else f"{gflop_s:.0f}"


def speed_lines(results: dict[str, dict[str, float]], macs: tuple[float, float]) -> list[str]:
    """The timing table with each path's achieved GFLOP/s beside its time, and why a measured speedup
    can exceed the multiply-add ratio. ``macs``: (dense, sparse) weight multiply-adds per sample.

    speedup = dense ms / sparse ms = (dense MACs / sparse MACs) x (sparse rate / dense rate), so the
    ratio of multiply-adds bounds the speedup only when both paths run at the same rate; a dense GEMM
    that runs slowly at a generator's shapes (small batch, thin layers) lets the sparse path beat it."""
    dense_macs, sparse_macs = macs
    ratio = dense_macs / sparse_macs if sparse_macs > 0 else float("inf")
    lines = [f"multiply-adds per sample (weight products): dense {dense_macs:,.0f}, sparse {sparse_macs:,.0f}; "
             f"multiply-add ratio dense / sparse = {ratio:.2f}x",
             "  (the speedup if both paths ran at the same multiply-add rate: an upper bound only then)",
             f"{'batch':>6} {'dense ms':>10} {'sparse ms':>10} {'speedup':>8} {'dense GFLOP/s':>14} "
             f"{'sparse GFLOP/s':>15}"]
    notes = []
    for bs, r in results.items():
        # 2 FLOPs per multiply-add; ms -> s and FLOP -> GFLOP fold into 1e-6
        rate_d = 2 * dense_macs * int(bs) / r["dense_ms"] * 1e-6
        rate_s = 2 * sparse_macs * int(bs) / r["sparse_ms"] * 1e-6
        lines.append(f"{bs:>6} {r['dense_ms']:10.3f} {r['sparse_ms']:10.3f} {r['speedup']:7.2f}x "
                     f"{_rate(rate_d):>14} {_rate(rate_s):>15}")
        if r["speedup"] > ratio:
            notes.append(f"batch {bs}: the measured {r['speedup']:.2f}x is above the {ratio:.2f}x multiply-add ratio "
                         f"because the dense baseline ran at only {_rate(rate_d)} GFLOP/s against the sparse path's "
                         f"{_rate(rate_s)} GFLOP/s ({ratio:.2f}x x {_rate(rate_s)} / {_rate(rate_d)}): the dense "
                         f"kernels are slow at these shapes on this machine; the sparse path does no less work "
                         f"than the ratio counts")
    lines += ["GFLOP/s = 2 x multiply-adds per sample x batch / median time (the sparse path's counted at its "
              "non-zero products only)",
              "speedup = multiply-add ratio x sparse GFLOP/s / dense GFLOP/s"]
    return lines + notes


def run(args: argparse.Namespace) -> int:
    import torch

    from sparsegan.efficiency import call_multiply_adds
    from sparsegan.inference.bench import bench, first_output_ms, inputs, load_generators, max_abs_difference
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
    macs = call_multiply_adds(gens.G, *inputs(gens.G, 1))
    print(f"{gens.source}: model {gens.model}, G density {gens.density:.4f}, "
          f"{torch.get_num_threads()} thread(s), max |dense - sparse| = {diff:.2e}")
    for line in speed_lines(results, macs):
        print(line)
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
