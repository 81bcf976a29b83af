"""The domain metric's feature extractor: a small CNN classifier trained on the dataset's
training split; "fid_domain" is the Frechet distance in its penultimate (128-d) features.

Cheap on a CPU (about 10 M multiply-adds per image versus 5.7 G for Inception at 299x299),
so it can track training every few hundred steps. Its values are comparable only with other
fid_domain values of the same weights (the weights' hash is part of every cache key and record).
The weights ship with the package (``sparsegan/assets``) together with the script that trained
them (``scripts/train_domain_classifier.py``).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsegan.errors import UserError

INPUT_RESOLUTION = 32
FEATURE_DIM = 128
# dataset name -> shipped weights file in sparsegan/assets
SHIPPED = {"fashion-mnist": "domain_fashion-mnist.safetensors"}


class DomainClassifier(nn.Module):
    """conv-BN-ReLU x4 (32 -> 4 px, three 2x2 max-pools), global average pool, fc 64 -> 128
    (the features), fc 128 -> classes. Input: float [N, 1, 32, 32] in [-1, 1]."""

    def __init__(self, channels: int = 1, num_classes: int = 10):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(channels, 16), *block(16, 32), nn.MaxPool2d(2),  # 32 -> 16
            *block(32, 64), nn.MaxPool2d(2),  # 16 -> 8
            *block(64, 64), nn.MaxPool2d(2),  # 8 -> 4
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.features = nn.Sequential(nn.Linear(64, FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """[N, 1, 32, 32] -> penultimate features [N, 128]."""
        return self.features(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


def to_classifier_input(images: Tensor) -> Tensor:
    """uint8 [N, 1, H, W] -> float [N, 1, 32, 32] in [-1, 1]: 28x28 zero-padded (as the conv
    models see Fashion-MNIST), other sizes resized bilinearly."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise UserError("the domain classifier expects uint8 images [N, C, H, W]")
    if images.shape[1] != 1:
        raise UserError(f"fid_domain is defined for 1-channel datasets; got {images.shape[1]} channels")
    x = images.float().div(127.5).sub(1.0)
    h = x.shape[-1]
    if h == INPUT_RESOLUTION:
        return x
    if h < INPUT_RESOLUTION and (INPUT_RESOLUTION - h) % 2 == 0:
        p = (INPUT_RESOLUTION - h) // 2
        return F.pad(x, (p, p, p, p), value=-1.0)
    return F.interpolate(x, size=(INPUT_RESOLUTION, INPUT_RESOLUTION), mode="bilinear", align_corners=False,
                         antialias=True)


def shipped_weights(dataset: str) -> Path:
    if dataset not in SHIPPED:
        raise UserError(
            f"no domain classifier is shipped for dataset {dataset!r} (shipped: {', '.join(SHIPPED)}); "
            "train one with scripts/train_domain_classifier.py or use --metrics fid"
        )
    path = Path(str(resources.files("sparsegan") / "assets" / SHIPPED[dataset]))
    if not path.is_file():
        raise UserError(f"the domain classifier weights {path} are missing from the installation")
    return path


def load_domain_classifier(dataset: str, path: str | Path | None = None) -> tuple[DomainClassifier, str]:
    """(classifier in eval mode, SHA-256 of its weights file)."""
    from safetensors.torch import load_file

    p = Path(path) if path is not None else shipped_weights(dataset)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    state = {k: v.float() for k, v in load_file(str(p)).items()}
    model = DomainClassifier(channels=1, num_classes=state["head.weight"].shape[0])
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # not shipped: unused in eval
    if missing or unexpected:
        raise UserError(f"{p} is not a domain classifier (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), digest


class DomainFeatures:
    """Callable: uint8 images [N, 1, H, W] -> float32 penultimate features [N, 128] (CPU)."""

    dim = FEATURE_DIM

    def __init__(self, dataset: str, device: str | torch.device = "cpu", weights: str | Path | None = None):
        model, self.weights_hash = load_domain_classifier(dataset, weights)
        self.name = f"domain-{dataset}"
        self.device = torch.device(device)
        self.model = model.to(self.device)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        return self.model.embed(to_classifier_input(images).to(self.device)).float().cpu()
