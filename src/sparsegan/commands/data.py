"""``sparsegan data fashion-pair``: write datasets in the layouts the models train on.

``fashion-pair`` writes two Fashion-MNIST classes as an unpaired translation task in the CycleGAN
layout (trainA/ trainB/ testA/ testB/), e.g. sneaker <-> ankle boot, a real task that trains on a
CPU without a download (sparsegan.data.unpaired).
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="write datasets in the layouts sparsegan trains on (fashion-pair: two "
                                    "Fashion-MNIST classes as an unpaired translation task)")
    what = p.add_subparsers(dest="dataset", required=True, parser_class=type(p))
    pair = what.add_parser("fashion-pair", help="two Fashion-MNIST classes in the CycleGAN layout "
                                                "(trainA/ trainB/ testA/ testB/, 28x28 gray PNGs)")
    pair.add_argument("--classes", default="sneaker,ankle-boot", metavar="A,B",
                      help="domain A's class and domain B's class [default: sneaker,ankle-boot]")
    pair.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder")
    pair.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST IDX files (default: the "
                                                        "usual places, as for training)")
    pair.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparsegan.data.unpaired import write_fashion_pair
    from sparsegan.errors import UserError

    classes = args.classes.split(",")
    if len(classes) != 2:
        raise UserError(f"--classes takes two class names, A,B (e.g. sneaker,ankle-boot), not {args.classes!r}")
    counts = write_fashion_pair(args.out, classes[0], classes[1], data_root=args.data_root)
    print(", ".join(f"{folder}: {n}" for folder, n in counts.items()) + f" images in {args.out}")
    print(f"train on it: sparsegan train --model cyclegan --dataset unpaired --data-root {args.out} ...")
    return 0
