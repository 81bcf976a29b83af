"""A GAN in PyTorch Lightning, trained sparse (STU-GAN) by sparsegan's Lightning callback.

The LightningModule is a plain manual-optimisation GAN (two optimizers, ``training_step`` steps D,
then G); the one sparse line is the callback given to the Trainer: G at 90 % sparsity, D at 50 %,
G's connections pruned and regrown every ``--update-interval`` iterations, G's sparse EMA kept.
The data: a ring of 8 Gaussians in 2-D, MLP nets, so it runs in seconds on a CPU.

    python examples/lightning_gan.py                       # 3 epochs of 16 batches, prints the densities
    python examples/lightning_gan.py --stop-after 2 --out ckpts && \\
        python examples/lightning_gan.py --resume ckpts/last.ckpt  # the same run, interrupted and resumed

Needs the lightning extra: pip install "sparsegan[lightning]".
"""

from __future__ import annotations

import argparse
import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sparsegan.integrations.lightning import SparseTrainingCallback


def mlp(n_in: int, n_out: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, n_out))


def ring(n: int, seed: int = 0) -> torch.Tensor:
    """n points from 8 Gaussians on the unit circle."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.randint(8, (n,), generator=g) * (2 * math.pi / 8)
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2, generator=g)


class GAN(pl.LightningModule):
    def __init__(self, nz: int = 8, width: int = 64, lr: float = 2e-4, seed: int = 0):
        super().__init__()
        self.automatic_optimization = False  # D's and G's steps are this module's own
        self.nz, self.lr, self.seed = nz, lr, seed
        self.generator, self.discriminator = mlp(nz, 2, width), mlp(2, 1, width)

    def configure_optimizers(self):
        betas = (0.5, 0.999)
        return (torch.optim.Adam(self.generator.parameters(), self.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), self.lr, betas=betas))

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        # Noise seeded by the step (restored with a checkpoint): a resumed run draws what a straight one does.
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.global_step)
        z = torch.randn(real.shape[0], self.nz, generator=g).to(real)
        fake = self.generator(z)
        ones, zeros = torch.ones(real.shape[0], 1).to(real), torch.zeros(real.shape[0], 1).to(real)
        # D: real -> 1, fake -> 0
        loss_d = (F.binary_cross_entropy_with_logits(self.discriminator(real), ones)
                  + F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()), zeros))
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        # G: fool D (the non-saturating loss)
        loss_g = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.log_dict({"loss_d": loss_d, "loss_g": loss_g}, prog_bar=True)


def main(argv=None, callbacks=()):
    """``callbacks``: more Lightning callbacks for the Trainer (the tests watch the run through one)."""
    p = argparse.ArgumentParser(description="a toy GAN in Lightning, trained sparse (STU-GAN) by a callback")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batches", type=int, default=16, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--update-interval", type=int, default=10)
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many epochs (to --resume later)")
    p.add_argument("--out", default=None, help="save a checkpoint here after every epoch (last.ckpt)")
    p.add_argument("--resume", default=None, help="continue from this checkpoint")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    pl.seed_everything(args.seed, verbose=False)
    # i.i.d. samples already: no shuffling, so a resumed epoch sees the batches a straight run does
    loader = DataLoader(TensorDataset(ring(args.batches * args.batch_size, args.seed)), batch_size=args.batch_size)
    gan = GAN(seed=args.seed)
    # The sparse part: STU-GAN through the callback. steps= is the whole run's iterations, so that a
    # run stopped early (--stop-after) keeps the whole run's schedule and resumes into it exactly.
    sparse = SparseTrainingCallback("stu", nets={"G": "generator", "D": "discriminator"},
                                    sparsity={"G": 0.9, "D": 0.5}, update_interval=args.update_interval,
                                    steps=args.epochs * args.batches, seed=args.seed, ema={"G": 0.999})
    callbacks = [sparse, *callbacks]
    if args.out:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=args.out, save_last=True, save_top_k=0))
    trainer = pl.Trainer(max_epochs=args.stop_after or args.epochs, accelerator="cpu", devices=1, callbacks=callbacks,
                         logger=False, enable_checkpointing=bool(args.out), enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(gan, loader, ckpt_path=args.resume)
    st = sparse.sparse
    print(f"{st.completed} iterations; density G {st.density()['G']:.4f} D {st.density()['D']:.4f}; "
          f"G's ITOP rate {st.masks['G'].itop_rate():.3f}")
    return {"trainer": trainer, "gan": gan, "callback": sparse}


if __name__ == "__main__":
    main()
