"""Experiments: sweep grids, loading run folders, Table-1-style tables, figures and reports.

Everything here reads run folders (DESIGN.md, "Run folder") and launches runs through the
``sparsegan`` entry point; nothing imports the training package.
"""

from sparsegan.experiments.grid import Grid, Point, load_grid
from sparsegan.experiments.results import RunResult, load_runs
from sparsegan.experiments.sweep import run_sweep

__all__ = ["Grid", "Point", "RunResult", "load_grid", "load_runs", "run_sweep"]
