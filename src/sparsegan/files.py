"""Atomic file writes and the cache folder, shared by every part that persists something (runs, caches,
tickets, kernel plans, sweep manifests, reports): every file sparsegan replaces is written here."""

from __future__ import annotations

import functools
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


def umask() -> int:
    """The process's file-creation mask, read without changing it.

    Why not just ``os.umask``: it can only be read by setting it, and the mask is process-wide, so
    between the set and the restore every other thread (a DataLoader's, TensorBoard's writer) would
    create its files under the wrong mask. Linux states the mask in /proc/self/status ("Umask:",
    since 4.7): read on every call, it is always the current one and changes nothing. Elsewhere the
    mask is swapped once per process (see :func:`_umask_swapped`)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_swapped()


@functools.cache
def _umask_swapped() -> int:
    """The mask read by setting it, once per process (no /proc). For the instant it is set, a file
    another thread creates gets the most private mode, 0700 / 0600, rather than a too open one."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, rename: readers see old or new.

    The file gets the mode an ordinary ``open(path, "w")`` gives a new file, 0666 less the umask
    (0644 under the usual 022): mkstemp creates its file 0600, which left every run file unreadable
    to colleagues once a run folder was copied to a shared place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~umask())
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
