"""``sparsegan export``: a deployable generator file whose size grows with the active weights."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from sparsegan.inference.export import export_run

    path, header = export_run(args.run, fmt=args.format, generator=args.generator, out=args.out)
    size = path.stat().st_size
    dense_bytes = 4 * header["prunable"]
    print(f"wrote {path} ({size / 1024:.1f} KiB, format {header['format']}, generator {header['generator']}, "
          f"model {header['model']}, G density {header['density']:.4f}: {header['active']} of "
          f"{header['prunable']} prunable weights; dense float32 prunable weights alone: {dense_bytes / 1024:.1f} KiB)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write the generator of a run for deployment (CSR or dense safetensors)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="a completed run folder")
    p.add_argument("--format", choices=("csr", "safetensors"), default="csr",
                   help="csr: size grows with the active weights; safetensors: the dense masked state dict")
    p.add_argument("--generator", choices=("ema", "raw"), default="ema", help="the EMA (SEMA) or the raw generator")
    p.add_argument("--out", metavar="PATH", help="default: RUN_DIR/export/generator_<which>[.csr].safetensors")
    p.set_defaults(func=run)
