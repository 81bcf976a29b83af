"""Fingerprints of tiny runs of every method: a refactoring must leave them bitwise the same.

    python scripts/fingerprints.py OUT.json            # write the fingerprints of this checkout
    python scripts/fingerprints.py OUT.json --check    # compare with a file written before

Each run is a short CLI training on generated Fashion-MNIST-format files (width-4 models, a few
steps, short update intervals), one per method and model family, with the variants that take
other code paths (IMP rounds and a control, PF from a dense run, a transferred ticket, the
reference code's mode, explore D, ADAPT strict, global ranking, momentum growth). A fingerprint is
the SHA-256 of every final/*.safetensors file and of metrics.jsonl without its timing fields.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from sparsegan.cli import main as cli

TIMING = {"wall_time_s", "images_per_s", "seconds", "time_s", "elapsed_s"}
BASE = ["--dataset", "fashion-mnist", "--model", "dcgan", "--model-width", "4", "--batch-size", "8",
        "--steps", "12", "--update-interval", "4", "--log-every", "4", "--sample-every", "12",
        "--checkpoint-every", "6", "--balance-every", "2", "--no-progress", "--allow-ignored"]
RUNS = {
    "dense": ["--method", "dense"],
    "static": ["--method", "static", "--sparsity-g", "0.9", "--sparsity-d", "0.5"],
    "stu": ["--method", "stu", "--sparsity-g", "0.9", "--sparsity-d", "0.5"],
    "stu-momentum-global": ["--method", "stu", "--sparsity-g", "0.8", "--grow", "momentum", "--ranking", "global"],
    "stu-random-reference": ["--method", "stu", "--sparsity-g", "0.8", "--grow", "random", "--regrown-state", "keep"],
    "stu-explore-GD": ["--method", "stu", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--explore", "GD"],
    "gmp": ["--method", "gmp", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--gmp-interval", "2"],
    "snip": ["--method", "snip", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "grasp": ["--method", "grasp", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "early_bird": ["--method", "early_bird", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--eb-interval", "2"],
    "adapt-relaxed": ["--method", "adapt", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--adapt-interval", "4"],
    "adapt-strict": ["--method", "adapt", "--sparsity-g", "0.8", "--sparsity-d", "0.6", "--adapt-interval", "4",
                     "--adapt-variant", "strict"],
    "pf": ["--method", "pf", "--sparsity-g", "0.8", "--from", "{dense}"],
    "imp": ["--method", "imp", "--sparsity-g", "0.5", "--prune-nets", "G", "--rewind-step", "2"],
    "imp-reinit": ["--method", "imp", "--sparsity-g", "0.5", "--prune-nets", "G", "--rewind-step", "2",
                   "--imp-control", "reinit", "--tickets-from", "{imp}"],
    "ticket-transfer": ["--method", "static", "--sparsity-g", "0.9", "--masks-from", "{stu}"],
    "vae-stu": ["--method", "stu", "--model", "vae", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "ae-snip": ["--method", "snip", "--model", "ae", "--sparsity-g", "0.8", "--sparsity-d", "0.5"],
    "mlp-stu": ["--method", "stu", "--model", "mlp", "--sparsity-g", "0.9", "--sparsity-d", "0.5"],
}


def _idx(images: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, images.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    return head + images.tobytes()


def write_data(root: Path) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 128), ("t10k", 16)):
        (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)), mtime=0))
        (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(_idx(rng.integers(0, 10, (n,), dtype=np.uint8)), mtime=0))
    return root


def fingerprint(run: Path, root: Path) -> dict[str, str]:
    out = {}
    for f in sorted(run.rglob("*.safetensors")):
        if "checkpoints" not in f.parts:
            out[str(f.relative_to(run))] = hashlib.sha256(f.read_bytes()).hexdigest()
    for f in sorted(run.rglob("metrics.jsonl")):
        recs = []
        for line in f.read_text().splitlines():
            r = json.loads(line.replace(str(root), "ROOT"))  # the temporary folder's name varies
            recs.append({k: v for k, v in r.items() if k not in TIMING and k != "checkpoint"})
        out[str(f.relative_to(run))] = hashlib.sha256(json.dumps(recs, sort_keys=True).encode()).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--check", action="store_true", help="compare with OUT instead of writing it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_data(root / "data")
        prints = {}
        for name, extra in RUNS.items():
            run = root / name
            extra = [a.format(dense=root / "dense", imp=root / "imp", stu=root / "stu") for a in extra]
            rc = cli(["train", "--data-root", str(data), "--out", str(run), *BASE, *extra])
            if rc != 0:
                print(f"{name}: exit {rc}", file=sys.stderr)
                return rc
            prints[name] = fingerprint(run, root)
    if not args.check:
        args.out.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(prints)} fingerprints to {args.out}")
        return 0
    before = json.loads(args.out.read_text())
    bad = [f"{run}/{f}" for run in sorted(set(before) | set(prints))
           for f in sorted(set(before.get(run, {})) | set(prints.get(run, {})))
           if before.get(run, {}).get(f) != prints.get(run, {}).get(f)]
    print("identical" if not bad else "differ: " + ", ".join(bad))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
