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


def _chains(runs: Path, ticket: tuple, control: tuple, rate: float | None = None) -> None:
    """Dense at 3 seeds, and per seed a chain (round 0 dense, round 1 at ``rate``, 20 % unless given)
    and its random control: round 1 of the ticket is round 0 + ticket[seed], the control's the ticket's +
    control[seed]."""
    rounds = [{"kind": "round", "round": k, "density": {"G": d, "D": 1.0}, "run": f"rounds/round-{k:02d}"}
              for k, d in ((0, 1.0), (1, 1 - (rate or 0.2)))]
    for seed in range(3):
        dense = [16.0 + seed, 13.0 + seed, 11.0 + seed]
        if not (runs / f"dense_seed{seed}").exists():
            _run(runs / f"dense_seed{seed}", {"method": "dense", "seed": seed}, dense)
        if seed >= len(ticket):
            continue
        t = [v + ticket[seed] for v in dense]
        for name, control_kind, values in (("imp", "none", t), ("imp_random", "random",
                                                                 [v + control[seed] for v in t])):
            chain = runs / f"{name}{'' if rate is None else f'_rate{rate}'}_seed{seed}"
            _run(chain, {"method": "imp", "seed": seed, "imp_control": control_kind,
                         **({} if rate is None else {"imp_rate": rate})}, [], rounds)
            _run(chain / "rounds" / "round-00", {"method": "dense", "seed": seed}, dense)
            _run(chain / "rounds" / "round-01", {"method": "static", "seed": seed}, values)


def test_verdicts_on_made_up_runs(tmp_path):
    s = _script()
    runs = tmp_path / "runs"
    # ticket - dense: -1, -0.5, -1.5 (mean -1, sd 0.5, half-width 4.3027 x 0.5 / sqrt(3) = 1.24);
    # control - ticket: 4, 5, 6 (mean 5, sd 1, half-width 2.48; t = 8.66 with 2 df, p = 0.013)
    _chains(runs, (-1.0, -0.5, -1.5), (4.0, 5.0, 6.0))
    text = s.render(s.load(runs), "abc1234")
    assert "| dense, mean ± sd (3 seeds) | 0 % | 17.00 ± 1.00 | 14.00 ± 1.00 | 12.00 ± 1.00 | | |" in text
    assert "| IMP ticket, seed 0, round 1 | 20.00 % | 15.00 | 12.00 | 10.00 | 9.00 | 11.00 |" in text
    assert "commit abc1234" in text
    # margin: 10 % of the dense mean, 1.70 / 1.40 / 1.20; the upper bounds (0.24) are below it
    assert "| 1 | 3 | -1.00 [-2.24, 0.24] / -1.00 [-2.24, 0.24] / -1.00 [-2.24, 0.24] | 1.70 / 1.40 / 1.20 | yes |" \
        in text
    assert "| 1 | 3 | 5.00 [2.52, 7.48] p=0.013 / 5.00 [2.52, 7.48] p=0.013 / 5.00 [2.52, 7.48] p=0.013 | ahead |" \
        in text
    assert "at round 1 (20.00 % G sparsity): the ticket matches dense: yes; against random pruning it is ahead: " \
        "**reproduced** (3 seeds)." in text
    # random pruning better than the ticket at each evaluation: not reproduced
    worse = tmp_path / "worse"
    _chains(worse, (-1.0, -0.5, -1.5), (-4.0, -5.0, -6.0))
    assert "against random pruning it is behind: **not reproduced** (3 seeds)." in s.render(s.load(worse), None)
    # one seed pair: its own spread is unknown, nothing is judged
    one = tmp_path / "one"
    _chains(one, (-1.0,), (4.0,))
    text = s.render(s.load(one), None)
    assert "| 1 | 1 | -1.00 [-, -] / -1.00 [-, -] / -1.00 [-, -] | 1.60 / 1.30 / 1.10 | - |" in text
    assert "the ticket matches dense: not judged; against random pruning it is not judged: **inconclusive** " \
        "(1 seed)." in text


def test_chains_at_another_pruning_rate_are_judged_on_their_own(tmp_path):
    s = _script()
    runs = tmp_path / "runs"
    _chains(runs, (-1.0, -0.5, -1.5), (4.0, 5.0, 6.0))  # 20 % per round: matches dense and beats random
    _chains(runs, (5.0, 6.0, 7.0), (-4.0, -5.0, -6.0), rate=0.4)  # 40 %: behind dense and behind random
    text = s.render(s.load(runs), None)
    first, second = text.split("## Verdicts: IMP at 20 % per round")[1].split("## Verdicts: IMP at 40 % per round")
    assert "| IMP ticket (40 % per round), seed 2, round 1 | 40.00 % | 25.00 |" in text
    assert "at round 1 (20.00 % G sparsity): the ticket matches dense: yes; against random pruning it is ahead: " \
        "**reproduced** (3 seeds)." in first
    # ticket - dense 5, 6, 7: the lower bound 3.52 is above the margins (1.70 / 1.40 / 1.20): no
    assert "at round 1 (40.00 % G sparsity): the ticket matches dense: no; against random pruning it is behind: " \
        "**not reproduced** (3 seeds)." in second


def test_committed_results_are_derived_from_the_committed_runs():
    results, runs = FOLDER / "results.md", FOLDER / "runs"
    if not results.exists():
        assert not runs.exists() or not any(p.is_dir() for p in runs.iterdir())
        return
    s = _script()
    commit = (runs / "COMMIT").read_text().strip() if (runs / "COMMIT").is_file() else None
    identity = json.loads((FOLDER / "identity.json").read_text()) if (FOLDER / "identity.json").is_file() else None
    assert results.read_text() == s.render(s.load(runs), commit, identity)
