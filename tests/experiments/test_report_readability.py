"""The report reads without guessing: no heat-map of one cell, every text in a figure at 8 pt or
more at the saved size, one number format per table column, and a wall-time column that says what
it is and is not. Through `sparsegan report` on small hand-made run folders."""

import json
import re
from html import unescape
from pathlib import Path

import pytest

from sparsegan.cli import main
from sparsegan.experiments import plots


def _run(root: Path, name: str, method: str, sg: float, sd: float, seed: int, *, fid: float | list[float],
         flops: float | None = None, density_g: float | None = None, itop_g: float | None = None,
         wall: float = 1.0, balance: bool = False) -> Path:
    """A finished run folder as `sparsegan train` leaves it; ``fid`` a list: evaluated at steps 10, 20, ..."""
    run = root / name
    (run / "samples").mkdir(parents=True)
    cfg = {"method": method, "sparsity_g": sg, "sparsity_d": sd, "seed": seed, "model": "mlp", "steps": 20}
    (run / "config.json").write_text(json.dumps(cfg))
    summary = {"status": "completed", "step": 20,
               "density": {"G": 1 - sg if density_g is None else density_g, "D": 1 - sd},
               "itop_rate": {"G": 1 - sg + 0.1 if itop_g is None else itop_g, "D": 1 - sd}, "wall_time_s": wall}
    if flops is not None:
        summary["flops"] = {"train_total": flops}
    (run / "summary.json").write_text(json.dumps(summary))
    recs = [{"kind": "train", "step": s, "loss_d": 1.0, "loss_g": 2.0} for s in (10, 20)]
    if method != "dense":
        recs += [{"kind": "topology", "step": 10, "net": "G", "itop_rate": 1 - sg + 0.05, "pruned": 3},
                 {"kind": "topology", "step": 10, "net": "D", "itop_rate": 1 - sd + 0.05, "pruned": 2}]
    if balance:
        recs += [{"kind": "balance", "step": s, "balance_ratio": b} for s, b in ((10, 0.4), (20, 0.5))]
    values = fid if isinstance(fid, list) else [fid]
    steps = [20] if len(values) == 1 else [10 * (i + 1) for i in range(len(values))]
    recs += [{"kind": "eval", "step": s, "fid": v, "num_samples": 100, "generator": "ema", "source": "training"}
             for s, v in zip(steps, values)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    from PIL import Image

    Image.new("L", (10, 10), color=seed * 40).save(run / "samples" / "step-00000020.png")
    return run


def _report(runs: Path, out: Path) -> tuple[str, str, set[str]]:
    assert main(["report", str(runs), "--out", str(out)]) == 0
    return ((out / "report.md").read_text(), (out / "report.html").read_text(),
            {p.name for p in (out / "figures").glob("*.png")})


def _table(md: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    lines = md.split(first_header, 1)[1].splitlines()
    header = [c.strip() for c in (first_header + lines[0]).strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().strip("*") for c in line.strip("|").split("|")])
    return header, rows


def test_one_cell_grid_has_no_heatmap_two_cells_have_one(tmp_path):
    one = tmp_path / "one"
    for seed in (0, 1):  # two methods, both at s_G 90 % / s_D 50 %: each panel would be one square
        _run(one, f"stu{seed}", "stu", 0.9, 0.5, seed, fid=10.0 + seed)
        _run(one, f"static{seed}", "static", 0.9, 0.5, seed, fid=20.0 + seed)
    md, html, figures = _report(one, tmp_path / "rep1")
    assert "heatmap.png" not in figures and "metric_vs_sparsity.png" in figures
    assert "s_G x s_D" not in md and "s_G x s_D" not in html  # no section, not even a "Not shown"

    two = tmp_path / "two"
    _run(two, "stu90", "stu", 0.9, 0.5, 0, fid=10.0)
    _run(two, "stu80", "stu", 0.8, 0.5, 0, fid=12.0)  # one row (s_D) x two columns (s_G)
    md, html, figures = _report(two, tmp_path / "rep2")
    assert "heatmap.png" in figures
    assert "### fid@100, weights after 20 steps: over s_G x s_D (paper Fig. 3)" in md
    assert "![fid@100, weights after 20 steps: over s_G x s_D (paper Fig. 3)](figures/heatmap.png)" in md


def test_every_figure_text_is_at_least_8_points(tmp_path, monkeypatch):
    """Each figure is inspected as it is saved: legends, tick labels, point labels, cell values."""
    seen = {}
    save = plots._save

    def inspect(fig, path):
        import matplotlib.text

        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
        legends = [leg for ax in fig.axes if (leg := ax.get_legend()) is not None]
        seen[path.name] = ([(t.get_text(), t.get_fontsize()) for t in texts],
                           [t.get_fontsize() for leg in legends for t in leg.get_texts()])
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", inspect)
    runs = tmp_path / "runs"
    for sg in (0.9, 0.8):
        for sd in (0.5, 0.3):
            _run(runs, f"stu_{sg}_{sd}", "stu", sg, sd, 0, fid=[30.0, 10.0 + 10 * sg + sd], flops=2e12 * (1 - sg),
                 balance=True)
    _run(runs, "dense", "dense", 0.0, 0.0, 0, fid=[40.0, 9.0], flops=1e13)
    _report(runs, tmp_path / "rep")
    assert set(seen) == {"metric_vs_sparsity.png", "heatmap.png", "metric_vs_flops.png", "metric_over_training.png",
                         "itop_rate.png", "balance_ratio.png", "losses.png", "samples.png"}
    for name, (texts, legend_sizes) in seen.items():
        small = [(t, size) for t, size in texts if size < 8]
        assert not small, (name, small)
    for name in ("metric_vs_sparsity.png", "metric_vs_flops.png", "itop_rate.png", "losses.png"):
        assert seen[name][1] and min(seen[name][1]) >= 8, name


def test_table_columns_have_one_format_and_wall_time_is_labelled(tmp_path):
    runs = tmp_path / "runs"
    # density G 1 / 0.05, ITOP 0.1347, FLOPs 6.8e12 / 9.5e11 / 4.2e10, wall times 1 / 12.25 / 3605
    _run(runs, "dense", "dense", 0.0, 0.0, 0, fid=112.5, flops=6.8e12, density_g=1.0, itop_g=1.0, wall=3605.0)
    _run(runs, "stu0", "stu", 0.95, 0.5, 0, fid=9.87, flops=9.5e11, density_g=0.05, itop_g=0.1347, wall=12.25)
    _run(runs, "stu1", "stu", 0.95, 0.5, 1, fid=11.0, flops=9.5e11, density_g=0.05, itop_g=0.1347, wall=12.25)
    _run(runs, "static0", "static", 0.8, 0.5, 0, fid=45.31, flops=4.2e10, density_g=0.2, itop_g=0.2, wall=1.0)
    md, html, _ = _report(runs, tmp_path / "rep")

    header, rows = _table(md, "| method | s_D | s_G | seeds |")
    col = {h: [r[i] for r in rows] for i, h in enumerate(header)}
    assert col["density G"] == ["1.0000", "0.2000", "0.0500"]
    assert col["ITOP G"] == ["1.0000", "0.2000", "0.1347"]
    assert col["train FLOPs"] == ["6.80 T", "42.0 G", "950 G"]  # 3 significant digits, SI prefix
    assert "wall time (s)" in header and col["wall time (s)"] == ["3605.0", "1.0", "12.2"]
    for name in ("density G", "density D", "ITOP G", "ITOP D", "wall time (s)"):
        assert len({len(v.partition(".")[2]) for v in col[name]}) == 1, (name, col[name])
    note = ("Wall time (s): seconds of training steps (summed over resumed sessions; sampling, evaluation and "
            "checkpoints not counted), mean over seeds. It depends on the machine's load and the thread count, so "
            "it is not a speed comparison unless the runs ran alone on the same machine with the same threads")
    assert note in md and note in unescape(html)
    assert md.index(note) > md.index("| method | s_D | s_G | seeds |")  # right under the table it explains

    # Table 1: one metric, one decimal count for every cell (the smallest mean, 10.435, to 3 digits: 1)
    _, rows = _table(md, "| method | s_D | steps |")
    cells = [c for r in rows for c in r[3:] if c]
    assert cells == ["112.5 (n=1)", "45.3 (n=1)", "10.4 ± 0.8 (n=2)"]  # std: 1.13 / sqrt(2) = 0.80
    numbers = [n for c in cells for n in re.findall(r"\d+\.\d+", c)]
    assert {len(n.partition(".")[2]) for n in numbers} == {1}


@pytest.mark.parametrize("x, text", [(6.8e12, "6.80 T"), (999.6e9, "1.00 T"), (42.0e9, "42.0 G"), (20.0, "20.0"),
                                     (100.0, "100"), (1234.0, "1.23 k")])
def test_si_counts_by_hand(x, text):
    from sparsegan.experiments.table import si

    assert si(x) == text
