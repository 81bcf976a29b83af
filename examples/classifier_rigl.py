"""Not only GANs: a small CNN classifier trained sparse with RigL-style dynamic sparse training.

One net, SGD with Nesterov momentum, cross-entropy: sparsegan's engine keeps the net at 90 %
sparsity (ERK layer densities) from the first step and every ``--update-interval`` iterations drops
the smallest-magnitude fraction of each layer's active weights and regrows as many where the
dense gradient is largest (Evci et al. 2020), with a cosine-decayed fraction (0.3 -> 0). The
momentum of a regrown weight starts at 0, as a fresh SGD weight's; a removed one's is cleared.

    python examples/classifier_rigl.py --data-root DIR --epochs 2
    python examples/classifier_rigl.py --synthetic --steps 20           # a smoke run without the dataset
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sparsegan import SparseTraining


def make_net(width: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def data(args, split: str) -> TensorDataset:
    if args.synthetic:
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        return TensorDataset(torch.randn(256, 1, 28, 28, generator=g), torch.randint(10, (256,), generator=g))
    from sparsegan.data import load_dataset

    d = load_dataset("fashion-mnist", split, args.data_root)
    return TensorDataset(d.images.float() / 127.5 - 1, d.labels)


@torch.no_grad()
def accuracy(net: nn.Module, dataset: TensorDataset) -> float:
    net.eval()
    x, y = dataset.tensors
    correct = sum(int((net(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()) for i in range(0, len(y), 1000))
    net.train()
    return correct / len(y)


def main(argv=None):
    p = argparse.ArgumentParser(description="a sparse CNN classifier (RigL-style DST with sparsegan)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--update-interval", type=int, default=None,
                   help="iterations between topology updates (default: a tenth of the run, at most 1000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    train, test = data(args, "train"), data(args, "test")
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
    total = args.steps or args.epochs * len(loader)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    sparse = SparseTraining({"net": net}, {"net": opt}, "stu", sparsity={"net": args.sparsity}, steps=total,
                            update_interval=args.update_interval, prune_fraction=0.3, prune_fraction_final=0.0,
                            seed=args.seed)
    step, changed = 0, 0
    while step < total:
        for x, y in loader:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for ev in sparse.step():
                changed += ev.grown
            step += 1
            if step % 100 == 0 or step == total:
                print(f"step {step}/{total} loss {loss.item():.3f} density {sparse.density()['net']:.4f} "
                      f"weights regrown so far {changed}")
            if step == total:
                break
    acc = accuracy(net, test)
    print(f"test accuracy {acc:.4f} at density {sparse.density()['net']:.4f} "
          f"(ITOP rate {sparse.masks['net'].itop_rate():.3f})")
    return {"net": net, "opt": opt, "sparse": sparse, "accuracy": acc, "regrown": changed}


if __name__ == "__main__":
    main()
