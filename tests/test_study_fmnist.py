"""The study's statistics by hand, its verdicts on made-up run folders, and the committed tables
re-derived from the committed runs (a hand-edited number fails here)."""

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

from sparsegan.experiments.stats import Single, direction, holm, paired, pooled_sd

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "benchmarks" / "study-fmnist"


def _script(name: str = "study_fmnist"):
    """One of the report's modules; they import each other as siblings, as when run from their folder."""
    if str(STUDY) not in sys.path:
        sys.path.insert(0, str(STUDY))
    return importlib.import_module(name)


def test_paired_interval_and_p_by_hand():
    c = paired({0: 3.0, 1: 5.0, 2: 7.0, 9: 1.0}, {0: 2.0, 1: 3.0, 2: 4.0})  # seed 9 has no partner
    assert c.seeds == (0, 1, 2) and c.diffs == (1.0, 2.0, 3.0)
    # mean 2, sd 1, t(0.975, 2) = 4.3027: half-width 4.3027 / sqrt(3) = 2.4841
    lo, hi = c.ci
    assert lo == pytest.approx(2 - 2.4841, abs=1e-4) and hi == pytest.approx(2 + 2.4841, abs=1e-4)
    # t = 2 / (1 / sqrt(3)) = 3.4641 with 2 df: two-sided p = 0.0742
    assert c.p == pytest.approx(0.0742, abs=1e-4)
    assert math.isnan(paired({0: 1.0}, {0: 0.0}).p)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.5, math.nan])
    assert out[0] == 0.5 and math.isnan(out[1])
    assert direction(0.01, (0.5, 2.0)) == 1 and direction(0.01, (-2.0, -0.5)) == -1
    assert direction(0.2, (0.5, 2.0)) == 0


def _run(root: Path, name: str, method: str, seed: int, values: dict[int, float], sg=0.9, sd=0.5, itop=0.3,
         folder="runs", **extra):
    run = root / folder / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": method, "seed": seed, "sparsity_g": sg, "sparsity_d": sd,
                                                 "model": "dcgan", "model_width": 16, **extra}))
    recs = [{"kind": "eval", "step": s, "fid_domain": v, "num_samples": 5000, "num_ref": 5000, "generator": "ema",
             "eval_mode": True, "split": "train", "protocol": "@5000", "source": "training"} for s, v in values.items()]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "summary.json").write_text(json.dumps({"status": "completed", "step": max(values, default=0),
                                                  "itop_rate": {"G": itop, "D": 1 - sd}}))


def _study(tmp_path, stu_offset: float, noise):
    steps = (1000, 2000, 3000, 4000)
    for seed in range(5):
        base = 10.0 + seed
        _run(tmp_path, f"dense_seed{seed}", "dense", seed, {s: 4.0 + 0.1 * seed for s in steps})
        _run(tmp_path, f"static_seed{seed}", "static", seed, {s: base for s in steps}, itop=0.1)
        _run(tmp_path, f"stu_seed{seed}", "stu", seed, {s: base - stu_offset + noise[seed] for s in steps}, itop=0.45)
    (tmp_path / "runs" / "COMMIT").write_text("abc123\n")
    return _script().render(tmp_path)


def test_verdicts_on_made_up_runs(tmp_path):
    clear = _study(tmp_path / "a", 3.0, [0.1, -0.1, 0.2, 0.0, -0.2])
    assert "2,000, 3,000, 4,000 steps" in clear  # the last three common evaluations
    assert "The regime: dense mean ≤ 5.0 at each of the last three evaluations: **yes**" in clear
    claim1 = clear.split("### 1.")[1].split("### 2.")[0]
    assert "| reproduced |" in claim1 and "Verdict: **reproduced**" in claim1 and "commit `abc123`" in clear
    # A difference within the seed noise is not a result.
    unclear = _study(tmp_path / "b", 0.1, [1.0, -1.5, 0.8, -0.9, 0.3])
    assert "Verdict: **inconclusive**" in unclear.split("### 1.")[1].split("### 2.")[0]
    # STU-GAN worse at every seed: the opposite holds.
    worse = _study(tmp_path / "c", -3.0, [0.1, -0.1, 0.2, 0.0, -0.2])
    assert "Verdict: **not reproduced**" in worse.split("### 1.")[1].split("### 2.")[0]


def test_committed_tables_match_the_committed_runs():
    script = _script()
    checked = 0
    for runs in sorted(p.name for p in STUDY.glob("runs*") if p.is_dir()):
        results = STUDY / script.outputs(runs)[0]
        assert results.exists(), \
            f"{runs}/ has no {results.name}: run benchmarks/study-fmnist/study_fmnist.py --runs {runs}"
        assert results.read_text() == script.render(STUDY, runs), \
            (f"{results.name} is not what "
             f"`python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist --runs {runs}` gives")
        checked += 1
    # and no results file without the runs it was generated from (a runs folder left out of the
    # repository would leave its tables unchecked)
    for results in STUDY.glob("results*.md"):
        runs = "runs" + results.stem.removeprefix("results")
        assert (STUDY / runs / "COMMIT").is_file(), f"{results.name} has no committed {runs}/ to be re-derived from"
    if not checked:
        pytest.skip("no study runs committed yet")


def test_baselines_and_explore_on_made_up_runs(tmp_path):
    steps = (1000, 2000, 3000, 4000)
    noise = [0.1, -0.1, 0.2]
    for seed in range(3):
        _run(tmp_path, f"dense_seed{seed}", "dense", seed, {s: 4.0 for s in steps})
        for sd, static in ((0.5, 12.0), (0.7, 11.0)):  # the core grid's s_G 80 % cells
            _run(tmp_path, f"static_{sd}_{seed}", "static", seed, {s: static for s in steps}, sg=0.8, sd=sd)
            _run(tmp_path, f"stu_{sd}_{seed}", "stu", seed, {s: static - 1 + noise[seed] for s in steps}, sg=0.8, sd=sd)
        _run(tmp_path, f"stu_g90_{seed}", "stu", seed, {s: 8.0 + noise[seed] for s in steps}, sg=0.9, sd=0.5)
        b = "runs-baselines"
        _run(tmp_path, f"static_d0_{seed}", "static", seed, {s: 14.0 for s in steps}, sg=0.8, sd=0.0, folder=b)
        _run(tmp_path, f"stu_d0_{seed}", "stu", seed, {s: 9.0 + noise[seed] for s in steps}, sg=0.8, sd=0.0, folder=b)
        for ranking, gap in (("uniform", 3.0), ("global", -2.0)):
            _run(tmp_path, f"pf_{ranking}_{seed}", "pf", seed, {s: 9.0 + gap + noise[2 - seed] for s in steps},
                 sg=0.8, sd=0.0, folder=b, ranking=ranking)
        e = "runs-explore"
        for explore, v in (("D", 10.0), ("GD", 9.0)):
            _run(tmp_path, f"e{explore}_{seed}", "stu", seed, {s: v for s in steps}, folder=e, explore=explore)
    _run(tmp_path, "adapt_0", "adapt", 0, {s: 15.0 for s in steps}, sg=0.8, folder="runs-baselines",
         adapt_variant="strict")
    # An IMP run: its value is its last round's; its rounds are not runs of their own.
    imp = tmp_path / "runs-baselines" / "imp_0"
    _run(tmp_path, "imp_0", "imp", 0, {}, sg=0.8, sd=0.0, folder="runs-baselines")
    (imp / "summary.json").write_text(json.dumps({"status": "completed", "step": 4000}))
    for k, v in ((0, 4.0), (8, 20.0)):
        _run(imp, f"round-{k:02d}", "static", 0, {s: v for s in steps}, sg=0.8, sd=0.0, folder="rounds")
    script = _script()
    text = script.render(tmp_path, "runs-baselines")
    assert "| GAN Tickets (IMP), sD0.00 | 1 | 20.00 | 20.00 | 20.00 |" in text
    assert "static, sD0.00" in text and "| static, sD0.00 | 3 |" in text  # the rounds' "static" configs are not rows
    pf = text.split("### STU-GAN beats prune")[1].split("###")[0]
    assert "| PF uniform, sD0.00 − STU-GAN, sD0.00 | 3.00 [" in pf
    assert "reproduced |" in pf and "not reproduced (the opposite holds) |" in pf  # PF global is ahead here
    assert "inconclusive (n = 1 seed pairs) |" in pf and "Verdict: **not reproduced**" in pf
    gain = text.split("largest beside a dense D")[1].split("###")[0]
    assert "| gain sD0.00 − gain sD0.50 | 4.00 [" in gain and "Verdict: **reproduced**" in gain  # 5 vs 1
    assert "| ADAPT strict, sD0.50 | seed 0: 3.90 |" in text  # 15 - (12 - 1 + 0.1)
    text = script.render(tmp_path, "runs-explore")
    assert "| explore G | 3 |" in text and "| explore D | 3 |" in text
    assert "Verdict: **reproduced**" in text.split("### Exploring G")[1]


def _chain(root: Path, folder: str, name: str, rounds: dict, label_name="fid_domain", protocol="@5000",
           steps=(1000, 2000, 3000, 4000), **config):
    """An IMP run or control: kind=round records and one completed run folder per round."""
    run = root / folder / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": "imp", "seed": 0, "model": "dcgan", "steps": max(steps),
                                                 **config}))
    recs = [{"kind": "round", "step": k, "round": k, "final_density": {"G": g, "D": d}}
            for k, (g, d, _) in rounds.items()]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "summary.json").write_text(json.dumps({"status": "completed", "step": max(steps),
                                                  "flops": {"train": {"relative": 3.5}}}))
    for k, (g, d, v) in rounds.items():
        r = run / "rounds" / f"round-{k:02d}"
        r.mkdir(parents=True)
        (r / "config.json").write_text(json.dumps({"method": "static", "seed": 0, "sparsity_g": 1 - g}))
        at = v if isinstance(v, dict) else dict.fromkeys(steps, v)  # one value, or one per step
        ev = [{"kind": "eval", "step": s, label_name: at[s], "num_samples": 5000 if protocol == "@5000" else 10000,
               "generator": "ema" if protocol == "@5000" else "raw", "eval_mode": True,
               "split": "train" if protocol == "@5000" else "test", "protocol": protocol, "source": "training"}
              for s in steps]
        (r / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ev))
        (r / "summary.json").write_text(json.dumps({"status": "completed", "step": max(steps)}))


def _core_spread(root: Path):
    """The core grid's static and STU-GAN runs that single seed pairs take their spread from:
    log(static / STU-GAN) per seed 0.1, -0.1, 0 in one cell and 0.2, 0, 0.1 in another (deviations from
    each cell's mean: ±0.1 and 0), pooled sd sqrt(0.04 / 4) = 0.1 with 4 degrees of freedom; t(0.975, 4)
    = 2.7764, so a single log ratio's interval is ± 0.27764, exp(± 0.27764) = 1.32003 / 0.75758."""
    steps = (1000, 2000, 3000, 4000)
    for cell, (sg, logs) in enumerate(((0.9, (0.1, -0.1, 0.0)), (0.8, (0.2, 0.0, 0.1)))):
        for seed, d in enumerate(logs):
            _run(root, f"stu_{cell}_{seed}", "stu", seed, dict.fromkeys(steps, 10.0), sg=sg)
            _run(root, f"static_{cell}_{seed}", "static", seed, dict.fromkeys(steps, 10.0 * math.exp(d)), sg=sg)


def test_single_pair_and_pooled_spread_by_hand():
    # raw: 3 - 1 = 2 against sd 1 with 4 df: 2 ± 2.7764; p = 2 P(T4 > 2) = 0.1161
    c = Single(0, 3.0, 1.0, 1.0, 4)
    assert c.ci == pytest.approx((-0.7764, 4.7764), abs=1e-4) and c.p == pytest.approx(0.1161, abs=1e-4)
    assert c.n == 1 and c.judgeable and c.mean == 2.0
    # relative: log(11 / 10) = 0.09531 ± 0.27764 -> 10 (exp(-0.18233) - 1) = -1.6667, 10 (exp(0.37295) - 1) = 4.5202
    r = Single(0, 11.0, 10.0, 0.1, 4, relative=True)
    assert r.ci == pytest.approx((-1.6667, 4.5202), abs=1e-4) and r.mean == pytest.approx(1.0)
    assert r.p == pytest.approx(0.3945, abs=1e-4)  # 2 P(T4 > 0.9531)
    assert not Single(0, 1.0, 0.0, 0.1, 4, relative=True).judgeable and not Single(0, 1.0, 2.0, 0.1, 0).judgeable
    # two groups: sum of squares 2 + 2 over 2 + 1 degrees of freedom; a group of one adds nothing
    sd, df = pooled_sd([[1.0, 2.0, 3.0], [10.0, 12.0], [5.0]])
    assert df == 3 and sd == pytest.approx(math.sqrt(4 / 3))
    assert math.isnan(pooled_sd([[1.0]])[0])


def test_single_seed_ticket_claims_against_the_core_grids_spread(tmp_path):
    _core_spread(tmp_path)
    t = "runs-tickets"
    mixed = {1000: 10.0, 2000: 10.2, 3000: 20.0, 4000: 20.0}
    _chain(tmp_path, t, "chain", {0: (1, 1, 10.0), 1: (0.8, 1, 7.0), 2: (0.64, 1, 20.0), 3: (0.512, 1, mixed)},
           prune_nets="G", rewind_step=0, imp_control="none", imp_rate=0.2)
    _chain(tmp_path, t, "reinit", {1: (0.8, 1, 7.0), 2: (0.64, 1, 10.0)}, prune_nets="G", rewind_step=0,
           imp_control="reinit")
    _chain(tmp_path, t, "random", {1: (0.8, 1, 14.0), 2: (0.64, 1, 20.0)}, prune_nets="G", rewind_step=0,
           imp_control="random")
    text = _script().render(tmp_path, t)
    assert text.startswith("# Fashion-MNIST study: GAN Tickets' claims (IMP of the generator, 4,000 G steps per "
                           "round, seeds 0)")
    assert "4,000 G steps per round, 20 % of the remaining weights pruned per round" in text
    assert "sd of the log ratio 0.100 / 0.100 / 0.100 with 4 / 4 / 4 degrees of freedom" in text
    assert "The regime: round 0 (dense) ≤ 5.0 at each of the last three evaluations (mean over seeds): **no**" in text
    # round 1: 7 against 10: 10 (0.7 x 0.75758 - 1) = -4.70, 10 (0.7 x 1.32003 - 1) = -0.76, at most the margin (1.00)
    assert "| 1 | 20.0 % | 1 | 7.00 / 7.00 / 7.00 | -3.00 [-4.70, -0.76] n=1 / -3.00 [-4.70, -0.76] n=1 / " in text
    assert "| yes |" in text.split("| 1 | 20.0 %")[1].split("\n")[0]
    # round 2: 20 against 10: lower bound 10 (2 x 0.75758 - 1) = 5.15 above the margin at each: 'no'
    assert "| 2 | 36.0 % | 1 | 20.00 / 20.00 / 20.00 | 10.00 [5.15, 16.40] n=1" in text
    assert ("Matching: the ticket matches dense at every round up to 20.0 % sparsity; behind dense beyond the margin "
            "at each of the last three evaluations at rounds 2; neither within nor beyond the margin at each at "
            "rounds 3.") in text
    # random pruning: 14 against 7 (log 2 / 0.1 = 6.93, p 0.0023, x2 by Holm) at round 1; level at round 2
    random = text.split("against random pruning")[1].split("\n## ")[0]
    assert "| round 1 (20.0 %) | 7.00 [" in random and "p=0.005 n=1 | reproduced |" in random
    assert "| round 2 (36.0 %) | 0.00 [" in random and "p=1.000 n=1 | inconclusive |" in random
    assert "Claim (the ticket beats random pruning): **reproduced at some sparsities only** (better at round 1)." \
        in random
    # random reinitialisation: level at round 1, the control better at round 2: not reproduced
    reinit = text.split("against random reinitialisation")[1].split("\n## ")[0]
    assert "| round 2 (36.0 %) | -10.00 [" in reinit and "not reproduced (the opposite holds) |" in reinit
    assert "Claim (the ticket beats random reinitialisation): **not reproduced** (the control better at round 2)." \
        in reinit


def test_ticket_claims_paired_by_seed(tmp_path):
    """With three seeds every comparison is the per-seed difference with its t-interval, as the core grid's."""
    _core_spread(tmp_path)
    t = "runs-tickets"
    for seed, (ticket, control, gd) in enumerate(((7.0, 9.0, 7.1), (7.5, 10.0, 7.4), (8.0, 10.5, 8.0))):
        _chain(tmp_path, t, f"chain{seed}", {0: (1, 1, 10.0), 1: (0.8, 1, ticket)}, prune_nets="G", rewind_step=0,
               imp_control="none", imp_rate=0.2, seed=seed)
        _chain(tmp_path, t, f"random{seed}", {1: (0.8, 1, control)}, prune_nets="G", rewind_step=0,
               imp_control="random", seed=seed)
        _chain(tmp_path, t, f"gd{seed}", {0: (1, 1, 10.0), 1: (0.8, 0.8, gd)}, prune_nets="GD", rewind_step=0,
               imp_control="none", seed=seed)
    text = _script().render(tmp_path, t)
    assert "round, seeds 0, 1, 2)" in text.split("\n")[0]
    # ticket - dense: -3, -2.5, -2: mean -2.5, sd 0.5, half-width 4.3027 x 0.5 / sqrt(3) = 1.24
    assert "| 1 | 20.0 % | 3 | 7.50 ± 0.50 / 7.50 ± 0.50 / 7.50 ± 0.50 | -2.50 [-3.74, -1.26] n=3" in text
    assert "Matching: the ticket matches dense at every round up to 20.0 % sparsity." in text
    # control - ticket: 2, 2.5, 2.5: mean 2.33, sd 0.289, half-width 0.72
    assert "| round 1 (20.0 %) | 2.33 [1.62, 3.05] p=0.005 n=3" in text
    assert "Claim (the ticket beats random pruning): **reproduced** (better at round 1)." in text
    # IMP_GD - IMP_G: 0.1, -0.1, 0: mean 0, half-width 4.3027 x 0.1 / sqrt(3) = 0.25, within ± 0.75
    assert "| 0.00 [-0.25, 0.25] n=3 / 0.00 [-0.25, 0.25] n=3 / 0.00 [-0.25, 0.25] n=3 | yes |" in text
    assert "Claim (pruning D matters little): **reproduced**." in text


@pytest.mark.parametrize("keep, row, verdict", [
    (20.0, "reproduced", "reproduced"),  # log 2 / 0.1: beyond the noise at each evaluation
    (10.2, "inconclusive", "inconclusive (no difference beyond the noise)"),
])
def test_d_initialisation_against_rewinding_d_with_g(tmp_path, keep, row, verdict):
    _core_spread(tmp_path)
    t = "runs-tickets"
    _chain(tmp_path, t, "chain", {0: (1, 1, 10.0), 1: (0.8, 1, 10.0)}, prune_nets="G", rewind_step=0,
           imp_control="none", imp_rate=0.2)
    # a late-rewound round counts from the rewind point: its steps 1,000 ... 3,500 are 1,500 ... 4,000 of training
    late = (1000, 2000, 3000, 3500)
    for d, v in (("rewind", 12.0), ("init", 12.0), ("keep", keep)):
        _chain(tmp_path, t, f"late_{d}", {0: (1, 1, 10.0), 1: (0.8, 1, v)}, prune_nets="G", rewind_step=500,
               imp_d=d, imp_control="none", steps=late)
    text = _script().render(tmp_path, t)
    assert "at 2,000, 3,000, 3,500 steps of the round, which are 2,500, 3,500, 4,000 steps of training" in text
    assert f"| D keep − D rewind, round 1 | {keep - 12:.2f} [" in text
    assert text.split("| D keep − D rewind, round 1 |")[1].split("\n")[0].endswith(f"| {row} |")
    assert f"Claim (D's initialisation matters a lot): **{verdict}**." in text
    # late rewinding against rewinding to init, at the one step of training both evaluated (4,000): 12 against 10
    assert "| 1 | 20.0 % | 4,000 | 10.00 | 12.00 | 2.00 [" in text and "1 aligned evaluation(s) per round" in text


def test_one_d_initialisation_chain_judges_nothing_yet(tmp_path):
    _core_spread(tmp_path)
    t = "runs-tickets"
    _chain(tmp_path, t, "chain", {0: (1, 1, 10.0), 1: (0.8, 1, 10.0)}, prune_nets="G", rewind_step=0,
           imp_control="none", imp_rate=0.2)
    _chain(tmp_path, t, "late_rewind", {0: (1, 1, 10.0), 1: (0.8, 1, 12.0)}, prune_nets="G", rewind_step=500,
           imp_d="rewind", imp_control="none", steps=(1000, 2000, 3000, 3500))
    text = _script().render(tmp_path, t)
    assert "| 1 | 20.0 % | 12.00 / 12.00 / 12.00 |" in text
    assert "Claim (D's initialisation matters a lot): **inconclusive** (the three initialisations" in text


def test_generative_ticket_claims_on_made_up_runs(tmp_path):
    # Generative Tickets: VAE to 93 % (here the chain stops short), the AE's reconstruction to 99 %.
    g = "runs-generative-tickets"
    _chain(tmp_path, g, "vae_imp", {0: (1, 1, 20.0), 1: (0.8, 0.8, 21.0), 2: (0.07, 0.07, 30.0)}, model="vae")
    _chain(tmp_path, g, "ae_imp", {0: (1, 1, 50.0), 1: (0.8, 0.8, 52.0), 2: (0.01, 0.01, 54.0)}, model="ae",
           label_name="recon_mse", protocol="@10000,split=test,G=raw", rewind_step=200)
    text = _script().render(tmp_path, g)
    assert "VAE / AE with the width-16 DCGAN decoder, 4,000 steps per run or round" in text
    assert "## The AE: IMP with late rewinding (step 200) of decoder and encoder" in text
    vae = text.split("## The VAE")[1].split("## The AE")[0]
    assert "| 2 | 93.0 / 93.0 % | 30.00 / 30.00 / 30.00 | no |" in vae
    assert "up to 20.0 % sparsity (the paper: up to 93 %; one seed: descriptive): **not reproduced**" in vae
    assert "up to 99.0 % sparsity (the paper: up to 99 %; one seed: descriptive): **reproduced**" \
        in text.split("## The AE")[1]


def test_inception_section_from_eval_files(tmp_path):
    steps = (1000, 2000, 3000, 4000)
    for seed in range(3):
        _run(tmp_path, f"dense_seed{seed}", "dense", seed, {s: 4.0 for s in steps})
        for method, fid in (("static", 30.0), ("stu", 25.0 + 0.2 * seed)):
            _run(tmp_path, f"{method}_{seed}", method, seed, {s: 9.0 for s in steps}, sg=0.95, sd=0.7)
    script = _script()
    assert "Not measured yet (`benchmarks/study-fmnist/study_inception.py`)" in script.render(tmp_path)
    for run in sorted((tmp_path / "runs").iterdir()):
        if not run.is_dir():
            continue
        config = json.loads((run / "config.json").read_text())
        fid = {"dense": 20.0, "static": 30.0, "stu": 25.0}[config["method"]] + 0.2 * config["seed"]
        for name, value in (("fid", fid), ("kid", fid / 1000)):
            (run / "eval").mkdir(exist_ok=True)
            # as `sparsegan eval` writes it; the weights it hashed are not in a collected copy
            (run / "eval" / f"{name}@2000.json").write_text(json.dumps({
                "metric": name, "protocol": f"{name}@2000", name: value, "num_samples": 2000, "num_ref": 2000,
                "generator": "ema", "eval_mode": True, "seed": 0, "step": 4000,
                "generator_file": "final/generator_ema.safetensors", "generator_sha256": "0" * 64}))
    # a file measured at another step is not the run's end
    (tmp_path / "runs" / "stu_2" / "eval" / "fid@2000.json").write_text(json.dumps({
        "metric": "fid", "protocol": "fid@2000", "fid": 99.0, "num_samples": 2000, "num_ref": 2000,
        "generator": "ema", "eval_mode": True, "step": 3000}))
    text = script.render(tmp_path).split("### 6.")[1]
    assert "2,000 generated vs 2,000 real" in text
    assert "| dense | 3 | 20.20 ± 0.20 | 20.20 ± 0.20 | 4.00 ± 0.00 |" in text
    assert "| stu sG0.95 sD0.70 | 2 |" in text  # seed 2's file is from step 3,000
    assert "| static − STU-GAN, sG0.95 sD0.70 | 5.00 [5.00, 5.00] p=<0.001 n=2 | reproduced |" in text


def test_block_masks_piece_on_made_up_runs(tmp_path):
    # 4x1 blocks within noise of 1x1 (matches), both ahead of static; then 4x1 clearly worse.
    steps = (1000, 2000, 3000, 4000)
    for seed in range(3):
        _run(tmp_path, f"static_{seed}", "static", seed, {s: 25.0 for s in steps}, sg=0.95, sd=0.7)
        _run(tmp_path, f"stu_{seed}", "stu", seed, {s: 10.0 + 0.1 * seed for s in steps}, sg=0.95, sd=0.7)
        _run(tmp_path, f"stu_other_{seed}", "stu", seed, {s: 50.0 for s in steps}, sg=0.8, sd=0.7)
        _run(tmp_path, f"stu4_{seed}", "stu", seed, {s: 10.0 + 0.1 * seed + (0.05, -0.05, 0.0)[seed] for s in steps},
             sg=0.95, sd=0.7, folder="runs-blocks", mask_block="4x1")
    script = _script()
    text = script.render(tmp_path, "runs-blocks")
    assert "| STU-GAN 1x1 | 3 | 10.10 ± 0.10 |" in text and "| static 1x1 | 3 |" in text  # s_G 80 % left out
    assert "| 4x1 − 1x1 | 0.00 [" in text and "Verdict: **yes**" in text and "evaluations): **no**" in text
    assert "Verdict: **reproduced**" in text.split("still beats unstructured static")[1]
    worse = tmp_path / "worse"
    for seed in range(3):
        _run(worse, f"stu_{seed}", "stu", seed, {s: 10.0 for s in steps}, sg=0.95, sd=0.7)
        _run(worse, f"stu4_{seed}", "stu", seed, {s: 14.0 + 0.1 * seed for s in steps}, sg=0.95, sd=0.7,
             folder="runs-blocks", mask_block="4x1")
    text = script.render(worse, "runs-blocks")
    assert "Verdict: **no**" in text and "evaluations): **yes**" in text


def test_sparse_compute_piece_on_made_up_runs(tmp_path):
    # masked-path runs 10, 11, 12 (sd 1.0); the sparse-compute reruns of seeds 0-2 within it, then beyond it
    steps = (1000, 2000, 3000, 4000)
    for seed in range(3):
        _run(tmp_path, f"stu_{seed}", "stu", seed, {s: 10.0 + seed for s in steps}, sg=0.95, sd=0.7)
        _run(tmp_path, f"stu_g80_{seed}", "stu", seed, {s: 50.0 for s in steps}, sg=0.8, sd=0.7)
        _run(tmp_path, f"sc_{seed}", "stu", seed, {s: 10.0 + seed + (0.3, -0.2, 0.5)[seed] for s in steps},
             sg=0.95, sd=0.7, folder="runs-sparse-compute", sparse_compute="on")
    script = _script()
    text = script.render(tmp_path, "runs-sparse-compute")
    assert "| STU-GAN, masked path | 3 | 11.00 ± 1.00 |" in text and "| STU-GAN, sparse compute on | 3 |" in text
    assert "sparse − masked: seed 0 0.30, seed 1 -0.20, seed 2 0.50 | 0.20 [" in text and "| 1.00 | yes |" in text
    assert "Verdict: **yes**" in text
    # a rerun at another thread count is a control row, not a sparse-compute run; one pair alone decides nothing
    few = tmp_path / "few"
    _run(few, "stu_0", "stu", 0, {s: 10.0 for s in steps}, sg=0.95, sd=0.7)
    _run(few, "stu_1", "stu", 1, {s: 12.0 for s in steps}, sg=0.95, sd=0.7)
    _run(few, "sc_0", "stu", 0, {s: 10.5 for s in steps}, sg=0.95, sd=0.7, folder="runs-sparse-compute",
         sparse_compute="on")
    _run(few, "rerun_0", "stu", 0, {s: 11.0 for s in steps}, sg=0.95, sd=0.7, folder="runs-sparse-compute",
         sparse_compute="off")
    text = script.render(few, "runs-sparse-compute")
    assert "| STU-GAN, masked path rerun (2 threads) | 1 | 11.00 |" in text and "rerun − masked: seed 0 1.00" in text
    assert "Verdict: **inconclusive (n=1 of 3 seed pairs)**" in text
    # the rerun moved seed 0 by 1.00, the sparse run by 0.50: not farther; one control seed decides nothing
    assert "farther from the masked run than the masked rerun is at 0 of 3 evaluations" in text
    assert "the cause of a 'no' above is **inconclusive**" in text
    # three control seeds: reruns as far as the sparse runs clear the sparse path; always farther blames it
    for name, rerun in (("cleared", (1.5, 12.5, 11.0)), ("blamed", (10.1, 11.1, 12.1))):
        root = tmp_path / name
        for seed in range(3):
            _run(root, f"stu_{seed}", "stu", seed, {s: 10.0 + seed for s in steps}, sg=0.95, sd=0.7)
            _run(root, f"sc_{seed}", "stu", seed, {s: 11.0 + seed for s in steps}, sg=0.95, sd=0.7,
                 folder="runs-sparse-compute", sparse_compute="on")
            _run(root, f"rerun_{seed}", "stu", seed, {s: rerun[seed] for s in steps}, sg=0.95, sd=0.7,
                 folder="runs-sparse-compute", sparse_compute="off")
        verdict = {"cleared": "not the sparse path: masked reruns move runs as far", "blamed": "the sparse path"}[name]
        assert f"the cause of a 'no' above is **{verdict}**" in script.render(root, "runs-sparse-compute")
    worse = tmp_path / "worse"
    for seed in range(3):
        _run(worse, f"stu_{seed}", "stu", seed, {s: 10.0 + seed for s in steps}, sg=0.95, sd=0.7)
        _run(worse, f"sc_{seed}", "stu", seed, {s: 12.5 + seed for s in steps}, sg=0.95, sd=0.7,
             folder="runs-sparse-compute", sparse_compute="on")
    assert "Verdict: **no**" in script.render(worse, "runs-sparse-compute")


def _cells3(values: dict[int, float]) -> str:
    return " / ".join(f"{values[s]:.2f}" for s in sorted(values)[-3:])


def test_tickets_report_before_any_chain_completes_claims_nothing(tmp_path):
    (tmp_path / "runs-tickets").mkdir()
    text = _script().render(tmp_path, "runs-tickets")
    assert "- G steps per round, - of the remaining weights pruned per round" in text  # no default rate shown
    assert text.rstrip().endswith("The IMP chain has no completed dense round yet.")


def test_round_zero_set_beside_the_core_grids_dense_run_of_its_seed(tmp_path):
    _run(tmp_path, "dense_seed1", "dense", 1, {1000: 20.0, 2000: 12.0, 3000: 9.0})
    chain = tmp_path / "runs-tickets" / "imp_seed1"
    chain.mkdir(parents=True)
    (chain / "config.json").write_text(json.dumps({"method": "imp", "seed": 1}))
    same_as_core = _script("study_tickets")._same_as_core
    assert same_as_core(tmp_path, 1, [(1000, 20.0), (2000, 12.0), (8000, 5.0)], chain)[0].endswith(
        "at the 2 evaluations both made: the same values.")
    assert same_as_core(tmp_path, 1, [(2000, 12.0), (3000, 9.5)], chain)[0].endswith(
        "a largest difference of 0.5000 (not explained here: neither run was resumed before it; the ticket claims "
        "pair rounds within chains of one seed, which this does not touch).")
    assert same_as_core(tmp_path, 0, [(1000, 20.0)], chain) == []  # no core run of seed 0
    # the two started at other thread counts (replayed: threads.json): that is the explanation
    (tmp_path / "runs" / "threads.json").write_text(json.dumps({"dense_seed1": {"threads": 2}}))
    (chain.parent / "threads.json").write_text(json.dumps({"imp_seed1": {"threads": 1}}))
    assert same_as_core(tmp_path, 1, [(2000, 12.0), (3000, 9.5)], chain)[0].endswith(
        "a largest difference of 0.5000 (the core run started at 2 torch threads, the chain at 1: `threads.json`; "
        "another float rounding from the first step, the same initial weights and data order).")
    (tmp_path / "runs" / "threads.json").unlink()
    with (tmp_path / "runs" / "dense_seed1" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "resume", "step": 2500, "checkpoint": "state-00002500.pt"}) + "\n")
    assert same_as_core(tmp_path, 1, [(2000, 12.0), (3000, 9.5)], chain)[0].endswith(
        "a largest difference of 0.5000 (the core run was resumed at step 2,500: the study README says why a "
        "resume may drift).")


def test_lottery_ticket_claims_without_comparable_evaluations_stay_inconclusive(tmp_path):
    """Rounds evaluated under another protocol have nothing to compare: no verdict may come out of
    empty lists (all([]) is True), and a realised density a hair off the paper's target still reaches it."""
    _core_spread(tmp_path)
    t = "runs-tickets"
    other = {"label_name": "fid_domain", "protocol": "@200"}
    _chain(tmp_path, t, "chain", {0: (1, 1, 10.0), 1: (0.8, 1, 10.5)}, prune_nets="G", rewind_step=0,
           imp_control="none", **other)
    _chain(tmp_path, t, "random", {1: (0.8, 1, 14.0)}, prune_nets="G", rewind_step=0, imp_control="random", **other)
    _chain(tmp_path, t, "gd", {0: (1, 1, 10.0), 1: (0.8, 0.8, 10.7)}, prune_nets="GD", rewind_step=0,
           imp_control="none", **other)
    text = _script().render(tmp_path, t)
    assert "| 1 | 20.0 % | 1 | - | - | - |" in text
    assert "dense run of the same seed" not in text  # round 0 has no fid_domain@5000 to set beside the core's
    assert "Matching: inconclusive" in text
    assert "No round comparable with the ticket's: **inconclusive**." in text.split("against random pruning")[1]
    assert "Not run yet: **inconclusive**." in text.split("against random reinitialisation")[1]
    assert "| 1 | 20.0 / 20.0 % | 1 | - | - | - | - |" in text
    assert "Claim (pruning D matters little): **inconclusive**." in text
    g = "runs-generative-tickets"
    _chain(tmp_path, g, "vae_imp", {0: (1, 1, 20.0), 1: (0.07, 0.07, 21.0)}, model="vae", **other)
    # 0.8^21 would be 0.0092; the chain stops at the target, realised as 0.010012 after per-layer rounding
    _chain(tmp_path, g, "ae_imp", {0: (1, 1, 50.0), 1: (0.5, 0.5, 60.0), 2: (0.010012, 0.010012, 54.0)}, model="ae",
           label_name="recon_mse", protocol="@10000,split=test,G=raw")
    text = _script().render(tmp_path, g)
    vae, ae = text.split("## The VAE")[1].split("## The AE")
    assert "| 1 | 93.0 / 93.0 % | - | - |" in vae and "**inconclusive (a round without three evaluations)**" in vae
    assert "| 1 | 50.0 / 50.0 % | 60.00 / 60.00 / 60.00 | no |" in ae and "**not reproduced**" in ae
    _chain(tmp_path / "b", g, "ae_imp", {0: (1, 1, 50.0), 2: (0.010012, 0.010012, 54.0)}, model="ae",
           label_name="recon_mse", protocol="@10000,split=test,G=raw")
    ae = _script().render(tmp_path / "b", g).split("## The AE")[1]
    assert "up to 99.0 % sparsity (the paper: up to 99 %; one seed: descriptive): **reproduced**" in ae


@pytest.mark.parametrize("page, heading, least", [("README.md", "## Results: the Fashion-MNIST study", 20),
                                                 ("docs/results.md", "# ", 60)])
def test_readme_results_quote_the_generated_files(page, heading, least):
    """Every decimal the README's results section and the docs' results page quote is in a generated
    results file (or the study's README): a number that changes with new runs must be re-quoted,
    not left stale."""
    import re
    text = (ROOT / page).read_text()
    section = text.split(heading, 1)[1].split("\n## Where the study lives")[0] if page != "README.md" else \
        text.split(heading)[1].split("\n## ")[0]
    quoted = set(re.findall(r"(?<![\d.])\d+\.\d+(?![\d.])", section))
    assert len(quoted) > least
    files = " ".join(p.read_text() for p in STUDY.glob("*.md"))
    present = set(re.findall(r"(?<![\d.])\d+\.\d+(?![\d.])", files))
    assert quoted <= present, sorted(quoted - present)


def test_one_command_regenerates_every_piece(tmp_path):
    """Without --runs the script writes every runs* folder's results file; --check then passes, and fails
    once a number is edited by hand."""
    import subprocess
    import sys
    study = tmp_path / "study"
    _study(study, 3.0, [0.1, -0.1, 0.2, 0.0, -0.2])
    _run(study, "dense_w_seed0", "dense", 0, {s: 9.0 for s in (1000, 2000, 3000, 4000)}, folder="runs-baselines",
         width_multiplier=0.5)
    (study / "runs-baselines" / "COMMIT").write_text("abc123\n")
    cmd = [sys.executable, str(STUDY / "study_fmnist.py"), str(study)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "results.md" in out and "results-baselines.md" in out
    assert subprocess.run(cmd + ["--check"], capture_output=True).returncode == 0
    target = study / "results-baselines.md"
    target.write_text(target.read_text().replace("9.00", "8.00", 1))
    bad = subprocess.run(cmd + ["--check"], capture_output=True, text=True)
    assert bad.returncode == 1 and "results-baselines.md differs" in bad.stdout
    empty = subprocess.run([sys.executable, str(STUDY / "study_fmnist.py"), str(tmp_path / "none")],
                           capture_output=True, text=True)
    assert empty.returncode == 2 and "no runs* folder" in empty.stderr


def test_generative_chain_with_a_dense_round_still_improving_says_so(tmp_path):
    """A dense round 0 falling by more than 5 % over its last three evaluations (here 50 -> 40, -20 %) gets
    the early-phase caveat and no verdict (a ticket 'within 10 %' of a model still improving says
    nothing of trained models); a flat one (50 -> 49, -2 %) is judged."""
    g = "runs-generative-tickets"
    falling = {1000: 70.0, 2000: 50.0, 3000: 45.0, 4000: 40.0}
    _chain(tmp_path / "a", g, "vae_imp", {0: (1, 1, falling), 1: (0.07, 0.07, 41.0)}, model="vae")
    _run(tmp_path / "a", "dense", "dense", 0, falling, folder=g, model="vae")  # the sweep's dense run = round 0
    _run(tmp_path / "b", "dense", "dense", 0, {**falling, 4000: 40.25}, folder=g, model="vae")
    text = _script().render(tmp_path / "a", g)
    assert "round 0 (the same seed and dense training) at 4 evaluations: the same values." in text
    vae = text.split("## The VAE")[1].split("## The AE")[0]
    assert "up to 93.0 % sparsity (the paper: up to 93 %; one seed: descriptive): **inconclusive (round 0, dense, " \
           "is still improving)**" in vae
    assert "Round 0 (dense) is still improving: fid_domain@5000 50.00 → 40.00 over its last three evaluations " \
           "(-20.0 %)" in vae
    flat = {1000: 70.0, 2000: 50.0, 3000: 49.5, 4000: 49.0}
    _chain(tmp_path / "b", g, "vae_imp", {0: (1, 1, flat), 1: (0.07, 0.07, 50.0)}, model="vae")
    text = _script().render(tmp_path / "b", g)
    vae = text.split("## The VAE")[1].split("## The AE")[0]
    assert "**reproduced**" in vae and "still improving" not in vae
    assert "at 4 evaluations: a largest difference of 8.7500." in text  # 49.0 against the dense run's 40.25


def test_imp_training_flops_are_its_rounds_own_counts_added_up(tmp_path):
    """An IMP chain's training FLOPs in the report: its rounds' own totals over one dense run (here
    (10 + 6 + 4) / 10 = 2.0), not the chain summary's relative (3.5), which counted the earlier rounds at
    bare densities; a run without rounds keeps its summary's."""
    _chain(tmp_path, "runs-baselines", "imp", {0: (1, 1, 5.0), 1: (0.6, 1, 5.5), 2: (0.36, 1, 6.0)})
    for k, total in enumerate((10.0, 6.0, 4.0)):
        (tmp_path / "runs-baselines" / "imp" / "rounds" / f"round-{k:02d}" / "summary.json").write_text(
            json.dumps({"status": "completed", "step": 4000, "flops": {"train": {"total": total}}}))
    summary = tmp_path / "runs-baselines" / "imp" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()),
                                   "flops": {"train": {"relative": 3.5, "total": 35.0, "dense": 10.0}}}))
    _run(tmp_path, "static", "static", 0, {1000: 6.0}, folder="runs-baselines")
    (tmp_path / "runs-baselines" / "static" / "summary.json").write_text(json.dumps(
        {"status": "completed", "step": 1000, "flops": {"train": {"relative": 0.25}}}))
    common = _script("study_common")
    runs = {r.path.name: r for r in common.completed_runs(tmp_path / "runs-baselines")}
    assert common.train_flops(runs["imp"]) == pytest.approx(2.0)
    assert common.train_flops(runs["static"]) == pytest.approx(0.25)


def _rows(md: str) -> dict[str, str]:
    """Every table row of a results file: its first cell -> its last cell (a comparison's verdict)."""
    out = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 2 and not set(cells[0]) <= set("-"):
            out.setdefault(cells[0], cells[-1])
    return out


def _section(md: str, title: str) -> str:
    return md.split(title, 1)[1].split("\n### ", 1)[0]


# Every verdict word of the README's results section, with what the generated files say of it:
# (the README's words, results file, section title or None, row label or None, that verdict).
README_VERDICTS = [
    ("at s_G 95 % beside D at 70 %, **reproduced**", "results.md", None, "static − STU-GAN, sG0.95 sD0.70",
     "reproduced"),
    ("beside D at 50 % **inconclusive**", "results.md", None, "static − STU-GAN, sG0.95 sD0.50", "inconclusive"),
    ('"STU-GAN matches dense at 80 / 70 %" is **not reproduced**: STU-GAN − dense 1.67', "results-convergence.md",
     "### 4.", None, "not reproduced"),
    ("its lead over static there is **inconclusive**", "results-convergence.md", None,
     "static − STU-GAN, sG0.80 sD0.70", "inconclusive"),
    ('"STU-GAN matches dense at 80 / 70 %" is **not reproduced** (STU-GAN − dense 2.29', "results.md", "### 4.", None,
     "not reproduced"),
    ("at 80 and 90 % its lead over static is **inconclusive** by fid_domain", "results.md", None,
     ["static − STU-GAN, sG0.80 sD0.50", "static − STU-GAN, sG0.80 sD0.70", "static − STU-GAN, sG0.90 sD0.50",
      "static − STU-GAN, sG0.90 sD0.70"], "inconclusive"),
    ("up to 93 % (21.02 against 24.75), **reproduced** in one seed", "results-generative-tickets-long.md",
     "## The VAE", None, "reproduced"),
    ("the AE's only up to 64 % (the paper: 99 %), **not reproduced** in one seed", "results-generative-tickets-long.md",
     "## The AE", None, "not reproduced"),
]


def test_the_readme_verdict_words_are_the_generated_verdicts():
    """Numbers are not enough: each verdict word the README's results section attaches to a claim or
    a cell is the one the generated results give it (a later run can turn a 'reproduced' into an
    'inconclusive'), and a section without a three-evaluation verdict is not called reproduced."""
    import re

    readme = " ".join((ROOT / "README.md").read_text().split("## Results: the Fashion-MNIST study")[1]
                      .split("\n## ")[0].split())
    bold = re.findall(r"\*\*(reproduced|not reproduced|inconclusive)\*\*", readme)
    assert len(bold) == len(README_VERDICTS), bold  # every bold verdict is mapped below
    for words, name, title, rows, verdict in README_VERDICTS:
        assert words in readme, words
        md = (STUDY / name).read_text()
        if rows is None:  # a claim's verdict: the bold word closing its section
            text = md.split(title, 1)[1].split("\n## ")[0] if title.startswith("## ") else _section(md, title)
            assert re.findall(r"\*\*(reproduced|not reproduced|inconclusive)[^*]*\*\*", text)[-1] == verdict, words
        else:
            table = _rows(md)
            for row in [rows] if isinstance(rows, str) else rows:
                assert table[row] == verdict, (words, row, table[row])
    # Inception FID rests on one evaluation: the README says so wherever it quotes it
    assert readme.count("Inception FID") == readme.count("Inception FID at the end")
    assert "single end-point comparison" in readme


def test_dense_plateau_paired_by_seed():
    """Dense from the first to the last of the last three evaluations, per seed: still improving only where
    the whole interval is below 0."""
    plateau = _script("study_grid")._plateau
    falling = {"dense": {s: {1: 10.0 + s, 2: 9.0, 3: 9.0 + 1 - s} for s in range(3)}}
    # seed 0: 10 -> 10, seed 1: 11 -> 9, seed 2: 12 -> 8: changes 0, -2, -4 (mean -2, sd 2, half-width 4.97)
    assert plateau(falling, [1, 2, 3]) == [
        "Dense from 1 to 3 steps: -2.00 [-6.97, 2.97] n=3, **no longer improving beyond the seed noise**.", ""]
    steady = {"dense": {s: {1: 10.0, 2: 9.0, 3: 8.0 - 0.5 * s} for s in range(3)}}  # -2, -2.5, -3
    assert plateau(steady, [1, 2, 3])[0] == ("Dense from 1 to 3 steps: -2.50 [-3.74, -1.26] n=3, **still improving "
                                             "beyond the seed noise**.")
    assert plateau({"dense": {0: {1: 1.0, 2: 1.0, 3: 1.0}}}, [1, 2, 3]) == []  # one seed: no interval


def test_cross_commit_replay_set_beside_the_core_runs(tmp_path):
    """A piece paired with the core grid across commits: the core's runs of its cell re-trained with the
    piece's code, curve against curve."""
    replay = _script("study_common").replay
    steps = {1000: 20.0, 2000: 12.0, 3000: 9.0}
    for method in ("static", "stu"):
        _run(tmp_path, f"{method}_0", method, 0, steps, sg=0.95, sd=0.7)
    (tmp_path / "runs" / "COMMIT").write_text("core123\n")
    assert replay(tmp_path, "runs-replays-x", (0.95, 0.7), "abc") == [
        "Cross-commit pairing: these runs were trained at abc, the core grid's at core123; not replayed yet "
        "(`configs/sweeps/study-fmnist-replays.yaml`).", ""]
    _run(tmp_path, "static_seed0", "static", 0, steps, sg=0.95, sd=0.7, folder="runs-replays-x")
    _run(tmp_path, "stu_seed0", "stu", 0, {**steps, 3000: 9.25}, sg=0.95, sd=0.7, folder="runs-replays-x")
    assert replay(tmp_path, "runs-replays-x", (0.95, 0.7), "abc")[0] == (
        "Cross-commit replay (`runs-replays-x/`): the core grid's runs of this cell re-trained with this piece's code "
        "(abc; the core grid's: core123): static seed 0: the same values at 3 evaluations; STU-GAN seed 0: a largest "
        "difference of 0.2500 at 3 evaluations. The curves differ: pair this piece with the core grid only with that "
        "in mind.")
    close = tmp_path / "close"
    for method in ("static", "stu"):
        _run(close, f"{method}_0", method, 0, steps, sg=0.95, sd=0.7)
        _run(close, f"{method}_seed0", method, 0, {**steps, 2000: 12.0 + 3e-10}, sg=0.95, sd=0.7,
             folder="runs-replays-x")
    line = replay(close, "runs-replays-x", (0.95, 0.7), "abc")[0]
    assert "static seed 0: a largest difference of 3.0e-10 at 3 evaluations" in line
    assert line.endswith("the two commits train this cell alike, and the pairs across them stand.")


def test_claim_three_sets_each_d_beside_the_next_sparser_one_at_its_s_g(tmp_path):
    steps = (1000, 2000, 3000)
    noise = [0.1, -0.1, 0.2]
    for seed in range(3):
        _run(tmp_path, f"dense_{seed}", "dense", seed, {s: 4.0 for s in steps})
        # s_G 95 %: STU-GAN gains 5 beside a dense D, 2 beside D at 50 %, 1 beside D at 70 %.
        for sd, g in ((0.0, 5.0), (0.5, 2.0), (0.7, 1.0)):
            _run(tmp_path, f"static_{sd}_{seed}", "static", seed, {s: 12.0 for s in steps}, sg=0.95, sd=sd)
            _run(tmp_path, f"stu_{sd}_{seed}", "stu", seed, {s: 12.0 - g + noise[seed] for s in steps}, sg=0.95, sd=sd)
        # s_G 90 %: one s_D only, nothing to set it beside.
        _run(tmp_path, f"static_g90_{seed}", "static", seed, {s: 10.0 for s in steps})
        _run(tmp_path, f"stu_g90_{seed}", "stu", seed, {s: 9.0 for s in steps})
    claim3 = _script().render(tmp_path).split("### 3.")[1].split("### 4.")[0]
    rows = [line.split(" |")[0] for line in claim3.splitlines() if line.startswith("| gain")]
    assert rows == ["| gain sD0.00 − gain sD0.50, sG0.95", "| gain sD0.50 − gain sD0.70, sG0.95"]
    assert "| gain sD0.00 − gain sD0.50, sG0.95 | 3.00 [" in claim3  # 5 - 2, the same at every seed
    assert "| gain sD0.50 − gain sD0.70, sG0.95 | 1.00 [" in claim3 and "Verdict: **reproduced**" in claim3


def test_generative_tickets_with_rounds_as_long_as_the_plateau_are_a_piece_of_their_own(tmp_path):
    g = "runs-generative-tickets-long"
    steps = (2000, 4000, 6000, 8000)
    _chain(tmp_path, g, "vae_imp", {0: (1, 1, 20.0), 1: (0.07, 0.07, 21.0)}, model="vae", steps=steps,
           eval_every=2000)
    (tmp_path / g / "COMMIT").write_text("abc1234\n")
    text = _script().render(tmp_path, g)
    assert text.startswith("# Fashion-MNIST study: Generative Tickets' claims on the VAE and the AE, rounds as long "
                           "as the dense models' plateau (one seed each)")
    assert f"--runs {g}` from the run folders in `{g}/` (trained at commit `abc1234`, sweep " \
           "`configs/sweeps/study-fmnist-generative-tickets-long.yaml`)" in text
    assert "8,000 steps per run or round" in text and "every 2,000 steps" in text
    assert "up to 93.0 % sparsity (the paper: up to 93 %; one seed: descriptive): **reproduced**" \
        in text.split("## The VAE")[1]


def test_rounds_that_empty_a_layer_are_named(tmp_path):
    """Layer collapse, from what a chain records: the per-layer densities of its summary's phases (every
    round but the last) and a round's own kind=empty_layers record (runs trained since the engine writes it)."""
    g = "runs-generative-tickets-long"
    _chain(tmp_path, g, "ae_imp", {0: (1, 1, 12.0), 1: (0.6, 0.6, 12.5), 2: (0.36, 0.36, 272.0),
                                   3: (0.2, 0.2, 272.0)}, model="ae", label_name="recon_mse",
           protocol="@10000,split=test,G=raw", rewind_step=200)
    run = tmp_path / g / "ae_imp"
    layers = [{"net.0.weight": 0.5, "net.2.weight": 0.7}, {"net.0.weight": 0.0, "net.2.weight": 0.5}]
    (run / "summary.json").write_text(json.dumps({"status": "completed", "step": 4000, "phases": [
        {"phase": "round-00", "steps": 4000, "density": {"G": 1.0, "D": 1.0}}] + [
        {"phase": f"round-{k:02d}", "steps": 3800, "density": {"G": {"net.0.weight": 0.6}, "D": d}}
        for k, d in ((1, layers[0]), (2, layers[1]))]}))
    with open(run / "rounds" / "round-03" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "empty_layers", "step": 200, "layers": {"D": ["net.0.weight", "net.2.weight"]}})
                + "\n")
    ae = _script().render(tmp_path, g).split("## The AE")[1]
    assert "up to 40.0 % sparsity (the paper: up to 99 %; one seed: descriptive): **not reproduced**" in ae
    assert ("Rounds whose masks leave a layer with no weight (a global ranking can empty a layer; such a layer "
            "passes on nothing but its bias): round 2: D's net.0.weight; round 3: D's net.0.weight, net.2.weight "
            "(the chain's summary records per-layer densities for every round but the last).") in ae
    assert "leave a layer with no weight" not in _script().render(tmp_path, g).split("## The AE")[0]


def test_dense_generative_models_trained_long_name_where_they_flatten(tmp_path):
    g = "runs-generative-plateau"
    # over three evaluations: 50 -> 30 (-40 %), 40 -> 28 (-30 %), 30 -> 28.6 (-4.7 %): flat first at 5,000
    _run(tmp_path, "vae", "dense", 0, {1000: 50.0, 2000: 40.0, 3000: 30.0, 4000: 28.0, 5000: 28.6, 6000: 27.0},
         folder=g, model="vae")
    (tmp_path / g / "COMMIT").write_text("abc1234\n")
    text = _script().render(tmp_path, g)
    assert "| 5,000 | 28.60 | -4.7 % |" in text and "| 2,000 | 40.00 | - |" in text
    assert "the rule that gives a chain's round 0 a verdict): step 5,000 (28.60); at step 6,000: 27.00, -5.6 % " \
           "from there." in text
    assert text.split("## The AE")[1].strip() == "Not run yet."
    steady_fall = [(1000 * k, 100.0 * 0.9 ** k) for k in range(1, 8)]  # -19 % over every three evaluations
    assert _script("study_tickets").flattened_at(steady_fall) is None


def test_the_thread_count_each_run_started_with_is_reported(tmp_path):
    """config.json's count where the run recorded it, else threads.json's replay; neither: 'not known'."""
    steps = {1000: 9.0, 2000: 8.0, 3000: 7.0}
    runs = tmp_path / "runs"
    _run(tmp_path, "dense_seed0", "dense", 0, steps, environment={"torch_threads": 1})
    _run(tmp_path, "dense_seed1", "dense", 1, steps)
    _run(tmp_path, "dense_seed2", "dense", 2, steps)
    (runs / "threads.json").write_text(json.dumps({"dense_seed1": {"threads": 2, "step": 100, "commit": "abc"}}))
    common = _script("study_common")
    (line,) = [x for x in common.threads(runs) if x]
    assert "1 thread: 1; 2 threads: 1 (dense_seed1); not known: 1 (dense_seed2)." in line
    assert [common.started_with(runs / n) for n in ("dense_seed0", "dense_seed1", "dense_seed2")] == [1, 2, None]
    assert common.threads(tmp_path / "none") == []


def test_thread_replays_leave_out_what_a_short_replay_cannot_reproduce(tmp_path):
    threads = _script("study_threads")
    for name, config in (("stu", {"method": "stu"}), ("gmp", {"method": "gmp"}), ("eb", {"method": "early_bird"}),
                         ("pf", {"method": "pf", "from_run": "x"}), ("ctl", {"method": "imp", "imp_control": "random"}),
                         ("imp", {"method": "imp"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    (tmp_path / "imp" / "rounds" / "round-00").mkdir(parents=True)
    (tmp_path / "imp" / "rounds" / "round-00" / "config.json").write_text("{}")
    got = {n: threads._replayable(tmp_path / n, None) for n in ("stu", "gmp", "eb", "pf", "ctl", "imp")}
    assert got == {"stu": tmp_path / "stu" / "config.json", "gmp": None, "eb": None, "pf": None, "ctl": None,
                   "imp": tmp_path / "imp" / "rounds" / "round-00" / "config.json"}
    # with the worktree its sweep ran from, a run that starts from files there is replayed, if they are there
    (tmp_path / "x").mkdir()
    assert threads._replayable(tmp_path / "pf", tmp_path) == tmp_path / "pf" / "config.json"
    assert threads._replayable(tmp_path / "pf", tmp_path / "elsewhere") is None
    assert threads._replayable(tmp_path / "gmp", tmp_path) is None


def test_an_imp_control_is_replayed_from_the_worktree_its_chain_is_in(tmp_path, monkeypatch, tiny_run):
    """Through the script's command line: a chain and its control trained in a made-up worktree with the
    paths a sweep writes (relative to it); the control's first round is replayed there and its thread
    count found; without --inputs it is left out."""
    import subprocess

    from idx_files import write_fake_mnist

    data = write_fake_mnist(tmp_path / "data", n_train=64, n_test=8)
    monkeypatch.chdir(tmp_path)
    flags = ["--model", "mlp", "--model-width", "8", "--batch-size", "8", "--method", "imp", "--sparsity-g", "0.36",
             "--steps", "4", "--log-every", "2", "--eval-every", "0"]
    assert tiny_run(Path("runs/chain"), *flags, data=data) == 0
    assert tiny_run(Path("runs/control"), *flags, "--imp-control", "random", "--tickets-from", "runs/chain",
                    data=data) == 0
    for run in ("chain", "control"):  # as a run trained before config.json recorded its thread count
        path = tmp_path / "runs" / run / "config.json"
        config = json.loads(path.read_text())
        assert config.pop("environment")["torch_threads"] in (1, 2)
        path.write_text(json.dumps(config))
    script = ROOT / "benchmarks" / "study-fmnist" / "study_threads.py"
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}

    def found(*extra):
        subprocess.run([sys.executable, str(script), "runs", "--steps", "2", *extra], check=True, env=env,
                       capture_output=True)
        return json.loads((tmp_path / "runs" / "threads.json").read_text())

    assert set(found()) == {"chain"}  # the control's chain is not a committed file: left out
    got = found("--inputs", str(tmp_path))
    assert set(got) == {"chain", "control"} and got["control"]["threads"] in (1, 2)
