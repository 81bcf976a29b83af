"""The CycleGAN tickets table: its verdicts on made-up run folders, and the committed table
re-derived from the committed runs (a hand-edited number fails here)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "benchmarks" / "cyclegan-fmnist"


def _script():
    spec = importlib.util.spec_from_file_location("cyclegan_fmnist", FOLDER / "cyclegan_fmnist.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(path: Path, config: dict, values: list[float], extra: list[dict] = ()) -> None:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    recs = [{"kind": "eval", "step": 1000 * (i + 1), "source": "training", "fid_domain": v,
             "fid_domain_ab": v - 1, "fid_domain_ba": v + 1} for i, v in enumerate(values)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*extra, *recs]))


def test_verdicts_on_made_up_runs(tmp_path):
    s = _script()
    runs = tmp_path / "runs"
    for seed, v in enumerate((10.0, 11.0, 12.0)):  # sd 1 at every step: yardstick 1.96 sqrt(2) = 2.77
        _run(runs / f"dense_seed{seed}", {"method": "dense", "seed": seed}, [v + 5, v + 2, v])
    rounds = [{"kind": "round", "round": k, "density": {"G": d, "D": 1.0}, "run": f"rounds/round-{k:02d}"}
              for k, d in ((0, 1.0), (1, 0.8))]
    chain = runs / "imp_seed0"
    _run(chain, {"method": "imp", "seed": 0, "imp_control": "none"}, [], rounds)
    _run(chain / "rounds" / "round-00", {"method": "dense", "seed": 0}, [16.0, 13.0, 11.0])
    _run(chain / "rounds" / "round-01", {"method": "static", "seed": 0}, [17.0, 14.0, 12.5])  # +1.5 each
    control = runs / "imp_random_seed0"
    _run(control, {"method": "imp", "seed": 0, "imp_control": "random"}, [], rounds)
    _run(control / "rounds" / "round-00", {"method": "dense", "seed": 0}, [16.0, 13.0, 11.0])
    _run(control / "rounds" / "round-01", {"method": "static", "seed": 0}, [22.0, 19.0, 16.0])  # +5 each
    text = s.render(s.load(runs), "abc1234")
    assert "IMP ticket, seed 0, round 1 (G sparsity 20.00 %): matches dense" in text
    assert "random-pruning control, seed 0, round 1 (G sparsity 20.00 %): behind dense" in text
    assert "| dense, mean ± sd (3 seeds) | 0 % | 16.00 ± 1.00 | 13.00 ± 1.00 | 11.00 ± 1.00 | | |" in text
    assert "| IMP ticket, seed 0, round 1 | 20.00 % | 17.00 | 14.00 | 12.50 | 11.50 | 13.50 |" in text
    assert "commit abc1234" in text
    # the ticket beats its random control by 3.5 at each evaluation (> 2.77): the claim holds
    assert "| 0, 1 | 20.00 % | -5.00, -5.00, -3.50 | ahead |" in text
    assert "matches dense and beats random pruning at the same sparsity): **reproduced** (1 seed)." in text
    # a control as good as the ticket: not reproduced
    worse = tmp_path / "worse"
    (worse).mkdir()
    import shutil

    for p in runs.iterdir():
        shutil.copytree(p, worse / p.name)
    (worse / "imp_random_seed0" / "rounds" / "round-01" / "metrics.jsonl").write_text("".join(
        json.dumps({"kind": "eval", "step": 1000 * (i + 1), "source": "training", "fid_domain": v,
                    "fid_domain_ab": v, "fid_domain_ba": v}) + "\n" for i, v in enumerate((16.0, 14.5, 12.0))))
    assert "**not reproduced (random pruning with the ticket's counts is as good)** (1 seed)." in \
        s.render(s.load(worse), None)


def test_committed_results_are_derived_from_the_committed_runs():
    results, runs = FOLDER / "results.md", FOLDER / "runs"
    if not results.exists():
        assert not runs.exists() or not any(p.is_dir() for p in runs.iterdir())
        return
    s = _script()
    commit = (runs / "COMMIT").read_text().strip() if (runs / "COMMIT").is_file() else None
    identity = json.loads((FOLDER / "identity.json").read_text()) if (FOLDER / "identity.json").is_file() else None
    assert results.read_text() == s.render(s.load(runs), commit, identity)
