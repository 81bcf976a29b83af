"""The TF-Inception features with the real pinned weights (skipped where they are not installed).

On a 2-core CPU Inception takes about 0.25 s per image (benchmarks/metrics/results/metrics_*.json), so
the 6k-image acceptance test is marked slow; the default suite keeps a 2-image check. The slow test runs
on CUDA where there is one.
"""

import pytest
import torch

from conftest import needs_fashion
from sparsegan.errors import UserError
from sparsegan.metrics import FeatureStats, InceptionFeatures, extract_from_images, fid, inception_features
from sparsegan.metrics.generator import generator_sampler
from sparsegan.metrics.inception import locate_inception_weights
from sparsegan.metrics.reference import reference_images
from sparsegan.models import ModelSpec, build_models


def _has_weights() -> bool:
    try:
        locate_inception_weights()
        return True
    except UserError:
        return False


needs_inception = pytest.mark.skipif(not _has_weights(), reason="TF-Inception weights not installed")


@needs_inception
def test_inception_features_batch_size_and_gray():
    torch.manual_seed(0)
    gray = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    ex = InceptionFeatures()
    one = extract_from_images(ex, gray, batch_size=1)
    two = extract_from_images(ex, gray, batch_size=2)
    assert one.shape == (2, 2048) and one.dtype == torch.float32
    torch.testing.assert_close(one, two, rtol=1e-4, atol=1e-4)
    rgb = ex(gray.expand(-1, 3, -1, -1).contiguous())
    torch.testing.assert_close(rgb, two, rtol=0, atol=0)  # gray is exactly R = G = B
    assert (one >= 0).all()  # pool3 follows a ReLU
    assert torch.equal(inception_features(gray[:1]), one[:1])  # the public function, same features


@pytest.mark.slow
@needs_inception
@needs_fashion
def test_acceptance_inception_real_vs_real_below_5_percent_of_untrained():
    # CUDA where there is one (its features match the CPU's to ~1e-6 relative: benchmarks/metrics/results).
    ex = InceptionFeatures(device="cuda" if torch.cuda.is_available() else "cpu")
    real = reference_images("fashion-mnist", "train", 32, 4000)
    feats = extract_from_images(ex, real, batch_size=50, progress=True)
    torch.manual_seed(0)
    G, _ = build_models("dcgan", ModelSpec(channels=1))
    sample = generator_sampler(G, seed=0)
    fake = torch.cat([sample(500) for _ in range(4)])
    g = FeatureStats.of(extract_from_images(ex, fake, batch_size=50, progress=True))
    real_real = fid(FeatureStats.of(feats[:2000]), FeatureStats.of(feats[2000:]))
    real_fake = fid(FeatureStats.of(feats[:2000]), g)
    assert real_real < 0.05 * real_fake, (real_real, real_fake)


@needs_inception
def test_channels_last_input_keeps_the_features():
    # The extractor feeds NHWC images on the CPU in micro-batches (faster); the features are those
    # of one NCHW batch to 1e-5, for a batch that is not a multiple of the micro-batch too.
    from sparsegan.metrics.inception import CPU_MICRO_BATCH, preprocess

    torch.manual_seed(1)
    images = torch.randint(0, 256, (2 * CPU_MICRO_BATCH + 1, 3, 32, 32), dtype=torch.uint8)
    ex = InceptionFeatures()
    with torch.no_grad():
        reference = ex.model(preprocess(images)).float()  # NCHW, contiguous
    got = ex(images)
    assert got.shape == reference.shape
    assert float((got - reference).norm() / reference.norm()) < 1e-5
    assert float(((got - reference).abs().max(1).values / reference.abs().max(1).values).max()) < 1e-5
