"""Reference-statistics cache, the domain metric, `sparsegan eval` and evaluation during training."""

import json

import numpy as np
import pytest
import torch

from conftest import needs_fashion
from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.metrics import DomainFeatures, FeatureStats, extract_from_images, fid
from sparsegan.metrics.domain import to_classifier_input
from sparsegan.metrics.generator import generator_sampler, load_run_generator
from sparsegan.metrics.reference import reference_images, reference_stats
from sparsegan.models import ModelSpec, build_models
from sparsegan.training import read_records


class _CountingExtractor:
    """A cheap stand-in extractor: mean and std of each image, counting calls."""

    name, dim, weights_hash = "toy", 2, "0" * 64

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        x = images.float().flatten(1)
        return torch.stack([x.mean(1), x.std(1)], dim=1)


def test_reference_cache_reused_and_keyed(tmp_path):
    root = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    ex = _CountingExtractor()
    a, path = reference_stats(ex, "mnist", "train", 32, 20, data_root=root, batch_size=8, progress=False)
    assert ex.calls == 3 and path.is_file() and a.count == 20
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    b, path_b = reference_stats(ex, "mnist", "train", 32, 20, data_root=root, batch_size=8, progress=False)
    assert ex.calls == 3 and path_b == path  # read back, not recomputed
    np.testing.assert_array_equal(a.sigma, b.sigma)
    _, other = reference_stats(ex, "mnist", "train", 28, 20, data_root=root, batch_size=8, progress=False)
    _, whole = reference_stats(ex, "mnist", "train", 32, None, data_root=root, batch_size=64, progress=False)
    assert len({path, other, whole}) == 3  # resolution and count are part of the key
    path.write_bytes(b"garbage")  # a damaged cache file is recomputed
    c, _ = reference_stats(ex, "mnist", "train", 32, 20, data_root=root, batch_size=8, progress=False)
    np.testing.assert_allclose(c.mu, a.mu)


def test_reference_images_padded_like_model_input(tmp_path):
    root = write_fake_mnist(tmp_path / "data", n_train=16, n_test=8)
    imgs = reference_images("mnist", "train", 32, 4, root)
    assert imgs.shape == (4, 1, 32, 32) and imgs.dtype == torch.uint8
    assert (imgs[..., :2, :] == 0).all()  # 28 -> 32 padded with black, as the conv models see it
    with pytest.raises(Exception, match="has 16 images"):
        reference_images("mnist", "train", 32, 17, root)


def test_domain_features_do_not_depend_on_batch_size(tmp_path):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8)
    ex = DomainFeatures("fashion-mnist")
    f1 = extract_from_images(ex, images, batch_size=1)
    f12 = extract_from_images(ex, images, batch_size=12)
    f5 = extract_from_images(ex, images, batch_size=5)
    assert f1.shape == (12, 128)
    torch.testing.assert_close(f1, f12, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f5, f12, rtol=1e-5, atol=1e-5)


def test_domain_classifier_input_and_errors():
    x = to_classifier_input(torch.full((2, 1, 28, 28), 255, dtype=torch.uint8))
    assert x.shape == (2, 1, 32, 32) and x[0, 0, 0, 0] == -1 and x[0, 0, 2, 2] == 1
    from sparsegan.errors import UserError

    with pytest.raises(UserError, match="1-channel"):
        to_classifier_input(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(UserError, match="no domain classifier is shipped for dataset 'mnist'"):
        DomainFeatures("mnist")


@needs_fashion
def test_shipped_domain_classifier_accuracy():
    from safetensors import safe_open

    from sparsegan.data import load_dataset
    from sparsegan.metrics.domain import load_domain_classifier, shipped_weights

    path = shipped_weights("fashion-mnist")
    assert path.stat().st_size < 400_000
    with safe_open(str(path), "pt") as f:
        assert float(f.metadata()["test_accuracy"]) >= 0.90
    model, _ = load_domain_classifier("fashion-mnist")
    test = load_dataset("fashion-mnist", "test")
    with torch.no_grad():
        pred = model(to_classifier_input(test.images[:2000])).argmax(1)
    assert (pred == test.labels[:2000]).float().mean().item() >= 0.88  # a subset of the >= 90 % test set


@needs_fashion
def test_acceptance_domain_real_vs_real_below_5_percent_of_untrained():
    """Two disjoint 2k training subsets vs 2k real and 2k samples of an untrained generator."""
    ex = DomainFeatures("fashion-mnist")
    real = reference_images("fashion-mnist", "train", 32, 4000)
    feats = extract_from_images(ex, real, batch_size=500)
    a, b = FeatureStats.of(feats[:2000]), FeatureStats.of(feats[2000:])
    torch.manual_seed(0)
    G, _ = build_models("dcgan", ModelSpec(channels=1))
    sample = generator_sampler(G, seed=0)
    fake = torch.cat([sample(500) for _ in range(4)])
    g = FeatureStats.of(extract_from_images(ex, fake, batch_size=500))
    real_real, real_fake = fid(a, b), fid(a, g)
    assert real_real < 0.05 * real_fake, (real_real, real_fake)


TINY_FLAGS = ["--dataset", "fashion-mnist", "--model", "mlp", "--model-width", "16", "--method", "static",
              "--steps", "6", "--log-every", "2", "--sample-every", "6", "--checkpoint-every", "6"]


def _finished(tiny_run, tmp_path, *extra):
    """A completed tiny run in tmp_path/run on fake data written to tmp_path/data: (run, data)."""
    data = write_fake_mnist(tmp_path / "data", n_train=256, n_test=32)
    out = tmp_path / "run"
    assert tiny_run(out, *extra, data=data) == 0
    return out, data


@pytest.fixture(scope="module")
def finished_run(tiny_run, tmp_path_factory):
    return _finished(tiny_run, tmp_path_factory.mktemp("finished"))


def test_train_with_eval_every_keeps_best(tiny_run, tmp_path):
    out, _ = _finished(tiny_run, tmp_path, "--eval-every", "2", "--eval-num-samples", "40", "--eval-batch-size", "16")
    evals = read_records(out, "eval")
    assert [r["step"] for r in evals] == [2, 4, 6]
    assert all(r["generator"] == "ema" and r["eval_mode"] is True and r["num_samples"] == 40 and
               r["num_ref"] == 40 and r["fid_domain"] > 0 for r in evals)
    summary = json.loads((out / "summary.json").read_text())
    best = min(evals, key=lambda r: r["fid_domain"])
    assert summary["metrics"]["best"]["step"] == best["step"]
    assert summary["metrics"]["best"]["fid_domain"] == best["fid_domain"]
    assert summary["metrics"]["final"]["step"] == 6 and summary["status"] == "completed"
    assert (out / "final" / "generator_ema_best.safetensors").is_file()
    # The kept file is the best step's EMA generator: re-evaluating it gives the logged value.
    from sparsegan.metrics import Evaluator

    G, _ = load_run_generator(out, "ema_best", data_root=str(tmp_path / "data"))
    ev = Evaluator(["fid_domain"], "fashion-mnist", 28, 40, data_root=str(tmp_path / "data"), batch_size=16,
                   progress=False)
    again = ev.run(generator_sampler(G, seed=0))["fid_domain"]["fid_domain"]
    assert again == pytest.approx(best["fid_domain"], rel=1e-9)


def test_eval_from_skips_the_early_evaluations_and_keeps_the_last(tiny_run, tmp_path):
    """--eval-from 3 with --eval-every 2 over 7 steps: the multiples of 2 from step 3 on, and the final step."""
    out, _ = _finished(tiny_run, tmp_path, "--steps", "7", "--eval-every", "2", "--eval-from", "3",
                       "--eval-num-samples", "8", "--eval-num-ref", "8")
    assert [r["step"] for r in read_records(out, "eval")] == [4, 6, 7]
    assert json.loads((out / "config.json").read_text())["eval_from"] == 3


def test_eval_command_writes_json_and_record(tiny_run, tmp_path, capsys):
    out, data = _finished(tiny_run, tmp_path)
    rc = main(["eval", str(out), "--metrics", "fid_domain", "--num-samples", "50", "--num-ref", "60",
               "--batch-size", "25", "--generator", "raw", "--no-progress", "--data-root", str(data)])
    assert rc == 0
    res = json.loads((out / "eval" / "fid_domain@50,ref=60,G=raw.json").read_text())  # keyed by its protocol
    assert res["metric"] == "fid_domain" and res["num_samples"] == 50 and res["num_ref"] == 60
    assert res["generator"] == "raw" and res["eval_mode"] is True and len(res["weights_sha256"]) == 64
    assert res["step"] == 6 and res["protocol"] == "fid_domain@50,ref=60,G=raw"
    assert res["generator_file"] == "final/generator.safetensors" and len(res["generator_sha256"]) == 64
    rec = read_records(out, "eval")[-1]
    assert rec["fid_domain"] == res["fid_domain"] and rec["generator"] == "raw" and rec["step"] == 6
    assert "fid_domain=" in capsys.readouterr().out
    # Same seed, same generator: the same value (deterministic sampling and features).
    main(["eval", str(out), "--metrics", "fid_domain", "--num-samples", "50", "--num-ref", "60",
          "--batch-size", "10", "--generator", "raw", "--no-progress", "--data-root", str(data)])
    assert json.loads((out / "eval" / "fid_domain@50,ref=60,G=raw.json").read_text())["fid_domain"] == pytest.approx(
        res["fid_domain"], rel=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--metrics", "fdi"], "unknown metric 'fdi'; valid: fid, fid_domain, is, kid, pr"),
    (["--metrics", "is"], "needs a full Inception with logits"),
    (["--num-ref", "1"], "must be at least 2"),
    (["--generator", "ema_best"], "only by runs trained with --eval-every"),
    (["--device", "cuda:7"], "--device cuda:7"),
])
def test_eval_command_user_errors(finished_run, capsys, args, message):
    out, data = finished_run
    capsys.readouterr()
    rc = main(["eval", str(out), "--no-progress", "--num-samples", "20", "--data-root", str(data), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_eval_command_not_a_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a sparsegan run folder" in capsys.readouterr().err


def test_train_rejects_unknown_eval_metric(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--eval-metrics", "fid,nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err


def test_inception_score_with_user_supplied_logits_model(tmp_path):
    """IS through the Evaluator with a (tiny) TorchScript classifier given as --is-weights."""
    from sparsegan.metrics import Evaluator

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 6))
    path = tmp_path / "logits.pt"
    torch.jit.script(net).save(str(path))
    gen = torch.Generator().manual_seed(0)
    sample = lambda n: torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=gen)  # noqa: E731
    ev = Evaluator(["is"], "fashion-mnist", 8, 20, is_weights=str(path), batch_size=7, progress=False)
    res = ev.run(sample)["is"]
    assert 1.0 <= res["is"] <= 6.0 and res["num_ref"] is None and res["num_samples"] == 20
    assert res["extractor"] == "inception-probabilities" and len(res["weights_sha256"]) == 64
