"""The diffusion study's report: its verdicts on made-up run folders by hand, and the committed
results re-derived from the committed runs (a hand-edited number fails here)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "benchmarks" / "study-diffusion"


def _script():
    spec = importlib.util.spec_from_file_location("study_diffusion", FOLDER / "study_diffusion.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(root: Path, name: str, method: str, seed: int, values: dict[int, float], sparsity=0.0, grow="gradient",
         folder="runs", steps=4000):
    run = root / folder / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({
        "method": method, "seed": seed, "sparsity_g": sparsity, "sparsity_d": 0.5, "grow": grow, "model": "unet",
        "nets": ["G"], "steps": steps, "model_width": 16, "batch_size": 64, "sample_steps": 20}))
    recs = [{"kind": "eval", "step": s, "fid_domain": v, "num_samples": 5000, "num_ref": 5000, "generator": "ema",
             "eval_mode": True, "split": "train", "protocol": "@5000,nfe=20", "source": "training"}
            for s, v in values.items()]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    flops = {"train": {"relative": 1.0 - sparsity}, "sampling_per_image": {"nfe": 20, "sparse": 2.4e9 * (1 - sparsity)}}
    (run / "summary.json").write_text(json.dumps({"status": "completed", "step": steps, "flops": flops}))


STEPS = (1000, 2000, 3000, 4000)


def test_gate_says_whether_dense_has_stopped_improving(tmp_path):
    s = _script()
    _run(tmp_path, "dense", "dense", 0, {1000: 30.0, 2000: 20.0, 3000: 10.2, 4000: 10.0}, folder="runs-gate")
    text = s.render(tmp_path)
    # 10.2 -> 10.0 over the last three (20 -> 10 is the one before): -2.0 % within 5 %: a plateau
    assert "| fid_domain | 30.00 | 20.00 | 10.20 | 10.00 |" in text
    assert "moves by -50.0 % (20.00 → 10.00): **still changing**" in text
    _run(tmp_path / "b", "dense", "dense", 0, {1000: 30.0, 2000: 10.4, 3000: 10.2, 4000: 10.0}, folder="runs-gate")
    assert "moves by -3.8 % (10.40 → 10.00): **a plateau**" in s.render(tmp_path / "b")
    assert "Not run yet." in s.render(tmp_path / "c")


def test_gate_names_where_dense_flattened_and_where_the_cells_stop(tmp_path):
    s = _script()
    # over three evaluations: 40 -> 22 (-45 %), 30 -> 21 (-30 %), 22 -> 20.5 (-6.8 %), 21 -> 20.2 (-3.8 %):
    # flat first at 14,000
    curve = {2000: 60.0, 4000: 40.0, 6000: 30.0, 8000: 22.0, 10000: 21.0, 12000: 20.5, 14000: 20.2, 16000: 20.0}
    _run(tmp_path, "dense", "dense", 0, curve, folder="runs-gate", steps=16000)
    _run(tmp_path, "dense_0", "dense", 0, {s: v for s, v in curve.items() if s <= 8000}, steps=8000)
    text = s.render(tmp_path)
    assert "at most 5 %: step 14,000 (20.20; 20.00 at step 16,000, -1.0 % from there)." in text
    assert "The cells train 8,000 steps, where this run was at 22.00: 10.0 % from its last evaluation." in text
    assert "The cells' dense run of seed 0 (their commit; the same training) against this one at the 4 " \
           "evaluations both made: the same values." in text
    _run(tmp_path / "b", "dense", "dense", 0, curve, folder="runs-gate", steps=16000)
    _run(tmp_path / "b", "dense_0", "dense", 0, {2000: 60.0, 4000: 40.5}, steps=4000)
    assert "at the 2 evaluations both made: a largest difference of 0.5000." in s.render(tmp_path / "b")
    assert s.plateau_step({1: 10.0, 2: 5.0}) is None
    # the cells' dense runs finish first: no comparison section until a sparse cell has finished
    assert "## The comparisons\n\nNo sparse cell has finished yet.\n" in text and "Oliveira" not in text


def test_claims_on_made_up_cells(tmp_path):
    for seed in range(3):
        _run(tmp_path, f"dense_{seed}", "dense", seed, dict.fromkeys(STEPS, 10.0 + seed))
        # RigL-DM at 90 %: dense - 0.5, -0.25, 0 per seed (mean -0.25, sd 0.25, half-width 4.3027 x 0.25 /
        # sqrt(3) = 0.62): the upper bound 0.37 is within 10 % of dense (1.10): matches
        _run(tmp_path, f"rigl_{seed}", "stu", seed, dict.fromkeys(STEPS, 10.0 + seed - 0.5 + 0.25 * seed), 0.9)
        # MagRan-DM at 90 %: dense + 3, 4, 5 (lower bound 1.52 above the margin): not reproduced
        _run(tmp_path, f"magran_{seed}", "stu", seed, dict.fromkeys(STEPS, 13.0 + 2 * seed), 0.9, grow="random")
        # static at 90 %: dense + 6, 7, 8: behind both; static - RigL-DM = 6.5, 7.25, 8 (sd 0.75)
        _run(tmp_path, f"static_{seed}", "static", seed, dict.fromkeys(STEPS, 16.0 + 2 * seed), 0.9)
    text = _script().render(tmp_path)
    assert "| RigL-DM 90 % | 0, 1, 2 | 10.75 ± 1.25 | 10.75 ± 1.25 | 10.75 ± 1.25 | 0.24 | 0.10 |" in text
    assert "| RigL-DM 90 % − dense | -0.25 [-0.87, 0.37] n=3 margin 1.10 |" in text
    assert text.split("| RigL-DM 90 % − dense |")[1].split("\n")[0].endswith("| matches |")
    assert "| MagRan-DM 90 % − dense | 4.00 [1.52, 6.48] n=3 margin 1.10 |" in text
    assert text.split("| MagRan-DM 90 % − dense |")[1].split("\n")[0].endswith("| behind |")
    # their claim at high sparsity, falling behind, fails where one method matches dense
    assert "Falls behind at high sparsity (every sparse-to-sparse method): at 90 %: **not reproduced**." in text
    static = text.split("## Exploring the topology beats static masks")[1]
    # static - RigL-DM: 6.5, 7.25, 8: mean 7.25, sd 0.75, t = 16.7 with 2 df, p = 0.0036; Holm ranks it
    # second of two (static - MagRan-DM is 3 at every seed: p 0), so it keeps 1 x 0.0036
    assert "| static − RigL-DM 90 % | 7.25 [5.39, 9.11] p=0.004 n=3 |" in static
    assert "| static − MagRan-DM 90 % | 3.00 [3.00, 3.00] p=<0.001 n=3 |" in static
    assert "Verdict (every sparse-to-sparse method ahead of static): at 90 %: **reproduced**." in static
    assert "## Sampling speed" in text and "Not measured yet." in text


def test_a_cell_with_one_seed_is_judged_against_the_spread_of_the_cells_with_seeds(tmp_path):
    import math

    # at 90 %, seeds 0-2 against dense 10: log(sparse / dense) 0.1, -0.1, 0 (RigL-DM), 0.2, 0, 0.1 (MagRan-DM),
    # 0.3, 0.5, 0.4 (static): squares about each mean 0.02 each, pooled sd sqrt(0.06 / 6) = 0.1 with 6 degrees
    # of freedom; t(0.975, 6) = 2.4469, exp(± 0.24469) = 1.27722 / 0.78295
    for seed, (a, b, c) in enumerate(((0.1, 0.2, 0.3), (-0.1, 0.0, 0.5), (0.0, 0.1, 0.4))):
        _run(tmp_path, f"dense_{seed}", "dense", seed, dict.fromkeys(STEPS, 10.0))
        _run(tmp_path, f"rigl_{seed}", "stu", seed, dict.fromkeys(STEPS, 10.0 * math.exp(a)), 0.9)
        _run(tmp_path, f"magran_{seed}", "stu", seed, dict.fromkeys(STEPS, 10.0 * math.exp(b)), 0.9, grow="random")
        _run(tmp_path, f"static_{seed}", "static", seed, dict.fromkeys(STEPS, 10.0 * math.exp(c)), 0.9)
    # at 50 %, seed 0: RigL-DM 7.5: 10 (0.75 x 0.78295 - 1) = -4.13 to 10 (0.75 x 1.27722 - 1) = -0.42, within
    # the margin 1.00: matches; MagRan-DM 15: 10 (1.5 x 0.78295 - 1) = 1.74 above it: behind
    _run(tmp_path, "rigl50", "stu", 0, dict.fromkeys(STEPS, 7.5), 0.5)
    _run(tmp_path, "magran50", "stu", 0, dict.fromkeys(STEPS, 15.0), 0.5, grow="random")
    _run(tmp_path, "static50", "static", 0, dict.fromkeys(STEPS, 12.0), 0.5)
    text = _script().render(tmp_path)
    row = text.split("| RigL-DM 50 % − dense |")[1].split("\n")[0]
    assert row.startswith(" -2.50 [-4.13, -0.42] n=1 margin 1.00 |") and row.endswith("| matches (one seed) |")
    row = text.split("| MagRan-DM 50 % − dense |")[1].split("\n")[0]
    assert row.startswith(" 5.00 [1.74, 9.16] n=1 margin 1.00 |") and row.endswith("| behind (one seed) |")
    assert "(sd 0.100 / 0.100 / 0.100, 6 / 6 / 6 degrees of freedom;" in text
    assert "Matches or beats dense at moderate sparsity (every sparse-to-sparse method): at 50 %: " \
           "**not reproduced**." in text
    # static / sparse-to-sparse at 90 %: log ratios 0.2, 0.6, 0.4 and 0.1, 0.5, 0.3: pooled sd
    # sqrt(0.16 / 4) = 0.2 with 4 degrees of freedom; static - RigL-DM at 50 %: log(12 / 7.5) = 0.470, t = 2.35,
    # p = 0.0786 before Holm: 7.5 (1.6 exp(± 2.7764 x 0.2) - 1) = -0.61 to 13.41
    static = text.split("## Exploring the topology beats static masks")[1]
    assert "| static − RigL-DM 50 % | 4.50 [-0.61, 13.41] p=" in static
    assert "(sd 0.200 / 0.200 / 0.200, 4 / 4 / 4 degrees of freedom)" in static
    assert static.split("| static − RigL-DM 50 % |")[1].split("\n")[0].endswith("| inconclusive (one seed) |")


def _chain(root: Path, name: str, seed: int, rounds: dict[int, tuple[float, float]], control="none"):
    """An IMP run (or its random control): kind=round records and one run folder per round."""
    run = root / "runs" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": "imp", "seed": seed, "imp_control": control,
                                                 "model": "unet", "nets": ["G"], "sparsity_g": 0.9}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"kind": "round", "step": k, "round": k,
                                                           "final_density": {"G": d}}) + "\n"
                                               for k, (d, _) in rounds.items()))
    (run / "summary.json").write_text(json.dumps({"status": "completed"}))
    for k, (_, v) in rounds.items():
        _run(run, f"round-{k:02d}", "static", seed, dict.fromkeys(STEPS, v), folder="rounds")


def test_tickets_against_dense_and_random_pruning(tmp_path):
    # the cells' spread: log(static / RigL-DM) and log(static / MagRan-DM) at 90 % per seed 0.1, -0.1, 0, and
    # log(static / MagRan-DM) at 80 % 0.2, 0, 0.1: three groups of squares 0.02, pooled sd sqrt(0.06 / 6) = 0.1
    # with 6 degrees of freedom; t(0.975, 6) = 2.4469, exp(± 0.24469) = 1.27722 / 0.78295
    import math

    for seed, (a, b) in enumerate(((0.1, 0.2), (-0.1, 0.0), (0.0, 0.1))):
        _run(tmp_path, f"dense_{seed}", "dense", seed, dict.fromkeys(STEPS, 10.0))
        _run(tmp_path, f"rigl_{seed}", "stu", seed, dict.fromkeys(STEPS, 10.0), 0.9)
        _run(tmp_path, f"magran_{seed}", "stu", seed, dict.fromkeys(STEPS, 10.0), 0.9, grow="random")
        _run(tmp_path, f"static_{seed}", "static", seed, dict.fromkeys(STEPS, 10.0 * math.exp(a)), 0.9)
        _run(tmp_path, f"static80_{seed}", "static", seed, dict.fromkeys(STEPS, 10.0 * math.exp(b)), 0.8)
        _run(tmp_path, f"magran80_{seed}", "stu", seed, dict.fromkeys(STEPS, 10.0), 0.8, grow="random")
    # the ticket: dense 10, 7 at 60 % and 90 %: 10 (0.7 x 0.78295 - 1) = -4.52, 10 (0.7 x 1.27722 - 1) = -1.06,
    # within the margin (1.00) ...
    _chain(tmp_path, "imp", 0, {0: (1.0, 10.0), 1: (0.4, 7.0), 2: (0.1, 7.0)})
    # ... and its random control: 14 at 60 % (log 2 / 0.1: beyond the noise), 7 at 90 % (level)
    _chain(tmp_path, "imp_random", 0, {1: (0.4, 14.0), 2: (0.1, 7.0)}, control="random")
    text = _script().render(tmp_path).split("## DDPM lottery tickets")[1].split("\n## ")[0]
    assert "| 1 | 60.0 % | -3.00 [-4.52, -1.06] n=1 / -3.00 [-4.52, -1.06] n=1 / -3.00 [-4.52, -1.06] n=1 | yes |" \
        in text
    assert "(sd 0.100 / 0.100 / 0.100, 6 / 6 / 6 degrees of freedom)" in text
    # random - ticket at 60 %: 14 against 7, log 2 / 0.1 = 6.9 with 6 df: ahead after Holm; at 90 %: level
    assert "| 7.00 [3.96, 10.88] p=<0.001 n=1 /" in text and text.split("| 1 | 60.0 %")[1].split("\n")[0].endswith(
        "| yes |")
    level = " / ".join(["0.00 [-1.52, 1.94] p=1.000 n=1"] * 3)
    assert text.split("| 2 | 90.0 %")[1].split("\n")[0].endswith(f"| yes | {level} | no |")
    assert "Claim, at the last round (2): **inconclusive**." in text  # matches dense, not ahead of random
    assert "leaves a layer of the denoiser with no weight" not in text
    # a ticket round whose masks emptied a layer (its summary's per-layer densities say so) is named
    summary = tmp_path / "runs" / "imp" / "summary.json"
    summary.write_text(json.dumps({"status": "completed", "phases": [
        {"phase": "round-01", "density": {"G": {"denoiser.inc.weight": 0.0, "denoiser.out.weight": 0.5}}}]}))
    text = _script().render(tmp_path).split("## DDPM lottery tickets")[1].split("\n## ")[0]
    assert text.rstrip().endswith("The ticket chain of seed 0 leaves a layer of the denoiser with no weight (a global "
                                  "ranking can empty a layer; such a layer passes on nothing but its bias): round 1: "
                                  "denoiser.inc.weight.")


def test_committed_results_are_derived_from_the_committed_runs():
    results = FOLDER / "results.md"
    if not results.exists():
        assert not (FOLDER / "runs").exists() and not (FOLDER / "runs-gate").exists()
        return
    assert results.read_text() == _script().render(FOLDER)


def test_speed_of_the_trained_denoisers_reaches_the_report(tmp_path):
    """study_speed.py times each trained sparse denoiser (one per arm, seed 0) with `sparsegan bench` and the
    report turns its medians into images per second at the runs' NFE; a new measurement replaces the earlier
    timings of its arms and keeps the others', each under its own conditions."""
    import shutil
    import subprocess
    import sys

    from idx_files import write_fake_mnist
    from sparsegan.cli import main

    data = write_fake_mnist(tmp_path / "data", n_train=32, n_test=8)
    runs = tmp_path / "sweep"
    for name, method, extra in (("static", "static", []), ("rigl", "stu", ["--update-interval", "1"]),
                                ("static_seed1", "static", ["--seed", "1"]),
                                ("magran", "stu", ["--grow", "random", "--update-interval", "1"])):
        assert main(["train", "--out", str(runs / name), "--data-root", str(data), "--no-progress", "--model", "unet",
                     "--model-width", "8", "--batch-size", "8", "--sparse-compute", "off", "--method", method,
                     "--sparsity-g", "0.9", "--steps", "2", "--sample-steps", "2", "--num-sample-images", "4",
                     "--sample-every", "1000", "--checkpoint-every", "1000", *extra]) == 0
    shutil.rmtree(runs / "magran" / "final")  # a light copy, as the committed runs are: not timed
    speed = tmp_path / "study" / "speed.json"
    speed.parent.mkdir()
    earlier = {"dense_ms": 10.0, "sparse_ms": 5.0, "speedup": 2.0}
    speed.write_text(json.dumps({"measurements": [
        {"command": "old", "conditions": "another machine", "nfe": 2,
         "runs": {"static 90 %": {"1": earlier}, "MagRan-DM 90 %": {"1": earlier}}}]}))
    done = subprocess.run([sys.executable, str(FOLDER / "study_speed.py"), str(runs), str(speed), "--batch-sizes",
                           "1,2", "--repeats", "1"], check=True, capture_output=True, text=True)
    assert "skipped magran: no final/ denoiser" in done.stderr
    old, new = json.loads(speed.read_text())["measurements"]
    assert old["conditions"] == "another machine" and old["runs"] == {"MagRan-DM 90 %": {"1": earlier}}
    assert new["nfe"] == 2 and sorted(new["runs"]) == ["RigL-DM 90 %", "static 90 %"]  # seed 1 is not timed
    assert "--threads 1" in new["command"] and "load average" in new["conditions"] and "commit " in new["conditions"]
    r = new["runs"]["static 90 %"]["2"]
    text = _script().render(tmp_path / "study")
    row = next(line for line in text.splitlines() if line.startswith("| static 90 % | 2 |"))
    assert f"| {2000 / r['dense_ms']:.1f} | {2000 / r['sparse_ms']:.1f} |" in row
    assert "`old` (another machine)" in text and "| MagRan-DM 90 % | 1 | 10 | 5 | 100.0 | 200.0 | 2.00x |" in text
    assert text.count("| static 90 % |") == 2  # batches 1 and 2 of the new measurement only


def test_the_header_names_each_commit_the_runs_trained_or_resumed_at(tmp_path):
    # as the runs recorded it: config.json's commits (the latest start or resume, and the first segment's)
    # and each resume record's;
    # the folder's COMMIT file only where no run records one
    s = _script()
    _run(tmp_path, "dense", "dense", 0, {1000: 30.0}, folder="runs-gate")
    (tmp_path / "runs-gate" / "COMMIT").write_text("1234567890\n")
    for name, seed, sha in (("dense_0", 0, "a" * 40), ("dense_1", 1, "a" * 40), ("static_0", 0, "b" * 40)):
        _run(tmp_path, name, "dense" if name.startswith("dense") else "static", seed, {1000: 10.0}, sparsity=0.9)
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        env = {"commit": sha, "torch_threads": 2 if name == "static_0" else 1}
        if name == "static_0":  # started at c..., resumed at b... (config.json keeps the first segment's)
            env["started"] = {"commit": "c" * 40, "torch_threads": 2}
        (tmp_path / "runs" / name / "config.json").write_text(json.dumps({**config, "environment": env}))
    with (tmp_path / "runs" / "dense_1" / "metrics.jsonl").open("a") as f:  # started at a..., resumed at b...
        f.write(json.dumps({"kind": "resume", "step": 500, "commit": "b" * 40}) + "\n")
    text = s.render(tmp_path)
    assert "`runs-gate/` (trained at commit `1234567`) and `runs/` (trained or resumed at commit " \
           "`aaaaaaa`: 2 runs; `bbbbbbb`: 2 runs; `ccccccc`: 1 run; torch threads 1: 2 runs; 2: 1 run)" in text


def test_a_claim_about_every_method_waits_for_each_of_them(tmp_path):
    # RigL-DM at 90 % alone (no MagRan-DM cell yet), well behind dense at each seed: 'falls behind' holds for
    # it, but the claim is about every sparse-to-sparse method, so it stays inconclusive until MagRan-DM is in
    for seed in range(3):
        _run(tmp_path, f"dense_{seed}", "dense", seed, dict.fromkeys(STEPS, 10.0 + seed))
        _run(tmp_path, f"rigl_{seed}", "stu", seed, dict.fromkeys(STEPS, 20.0 + 2 * seed), 0.9)
        _run(tmp_path, f"static_{seed}", "static", seed, dict.fromkeys(STEPS, 30.0 + seed), 0.9)
    text = _script().render(tmp_path)
    assert text.split("| RigL-DM 90 % − dense |")[1].split("\n")[0].endswith("| behind |")
    assert "Falls behind at high sparsity (every sparse-to-sparse method): at 90 %: **inconclusive** " \
           "(no judged MagRan-DM cell yet)." in text
    assert "Verdict (every sparse-to-sparse method ahead of static): at 90 %: **inconclusive** " \
           "(no judged MagRan-DM cell yet)." in text
    # RigL-DM matching dense decides 'falls behind' against the claim whatever MagRan-DM does
    _run(tmp_path / "b", "dense_0", "dense", 0, dict.fromkeys(STEPS, 10.0))
    _run(tmp_path / "b", "dense_1", "dense", 1, dict.fromkeys(STEPS, 11.0))
    _run(tmp_path / "b", "rigl_0", "stu", 0, dict.fromkeys(STEPS, 10.0), 0.9)
    _run(tmp_path / "b", "rigl_1", "stu", 1, dict.fromkeys(STEPS, 11.0), 0.9)
    assert "Falls behind at high sparsity (every sparse-to-sparse method): at 90 %: **not reproduced**." \
        in _script().render(tmp_path / "b")
