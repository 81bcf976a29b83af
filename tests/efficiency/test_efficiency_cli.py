"""sparsegan flops / export / bench through the real entry point, on a tiny trained run."""

import json

import pytest

from idx_files import write_fake_mnist
from sparsegan.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eff")
    data = write_fake_mnist(tmp / "data", n_train=256, n_test=8)
    out = tmp / "run"
    assert main(["train", "--model", "mlp", "--model-width", "16", "--method", "stu", "--sparsity-g", "0.9",
                 "--sparsity-d", "0.5", "--steps", "20", "--update-interval", "5", "--batch-size", "16",
                 "--data-root", str(data), "--out", str(out), "--no-progress"]) == 0
    return out


def test_summary_carries_flops(run):
    flops = json.loads((run / "summary.json").read_text())["flops"]
    assert "error" not in flops
    train = flops["train"]
    # STU-GAN at s_G 90 % / s_D 50 %: cheaper than dense, and the 3 gradient updates cost extra.
    assert 0 < train["relative"] < 1 and train["steps"] == 20
    assert [p["dense_grad_updates"] for p in train["phases"]] == [{"G": 3}]
    assert flops["inference_per_sample"]["G"]["relative"] < 0.2


def test_flops_command(run, tmp_path, capsys):
    assert main(["flops", str(run), "--json", str(tmp_path / "f.json")]) == 0
    text = capsys.readouterr().out
    assert "training FLOPs" in text and "net.9" in text
    payload = json.loads((tmp_path / "f.json").read_text())
    assert payload["totals"]["G"]["density"] == pytest.approx(0.1, abs=1e-3)
    summary = json.loads((run / "summary.json").read_text())["flops"]
    assert payload["train"]["total"] == pytest.approx(summary["train"]["total"])


def test_flops_without_a_run(capsys):
    assert main(["flops", "--model", "dcgan", "--model-width", "8", "--sparsity-g", "0.95",
                 "--sparsity-d", "0.5", "--steps", "100", "--update-interval", "10"]) == 0
    assert "dense-gradient updates: G 9" in capsys.readouterr().out
    assert main(["flops", "--model", "dcgan", "--method", "dense", "--steps", "10"]) == 0
    assert "relative 1.0000" in capsys.readouterr().out


def test_export_and_bench(run, tmp_path, capsys):
    assert main(["export", str(run)]) == 0
    csr = run / "export" / "generator_ema.csr.safetensors"
    assert main(["export", str(run), "--format", "safetensors", "--generator", "raw",
                 "--out", str(tmp_path / "g.safetensors")]) == 0
    assert csr.stat().st_size < (tmp_path / "g.safetensors").stat().st_size
    for source in (run, csr):
        out = tmp_path / "bench.json"
        assert main(["bench", str(source), "--batch-sizes", "1,3", "--repeats", "2", "--warmup", "1",
                     "--json", str(out)]) == 0
        res = json.loads(out.read_text())
        first = res.pop("first_output")
        assert set(res) == {"1", "3"}
        assert all(set(v) == {"dense_ms", "sparse_ms", "speedup"} and v["sparse_ms"] > 0 for v in res.values())
        assert first["cold_ms"] > 0 and first["warm_ms"] > 0
    text = capsys.readouterr().out
    assert "max |dense - sparse|" in text and "with the plans cached by a previous process" in text


def test_bench_modes_are_the_runtimes():
    from sparsegan.commands import arg_types
    from sparsegan.inference import runtime

    assert arg_types.MODES == runtime.MODES


@pytest.mark.parametrize("argv", [
    ["flops"],
    ["flops", "--model", "nope"],
    ["flops", "--model", "mlp", "--sparsity-g", "1.5"],
    ["flops", "--model", "mlp", "--method", "pf"],  # a plan draws dense / static / stu masks only
    ["flops", "--model", "mlp", "--update-interval", "0"],  # validated as train validates it
    ["export", "/nonexistent/run"],
    ["bench", "/nonexistent/file"],
    ["bench", "/nonexistent/file", "--batch-sizes", "1,x"],
    ["export", "/nonexistent/run", "--format", "zip"],
])
def test_user_mistakes_are_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sparsegan") and "\n" not in err and "Traceback" not in err


def test_bench_refuses_a_file_that_is_not_an_export(tmp_path, capsys):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert main(["bench", str(bad)]) == 2
    assert "not a readable safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("method, gradients", [("snip", 1), ("grasp", 3)])
def test_pruning_at_init_counts_its_loss_probes(tmp_path, method, gradients):
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    out = tmp_path / method
    assert main(["train", "--model", "mlp", "--model-width", "16", "--method", method, "--sparsity-g", "0.9",
                 "--sparsity-d", "0", "--probe-batches", "2", "--steps", "4", "--batch-size", "8",
                 "--data-root", str(data), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["phases"][0] == {"phase": "probe", "steps": 0, "density": {"G": 1.0, "D": 1.0},
                                    "probes": {"G": 2 * gradients}}  # D is dense: not probed
    probe = summary["flops"]["train"]["phases"][0]
    assert probe["name"] == "probe" and probe["flops"] == probe["probe_flops"] > 0
