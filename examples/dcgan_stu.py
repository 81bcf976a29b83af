"""A plain PyTorch DCGAN training script, made into STU-GAN by the lines marked `# sparsegan`.

Two nets, two Adam optimizers, the BCE loss, a for-loop over a DataLoader: the shape of the
well-known DCGAN example. Remove the marked lines and it trains the dense GAN; with them, G trains
at 90 % sparsity and D at 50 % from the first step, G's connections pruned and regrown every
``--update-interval`` iterations (STU-GAN, Liu et al. 2022), and the sampled G is its sparse EMA.

    python examples/dcgan_stu.py --data-root DIR --epochs 5 --out dcgan-stu.png
    python examples/dcgan_stu.py --synthetic --steps 20         # a smoke run without the dataset

Fashion-MNIST comes from sparsegan's loader (the `dataset-fashion-mnist` files, or a folder with
the four IDX files); everything else is plain PyTorch.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sparsegan  # sparsegan


class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 32):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 32):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x).view(-1)


def weights_init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def images(args) -> torch.Tensor:
    """Fashion-MNIST in [-1, 1], padded from 28x28 to 32x32 (or random images with --synthetic)."""
    if args.synthetic:
        return torch.rand(256, 1, 32, 32) * 2 - 1
    from sparsegan.data import load_dataset

    x = load_dataset("fashion-mnist", "train", args.data_root).images.float() / 127.5 - 1
    return F.pad(x, (2, 2, 2, 2), value=-1.0)


def main(argv=None):
    p = argparse.ArgumentParser(description="DCGAN on Fashion-MNIST, made sparse with sparsegan (STU-GAN)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--synthetic", action="store_true", help="random images instead of the dataset (smoke test)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="stop after this many iterations")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--update-interval", type=int, default=None,
                   help="iterations between topology updates (default: a tenth of the run, at most 1000)")
    p.add_argument("--out", default=None, help="save a grid of 64 samples here (PNG)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    loader = DataLoader(TensorDataset(images(args)), batch_size=args.batch_size, shuffle=True, drop_last=True)
    netG, netD = Generator(ngf=args.width), Discriminator(ndf=args.width)
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    fixed_noise = torch.randn(64, 100, 1, 1)
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    total = args.steps or args.epochs * len(loader)
    epochs = -(-total // len(loader))
    sparse = sparsegan.SparseTraining(  # sparsegan
        {"G": netG, "D": netD}, {"G": optimizerG, "D": optimizerD}, "stu",  # sparsegan
        sparsity={"G": 0.9, "D": 0.5}, steps=total, update_interval=args.update_interval, seed=args.seed)  # sparsegan
    ema = sparse.ema("G", beta=0.999, warmup=True)  # sparsegan (warm-up: a short run samples its trained G)

    step = 0
    for epoch in range(epochs):
        for (real,) in loader:
            # (1) D: maximize log D(x) + log(1 - D(G(z)))
            netD.zero_grad()
            label = torch.ones(real.shape[0])
            errD_real = criterion(netD(real), label)
            errD_real.backward()
            fake = netG(torch.randn(real.shape[0], 100, 1, 1))
            errD_fake = criterion(netD(fake.detach()), label.fill_(0.0))
            errD_fake.backward()
            optimizerD.step()
            # (2) G: maximize log D(G(z))
            netG.zero_grad()
            errG = criterion(netD(fake), label.fill_(1.0))
            errG.backward()
            optimizerG.step()
            sparse.step()  # sparsegan
            ema.update(netG, sparse.completed)  # sparsegan
            step += 1
            if step % 100 == 0 or step == total:
                print(f"[{epoch}] step {step}/{total} loss_D {(errD_real + errD_fake).item():.3f} "
                      f"loss_G {errG.item():.3f} density {sparse.density()}")  # sparsegan (density)
            if step == total:
                break
        if step == total:
            break
    sampler = ema.model  # sparsegan (sample the sparse EMA of G)
    sampler.eval()
    with torch.no_grad():
        samples = sampler(fixed_noise)
    if args.out:
        from PIL import Image

        grid = samples.add(1).mul(127.5).clamp(0, 255).byte().view(8, 8, 32, 32).permute(0, 2, 1, 3).reshape(256, 256)
        Image.fromarray(grid.numpy()).save(args.out)
    return {"G": netG, "D": netD, "sparse": sparse, "ema": ema, "samples": samples, "steps": step}


if __name__ == "__main__":
    main()
