"""Sweeps and reports, through the real entry point, in-process."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from idx_files import write_fake_mnist
from sparsegan.cli import main
from sparsegan.errors import UserError
from sparsegan.experiments.grid import load_grid, point_name
from sparsegan.run_folder import read_records

TINY = {"model": "mlp", "model_width": 8, "steps": 4, "update_interval": 2, "batch_size": 16,
        "log_every": 2, "sample_every": 2, "checkpoint_every": 2, "num_sample_images": 4}


def _grid(tmp_path, grid, base=None, name="grid.yaml", **top):
    data = write_fake_mnist(tmp_path / "data", n_train=128, n_test=8)
    doc = {"base": {"data_root": str(data), **TINY, **(base or {})}, "grid": grid, **top}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


# --- grids -----------------------------------------------------------------------------------


def test_point_names_are_readable_and_ordered():
    axes = ["method", "sparsity_g", "sparsity_d", "explore", "seed"]
    assert point_name({"seed": 1, "method": "stu", "sparsity_g": 0.95, "sparsity_d": 0.0, "explore": "GD"}, axes) \
        == "stu_sG0.95_sD0_explore=GD_seed1"
    assert point_name({"method": "dense", "seed": 0}, axes) == "dense_seed0"


def test_union_of_subgrids_runs_dense_once_per_seed(tmp_path):
    path = _grid(tmp_path, [{"method": ["dense"], "seed": [0, 1]},
                            {"method": ["static", "stu"], "sparsity_g": [0.9, 0.8], "seed": [0, 1]},
                            {"method": ["dense"], "seed": [1]}])  # listed twice: run once
    grid = load_grid(path)
    names = [p.name for p in grid.points]
    assert names[:2] == ["dense_seed0", "dense_seed1"]
    assert len(names) == 2 + 2 * 2 * 2 == len(set(names))
    assert "stu_sG0.8_seed1" in names
    stu = next(p for p in grid.points if p.name == "stu_sG0.8_seed1")
    assert stu.values["sparsity_g"] == 0.8 and stu.values["model_width"] == 8


@pytest.mark.parametrize(
    "grid, top, needle",
    [
        ({"sparsity_gg": [0.5]}, {}, "sparsity_gg"),
        ({"steps": ["ten"]}, {}, "'steps' must be int"),
        ({"method": ["nope"]}, {}, "unknown method 'nope'"),
        ({"sparsity_g": [1.5]}, {}, "sparsity-g"),
        ({"out": ["x"]}, {}, "may not set 'out'"),
        ({"seed": []}, {}, "empty list"),
        ({"seed": [1, 1]}, {}, "twice"),
        ({"seed": [0]}, {"evaluate": {}}, "unknown top-level key 'evaluate'"),
        ({"seed": [0]}, {"eval": {"metrics": []}}, "eval.metrics"),
    ],
)
def test_bad_grid_is_one_line(tmp_path, capsys, grid, top, needle):
    path = _grid(tmp_path, grid, **top)
    assert main(["sweep", str(path), "--out", str(tmp_path / "s"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_eval_args_from_grid(tmp_path):
    path = _grid(tmp_path, {"seed": [0]}, eval={"metrics": ["fid_domain", "kid"], "num_samples": 500})
    assert load_grid(path).eval_args() == ["--metrics", "fid_domain,kid", "--num-samples", "500"]


def test_dry_run_lists_points(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["static", "stu"], "seed": [0]})
    assert main(["sweep", str(path), "--out", str(tmp_path / "s"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "static_seed0  train" in out and "stu_seed0     train" in out and "2 points" in out


# --- the acceptance test: a tiny sweep, skipped on a second call, and its report --------------


def _add_eval(run: Path, values: list[float], metric="fid_domain"):
    """kind=eval records as DESIGN.md defines them (metric name -> value), the last one final."""
    with open(run / "metrics.jsonl", "a") as f:
        for i, v in enumerate(values):
            f.write(json.dumps({"kind": "eval", "step": 2 * (i + 1), metric: v, "num_samples": 10,
                                "generator": "ema"}) + "\n")


def test_acceptance_sweep_skip_and_report(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["static", "stu"], "sparsity_g": [0.9, 0.8], "seed": [0, 1]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count(" ran ") == 8
    runs = sorted(p for p in out.iterdir() if (p / "config.json").exists())
    assert [p.name for p in runs] == sorted(f"{m}_sG{s}_seed{k}" for m in ("static", "stu")
                                            for s in ("0.9", "0.8") for k in (0, 1))
    for run in runs:
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    stamps = {p.name: (p / "summary.json").stat().st_mtime_ns for p in runs}

    # A second call skips every finished point and touches no run folder.
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count(" skipped ") == 8 and " ran " not in err
    assert stamps == {p.name: (p / "summary.json").stat().st_mtime_ns for p in runs}
    manifest = json.loads((out / "sweep.json").read_text())
    assert {p["action"] for p in manifest["points"]} == {"skipped"}

    # Hand-checkable metric values: seed 0 -> v, seed 1 -> v + 2, so mean v + 1, std sqrt(2).
    base = {"static_sG0.9": 30.0, "static_sG0.8": 20.0, "stu_sG0.9": 10.0, "stu_sG0.8": 25.0}
    for run in runs:
        v = base[run.name.rsplit("_", 1)[0]] + (2.0 if run.name.endswith("seed1") else 0.0)
        _add_eval(run, [v + 5, v])
    rep = tmp_path / "report"
    assert main(["report", str(out), "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    # one protocol per table, named with its sample count; the steps of the weights per row
    assert "## Table 1: fid_domain@10 (lower is better)" in md and "10 generated vs 10 real train images" in md
    assert "| method | s_D | steps | s_G = 90 % | s_G = 80 % |" in md
    # best per column (lower FID-like metric) in bold; n seeds per cell
    assert "| static | 50 % | 4 | 31.0 ± 1.4 (n=2) | **21.0 ± 1.4 (n=2)** |" in md
    assert "| stu | 50 % | 4 | **11.0 ± 1.4 (n=2)** | 26.0 ± 1.4 (n=2) |" in md
    figures = {p.name for p in (rep / "figures").glob("*.png")}
    assert figures >= {"metric_vs_sparsity.png", "heatmap.png", "itop_rate.png", "losses.png", "samples.png",
                       "metric_over_training.png"}
    for name in figures:
        assert f"(figures/{name})" in md
        assert (rep / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    has_flops = any("flops" in json.loads((r / "summary.json").read_text()) for r in runs)
    assert ("metric_vs_flops.png" in figures) == has_flops
    if not has_flops:
        assert "no run has summary.json 'flops'; nothing was estimated" in md
    assert "Balance ratio over training" in md and "no kind=balance records" in md
    html = (rep / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == len(figures)
    assert "<b>21.0 ± 1.4 (n=2)</b>" in html


def test_longer_grid_resumes_from_checkpoint(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]}, base={"steps": 6})
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    assert "stu_seed0  resume (at step 4 of 6)" in capsys.readouterr().out  # how far it got, before it goes on
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    assert " resumed " in capsys.readouterr().err
    run = out / "stu_seed0"
    assert [r["step"] for r in read_records(run) if r["kind"] == "resume"] == [4]
    assert json.loads((run / "summary.json").read_text())["step"] == 6


def test_a_grid_may_move_its_points_to_other_kernels(tmp_path, capsys):
    # --sparse-compute says how a run computes, not what: a finished point stays done, an
    # interrupted one resumes on the kernels the grid now names (a resume record says so)
    path = _grid(tmp_path, {"method": ["static"], "seed": [0]}, base={"sparse_compute": "off"})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    path = _grid(tmp_path, {"method": ["static"], "seed": [0]}, base={"sparse_compute": "auto", "steps": 6})
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    assert " resumed " in capsys.readouterr().err
    run = out / "static_seed0"
    assert json.loads((run / "config.json").read_text())["sparse_compute"] == "auto"
    assert [r["step"] for r in read_records(run) if r["kind"] == "resume"] == [4]


def test_refuses_folder_of_another_configuration(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    before = (out / "stu_seed0" / "metrics.jsonl").read_text()
    capsys.readouterr()
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]}, base={"lr_g": 1e-3})
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lr_g" in err[0]
    assert (out / "stu_seed0" / "metrics.jsonl").read_text() == before


def test_several_workers_start_a_point_once_what_it_names_has_finished():
    """A dependent point starts as soon as its own dependency finishes, not after every independent point
    (waves): dense ends at once, so pf starts while stu still runs, before static."""
    import threading

    from sparsegan.experiments.grid import Point
    from sparsegan.experiments.sweep import PointResult, _run_side_by_side

    dense, stu, static = (Point(n, {"method": n}) for n in ("dense", "stu", "static"))
    pf = Point("pf", {"method": "static", "masks_from": "dense"})
    started, pf_started, lock = [], threading.Event(), threading.Lock()

    def run(point):
        with lock:
            started.append(point.name)
        if point is pf:
            pf_started.set()
        if point is stu:  # runs until pf has started beside it (or fails the test after 10 s)
            assert pf_started.wait(10)
        return PointResult(point.name, "ran", "completed", 0.0)

    ended = []
    _run_side_by_side([dense, stu, pf, static], {"dense": set(), "stu": set(), "pf": {"dense"}, "static": set()},
                      2, run, lambda res: ended.append(res.name))
    assert started == ["dense", "stu", "pf", "static"] and sorted(ended) == ["dense", "pf", "static", "stu"]


def test_parallel_workers_as_subprocesses(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["static", "stu"], "seed": [0]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    for name in ("static_seed0", "stu_seed0"):
        assert json.loads((out / name / "summary.json").read_text())["status"] == "completed"
        assert "sparsegan train" in (out / "logs" / f"{name}.log").read_text()


# --- reports from hand-made run folders ---------------------------------------------------


def _fake_run(root: Path, name: str, method: str, sg: float, sd: float, seed: int, *, metric=None,
              flops=None, balance=None, eval_json=None):
    run = root / name
    (run / "samples").mkdir(parents=True)
    cfg = {"method": method, "sparsity_g": sg, "sparsity_d": sd, "seed": seed, "model": "mlp", "steps": 20}
    (run / "config.json").write_text(json.dumps(cfg))
    summary = {"status": "completed", "step": 20, "density": {"G": 1 - sg, "D": 1 - sd},
               "itop_rate": {"G": 1 - sg + 0.1, "D": 1 - sd}, "wall_time_s": 1.0}
    if flops is not None:
        summary["flops"] = {"train_total": flops}
    (run / "summary.json").write_text(json.dumps(summary))
    recs = [{"kind": "train", "step": s, "loss_d": 1.0, "loss_g": 2.0} for s in (10, 20)]
    if method != "dense":
        recs += [{"kind": "topology", "step": 10, "net": "G", "itop_rate": 1 - sg + 0.05, "pruned": 3},
                 {"kind": "topology", "step": 10, "net": "D", "itop_rate": 1 - sd, "pruned": 0}]
    recs += [{"kind": "balance", "step": s, "balance_ratio": b} for s, b in (balance or [])]
    if metric is not None:  # evaluation during training, at the last step
        recs.append({"kind": "eval", "step": 20, "fid": metric, "num_samples": 100, "generator": "ema",
                     "source": "training"})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"kind": "tr')  # torn tail
    if eval_json is not None:
        (run / "eval").mkdir()
        for m, v in eval_json.items():  # as `sparsegan eval --num-samples 100` writes them, at step 20
            metric = {"precision": "pr"}.get(m, m)
            (run / "eval" / f"{metric}@100.json").write_text(json.dumps(
                {"metric": metric, m: v, "num_samples": 100, "num_ref": 100, "step": 20, "protocol": f"{m}@100"}))
    from PIL import Image

    Image.new("L", (10, 10), color=seed * 40).save(run / "samples" / "step-00000020.png")
    return run


def test_report_dense_column_flops_balance_and_eval_files(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1, 2):
        _fake_run(runs, f"dense{seed}", "dense", 0.9, 0.5, seed, metric=10.0 + seed, flops=100.0)
        _fake_run(runs, f"stu{seed}", "stu", 0.9, 0.5, seed, metric=99.0, flops=20.0,
                  balance=[(10, 0.4), (20, 0.5)], eval_json={"fid": 12.0 + seed, "precision": 0.5})
    _fake_run(runs, "static0", "static", 0.9, 0.5, 0, metric=15.0, flops=20.0)
    rep = tmp_path / "rep"
    assert main(["report", str(runs), "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "| method | s_D | steps | s_G = 90 % | s_G = 0 % |" in md
    assert "| dense | 0 % | 20 |  | 11.0 ± 1.0 (n=3) |" in md  # dense ignores its sparsity flags
    # eval/fid@100.json wins over a training record of the same protocol (99); one seed: no std
    assert "| static | 50 % | 20 | 15.0 (n=1) |  |" in md
    assert "| stu | 50 % | 20 | **13.0 ± 1.0 (n=3)** |  |" in md
    figures = {p.name for p in (rep / "figures").glob("*.png")}
    assert {"metric_vs_flops.png", "balance_ratio.png", "metric_vs_sparsity.png"} <= figures
    assert "heatmap.png" not in figures  # one s_G x s_D cell: a heat-map would repeat Table 1
    assert "metric_over_training.png" not in figures and "no run evaluated fid@100 at more than one step" in md

    # Higher is better for precision: the best marked is the largest mean.
    assert main(["report", str(runs), "--out", str(rep), "--metric", "precision"]) == 0
    md = (rep / "report.md").read_text()
    assert "| stu | 50 % | 20 | 0.500 ± 0.000 (n=3) |  |" in md
    assert "Metric" not in md.split("## Table 1")[0]


def test_report_without_metric_still_renders(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _fake_run(runs, f"stu{seed}", "stu", 0.8, 0.0, seed)
    rep = tmp_path / "rep"
    assert main(["report", str(runs), "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "No metric found in these runs" in md and "## Table 1" not in md
    assert "| stu | 0 % | 80 % | 2 | 20 | 2 completed | 0.2000 | 1.0000 | 0.3000 | 1.0000 |" in md
    assert {p.name for p in (rep / "figures").glob("*.png")} == {"itop_rate.png", "losses.png", "samples.png"}
    assert main(["report", str(runs), "--out", str(rep), "--metric", "kid"]) == 0
    assert "Metric 'kid' is missing in every run" in (rep / "report.md").read_text()


def test_report_bad_input_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no run folders" in err


# --- TensorBoard (optional) -----------------------------------------------------------------


def _train_tb(tiny_run, tmp_path):
    data = write_fake_mnist(tmp_path / "data", n_train=128, n_test=8)
    return tiny_run(tmp_path / "run", "--model", "mlp", "--model-width", "8", "--steps", "4", "--update-interval", "2",
                    "--batch-size", "16", "--log-every", "2", "--sample-every", "2", "--tensorboard", data=data)


def test_tensorboard_missing_is_one_line_and_writes_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    assert _train_tb(tiny_run, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install tensorboard" in err
    assert not (tmp_path / "run").exists()


def test_tensorboard_mirrors_the_run(tiny_run, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is optional and not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert _train_tb(tiny_run, tmp_path) == 0
    ea = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"train/loss_d", "train/loss_g", "topology/G/itop_rate", "topology/G/density"} <= tags
    assert [e.step for e in ea.Scalars("train/loss_d")] == [2, 4]
    assert [e.step for e in ea.Images("samples")] == [2, 4]


# --- the committed sweep recipes ------------------------------------------------------------

SWEEPS = sorted((Path(__file__).resolve().parents[2] / "configs" / "sweeps").glob("*.yaml"))


def _unregistered(path: Path) -> list[str]:
    from sparsegan.data import DATASETS
    from sparsegan.methods import METHODS
    from sparsegan.models import MODELS

    doc = yaml.safe_load(path.read_text())
    subs = doc["grid"] if isinstance(doc["grid"], list) else [doc["grid"]]
    named = {(k, doc.get("base", {}).get(k)) for k in ("method", "model", "dataset")}
    for sub in subs:
        for key in ("method", "model", "dataset"):
            vals = sub.get(key, [])
            named |= {(key, v) for v in (vals if isinstance(vals, list) else [vals])}
    registry = {"method": METHODS, "model": MODELS, "dataset": DATASETS}
    return [f"{k} {v!r}" for k, v in sorted((k, v) for k, v in named if v is not None) if v not in registry[k]]


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_committed_sweeps_are_valid(path):
    missing = _unregistered(path)
    if missing:
        pytest.skip(f"{path.name} names {', '.join(missing)}, not registered yet")
    grid = load_grid(path)
    assert grid.points and grid.out and re.fullmatch(r"runs/[\w./-]+", grid.out)
    assert len({p.name for p in grid.points}) == len(grid.points)


def test_there_are_committed_sweeps():
    names = {p.stem for p in SWEEPS}
    assert {"demo", "reproduction-fmnist"} <= names


def test_unknown_metric_for_eval_without_eval_command(tmp_path, monkeypatch):
    import sparsegan.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", tuple(c for c in cli.COMMANDS if c != "eval"))
    path = _grid(tmp_path, {"seed": [0]}, eval={"metrics": ["fid_domain"]})
    from sparsegan.experiments.sweep import run_sweep

    with pytest.raises(UserError, match="no 'eval' command"):
        run_sweep(load_grid(path), tmp_path / "s", progress=False)


def test_placeholders_resolve_and_order_dependencies(tmp_path):
    from sparsegan.experiments.grid import Point, dependencies, dependency_order, next_ready, resolve

    out = tmp_path / "s"
    dense = Point("dense_seed0", {"method": "dense", "seed": 0})
    pf = Point("pf_seed0", {"method": "static", "seed": 0, "masks_from": "{out}/dense_seed{seed}"})
    other = Point("stu_seed0", {"method": "stu", "seed": 0})
    assert resolve(pf.values, out)["masks_from"] == f"{out}/dense_seed0"
    deps = dependencies([pf, other, dense], out)
    assert deps == {"pf_seed0": {"dense_seed0"}, "stu_seed0": set(), "dense_seed0": set()}
    # What a free worker takes: the first pending point whose named points have finished.
    assert next_ready([pf, other], deps, set()) is other and next_ready([pf], deps, {"stu_seed0"}) is None
    assert next_ready([pf, other], deps, {"dense_seed0"}) is pf
    # One worker keeps the grid's order and moves a dependent point just after what it names, not to the end.
    late = Point("static_seed0", {"method": "static", "seed": 0})
    assert [p.name for p in dependency_order([other, dense, pf, late], out)] == \
        ["stu_seed0", "dense_seed0", "pf_seed0", "static_seed0"]
    assert [p.name for p in dependency_order([pf, other, dense, late], out)] == \
        ["stu_seed0", "dense_seed0", "pf_seed0", "static_seed0"]
    cycle = Point("a", {"method": "static", "masks_from": "{out}/b"})
    with pytest.raises(UserError, match="cycle"):
        dependency_order([cycle, Point("b", {"method": "static", "masks_from": "{out}/a"})], out)
    with pytest.raises(UserError, match="placeholder"):
        resolve({"masks_from": "{nope}"}, out)
    assert point_name({"method": "pf", "from_run": "{out}/dense_seed{seed}", "seed": 0},
                      ["method", "from_run", "seed"]) == "pf_seed0"


def test_set_overrides_base_but_not_axes(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]})
    grid = load_grid(path, {"steps": 7})
    assert grid.points[0].values["steps"] == 7
    assert main(["sweep", str(path), "--out", str(tmp_path / "s"), "--dry-run", "--set", "seed=3"]) == 2
    assert "grid axis" in capsys.readouterr().err
    assert main(["sweep", str(path), "--out", str(tmp_path / "s"), "--dry-run", "--set", "steps"]) == 2
    assert "key=value" in capsys.readouterr().err


def test_default_metric_is_the_one_most_runs_have(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1, 2):
        _fake_run(runs, f"stu{seed}", "stu", 0.9, 0.5, seed, eval_json={"fid_domain": 5.0 + seed,
                                                                         **({"fid": 30.0} if seed == 0 else {})})
    from sparsegan.experiments.results import choose_metric, load_runs

    loaded = load_runs(runs)
    assert choose_metric(loaded, None) == "fid_domain"
    assert choose_metric(loaded, "fid") == "fid"


def test_interrupt_stops_the_sweep(tmp_path, monkeypatch):
    from sparsegan.experiments import sweep

    calls = []

    def interrupted(self, argv, log):
        calls.append(argv[0])
        return sweep.INTERRUPTED, ""

    monkeypatch.setattr(sweep.Launcher, "__call__", interrupted)
    path = _grid(tmp_path, {"method": ["static", "stu"], "seed": [0]})
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(load_grid(path), tmp_path / "s", progress=False)
    assert calls == ["train"]


@pytest.mark.parametrize("workers", ["1", "2"])  # in this process; two subprocesses side by side
def test_prune_and_finetune_point_runs_after_its_dense_run(tmp_path, capsys, workers):
    from sparsegan.methods import METHODS

    if "pf" not in METHODS:
        pytest.skip("method pf not registered yet")
    path = _grid(tmp_path, [{"method": ["pf"], "from_run": ["{out}/dense_seed{seed}"], "sparsity_g": [0.9],
                             "seed": [0]},
                            {"method": ["dense"], "seed": [0]}])
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress", "--workers", workers]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[")]
    assert "dense_seed0" in lines[0] and "pf_sG0.9_seed0" in lines[1] and "completed" in lines[1]
    assert json.loads((out / "pf_sG0.9_seed0" / "config.json").read_text())["from_run"] == str(out / "dense_seed0")


# --- results never go stale or get mixed silently; nothing a sweep wrote is erased ---------------

EVAL = {"metrics": ["fid_domain"], "num_samples": 20, "batch_size": 20}


def _table_value(v: float) -> str:
    """A one-value Table 1 as the report writes it: 3 significant digits as decimals."""
    from sparsegan.experiments.table import decimals

    return f"{v:.{decimals([v])}f}"


def test_extended_sweep_evaluates_again_and_report_shows_steps(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]}, eval=EVAL)
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    run = out / "stu_seed0"
    first = json.loads((run / "eval" / "fid_domain@20.json").read_text())
    assert first["step"] == 4 and "fid_domain@20" in capsys.readouterr().err
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]}, base={"steps": 6}, eval=EVAL)
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert " resumed " in err and "fid_domain@20" in err and "at step 6" in err
    again = json.loads((run / "eval" / "fid_domain@20.json").read_text())
    assert again["step"] == 6 and again["fid_domain"] != first["fid_domain"]
    # Both evaluations stay in the records, each with its step.
    assert [(r["step"], r["protocol"]) for r in read_records(run) if r["kind"] == "eval"] == \
        [(4, "@20"), (6, "@20")]
    rep = tmp_path / "rep"
    assert main(["report", str(out), "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "## Table 1: fid_domain@20" in md and f"| stu | 50 % | 6 | {_table_value(again['fid_domain'])} (n=1) |" in md
    assert "| stu | 50 % | 4 |" not in md  # the step-4 value is not shown (its 3 digits may equal the new one's)


def test_eval_protocols_never_overwrite_or_mix_and_stale_values_are_not_shown(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["static"], "seed": [0, 1]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 0
    data = str(tmp_path / "data")
    for run in ("static_seed0", "static_seed1"):
        assert main(["eval", str(out / run), "--num-samples", "20", "--no-progress", "--data-root", data]) == 0
    assert main(["eval", str(out / "static_seed0"), "--num-samples", "30", "--no-progress", "--data-root", data]) == 0
    files = sorted(p.name for p in (out / "static_seed0" / "eval").iterdir())
    assert files == ["fid_domain@20.json", "fid_domain@30.json"]  # the 20-sample value is kept
    v20 = [json.loads((out / r / "eval" / "fid_domain@20.json").read_text())["fid_domain"]
           for r in ("static_seed0", "static_seed1")]
    v30 = json.loads((out / "static_seed0" / "eval" / "fid_domain@30.json").read_text())["fid_domain"]
    rep = tmp_path / "rep"
    assert main(["report", str(out), "--out", str(rep), "--metric", "fid_domain"]) == 0
    md = (rep / "report.md").read_text()
    t20, t30 = md.split("## Table 1: fid_domain@20")[1], md.split("## Table 1: fid_domain@30")[1]
    mean20 = sum(v20) / 2
    assert "20 generated vs 20 real train images" in t20 and f"| static | 50 % | 4 | {_table_value(mean20)} ± " in t20
    assert "30 generated vs 30 real train images" in t30 and f"| static | 50 % | 4 | {_table_value(v30)} (n=1) |" in t30
    # One run trains on without being evaluated again: its step-4 values are stale, listed, not tabulated.
    capsys.readouterr()
    argv = ["train", "--config", str(out / "configs" / "static_seed1.yaml"), "--out", str(out / "static_seed1"),
            "--steps", "6", "--resume", "auto", "--no-progress"]
    assert main(argv) == 0
    assert main(["report", str(out), "--out", str(rep), "--metric", "fid_domain@20"]) == 0
    md = (rep / "report.md").read_text()
    assert "fid_domain@30" not in md
    assert f"| static (steps=4) | 50 % | 4 | {_table_value(v20[0])} (n=1) |" in md and _table_value(mean20) not in md
    assert "**Stale, not shown**" in md and "static_seed1: measured at step 4, the run is now at step 6" in md
    assert "sparsegan eval RUN --metrics fid_domain --num-samples 20" in md


def test_set_reaches_the_eval_block(tmp_path, capsys):
    path = _grid(tmp_path, {"method": ["stu"], "seed": [0]}, eval={"metrics": ["fid"], "num_samples": 50000,
                                                                   "num_ref": "all"})
    argv = ["sweep", str(path), "--out", str(tmp_path / "s"), "--dry-run"]
    assert main([*argv, "--set", "eval.num_samples=16", "--set", "eval.num_ref=16"]) == 0
    assert "then sparsegan eval --metrics fid --num-ref 16 --num-samples 16" in capsys.readouterr().out
    grid = load_grid(path, {"eval.metrics": "fid_domain"})
    assert grid.eval_args() == ["--metrics", "fid_domain", "--num-ref", "all", "--num-samples", "50000"]
    for bad, needle in [("eval.num_samples=many", "--num-samples"), ("eval.nope=1", "unrecognized arguments"),
                        ("eval.metrics=fdi", "unknown metric 'fdi'")]:
        assert main([*argv, "--set", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    no_eval = _grid(tmp_path, {"method": ["stu"], "seed": [0]}, name="plain.yaml")
    assert main(["sweep", str(no_eval), "--out", str(tmp_path / "s"), "--dry-run", "--set", "eval.num_samples=5"]) == 2
    assert "evaluates nothing" in capsys.readouterr().err


def test_sweep_json_merges_every_call(tmp_path, capsys):
    out = tmp_path / "sweep"
    one = _grid(tmp_path, {"method": ["static"], "seed": [0]}, name="one.yaml")
    assert main(["sweep", str(one), "--out", str(out), "--no-progress"]) == 0
    two = _grid(tmp_path, {"method": ["static", "stu"], "seed": [0]}, name="two.yaml")
    assert main(["sweep", str(two), "--out", str(out), "--no-progress"]) == 0
    assert main(["sweep", str(one), "--out", str(out), "--no-progress"]) == 0  # `make demo` again
    manifest = json.loads((out / "sweep.json").read_text())
    points = {p["name"]: p for p in manifest["points"]}
    assert set(points) == {"static_seed0", "stu_seed0"}  # stu (only in two.yaml) is kept
    assert [h["action"] for h in points["static_seed0"]["history"]] == ["ran", "skipped", "skipped"]
    assert points["static_seed0"]["history"][0]["seconds"] > 0 and points["static_seed0"]["action"] == "skipped"
    assert [h["action"] for h in points["stu_seed0"]["history"]] == ["ran"]
    assert [c["grid"] for c in manifest["calls"]] == [str(one), str(two), str(one)]


def test_kid_spread_is_real_at_few_samples():
    import importlib

    kid_mod = importlib.import_module("sparsegan.metrics.kid")  # the module (the package exports a function)

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(128, 16)), rng.normal(size=(128, 16)) + 0.3
    mean, std = kid_mod.kid(a, b)  # 128 images: subsets of 64, not one subset of 128 drawn 100 times
    assert std > 1e-3 * abs(mean) and std > 1e-6
    kid, kid_subset_size = kid_mod.kid, kid_mod.kid_subset_size
    assert kid_subset_size(128, 128) == 64
    assert kid_subset_size(50_000, 50_000) == 1000
    with pytest.raises(ValueError, match="at least 4"):
        kid(a[:3], b[:3])


@pytest.mark.parametrize("method", ["dense", "static"])
def test_a_run_a_sweep_extends_trains_as_one_trained_that_long(tmp_path, capsys, method):
    """A dense or static run (no schedule over the run's length) trained to 4 steps and extended by the
    sweep to 6 equals a run trained to 6 in one go, to the bit: what lets a study start such runs before
    it knows their length. A diffusion U-Net, evaluated in training at 2, 4 and 6 steps."""
    from safetensors.torch import load_file

    base = {"model": "unet", "sample_steps": 2, "sparse_compute": "off", "checkpoint_every": 1,
            "eval_every": 2, "eval_metrics": "fid_domain", "eval_num_samples": 8, "eval_num_ref": 8}
    grid = {"method": [method], "sparsity_g": [0.9] if method == "static" else [0.0], "seed": [0]}
    out = {}
    for name, steps in (("short", [4, 6]), ("long", [6])):
        for n in steps:
            path = _grid(tmp_path / name, grid, base={**base, "steps": n})
            capsys.readouterr()
            assert main(["sweep", str(path), "--out", str(tmp_path / name / "sweep"), "--no-progress"]) == 0
            assert (" resumed " in capsys.readouterr().err) == (n == 6 and name == "short")  # extended, not redone
        (run,) = [p for p in (tmp_path / name / "sweep").iterdir() if p.is_dir() and p.name != "configs"]
        evals = [(r["step"], r["fid_domain"]) for r in read_records(run) if r["kind"] == "eval"]
        out[name] = evals, load_file(run / "final" / "generator_ema.safetensors")
    assert [s for s, _ in out["long"][0]] == [2, 4, 6]
    assert out["short"][0] == out["long"][0]
    assert all((out["short"][1][k] == v).all() for k, v in out["long"][1].items())


def test_report_of_diffusion_runs_has_no_column_for_a_d_they_lack(tmp_path):
    base = {"model": "unet", "sample_steps": 2, "sparse_compute": "off", "eval_every": 4, "eval_metrics": "fid_domain",
            "eval_num_samples": 8, "eval_num_ref": 8}
    grid = [{"method": ["dense"], "seed": [0]}, {"method": ["static"], "sparsity_g": [0.9], "seed": [0]}]
    path = _grid(tmp_path, grid, base=base)
    assert main(["sweep", str(path), "--out", str(tmp_path / "sweep"), "--no-progress"]) == 0
    assert main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| method | steps | s_G = 90 % | s_G = 0 % |" in md
    assert "| method | s_G | seeds | steps | status | density G | ITOP G | train FLOPs | wall time (s) |" in md
    assert "s_D" not in md and "density D" not in md
    assert "vs generator sparsity (paper Fig. 4)" in md
