"""Atomic file writes and the cache folder, shared by every part that persists something (runs, caches,
tickets, kernel plans)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import torch


def default_cache_dir() -> Path:
    """Where sparsegan keeps what it can recompute (downloads, reference statistics, kernel plans):
    $SPARSEGAN_CACHE, else $XDG_CACHE_HOME/sparsegan, else ~/.cache/sparsegan."""
    base = os.environ.get("SPARSEGAN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "sparsegan"
    )
    return Path(base)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers see old or new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_safetensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Atomically write a safetensors file (contiguous CPU copies, no shared storage)."""
    from safetensors.torch import save

    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(Path(path), save(clean, metadata=dict(metadata) if metadata else None))
