"""A GAN in a Hugging Face Accelerate loop, with gradient accumulation, trained sparse (STU-GAN).

A plain Accelerate loop (``prepare``, ``accumulate``, ``backward``) made sparse by the lines marked
`# sparsegan`: G at 90 % sparsity, D at 50 %, G's connections pruned and regrown every
``--update-interval`` optimizer steps. The points to get right:

* SparseTraining takes the nets and optimizers *after* ``prepare`` (on their device), unwrapped:
  the module inside DDP, the torch optimizer inside Accelerate's (its hooks must see the real
  ``step``, which Accelerate skips while gradients accumulate).
* ``sparse.step()`` once per optimizer step, i.e. only when ``accelerator.sync_gradients``.
* Every rank gets the same ``seed`` (same masks; with DDP's averaged gradients, the same updates);
  ``sparse.broadcast_masks()`` makes rank 0's masks everyone's, and at the end the masks of all
  ranks are gathered and compared.

The data: a ring of 8 Gaussians in 2-D, MLP nets, so it runs in seconds on CPUs.

    python examples/accelerate_gan.py --cpu --accumulate 2
    torchrun --standalone --nproc_per_node 2 examples/accelerate_gan.py --cpu --accumulate 2   # 2 CPU processes

Needs the accelerate extra: pip install "sparsegan[accelerate]".
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sparsegan import SparseTraining  # sparsegan


def mlp(n_in: int, n_out: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, n_out))


def ring(n: int, seed: int = 0) -> torch.Tensor:
    """n points from 8 Gaussians on the unit circle."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.randint(8, (n,), generator=g) * (2 * math.pi / 8)
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2, generator=g)


def masks_agree(accelerator: Accelerator, sparse: SparseTraining) -> bool:
    """Whether every rank holds the same masks: all of them gathered to every rank, compared."""
    flat = torch.cat([m.reshape(-1) for ms in sparse.masks.values() for m in ms.masks.values()])
    every = accelerator.gather(flat.to(accelerator.device, torch.uint8)).view(accelerator.num_processes, -1)
    return bool((every == every[0]).all())


def main(argv=None):
    p = argparse.ArgumentParser(description="a toy GAN in an Accelerate loop, trained sparse (STU-GAN)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batches", type=int, default=24, help="batches per epoch (over all processes)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--accumulate", type=int, default=2, help="gradient accumulation steps")
    p.add_argument("--update-interval", type=int, default=4, help="in optimizer steps")
    p.add_argument("--nz", type=int, default=8)
    p.add_argument("--cpu", action="store_true", help="CPUs only (several processes talk over gloo)")
    p.add_argument("--save-masks", default=None, help="each rank saves its masks here (rank<i>.pt)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    accelerator = Accelerator(cpu=args.cpu, gradient_accumulation_steps=args.accumulate)
    set_seed(args.seed)  # the same nets everywhere (DDP broadcasts rank 0's anyway)
    data = TensorDataset(ring(args.batches * args.batch_size, args.seed))
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True)
    G, D = mlp(args.nz, 2, 64), mlp(2, 1, 64)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    G, D, opt_g, opt_d, loader = accelerator.prepare(G, D, opt_g, opt_d, loader)
    # Accelerate steps the optimizers at the end of every `accumulate` batches and of each epoch.
    steps = args.epochs * math.ceil(len(loader) / args.accumulate)
    sparse = SparseTraining(  # sparsegan
        {"G": accelerator.unwrap_model(G), "D": accelerator.unwrap_model(D)},  # sparsegan
        {"G": opt_g.optimizer, "D": opt_d.optimizer}, "stu", sparsity={"G": 0.9, "D": 0.5},  # sparsegan
        steps=steps, update_interval=args.update_interval, seed=args.seed)  # sparsegan
    sparse.broadcast_masks()  # sparsegan
    d_plain = accelerator.unwrap_model(D)  # for G's loss: D without DDP's gradient sync
    noise = torch.Generator().manual_seed(args.seed * 1_000 + accelerator.process_index)

    for epoch in range(args.epochs):
        for (real,) in loader:
            with accelerator.accumulate(G, D):
                z = torch.randn(real.shape[0], args.nz, generator=noise).to(accelerator.device)
                fake = G(z)
                # D: real -> 1, fake -> 0 (one forward of both, as DDP wants one forward per backward)
                labels = torch.cat([torch.ones(len(real), 1), torch.zeros(len(real), 1)]).to(accelerator.device)
                loss_d = F.binary_cross_entropy_with_logits(D(torch.cat([real, fake.detach()])), labels)
                accelerator.backward(loss_d)
                opt_d.step()
                opt_d.zero_grad()
                # G: fool D; only G's weights take this loss's gradients (D's accumulating ones stay D's)
                loss_g = F.binary_cross_entropy_with_logits(d_plain(fake), labels[: len(real)])
                accelerator.backward(loss_g, inputs=list(G.parameters()))
                opt_g.step()
                opt_g.zero_grad()
            if accelerator.sync_gradients:  # sparsegan: an optimizer step really happened
                sparse.step()  # sparsegan
        accelerator.print(f"epoch {epoch}: {sparse.completed}/{steps} optimizer steps, loss_d {loss_d.item():.3f} "
                          f"loss_g {loss_g.item():.3f}, density {sparse.density()}")

    agree = masks_agree(accelerator, sparse)
    accelerator.print(f"{accelerator.num_processes} process(es): masks equal on every rank: {agree}; "
                      f"G's ITOP rate {sparse.masks['G'].itop_rate():.3f}")
    if args.save_masks:
        masks = {f"{net}.{n}": m.cpu() for net, ms in sparse.masks.items() for n, m in ms.masks.items()}
        weights = {f"{net}.{n}": p.detach().cpu() for net, ms in sparse.masks.items() for n, p in ms.params.items()}
        Path(args.save_masks).mkdir(parents=True, exist_ok=True)
        itop = {net: ms.itop_rate() for net, ms in sparse.masks.items()}
        torch.save({"masks": masks, "weights": weights, "itop": itop, "completed": sparse.completed, "agree": agree},
                   Path(args.save_masks) / f"rank{accelerator.process_index}.pt")
    nets = {"G": accelerator.unwrap_model(G), "D": accelerator.unwrap_model(D)}
    accelerator.wait_for_everyone()
    # Drop the DDP wrappers (the accelerator holds them too) before the process group ends: one
    # destroyed at interpreter exit, after it, has aborted a gloo process now and then.
    G, D, opt_g, opt_d, loader = accelerator.free_memory(G, D, opt_g, opt_d, loader)
    accelerator.end_training()
    return {"sparse": sparse, "accelerator": accelerator, "masks_agree": agree, "steps": steps, **nets}


if __name__ == "__main__":
    main()
