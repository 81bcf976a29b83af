"""The Fashion-MNIST study's tables and verdicts, generated from its committed run folders.

    python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist     # every results*.md and curves*.png
    python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist --runs runs-mlp  # results-mlp.md only
    python benchmarks/study-fmnist/study_fmnist.py benchmarks/study-fmnist --check  # fails if a results file differs

Reads only ``STUDY/RUNS/*/`` (config.json, metrics.jsonl, summary.json: the light files
``benchmarks/study-fmnist/study_collect.py`` copies out of a sweep) and ``STUDY/RUNS/COMMIT`` (the commit the
runs were trained at). Every number in the results file comes from those files;
tests/test_study_fmnist.py regenerates it, so a hand-edited number fails CI.

Protocol: fid_domain at 5,000 generated vs 5,000 real training images (label ``fid_domain@5000``),
evaluated during training every 1,000 steps; verdicts as ``study_common.py`` says. The pieces:
``study_grid.py`` (the core grid and the MLP cell), ``study_rows.py`` (Table 1's other rows,
exploration, block masks), ``study_tickets.py`` (the lottery-ticket claims).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from study_grid import plot_curves, render_grid
from study_rows import (
    baselines_curves,
    blocks_curves,
    explore_curves,
    plot_rows,
    render_baselines,
    render_blocks,
    render_explore,
    render_sparse_compute,
)
from study_tickets import render_generative_plateau, render_generative_tickets, render_tickets

PIECES = {"runs-baselines": render_baselines, "runs-explore": render_explore, "runs-tickets": render_tickets,
          "runs-generative-tickets": render_generative_tickets, "runs-blocks": render_blocks,
          "runs-generative-tickets-long": functools.partial(
              render_generative_tickets, runs="runs-generative-tickets-long",
              sweep="study-fmnist-generative-tickets-long.yaml"),
          "runs-generative-plateau": render_generative_plateau, "runs-sparse-compute": render_sparse_compute}
PIECE_CURVES = {"runs-baselines": baselines_curves, "runs-explore": explore_curves, "runs-blocks": blocks_curves}


def outputs(runs: str) -> tuple[str, str]:
    """The results and figure file names of a runs folder: runs -> results.md, runs-mlp -> results-mlp.md."""
    tag = "" if runs == "runs" else "-" + runs.removeprefix("runs-")
    return f"results{tag}.md", f"curves{tag}.png"


def render(study: Path, runs: str = "runs") -> str:
    """The results file of ``study/runs``: the core grid's (runs, runs-mlp) or a later piece's."""
    if runs in PIECES:
        return PIECES[runs](study)
    return render_grid(study, runs)


def _write(study: Path, runs: str, check: bool) -> bool:
    """Writes (or with ``check`` compares) one runs folder's results file and figure; False if it differs."""
    text = render(study, runs)
    results, figure = outputs(runs)
    target = study / results
    if check:
        same = target.exists() and target.read_text() == text
        print(f"{results} matches the runs" if same else f"{results} differs from what the runs give")
        return same
    target.write_text(text)
    if runs in PIECES and runs not in PIECE_CURVES:
        print(f"wrote {target}")
        return True
    if runs in PIECE_CURVES:
        figure = plot_rows(PIECE_CURVES[runs](study)[0], study / figure)
    else:
        figure = plot_curves(study, study / figure, runs)
    print(f"wrote {target} and {figure}")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="the study folder (runs/, results.md, ...)")
    ap.add_argument("--runs", default=None,
                    help="one runs folder inside it (runs, runs-mlp, ...); default: every runs* folder with a COMMIT")
    ap.add_argument("--check", action="store_true", help="exit 1 if a results file differs from what the runs give")
    args = ap.parse_args()
    pieces = [args.runs] if args.runs else sorted(
        p.name for p in args.study.glob("runs*") if p.is_dir() and (p / "COMMIT").is_file())
    if not pieces:
        print(f"study_fmnist: no runs* folder with a COMMIT file in {args.study}", file=sys.stderr)
        return 2
    results = [_write(args.study, runs, args.check) for runs in pieces]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
