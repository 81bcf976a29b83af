"""Named metric protocols over shared features, and the Evaluator that runs them.

A metric names the extractor it needs and a function of (generated, real) feature statistics.
The Evaluator loads each extractor once, keeps the reference statistics in memory (and in the
cache), and passes every generated batch through every extractor in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sparsegan.errors import UserError
from sparsegan.metrics.features import (
    Extractor,
    FeatureStats,
    ImageSampler,
    extract,
    gather_batches,
    image_batches,
)
from sparsegan.metrics.fid import fid
from sparsegan.metrics.inception_score import inception_score
from sparsegan.metrics.kid import NUM_SUBSETS, kid, kid_subset_size
from sparsegan.metrics.precision_recall import precision_recall
from sparsegan.metrics.reference import reference_stats
from sparsegan.protocols import DEFAULT_BATCH_SIZE
from sparsegan.registry import Registry


@dataclass(frozen=True)
class Metric:
    name: str
    extractor: str  # "inception" | "domain" | "probabilities"
    compute: Callable[[FeatureStats, FeatureStats | None], dict[str, float]]
    lower_is_better: bool = True
    needs_reference: bool = True
    needs_encoder: bool = False  # an autoencoder's held-out reconstruction: not a function of samples


METRICS: Registry[Metric] = Registry("metric")


def _add(m: Metric) -> None:
    METRICS.register(m.name)(m)


_add(Metric("fid", "inception", lambda f, r: {"fid": fid(f, r)}))
def _kid(f: FeatureStats, r: FeatureStats) -> dict[str, float]:
    mean, std = kid(f.features, r.features)
    return {"kid": mean, "kid_std": std, "kid_subset_size": kid_subset_size(f.count, r.count),
            "kid_subsets": NUM_SUBSETS}


_add(Metric("kid", "inception", _kid))
_add(Metric("pr", "inception",
            lambda f, r: dict(zip(("precision", "recall"), precision_recall(f.features, r.features))),
            lower_is_better=False))
_add(Metric("fid_domain", "domain", lambda f, r: {"fid_domain": fid(f, r)}))
_add(Metric("is", "probabilities", lambda f, r: dict(zip(("is", "is_std"), inception_score(f.features))),
            lower_is_better=False, needs_reference=False))


def _needs_encoder(f: FeatureStats, r: FeatureStats | None) -> dict[str, float]:
    raise UserError("recon needs the encoder, not samples: it is evaluated during training of --model ae|vae")


# Held-out reconstruction error of an AE / VAE (sparsegan.metrics.reconstruction), during training.
_add(Metric("recon", "encoder", _needs_encoder, needs_reference=False, needs_encoder=True))


def parse_metrics(text: str | list[str]) -> list[str]:
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise UserError(f"no metric given; valid: {', '.join(METRICS.names())}")
    for n in names:
        METRICS.get(n)  # unknown names fail listing the valid ones
    return list(dict.fromkeys(names))


@dataclass
class Evaluator:
    """Evaluate image samplers on a fixed protocol (metrics, dataset/split, counts, extractors)."""

    metrics: list[str]
    dataset: str
    resolution: int
    num_samples: int
    num_ref: int | None = None  # None: the same as num_samples; 0: the whole split
    split: str = "train"
    data_root: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = "cpu"
    inception_weights: str | None = None
    is_weights: str | None = None
    progress: bool = True
    domain: str | None = None  # whose domain classifier fid_domain uses (default: the dataset's)
    _extractors: dict[str, Extractor] = field(default_factory=dict, repr=False)
    _refs: dict[str, FeatureStats] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.metrics = parse_metrics(self.metrics)
        if any(METRICS.get(n).needs_encoder for n in self.metrics):
            raise UserError("recon is an autoencoder's held-out reconstruction error, measured during training "
                            "(--model ae|vae --eval-every N --eval-metrics recon), not on samples")
        if self.num_samples < 2:
            raise UserError(f"--num-samples must be at least 2, got {self.num_samples}")
        if self.batch_size <= 0:
            raise UserError(f"--batch-size must be positive, got {self.batch_size}")
        if self.num_ref is not None and self.num_ref < 0:
            raise UserError(f"--num-ref must be >= 0 (0: the whole split), got {self.num_ref}")
        if "kid" in self.metrics and min(self.num_samples, self.ref_count or 4) < 4:
            raise UserError("kid needs at least 4 generated and 4 real images (its subsets hold at most half "
                            f"of each set, so that they differ), got {self.num_samples} and {self.ref_count}")

    @property
    def ref_count(self) -> int | None:
        if self.num_ref is None:
            return self.num_samples
        return None if self.num_ref == 0 else self.num_ref

    def extractor(self, kind: str) -> Extractor:
        if kind not in self._extractors:
            if kind == "inception":
                from sparsegan.metrics.inception import InceptionFeatures

                self._extractors[kind] = InceptionFeatures(self.inception_weights, self.device)
            elif kind == "domain":
                from sparsegan.metrics.domain import DomainFeatures

                self._extractors[kind] = DomainFeatures(self.domain or self.dataset, self.device)
            elif kind == "probabilities":
                from sparsegan.metrics.inception_score import InceptionProbabilities

                self._extractors[kind] = InceptionProbabilities(self.is_weights, self.device)
            else:
                raise KeyError(kind)
        return self._extractors[kind]

    def reference(self, kind: str) -> FeatureStats:
        if kind not in self._refs:
            self._refs[kind], _ = reference_stats(
                self.extractor(kind), self.dataset, self.split, self.resolution, self.ref_count,
                data_root=self.data_root, batch_size=self.batch_size, progress=self.progress)
        return self._refs[kind]

    def prepare(self) -> None:
        """Load extractors and reference statistics now (fail early, before any sampling)."""
        for name in self.metrics:
            m = METRICS.get(name)
            self.extractor(m.extractor)
            if m.needs_reference:
                self.reference(m.extractor)

    def run(self, sample: ImageSampler, dist=None) -> dict[str, dict] | None:
        """metric name -> {values..., num_samples, num_ref, protocol fields}. With ``dist`` (a
        DistContext of several processes) every rank generates and extracts its share of the
        batches, rank 0 gathers them in one process's order and computes the metrics; the other
        ranks return None."""
        split = dist is not None and dist.enabled
        if not split or dist.is_main:
            self.prepare()  # the reference statistics: rank 0's alone
        kinds = {METRICS.get(n).extractor for n in self.metrics}
        extractors = {k: self.extractor(k) for k in sorted(kinds)}
        batches = image_batches(sample, self.num_samples, self.batch_size, rank=dist.rank if split else 0,
                                world_size=dist.world_size if split else 1)
        feats = extract(extractors, batches, self.num_samples // (dist.world_size if split else 1),
                        desc="generated " + "+".join(e.name for e in extractors.values()),
                        progress=self.progress and (not split or dist.is_main))
        if split:
            feats = {k: gather_batches(v, self.batch_size, self.num_samples, dist) for k, v in feats.items()}
            if not dist.is_main:
                return None
        fake = {k: FeatureStats.of(v) for k, v in feats.items()}
        out = {}
        for name in self.metrics:
            m = METRICS.get(name)
            ref = self.reference(m.extractor) if m.needs_reference else None
            values = m.compute(fake[m.extractor], ref)
            ex = self._extractors[m.extractor]
            out[name] = {**values, "num_samples": self.num_samples,
                         "num_ref": ref.count if ref is not None else None,
                         "dataset": self.dataset, "split": self.split, "resolution": self.resolution,
                         "extractor": ex.name, "weights_sha256": ex.weights_hash}
        return out


def headline(name: str, result: dict) -> float:
    """The value a metric is ranked by (fid, kid, fid_domain: lower; pr: precision+recall / 2; is)."""
    if name == "pr":
        return 0.5 * (result["precision"] + result["recall"])
    if name == "recon":
        return float(result["recon_mse"])
    return float(result[name])
