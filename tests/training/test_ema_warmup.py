"""The EMA warm-up through the CLI: the decay min(beta, (1 + t) / (10 + t)) in the loop's real order,
recorded in config.json, and a run trained before the option existed resumed as it was trained."""

import json
from pathlib import Path

import pytest
import torch

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.config import build_config
from sparsegan.launch import train


def _flags(data: Path) -> list[str]:
    return ["--data-root", str(data), "--model", "mlp", "--model-width", "8", "--method", "static",
            "--sparsity-g", "0.8", "--batch-size", "8", "--log-every", "2", "--sample-every", "4",
            "--checkpoint-every", "2", "--no-progress"]


def test_the_warmup_decay_in_the_loops_order(tmp_path):
    # static masks: every active weight's average is d_t * EMA + (1 - d_t) * theta after step t
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    cfg = build_config({"data_root": str(data), "model": "mlp", "model_width": 8, "method": "static",
                        "sparsity_g": 0.8, "batch_size": 8, "steps": 3, "out": str(tmp_path / "run")})
    assert cfg.ema_warmup and cfg.ema_beta == 0.999  # on by default
    seen = {}

    def record(t):
        seen[t.step] = ({k: v.clone() for k, v in t.G.state_dict().items()},
                        {k: v.clone() for k, v in t.ema.model.state_dict().items()})

    train(cfg, progress=False, on_step=record)
    name = next(k for k in seen[1][0] if k.endswith("weight") and seen[1][0][k].dim() == 2)
    for step, decay in ((2, 3 / 12), (3, 4 / 13)):
        expected = decay * seen[step - 1][1][name] + (1 - decay) * seen[step][0][name]
        torch.testing.assert_close(seen[step][1][name], expected, rtol=1e-6, atol=1e-7)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["ema_warmup"] is True


def test_a_run_from_before_the_warmup_resumes_without_it(tmp_path, capsys):
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    out = tmp_path / "old"
    assert main(["train", *_flags(data), "--steps", "2", "--no-ema-warmup", "--out", str(out)]) == 0
    # as a run written before the option existed: no ema_warmup in config.json or its checkpoint
    config = json.loads((out / "config.json").read_text())
    del config["ema_warmup"]
    (out / "config.json").write_text(json.dumps(config))
    for ckpt in (out / "checkpoints").glob("*.pt"):
        state = torch.load(ckpt, weights_only=True)
        del state["config"]["ema_warmup"]
        torch.save(state, ckpt)
    before = (out / "metrics.jsonl").read_text()
    assert main(["train", *_flags(data), "--steps", "4", "--out", str(out), "--resume", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert "ema_warmup=False" in err and "--no-ema-warmup" in err and len(err.splitlines()) == 1
    assert (out / "metrics.jsonl").read_text() == before
    assert main(["train", *_flags(data), "--steps", "4", "--no-ema-warmup", "--out", str(out), "--resume", "auto"]) == 0


@pytest.mark.parametrize("flag, value", [("--ema-warmup", True), ("--no-ema-warmup", False)])
def test_the_flag_is_recorded(tmp_path, flag, value):
    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    assert main(["train", *_flags(data), "--steps", "1", flag, "--out", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["ema_warmup"] is value
