"""examples/diffusion_rigl.py: a plain PyTorch DDPM loop made sparse (RigL-DM) with SparseTraining in
a few marked lines, run on a tiny U-Net."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "diffusion_rigl.py"


def _example():
    spec = importlib.util.spec_from_file_location("diffusion_rigl", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("grow", ["gradient", "random"])
def test_ddpm_example_trains_the_denoiser_sparse(tmp_path, grow):
    out = _example().main(["--synthetic", "--steps", "8", "--update-interval", "2", "--width", "8", "--batch-size",
                           "8", "--sample-steps", "2", "--grow", grow, "--out", str(tmp_path / "s.png"),
                           "--sparse-compute", "off"])  # off: no per-layer timing of the sparse path in a test
    sparse = out["sparse"]
    assert out["steps"] == 8 and sparse.completed == 8
    assert abs(sparse.density()["denoiser"] - 0.1) < 1e-4
    masks = sparse.masks["denoiser"]
    assert masks.itop_rate() > 0.1  # prune and regrow explored weights beyond the 10 % kept at any time
    params, ema = dict(out["net"].named_parameters()), dict(out["ema"].model.named_parameters())
    for name, m in masks.masks.items():  # inactive weights exactly 0 in the net and in its sparse EMA
        assert not params[name][~m].any() and not ema[name][~m].any()
    assert out["samples"].shape == (64, 1, 32, 32) and (tmp_path / "s.png").is_file()
    # "a few marked lines": the lines that make it sparse are marked
    marked = [line for line in EXAMPLE.read_text().splitlines() if "# sparsegan" in line]
    assert 0 < len(marked) <= 10
