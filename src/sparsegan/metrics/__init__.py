"""Evaluation: TF-exact Inception features (offline, hash-pinned), FID, KID, precision/recall,
Inception Score (with a user-supplied full Inception), and the cheap domain metric fid_domain.

Metrics see a generator only as an image sampler: ``n -> uint8 [n, C, H, W]``.
"""

from sparsegan.metrics.domain import DomainClassifier, DomainFeatures
from sparsegan.metrics.evaluate import METRICS, Evaluator, Metric, parse_metrics
from sparsegan.metrics.features import FeatureStats, ImageSampler, extract, extract_from_images
from sparsegan.metrics.fid import fid, frechet_distance
from sparsegan.metrics.generator import generator_sampler, load_run_generator
from sparsegan.metrics.inception import InceptionFeatures, inception_features, locate_inception_weights
from sparsegan.metrics.inception_score import inception_score
from sparsegan.metrics.kid import kid, mmd2_unbiased
from sparsegan.metrics.precision_recall import precision_recall
from sparsegan.metrics.reconstruction import reconstruction_error
from sparsegan.metrics.reference import reference_stats

__all__ = [
    "METRICS", "DomainClassifier", "DomainFeatures", "Evaluator", "FeatureStats", "ImageSampler",
    "InceptionFeatures", "Metric", "extract", "extract_from_images", "fid", "frechet_distance",
    "generator_sampler", "inception_features", "inception_score", "kid", "load_run_generator",
    "locate_inception_weights", "mmd2_unbiased", "parse_metrics", "precision_recall", "reconstruction_error",
    "reference_stats",
]
