"""The run folder: the contract every other part of sparsegan reads (DESIGN.md, "Run folder").

    config.json  metrics.jsonl  summary.json  samples/*.png  checkpoints/  final/*.safetensors
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from sparsegan.errors import UserError
from sparsegan.files import atomic_write_bytes, save_safetensors

CONFIG, METRICS, SUMMARY = "config.json", "metrics.jsonl", "summary.json"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_records(run: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Records of metrics.jsonl, optionally of one kind. A torn last line is ignored."""
    out = []
    path = Path(run) / METRICS
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or rec.get("kind") == kind:
            out.append(rec)
    return out


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    # --- folders -----------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def final(self) -> Path:
        return self.path / "final"

    @classmethod
    def check(cls, path: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
        """Refuse to write into a folder that belongs to another run unless told to (no changes)."""
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise UserError(f"--out {p} exists and is not a folder")
        is_run = (p / CONFIG).exists() or (p / METRICS).exists()
        if p.exists() and any(p.iterdir()) and not (resume or overwrite):
            what = "holds another run" if is_run else "is not empty"
            raise UserError(f"--out {p} {what}; pass --resume auto to continue it or --overwrite to replace it")
        if overwrite and not resume and p.exists() and not is_run and any(p.iterdir()):
            raise UserError(f"--out {p} is not empty and not a sparsegan run; refusing to delete it")

    @classmethod
    def prepare(cls, path: str | os.PathLike, *, resume: bool, overwrite: bool) -> "RunDir":
        """Check the folder, then (with ``overwrite``) replace it. Call this only once everything
        else is validated, so that a bad option never costs an existing run."""
        cls.check(path, resume=resume, overwrite=overwrite)
        p = Path(path)
        if overwrite and p.exists() and not resume:
            shutil.rmtree(p)
        for d in (p, p / "samples", p / "checkpoints", p / "final"):
            d.mkdir(parents=True, exist_ok=True)
        return cls(p)

    # --- records -----------------------------------------------------------------------
    def log(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(dict(record), default=_json_default)
        with open(self.path / METRICS, "a") as f:
            f.write(line + "\n")

    def truncate_records_after(self, step: int) -> None:
        """On resume, drop records written after the checkpoint (they will be written again)."""
        path = self.path / METRICS
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if int(rec.get("step", 0)) <= step:
                keep.append(line)
        atomic_write_bytes(path, ("\n".join(keep) + ("\n" if keep else "")).encode())

    def write_config(self, config: Mapping[str, Any]) -> None:
        write_json(self.path / CONFIG, config)

    def read_config(self) -> dict[str, Any]:
        return read_json(self.path / CONFIG)

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        write_json(self.path / SUMMARY, summary)

    # --- artefacts ---------------------------------------------------------------------
    def save_grid(self, images: torch.Tensor, name: str) -> Path:
        path = self.samples / name
        buf = encode_png(image_grid(images))
        atomic_write_bytes(path, buf)
        return path

    def save_final(self, tensors: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """final/<name>.safetensors for each entry, e.g. {"generator": G.state_dict(), ...}."""
        for name, sd in tensors.items():
            save_safetensors(self.final / f"{name}.safetensors", sd)


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 [N, C, H, W] -> uint8 [H', W', C] grid with ``padding`` pixels of black between."""
    if images.dtype != torch.uint8:
        raise TypeError("image_grid expects uint8 images")
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = np.zeros((padding + ncol * (h + padding), padding + nrow * (w + padding), c), dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = arr[i]
    return grid


def encode_png(grid: np.ndarray) -> bytes:
    import io

    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
