"""Reference (real-image) features, computed once per (dataset, split, resolution, extractor +
weights hash, count) and cached under a hash of those; written atomically.

Real images are put through exactly what a generated image goes through: the model's pixel
pipeline at the generator's resolution (28x28 padded to 32x32 for the conv models), then uint8.
A count smaller than the split takes the first ``count`` images of a fixed permutation (seed 0),
so the same count always means the same images; ``count=None`` is the whole split (the papers'
protocol: statistics of the whole training set).

The cache file keeps the features themselves (float32), not only mean and covariance, because
KID and precision/recall need them: about 8 KB per real image for Inception (400 MB for 50k).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch

from sparsegan.data import load_dataset, to_model_range, to_uint8
from sparsegan.errors import UserError
from sparsegan.files import atomic_write_bytes, default_cache_dir
from sparsegan.metrics.features import Extractor, FeatureStats, extract_from_images

CACHE_VERSION = 1
SUBSET_SEED = 0


def reference_images(dataset: str, split: str, resolution: int, count: int | None, data_root=None) -> torch.Tensor:
    """uint8 [count, C, resolution, resolution] real images, as the generator's images look."""
    data = load_dataset(dataset, split, data_root, resolution=resolution)
    n = len(data)
    if count is not None and not 2 <= count <= n:
        raise UserError(f"--num-ref {count}: the {dataset} {split} split has {n} images (need 2..{n})")
    if count is None or count == n:
        idx = torch.arange(n)
    else:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))[:count]
    if getattr(data, "lazy", False):  # image folders: decoded (center crop, resize) at the resolution
        images = torch.cat([data.batch(idx[i : i + 256])[0] for i in range(0, len(idx), 256)])
    else:
        images = data.images[idx]
    if images.shape[-1] == resolution:
        return images
    return to_uint8(to_model_range(images, resolution))


# Datasets whose images are whatever their folder holds: the folder is part of what was measured.
FOLDER_DATASETS = ("image-folder", "unpaired")


def cache_key(dataset: str, split: str, resolution: int, extractor: Extractor, count: int | None,
              root=None) -> dict:
    key = {"version": CACHE_VERSION, "dataset": dataset, "split": split, "resolution": resolution,
           "extractor": extractor.name, "weights_sha256": extractor.weights_hash,
           "count": "all" if count is None else count, "subset_seed": SUBSET_SEED}
    if dataset in FOLDER_DATASETS and root is not None:
        key["root"] = str(Path(root).resolve())
    return key


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    name = f"{key['dataset']}-{key['split']}-{key['resolution']}px-{key['extractor']}-{key['count']}-{digest}.npz"
    return default_cache_dir() / "refstats" / name


def reference_stats(extractor: Extractor, dataset: str, split: str, resolution: int, count: int | None, *,
                    data_root=None, batch_size: int = 64, progress: bool = True) -> tuple[FeatureStats, Path]:
    """The cached reference statistics (features, mean, covariance), computed on first use."""
    key = cache_key(dataset, split, resolution, extractor, count, data_root)
    path = cache_path(key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["key"])) == key:
                    return FeatureStats(z["features"].astype(np.float64), z["mu"], z["sigma"]), path
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed and replaced
    images = reference_images(dataset, split, resolution, count, data_root)
    feats = extract_from_images(extractor, images, batch_size=batch_size, progress=progress,
                                desc=f"reference {dataset}/{split} {extractor.name}")
    stats = FeatureStats.of(feats)
    buf = io.BytesIO()
    np.savez(buf, key=json.dumps(key, sort_keys=True), features=feats.numpy().astype(np.float32),
             mu=stats.mu, sigma=stats.sigma)
    atomic_write_bytes(path, buf.getvalue())
    return stats, path
