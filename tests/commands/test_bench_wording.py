"""``sparsegan bench`` names its first figure for what it is (the multiply-add ratio, not an ideal
speedup) and prints each path's achieved GFLOP/s, so a measured speedup above the ratio explains
itself. Figures are checked against hand counts of a tiny MLP's weights, never against a time."""

import json
import re

import pytest
import torch

from sparsegan.cli import main
from sparsegan.inference.export import export_generator
from sparsegan.models import ModelSpec, build_models
from sparsegan.sparsity import MaskSet, prunable_parameters

SPEC = ModelSpec(width=16, z_dim=8, resolution=8)  # Linear 8->16->32->64->64: 6,784 dense multiply-adds


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    torch.manual_seed(0)
    G, _ = build_models("mlp", SPEC)
    masks = MaskSet.random(prunable_parameters(G), 0.9, "erk", generator=torch.Generator().manual_seed(0))
    masks.apply_()
    path = tmp_path_factory.mktemp("bench") / "g.csr.safetensors"
    export_generator(G.eval(), masks.masks, model="mlp", spec=SPEC, path=path, fmt="csr")
    linears = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    dense = sum(m.in_features * m.out_features for m in linears)  # one product per weight per sample
    sparse = sum(int((m.weight != 0).sum()) for m in linears)
    assert dense == 8 * 16 + 16 * 32 + 32 * 64 + 64 * 64
    return path, dense, sparse


def _rows(text: str) -> dict[str, list[str]]:
    return {m.group(1): m.group(2).split() for m in re.finditer(r"^\s+(\d+)\s+(\d.*)$", text, re.M)}


def test_bench_prints_the_multiply_add_ratio_and_consistent_rates(export, tmp_path, capsys):
    path, dense, sparse = export
    out = tmp_path / "bench.json"
    assert main(["bench", str(path), "--batch-sizes", "1,5", "--repeats", "2", "--warmup", "1",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ideal speedup" not in text and "1/density" not in text
    ratio = dense / sparse
    assert (f"multiply-adds per sample (weight products): dense {dense:,}, sparse {sparse:,}; "
            f"multiply-add ratio dense / sparse = {ratio:.2f}x") in text
    assert "an upper bound only then" in text
    assert re.search(r"batch\s+dense ms\s+sparse ms\s+speedup\s+dense GFLOP/s\s+sparse GFLOP/s", text)
    assert "speedup = multiply-add ratio x sparse GFLOP/s / dense GFLOP/s" in text
    timings = json.loads(out.read_text())
    rows = _rows(text)
    assert set(rows) == {"1", "5"}
    for bs, cells in rows.items():
        t = timings[bs]
        # 2 FLOPs per multiply-add x batch / seconds, in GFLOP/s; printed to 3 significant digits
        rate_d = 2 * dense * int(bs) / (t["dense_ms"] * 1e-3) / 1e9
        rate_s = 2 * sparse * int(bs) / (t["sparse_ms"] * 1e-3) / 1e9
        assert float(cells[3]) == pytest.approx(rate_d, rel=6e-3)
        assert float(cells[4]) == pytest.approx(rate_s, rel=6e-3)
        assert t["speedup"] == pytest.approx(ratio * rate_s / rate_d)
        above = f"batch {bs}: the measured {t['speedup']:.2f}x is above the {ratio:.2f}x multiply-add ratio"
        assert (above in text) == (t["speedup"] > ratio)


def test_bench_explains_a_speedup_above_the_ratio(export, monkeypatch, capsys):
    """Hand-chosen medians through the real command: batch 1 at 2x (below the ratio, no note), batch 64
    at 64x (above it): the note gives both rates, and they account for the gap."""
    from sparsegan.inference import bench as bench_module

    path, dense, sparse = export
    medians = {"1": {"dense_ms": 1.0, "sparse_ms": 0.5, "speedup": 2.0},
               "64": {"dense_ms": 64.0, "sparse_ms": 1.0, "speedup": 64.0}}
    monkeypatch.setattr(bench_module, "bench", lambda *a, **k: medians)
    assert main(["bench", str(path), "--batch-sizes", "1,64"]) == 0
    text = capsys.readouterr().out
    ratio = dense / sparse
    assert 2.0 < ratio < 64.0
    rate_d = 2 * dense * 64 / 64.0 * 1e-6  # = 2 x 6,784 x 64 / 0.064 s / 1e9
    rate_s = 2 * sparse * 64 / 1.0 * 1e-6
    assert rate_d == pytest.approx(0.013568)
    note = (f"batch 64: the measured 64.00x is above the {ratio:.2f}x multiply-add ratio because the dense baseline "
            f"ran at only {rate_d:.3g} GFLOP/s against the sparse path's {rate_s:.3g} GFLOP/s")
    assert note in text
    assert "batch 1: the measured" not in text
    assert _rows(text)["64"][3:] == [f"{rate_d:.3g}", f"{rate_s:.3g}"]
