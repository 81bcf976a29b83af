"""``sparsegan sample``: images from a trained generator or denoiser, on the sparse runtime or dense.

The generator of a run folder (its EMA by default) or of a ``sparsegan export`` file draws
``--num-images`` images from seeded latents (a diffusion model: seeded noise x_T, then DDIM in NFE
denoiser calls) and writes them as a PNG grid or an ``.npz`` of uint8 images (N, H, W, C) under
``arr_0``, the layout other evaluation tools read. The two runtimes give the same images to float
rounding; the time of the drawing itself is printed (the sparse runtime's kernel choice before it is
timed apart)."""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from sparsegan.commands.arg_types import MODES, positive_int, sample_steps
from sparsegan.errors import UserError


def draw(G, n: int, batch_size: int, seed: int):
    """uint8 [n, C, H, W]: ``G`` on seeded latents (and labels, for a conditional model), batch by batch;
    the latents depend on ``seed`` and ``n`` only, not on the batch size."""
    import torch

    from sparsegan.data import to_uint8

    g = torch.Generator().manual_seed(seed)
    z = G.sample_z(n, g)
    classes = int(getattr(G, "num_classes", 0) or 0)
    y = torch.randint(0, classes, (n,), generator=g) if classes else None
    with torch.no_grad():
        out = [G(z[i:i + batch_size], None if y is None else y[i:i + batch_size]) for i in range(0, n, batch_size)]
    return to_uint8(torch.cat(out))


def _write(images, path: Path, nrow: int | None) -> None:
    import numpy as np

    from sparsegan.files import atomic_write_bytes
    from sparsegan.run_folder import encode_png, image_grid

    if path.suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, arr_0=images.permute(0, 2, 3, 1).numpy())
        data = buf.getvalue()
    else:
        data = encode_png(image_grid(images, nrow))
    atomic_write_bytes(path, data)


def run(args: argparse.Namespace) -> int:
    import torch

    from sparsegan.inference.bench import load_generators
    from sparsegan.inference.runtime import sparsify

    out = Path(args.out)
    if out.suffix not in (".png", ".npz"):
        raise UserError(f"--out must end in .png (a grid) or .npz (uint8 images), got {args.out}")
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UserError(f"the folder of --out does not exist: {out.parent}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    gens = load_generators(args.source, args.generator)
    G = gens.G
    if hasattr(G, "directions"):
        raise UserError(f"{args.source} is a translation model ({gens.model}): it translates images rather than "
                        "drawing them; its sample grids are in the run folder and `sparsegan eval` measures it")
    nfe = getattr(G, "sample_steps", None)
    if args.sample_steps is not None:
        if nfe is None:
            raise UserError(f"--sample-steps applies to diffusion models; {args.source} is a {gens.model} model")
        G.sample_steps = nfe = args.sample_steps
    prepared = 0.0
    if args.runtime == "sparse":
        t = time.perf_counter()
        G = sparsify(G, args.mode, plan_cache=not args.no_plan_cache)
        draw(G, 1, 1, args.seed)  # the kernels are chosen at a layer's first call: not part of the drawing's time
        prepared = time.perf_counter() - t
    t = time.perf_counter()
    images = draw(G, args.num_images, args.batch_size, args.seed)
    seconds = time.perf_counter() - t
    _write(images, out, args.nrow)
    steps = f", NFE {nfe}" if nfe is not None else ""
    setup = f" (kernels chosen first in {prepared:.1f} s)" if args.runtime == "sparse" else ""
    print(f"wrote {out}: {args.num_images} images of {gens.source}, model {gens.model}, G density "
          f"{gens.density:.4f}, {args.runtime} runtime{steps}, {torch.get_num_threads()} thread(s): "
          f"{seconds:.2f} s, {args.num_images / seconds:.1f} images/s{setup}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw images from a run's generator or an export file (PNG grid or .npz), "
                                      "on the sparse runtime or dense",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", metavar="RUN_DIR|EXPORT", help="a completed run folder or a `sparsegan export` file")
    p.add_argument("--out", default="samples.png", metavar="PATH",
                   help="a .png grid, or .npz: uint8 images (N, H, W, C) under arr_0")
    p.add_argument("--num-images", type=positive_int, default=64)
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per generator call")
    p.add_argument("--seed", type=int, default=0, help="seeds the latents (a diffusion model's noise x_T)")
    p.add_argument("--sample-steps", type=sample_steps, default=None, metavar="NFE",
                   help="a diffusion model's DDIM steps (denoiser calls per image) [default: the run's]")
    p.add_argument("--runtime", choices=("sparse", "dense"), default="sparse",
                   help="sparse: the sparse inference runtime on the active weights; dense: the masked model")
    p.add_argument("--mode", choices=MODES, default="auto", help="the sparse runtime's kernels (see sparsegan bench)")
    p.add_argument("--no-plan-cache", action="store_true", help="time the kernels afresh (see sparsegan bench)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (unset: torch's choice)")
    p.add_argument("--generator", choices=("ema", "raw"), default="ema", help="for a run folder")
    p.add_argument("--nrow", type=positive_int, default=None, help="images per row of the grid (default: square)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)
