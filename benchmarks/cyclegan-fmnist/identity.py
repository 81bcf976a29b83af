"""The baseline of the CycleGAN task: fid_domain of translating nothing (each domain's test images
compared with the other domain's as they are), the value a translation must get below.

    python benchmarks/cyclegan-fmnist/identity.py data/fashion-pair/sneaker-boot \
        benchmarks/cyclegan-fmnist/identity.json

Writes the values per direction and their mean (sparsegan.metrics.translation, the protocol of the
runs: all 1,000 test images per direction, Fashion-MNIST domain classifier).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torch import nn

from sparsegan.metrics.translation import evaluate_translation


class Identity(nn.Module):
    def forward(self, x, direction):
        return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pair", type=Path, help="the pair folder (trainA/ trainB/ testA/ testB/, dataset.json)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    results, protocol = evaluate_translation(Identity(), ["fid_domain"], data_root=str(args.pair), resolution=28,
                                             channels=1)
    out = {"what": "identity translation (translating nothing)", "protocol": "fid_domain" + protocol.suffix,
           "command": f"python benchmarks/cyclegan-fmnist/identity.py {args.pair} {args.out}",
           **{k: v[k] for k, v in results.items()}}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
