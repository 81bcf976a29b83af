"""Dense vs sparse generator inference, side by side in one process.

Each batch size: warm-up calls of both (the sparse one picks its kernels on its first call),
then ``repeats`` rounds that time dense and sparse alternately, so a burst of load on a shared
machine hits both; the medians are compared.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sparsegan.inference.export import Export, masked
from sparsegan.run_folder import RunFolder


@dataclass
class Generators:
    """The dense masked generator and what describes it."""

    G: nn.Module
    model: str
    density: float
    source: str


def load_generators(path: str | Path, generator: str = "ema") -> Generators:
    """A run folder (its final generator) or an export file."""
    p = Path(path)
    if p.is_dir():
        rf = RunFolder.open(p)
        G, _, _ = rf.build_nets(generator, with_d=False)
        masks = rf.masks.get("G", {})
        G.load_state_dict(masked(G.state_dict(), masks))
        n = sum(m.numel() for m in masks.values())
        density = sum(int(m.sum()) for m in masks.values()) / n if n else 1.0
        return Generators(G.eval(), rf.config["model"], density, f"run {p.name} ({generator})")
    ex = Export.read(p)
    return Generators(ex.generator(), ex.header["model"], float(ex.header["density"]), f"export {p.name}")


def inputs(G: nn.Module, batch: int, seed: int = 0) -> tuple[Tensor, Tensor | str | None]:
    """What ``G(*inputs)`` takes: latents (and labels), a diffusion model's noise x_T (its call runs
    the sampler, NFE denoiser calls), or for a translation pair images to translate in its first
    direction."""
    g = torch.Generator().manual_seed(seed)
    if hasattr(G, "directions"):
        x = torch.rand(batch, G.channels, G.resolution, G.resolution, generator=g) * 2 - 1
        return x, G.directions[0]
    z = G.sample_z(batch, g)  # latents, or a diffusion model's image-shaped noise x_T
    classes = int(getattr(G, "num_classes", 0) or 0)
    y = torch.randint(0, classes, (batch,), generator=g) if classes else None
    return z, y


@torch.no_grad()
def bench(dense: nn.Module, sparse: nn.Module, batch_sizes: list[int], *, repeats: int = 20,
          warmup: int = 3, seed: int = 0) -> dict[str, dict[str, float]]:
    """{"<bs>": {"dense_ms", "sparse_ms", "speedup"}} with medians over ``repeats`` interleaved rounds."""
    out: dict[str, dict[str, float]] = {}
    for bs in batch_sizes:
        z, y = inputs(dense, bs, seed)
        for _ in range(warmup):
            dense(z, y)
            sparse(z, y)
        times: dict[str, list[float]] = {"dense": [], "sparse": []}
        for r in range(repeats):
            order = (("dense", dense), ("sparse", sparse)) if r % 2 == 0 else (("sparse", sparse), ("dense", dense))
            for name, net in order:
                t = time.perf_counter()
                net(z, y)
                times[name].append(time.perf_counter() - t)
        d, s = statistics.median(times["dense"]) * 1e3, statistics.median(times["sparse"]) * 1e3
        out[str(bs)] = {"dense_ms": d, "sparse_ms": s, "speedup": d / s if s > 0 else float("inf")}
    return out


@torch.no_grad()
def first_output_ms(G: nn.Module, mode: str = "auto", batch_sizes: list[int] | None = None) -> dict[str, float]:
    """Time to the first outputs of a freshly sparsified generator (``sparsify`` and one call per
    batch size, auto mode's calibration included): ``{"cold_ms", "warm_ms"}``, first with an empty
    plan cache (a first process on a machine), then again with the plans that run left (every
    later process). Uses a temporary cache file, not the user's."""
    import tempfile

    from sparsegan.inference.runtime import sparsify
    from sparsegan.kernels.plans import PlanCache

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("cold_ms", "warm_ms"):
            t = time.perf_counter()
            S = sparsify(G, mode, plan_cache=PlanCache(Path(tmp) / "plans.json"))
            for bs in batch_sizes or [1]:
                S(*inputs(G, bs))
            out[label] = (time.perf_counter() - t) * 1e3
    return out


@torch.no_grad()
def max_abs_difference(dense: nn.Module, sparse: nn.Module, batch: int = 4, seed: int = 1) -> float:
    z, y = inputs(dense, batch, seed)
    return float((dense(z, y) - sparse(z, y)).abs().max())


def describe_machine() -> dict[str, Any]:
    import os
    import platform

    from sparsegan.kernels.plans import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}
