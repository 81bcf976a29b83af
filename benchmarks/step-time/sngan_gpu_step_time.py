"""Step time and images/s of SNGAN-32 on CIFAR-10-shaped data: dense vs STU-GAN, with the
device options. Runs the real CLI with the paper recipes (configs/sngan-cifar10-*.yaml);
pixels are random (speed does not depend on them), written in the real pickle format.

    python benchmarks/step-time/sngan_gpu_step_time.py --out benchmarks/step-time/results/sngan_gpu_step_time.json

Each variant trains --steps G iterations (5 D steps of 64 images + 1 G step of 128 per
iteration); the first log tick (warm-up, compilation) is dropped.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {
    "dense fp32": ["--config", "configs/sngan-cifar10-dense.yaml"],
    "stu fp32": ["--config", "configs/sngan-cifar10-stu-g90-d50.yaml"],
    "dense bf16 channels-last": ["--config", "configs/sngan-cifar10-dense.yaml", "--precision", "bf16",
                                 "--channels-last"],
    "stu bf16 channels-last": ["--config", "configs/sngan-cifar10-stu-g90-d50.yaml", "--precision", "bf16",
                               "--channels-last"],
    "dense bf16 channels-last compile": ["--config", "configs/sngan-cifar10-dense.yaml", "--precision", "bf16",
                                         "--channels-last", "--compile"],
    "stu bf16 channels-last compile": ["--config", "configs/sngan-cifar10-stu-g90-d50.yaml", "--precision", "bf16",
                                       "--channels-last", "--compile"],
}


def write_cifar(root: Path, n: int) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": [int(v) for v in rng.integers(0, 10, n)]}, f)
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--update-interval", type=int, default=100, help="STU-GAN Delta T (shortened to time updates)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_cifar(Path(tmp) / "data", 2000)
        for name in args.variants.split(","):
            run = Path(tmp) / name.replace(" ", "-")
            cmd = [sys.executable, "-m", "sparsegan", "train", *VARIANTS[name], "--data-root", str(data),
                   "--device", "cuda", "--steps", str(args.steps), "--log-every", str(args.log_every),
                   "--update-interval", str(args.update_interval), "--sample-every", str(10 * args.steps),
                   "--checkpoint-every", str(10 * args.steps), "--out", str(run), "--no-progress"]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                results[name] = {"error": proc.stderr.strip().splitlines()[-1:]}
                print(name, "failed:", proc.stderr[-2000:], flush=True)
                continue
            recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            ticks = [r for r in recs if r["kind"] == "train"][1:]  # drop warm-up
            ips = float(np.mean([r["images_per_s"] for r in ticks]))
            images_per_step = 5 * 64 + 128
            topo = [r for r in recs if r["kind"] == "topology" and r["net"] == "G"]
            results[name] = {"images_per_s": round(ips, 1), "step_time_ms": round(1000 * images_per_step / ips, 2),
                             "topology_updates": len(topo), "density_G": topo[-1]["density"] if topo else 1.0}
            print(name, results[name], flush=True)
    out = {"command": " ".join(sys.argv), "torch": torch.__version__, "python": platform.python_version(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "steps": args.steps, "update_interval": args.update_interval, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
