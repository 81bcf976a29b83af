"""A plain PyTorch DDPM training script, made sparse from scratch (RigL-DM) by the lines marked `# sparsegan`.

One net (a small U-Net), one AdamW optimizer, DDPM's loss (Ho et al. 2020: predict the noise
added to an image at a step drawn uniformly from a linear schedule of T = 1000), a for-loop over a
DataLoader. Remove the marked lines and it trains the dense model; with them, the denoiser trains
at 90 % sparsity from the first step (ERK layer densities), every ``--update-interval`` iterations
it drops the smallest-magnitude fraction of each layer's active weights and regrows as many where
the dense gradient is largest (RigL, Evci et al. 2020; Oliveira et al. 2025's RigL-DM;
``--grow random``: their MagRan-DM), and the sampled model is its sparse EMA. Samples come from
deterministic DDIM (Song et al. 2021) in ``--sample-steps`` denoiser calls.

    python examples/diffusion_rigl.py --data-root DIR --steps 20000 --out ddpm-rigl.png
    python examples/diffusion_rigl.py --synthetic --steps 20 --width 8   # a smoke run without the dataset

The U-Net and the DDIM sampler are sparsegan's (sparsegan.models.unet, sparsegan.models.ddpm), so
that the script stays short; any denoiser works the same way.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import sparsegan  # sparsegan
from sparsegan.models.ddpm import ddim_sample
from sparsegan.models.unet import UNet

T = 1000


def images(args) -> torch.Tensor:
    """Fashion-MNIST in [-1, 1], padded from 28x28 to 32x32 (or random images with --synthetic)."""
    if args.synthetic:
        return torch.rand(256, 1, 32, 32) * 2 - 1
    from sparsegan.data import load_dataset

    x = load_dataset("fashion-mnist", "train", args.data_root).images.float() / 127.5 - 1
    return F.pad(x, (2, 2, 2, 2), value=-1.0)


def main(argv=None):
    p = argparse.ArgumentParser(description="DDPM on Fashion-MNIST, trained sparse with sparsegan (RigL-DM)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--synthetic", action="store_true", help="random images instead of the dataset (smoke test)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32, help="the U-Net's base width")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--grow", choices=("gradient", "random"), default="gradient",
                   help="regrowth: gradient (RigL-DM) or random (MagRan-DM)")
    p.add_argument("--update-interval", type=int, default=None,
                   help="iterations between topology updates (default: a tenth of the run, at most 1000)")
    p.add_argument("--sample-steps", type=int, default=20, help="DDIM steps (denoiser calls) per sample")
    p.add_argument("--sparse-compute", choices=("auto", "on", "off"), default="auto",
                   help="layers on their active weights only where measured faster on this CPU (auto), always "
                        "(on), never (off: the masked dense path)")
    p.add_argument("--out", default=None, help="save a grid of 64 samples here (PNG)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    loader = DataLoader(TensorDataset(images(args)), batch_size=args.batch_size, shuffle=True, drop_last=True)
    net = UNet(channels=1, width=args.width)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0).float()  # DDPM's schedule
    sparse = sparsegan.SparseTraining(  # sparsegan
        {"denoiser": net}, {"denoiser": opt}, "stu", sparsity={"denoiser": args.sparsity},  # sparsegan
        steps=args.steps, update_interval=args.update_interval, grow=args.grow, seed=args.seed,  # sparsegan
        sparse_compute=args.sparse_compute)  # sparsegan
    ema = sparse.ema("denoiser", beta=0.999, warmup=True)  # sparsegan (the sparse EMA: the model to sample)

    step = 0
    while step < args.steps:
        for (x0,) in loader:
            # DDPM: noise x0 to a random step t, learn to predict the noise
            t = torch.randint(T, (x0.shape[0],))
            eps = torch.randn_like(x0)
            a = abar[t].view(-1, 1, 1, 1)
            loss = F.mse_loss(net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sparse.step()  # sparsegan
            ema.update(net, sparse.completed)  # sparsegan
            step += 1
            if step % 100 == 0 or step == args.steps:
                print(f"step {step}/{args.steps} loss {loss.item():.4f} density {sparse.density()['denoiser']:.4f}")
            if step == args.steps:
                break
    sampler = ema.model  # sparsegan (sample the sparse EMA of the denoiser)
    sampler.eval()
    with torch.no_grad():
        samples = ddim_sample(sampler, abar, torch.randn(64, 1, 32, 32), args.sample_steps)
    if args.out:
        from PIL import Image

        grid = samples.add(1).mul(127.5).clamp(0, 255).byte().view(8, 8, 32, 32).permute(0, 2, 1, 3).reshape(256, 256)
        Image.fromarray(grid.numpy()).save(args.out)
    return {"net": net, "opt": opt, "sparse": sparse, "ema": ema, "samples": samples, "steps": step}


if __name__ == "__main__":
    main()
