"""IDX files (MNIST, Fashion-MNIST): parse, locate, download with checksums."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sparsegan.errors import UserError
from sparsegan.files import atomic_write_bytes, default_cache_dir

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode one IDX file (already decompressed): magic 0x0000 TT DD, DD big-endian dims."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{source}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{source}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(
            f"{source}: IDX payload has {len(raw) - header} bytes, dims {dims} need {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e}); is the file truncated?") from None
    return parse_idx(raw, source=str(path))


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset lives: file names, the Debian folder, download mirrors and MD5s."""

    name: str
    files: dict[str, tuple[str, str]]  # split -> (images file, labels file)
    debian_dir: str | None
    debian_package: str | None
    mirrors: tuple[str, ...]
    md5: dict[str, str]


def _find(root: Path, filename: str) -> Path | None:
    for cand in (root / filename, root / filename.removesuffix(".gz")):
        if cand.is_file():
            return cand
    return None


def _download(url: str, dest: Path, md5: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=30) as r:
        data = r.read()
    got = hashlib.md5(data).hexdigest()
    if got != md5:
        raise UserError(f"download of {url} failed its checksum (md5 {got}, expected {md5})")
    atomic_write_bytes(dest, data)


def locate_idx(source: IdxSource, split: str, data_root: str | os.PathLike | None) -> tuple[Path, Path]:
    """Find the split's two files: in ``data_root`` only when one is given; else the Debian
    package folder, else the cache, else download (checksummed) into the cache."""
    images, labels = source.files[split]
    if data_root is not None:
        root = Path(data_root)
        found = [_find(root, images), _find(root, labels)]
        if None in found:
            missing = [f for f, p in zip((images, labels), found) if p is None]
            raise UserError(f"--data-root {root}: {', '.join(missing)} not found for {source.name}")
        return found[0], found[1]  # type: ignore[return-value]
    roots = [Path(source.debian_dir)] if source.debian_dir else []
    cache = default_cache_dir() / source.name
    roots.append(cache)
    for root in roots:
        found = [_find(root, images), _find(root, labels)]
        if None not in found:
            return found[0], found[1]  # type: ignore[return-value]
    errors = []
    for mirror in source.mirrors:
        try:
            for f in (images, labels):
                if _find(cache, f) is None:
                    _download(mirror + f, cache / f, source.md5[f])
            return cache / images, cache / labels
        except UserError:
            raise
        except Exception as e:  # no network, mirror down: try the next one
            errors.append(f"{mirror}: {e.__class__.__name__}")
    hint = f"apt-get install {source.debian_package}" if source.debian_package else ""
    raise UserError(
        f"{source.name} not found (looked in {', '.join(map(str, roots))}; download failed: "
        f"{'; '.join(errors) or 'no mirror'}); pass --data-root DIR with the IDX files"
        + (f" or run `{hint}`" if hint else "")
    )


def load_idx_split(source: IdxSource, split: str, data_root) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 1, H, W] and int64 labels [N]."""
    img_path, lab_path = locate_idx(source, split, data_root)
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3:
        raise UserError(f"{img_path}: expected images of shape [N, H, W], got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise UserError(f"{lab_path}: {labels.shape[0] if labels.ndim else 0} labels for {images.shape[0]} images")
    return (
        torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).unsqueeze(1),
        torch.from_numpy(np.array(labels, dtype=np.int64, copy=True)),
    )
