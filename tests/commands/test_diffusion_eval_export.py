"""A diffusion run measured, counted, exported and sampled through the sparse runtime, by the CLI:
its NFE (DDIM steps per image) is part of every evaluation's protocol label, and the exported
denoiser sampled on the sparse path gives the dense masked model's images."""

import json

import pytest
import torch
from safetensors.torch import load_file

from idx_files import write_fake_mnist
from run_checks import one_error_line
from sparsegan.cli import main
from sparsegan.inference.export import Export
from sparsegan.inference.runtime import sparsify
from sparsegan.protocols import Protocol, for_run
from sparsegan.training import read_records

TINY = ["--no-progress", "--model-width", "8", "--batch-size", "8", "--sparse-compute", "off"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("data"), n_train=64, n_test=16)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dm"
    assert main(["train", "--out", str(out), "--data-root", str(data), *TINY, "--model", "unet", "--method", "stu",
                 "--sparsity-g", "0.9", "--update-interval", "2", "--steps", "4", "--sample-steps", "2",
                 "--num-sample-images", "4", "--eval-every", "4", "--eval-metrics", "fid_domain",
                 "--eval-num-samples", "16", "--eval-batch-size", "16"]) == 0
    return out


def test_training_evaluation_names_the_nfe(run):
    (rec,) = read_records(run, "eval")
    assert rec["protocol"] == "@16,nfe=2" and rec["fid_domain"] >= 0


def test_eval_measures_at_the_runs_nfe_or_another(run, capsys):
    assert main(["eval", str(run), "--metrics", "fid_domain", "--num-samples", "16", "--batch-size", "16",
                 "--no-progress"]) == 0
    assert "fid_domain@16,nfe=2:" in capsys.readouterr().out
    assert main(["eval", str(run), "--metrics", "fid_domain", "--num-samples", "16", "--batch-size", "16",
                 "--sample-steps", "3", "--no-progress"]) == 0
    assert "3 denoiser calls per image" in capsys.readouterr().out
    two, three = (json.loads((run / "eval" / f"fid_domain@16,nfe={n}.json").read_text()) for n in (2, 3))
    assert two["protocol"] == "fid_domain@16,nfe=2" and three["protocol"] == "fid_domain@16,nfe=3"
    assert two["fid_domain"] != three["fid_domain"]  # other samples: other values, kept apart
    # a sweep reads a run's results under the run's own NFE when its eval block names none
    config = json.loads((run / "config.json").read_text())
    assert for_run(Protocol(16), config).suffix == "@16,nfe=2"
    assert for_run(Protocol(16), {"model": "dcgan", "sample_steps": 20}).suffix == "@16"


def test_eval_on_the_sparse_runtime_measures_what_the_masked_model_does(run, capsys):
    # the same seeded noise through the sparse runtime: the same images to float rounding, so the same
    # metric to rounding; the file and the record say which runtime drew the samples
    eval_args = ["eval", str(run), "--metrics", "fid_domain", "--num-samples", "16", "--batch-size", "16",
                 "--sample-steps", "4", "--no-progress"]
    assert main(eval_args) == 0
    dense = json.loads((run / "eval" / "fid_domain@16,nfe=4.json").read_text())
    assert main([*eval_args, "--runtime", "sparse"]) == 0
    sparse = json.loads((run / "eval" / "fid_domain@16,nfe=4.json").read_text())
    assert (dense["runtime"], sparse["runtime"]) == ("dense", "sparse")
    assert sparse["fid_domain"] == pytest.approx(dense["fid_domain"], rel=1e-3, abs=1e-3)
    assert [r["runtime"] for r in read_records(run, "eval")[-2:]] == ["dense", "sparse"]
    capsys.readouterr()
    for flags, why in ((["--train-mode"], "--runtime sparse samples in eval mode"),
                       (["--device", "meta"], "--runtime sparse runs on the CPU")):
        assert main([*eval_args, "--runtime", "sparse", *flags]) == 2
        assert why in one_error_line(capsys)


def test_protocol_nfe_round_trips():
    p = Protocol(1000, nfe=20)
    assert p.suffix == "@1000,nfe=20" and Protocol.parse(p.suffix) == p
    assert p.eval_args() == ["--num-samples", "1000", "--sample-steps", "20"]


def test_sample_steps_of_a_gan_run_is_refused(data, tmp_path, capsys):
    gan = tmp_path / "gan"
    assert main(["train", "--out", str(gan), "--data-root", str(data), *TINY, "--model", "mlp", "--method", "static",
                 "--steps", "1"]) == 0
    capsys.readouterr()
    assert main(["eval", str(gan), "--num-samples", "8", "--sample-steps", "5", "--no-progress"]) == 2
    assert "--sample-steps applies to diffusion models" in one_error_line(capsys)
    assert not (gan / "eval").exists()


def test_flops_counts_sampling_per_image(run, capsys):
    assert main(["flops", str(run)]) == 0
    out = capsys.readouterr().out
    assert "sampling FLOPs per image: 2 denoiser calls (NFE)" in out
    summary = json.loads((run / "summary.json").read_text())["flops"]
    per_call = summary["inference_per_sample"]["G"]
    assert summary["sampling_per_image"]["dense"] == pytest.approx(2 * per_call["dense"])
    assert per_call["relative"] < 0.2  # 90 % of the weights inactive (ERK): a fraction of the dense FLOPs


def test_export_and_sparse_runtime_sample_the_denoiser(run, tmp_path, capsys):
    path = tmp_path / "dm.csr.safetensors"
    assert main(["export", str(run), "--out", str(path)]) == 0
    ex = Export.read(path)
    assert ex.header["model"] == "unet" and ex.header["spec"]["sample_steps"] == 2
    assert ex.header["density"] == pytest.approx(0.1, abs=1e-4)
    G = ex.generator()
    S = sparsify(G, "torch-csr", plan_cache=False)  # the CSR products everywhere (auto may keep layers dense)
    z = G.sample_z(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        dense, sparse = G(z), S(z)
    assert dense.shape == (2, 1, 32, 32) and torch.allclose(dense, sparse, atol=1e-3)
    capsys.readouterr()
    assert main(["bench", str(path), "--batch-sizes", "2", "--repeats", "2", "--warmup", "1",
                 "--mode", "torch-csr"]) == 0
    out = capsys.readouterr().out
    assert "model unet, G density 0.1000" in out and "speedup" in out


def test_evaluation_during_training_on_the_sparse_runtime(data, tmp_path, run):
    # the same run trained again with its evaluations drawn on the sparse runtime: the same training
    # (evaluation changes no weight), the same metric to rounding, and the record says which runtime
    out = tmp_path / "dm-sparse-eval"
    assert main(["train", "--out", str(out), "--data-root", str(data), *TINY, "--model", "unet", "--method", "stu",
                 "--sparsity-g", "0.9", "--update-interval", "2", "--steps", "4", "--sample-steps", "2",
                 "--num-sample-images", "4", "--eval-every", "4", "--eval-metrics", "fid_domain",
                 "--eval-num-samples", "16", "--eval-batch-size", "16", "--eval-runtime", "sparse"]) == 0
    (dense,) = [r for r in read_records(run, "eval") if r.get("source") == "training"]
    (sparse,) = read_records(out, "eval")
    assert "runtime" not in dense and sparse["runtime"] == "sparse"
    assert sparse["protocol"] == dense["protocol"] == "@16,nfe=2"
    assert sparse["fid_domain"] == pytest.approx(dense["fid_domain"], rel=1e-3, abs=1e-3)
    for f in ("generator.safetensors", "generator_ema.safetensors"):
        wa, wb = load_file(run / "final" / f), load_file(out / "final" / f)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), f


def test_the_bare_loop_refuses_a_sparse_eval_runtime_it_was_not_handed(data, tmp_path):
    # the runtime comes from the launcher (the loop imports no inference): without it, one clear error
    from sparsegan.config import build_config
    from sparsegan.errors import UserError
    from sparsegan.training import loop

    cfg = build_config({"model": "unet", "model_width": 8, "batch_size": 8, "steps": 2, "data_root": str(data),
                        "out": str(tmp_path / "bare"), "eval_every": 2, "eval_metrics": "fid_domain",
                        "eval_num_samples": 16, "eval_batch_size": 16, "eval_runtime": "sparse",
                        "sparse_compute": "off", "sample_steps": 2, "num_sample_images": 4})
    with pytest.raises(UserError, match="--eval-runtime sparse needs the sparse runtime"):
        loop.train(cfg, progress=False)
