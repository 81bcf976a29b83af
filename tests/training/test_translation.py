"""CycleGAN through the real entry point: the objective by hand, every method on a tiny pair of
Fashion-MNIST-format domains, exact resume, ticket transfer between domain pairs, bad input."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.data.unpaired import write_fashion_pair
from sparsegan.training import read_records
from sparsegan.training.translation import ImagePool, discriminator_loss, generator_loss, lr_factor


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pair")
    fm = write_fake_mnist(tmp / "fm", n_train=160, n_test=40)
    write_fashion_pair(tmp / "sneaker-boot", "sneaker", "ankle-boot", data_root=fm)
    write_fashion_pair(tmp / "shirt-coat", "shirt", "coat", data_root=fm)
    return tmp


TINY_FLAGS = ["--model", "cyclegan", "--dataset", "unpaired", "--model-width", "4", "--batch-size", "4",
              "--update-interval", "1", "--log-every", "2", "--sample-every", "4", "--checkpoint-every", "3",
              "--num-sample-images", "12", "--allow-ignored"]


# --- the objective by hand -----------------------------------------------------------------
def test_lr_is_constant_then_decays_linearly_like_the_reference_epochs():
    # 10 steps, decay after 5: the reference's 1 - max(0, e + 1 - 5) / (5 + 1) for 0-based epoch e.
    assert [lr_factor(s, 10, 0.5) for s in (1, 5)] == [1.0, 1.0]
    assert lr_factor(6, 10, 0.5) == pytest.approx(5 / 6) and lr_factor(10, 10, 0.5) == pytest.approx(1 / 6)
    assert lr_factor(10, 10, 1.0) == 1.0


class _Identity(nn.Module):
    def forward(self, x, direction):
        return x


class _Constant(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x, domain):
        return torch.full((x.shape[0], 1, 2, 2), self.value)


def test_generator_and_discriminator_losses_by_hand():
    a, b = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    # Identity generators: no cycle or identity error; D says 0 everywhere: LS(0, 1) = 1 per direction.
    total, parts, (fake_a, fake_b) = generator_loss(_Identity(), _Constant(0.0), a, b, 10.0, 0.5)
    assert float(parts["loss_g_gan"]) == 2.0 and float(parts["loss_cycle"]) == 0.0
    assert float(parts["loss_identity"]) == 0.0 and float(total) == 2.0
    assert torch.equal(fake_b, a) and torch.equal(fake_a, b)
    # A generator that adds 1: the cycle adds 2, |2| L1 per direction x lambda 10; identity |1| x 5.
    class _AddOne(nn.Module):
        def forward(self, x, direction):
            return x + 1

    _, parts, _ = generator_loss(_AddOne(), _Constant(1.0), a, b, 10.0, 0.5)
    assert float(parts["loss_g_gan"]) == 0.0
    assert float(parts["loss_cycle"]) == pytest.approx(10 * (2 + 2))
    assert float(parts["loss_identity"]) == pytest.approx(0.5 * 10 * (1 + 1))
    # D says 0.5 to everything: 0.5 ((0.5 - 1)^2 + 0.5^2) = 0.25.
    assert float(discriminator_loss(_Constant(0.5), "a", a, b)) == pytest.approx(0.25)


def test_image_pool_keeps_fifty_and_swaps_half_the_time():
    gen = torch.Generator().manual_seed(0)
    pool = ImagePool(3, gen)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool.images) == 3  # filling: returned as given
    new = torch.arange(100.0, 300.0).view(200, 1, 1, 1)
    out = pool.query(new)
    swapped = out != new
    assert 70 < int(swapped.sum()) < 130  # about half come from the history (p = 1/2)
    assert all(x.item() in out[swapped] or x.item() < 3 for x in out[swapped])  # older images only
    assert all(x.item() >= 100 for x in pool.images)  # and the history is refreshed
    state = pool.state_dict()
    again = ImagePool(3, torch.Generator())
    again.load_state_dict(state, torch.device("cpu"))
    assert all(torch.equal(x, y) for x, y in zip(again.images, pool.images))
    assert torch.equal(ImagePool(0, gen).query(new), new)  # size 0: no history


# --- through the CLI -----------------------------------------------------------------------
@pytest.mark.parametrize("method, extra", [
    ("dense", []),
    ("static", ["--sparsity-g", "0.8", "--sparsity-d", "0.5"]),
    ("stu", ["--sparsity-g", "0.8", "--sparsity-d", "0.5"]),
    ("gmp", ["--sparsity-g", "0.8", "--gmp-interval", "1"]),
    ("snip", ["--sparsity-g", "0.8", "--sparsity-d", "0.5"]),
    ("early_bird", ["--sparsity-g", "0.8", "--eb-interval", "1", "--eb-window", "2", "--eb-threshold", "1.0"]),
])
def test_every_method_trains_both_generators(tiny_run, pair, tmp_path, method, extra):
    out = tmp_path / method
    assert tiny_run(out, "--method", method, "--steps", "4", *extra, data=pair / "sneaker-boot") == 0
    summary = json.loads((out / "summary.json").read_text())
    masks = load_file(out / "final" / "masks.safetensors")
    g = {k: v for k, v in masks.items() if k.startswith("G.")}
    assert {k.split(".")[1] for k in g} == {"ab", "ba"}  # both generators carry masks
    if method != "dense":
        density = sum(int(v.sum()) for v in g.values()) / sum(v.numel() for v in g.values())
        assert density == pytest.approx(0.2, abs=2e-3) and summary["density"]["G"] == pytest.approx(density)
    train = read_records(out, "train")
    assert train and {"loss_cycle", "loss_identity", "loss_d_a", "loss_d_b"} <= set(train[-1])
    assert "error" not in summary["flops"] and summary["flops"]["train"]["kind"] == "translation"
    grids = sorted((out / "samples").glob("*.png"))
    assert grids  # rows of: A, A->B, A->B->A, B, B->A, B->A->B


def test_resume_is_bitwise_exact_with_the_fake_history_and_crops(tiny_run, pair, tmp_path):
    args = ["--method", "stu", "--sparsity-g", "0.8", "--sparsity-d", "0.5"]
    assert tiny_run(tmp_path / "straight", *args, "--steps", "6", data=pair / "sneaker-boot") == 0
    # The same run stopped after its step-3 checkpoint (the lr schedule and p's decay span --steps).
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    for later in ("final", "checkpoints/state-00000006.pt", "summary.json"):
        path = tmp_path / "resumed" / later
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert tiny_run(tmp_path / "resumed", *args, "--steps", "6", "--resume", "auto", data=pair / "sneaker-boot") == 0
    assert [r["step"] for r in read_records(tmp_path / "resumed", "resume")] == [3]
    for f in ("generator", "generator_ema", "discriminator", "masks"):
        x = load_file(tmp_path / "straight" / "final" / f"{f}.safetensors")
        y = load_file(tmp_path / "resumed" / "final" / f"{f}.safetensors")
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f


def test_a_generator_ticket_transfers_to_another_domain_pair(tiny_run, pair, tmp_path):
    src = tmp_path / "ticket"
    assert tiny_run(src, "--method", "stu", "--sparsity-g", "0.8", "--steps", "4", data=pair / "sneaker-boot") == 0
    out = tmp_path / "transfer"
    assert tiny_run(out, "--method", "static", "--sparsity-g", "0.8", "--steps", "2",
                    "--masks-from", str(src), data=pair / "shirt-coat") == 0
    a, b = load_file(src / "final" / "masks.safetensors"), load_file(out / "final" / "masks.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("G."))
    assert read_records(out, "ticket")


def test_imp_rounds_prune_both_generators(tiny_run, pair, tmp_path):
    out = tmp_path / "imp"
    assert tiny_run(out, "--method", "imp", "--sparsity-g", "0.36", "--steps", "2", data=pair / "sneaker-boot") == 0
    rounds = read_records(out, "round")
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[-1]["density"]["G"] == pytest.approx(0.64, abs=1e-3)


def test_bad_input_is_one_line(tiny_run, pair, tmp_path, capsys):
    def err(*args):
        assert tiny_run(tmp_path / "r", "--steps", "2", *args) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1, lines
        return lines[0]

    assert "--dataset unpaired" in err("--dataset", "fashion-mnist", "--data-root", str(pair / "sneaker-boot"))
    assert "needs --data-root" in err()
    assert "trainA/ not found" in err("--data-root", str(pair))
    half = tmp_path / "half"
    shutil.copytree(pair / "sneaker-boot" / "trainA", half / "trainA")
    assert "trainB/ not found" in err("--data-root", str(half))
    empty = Path(tmp_path / "empty")
    for name in ("trainA", "trainB", "testA", "testB"):
        (empty / name).mkdir(parents=True)
    assert "no images" in err("--data-root", str(empty))
    assert "translation model" in err("--model", "dcgan", "--data-root", str(pair / "sneaker-boot"))
    assert not (tmp_path / "r").exists()


def test_data_command_writes_the_pair(tmp_path, capsys):
    fm = write_fake_mnist(tmp_path / "fm", n_train=50, n_test=10)
    assert main(["data", "fashion-pair", "--classes", "bag,dress", "--out", str(tmp_path / "p"),
                 "--data-root", str(fm)]) == 0
    assert "trainA" in capsys.readouterr().out
    assert all((tmp_path / "p" / d).is_dir() for d in ("trainA", "trainB", "testA", "testB"))


def test_pf_prunes_a_dense_translation_run_and_adapt_is_refused(tiny_run, pair, tmp_path, capsys):
    dense = tmp_path / "dense"
    assert tiny_run(dense, "--method", "dense", "--steps", "2", data=pair / "sneaker-boot") == 0
    pf = tmp_path / "pf"
    assert tiny_run(pf, "--method", "pf", "--from", str(dense), "--sparsity-g", "0.5", "--steps", "2",
                    data=pair / "sneaker-boot") == 0
    assert json.loads((pf / "summary.json").read_text())["density"]["G"] == pytest.approx(0.5, abs=1e-3)
    assert tiny_run(tmp_path / "adapt", "--method", "adapt", "--steps", "2", data=pair / "sneaker-boot") == 2
    assert "noise-to-image GANs" in capsys.readouterr().err


class _Direction(nn.Module):
    """Identity translation, with the attributes the evaluation reads."""

    def forward(self, x, direction):
        return x


def test_translation_metrics_of_an_identity_between_equal_domains_are_zero(pair, tmp_path):
    from sparsegan.metrics.translation import evaluate_translation

    same = tmp_path / "same"
    for split in ("train", "test"):
        shutil.copytree(pair / "sneaker-boot" / f"{split}A", same / f"{split}A")
        shutil.copytree(pair / "sneaker-boot" / f"{split}A", same / f"{split}B")
    shutil.copy(pair / "sneaker-boot" / "dataset.json", same / "dataset.json")
    results, protocol = evaluate_translation(_Direction(), ["fid_domain"], data_root=str(same), resolution=28,
                                             channels=1, batch_size=16)
    assert results["fid_domain_ab"]["fid_domain_ab"] == pytest.approx(0.0, abs=1e-6)
    assert results["fid_domain"]["fid_domain"] == pytest.approx(0.0, abs=1e-6)
    # Between the real domains, the identity is far from both targets; the mean is the mean.
    results, _ = evaluate_translation(_Direction(), ["fid_domain"], data_root=str(pair / "sneaker-boot"),
                                      resolution=28, channels=1, batch_size=16)
    ab, ba = results["fid_domain_ab"]["fid_domain_ab"], results["fid_domain_ba"]["fid_domain_ba"]
    assert ab > 1 and ba > 1 and results["fid_domain"]["fid_domain"] == pytest.approx((ab + ba) / 2)
    assert protocol.split == "test" and protocol.num_ref == 0


def test_evaluation_during_training_measures_both_directions(tiny_run, pair, tmp_path):
    out = tmp_path / "eval"
    assert tiny_run(out, "--method", "static", "--sparsity-g", "0.8", "--steps", "4", "--eval-every", "2",
                    "--eval-num-samples", "8", data=pair / "sneaker-boot") == 0
    evals = read_records(out, "eval")
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["fid_domain"] == pytest.approx((r["fid_domain_ab"] + r["fid_domain_ba"]) / 2) for r in evals)
    best = json.loads((out / "summary.json").read_text())["metrics"]["best"]
    assert best["by"] == "fid_domain" and (out / "final" / "generator_ema_best.safetensors").is_file()


def test_eval_command_measures_both_directions_into_eval_files(tiny_run, pair, tmp_path, capsys):
    from sparsegan.protocols import Protocol

    out = tmp_path / "run"
    assert tiny_run(out, "--method", "stu", "--sparsity-g", "0.8", "--steps", "2", data=pair / "sneaker-boot") == 0
    assert main(["eval", str(out), "--metrics", "fid_domain", "--num-samples", "6", "--no-progress"]) == 0
    n = min(6, *(len(list((pair / "sneaker-boot" / d).glob("*.png"))) for d in ("testA", "testB")))
    files = sorted(p.name for p in (out / "eval").glob("*.json"))
    assert files == [f"fid_domain{s}@{n},ref=all,split=test.json" for s in ("", "_ab", "_ba")]
    data = json.loads((out / "eval" / files[0]).read_text())
    # An eval file's protocol is read off its label, not off the real-image count it used.
    assert Protocol.of_record(data) == Protocol(n, 0, "test", "ema", True)
    assert main(["eval", str(out), "--split", "test"]) == 2
    assert "translation run is measured on the test images" in capsys.readouterr().err


def test_export_bench_and_flops_of_a_translation_run(tiny_run, pair, tmp_path, capsys):
    out = tmp_path / "run"
    assert tiny_run(out, "--method", "static", "--sparsity-g", "0.8", "--steps", "2", data=pair / "sneaker-boot") == 0
    assert main(["export", str(out)]) == 0
    # The sparse runtime translates as the masked generator does (a forced CSR kernel, not the module).
    assert main(["bench", str(out), "--repeats", "1", "--warmup", "1", "--batch-sizes", "2",
                 "--mode", "scipy-csr"]) == 0
    text = capsys.readouterr().out
    diff = float(text.split("max |dense - sparse| = ")[1].split()[0])
    assert diff < 1e-4
    assert main(["flops", str(out)]) == 0 and "training FLOPs" in capsys.readouterr().out


def test_two_processes_keep_identical_masks(pair, tmp_path):
    # torchrun with 2 gloo processes: every topology record's mask checksum is the same on both ranks.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sparsegan", "train", "--data-root", str(pair / "sneaker-boot"), "--out", str(out), "--no-progress",
           *TINY_FLAGS, "--method", "stu", "--sparsity-g", "0.8", "--sparsity-d", "0.5", "--steps", "4",
           "--update-interval", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    topo = read_records(out, "topology")
    assert [r["step"] for r in topo if r["net"] == "G"] == [2] and all(r["pruned"] > 0 for r in topo
                                                                       if r["net"] == "G")
    assert all(len(r["mask_checksums"]) == 2 and len(set(r["mask_checksums"])) == 1 for r in topo)


def test_report_tabulates_translation_runs(tiny_run, pair, tmp_path):
    runs = tmp_path / "runs"
    for method, extra in (("dense", []), ("stu", ["--sparsity-g", "0.8"])):
        assert tiny_run(runs / method, "--method", method, "--steps", "2", "--eval-every", "2",
                        "--eval-num-samples", "8", *extra, data=pair / "sneaker-boot") == 0
    assert main(["report", str(runs), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "fid_domain@" in text and "split=test" in text and "| stu |" in text and "| dense |" in text


def test_sample_refuses_a_translation_model_in_one_line(tiny_run, pair, tmp_path, capsys):
    out = tmp_path / "r"
    assert tiny_run(out, "--method", "dense", "--steps", "2", data=pair / "sneaker-boot") == 0
    capsys.readouterr()
    assert main(["sample", str(out), "--out", str(tmp_path / "s.png")]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "is a translation model (cyclegan)" in lines[0]
    assert not (tmp_path / "s.png").exists()
