"""Load run folders into plain records for reports. Reads files only; never imports training.

A run folder (DESIGN.md, "Run folder") is any folder with a config.json next to a metrics.jsonl or
a summary.json. Metric values are looked up, in this order: ``eval/<metric>.json`` (what
``sparsegan eval`` writes for the final generator), ``summary.json`` metrics.final, and the last
kind=eval record that carries the metric.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

# Lower is better unless listed here.
HIGHER_IS_BETTER = {"is", "precision", "recall", "pr_precision", "pr_recall", "inception_score"}
# Preferred metric when the user names none: the papers' FID first, then the cheap domain metric.
METRIC_PREFERENCE = ("fid", "fid_domain", "kid", "precision", "recall", "is")
# Config keys that never make two runs different experiments.
NOT_AN_AXIS = {"seed", "out", "data_root", "device", "log_every", "sample_every", "checkpoint_every",
               "keep_checkpoints", "num_sample_images", "tensorboard", "ignored", "ema_scope", "environment"}
# Keys a balance record may carry its value under (ADAPT's balance ratio).
BALANCE_KEYS = ("balance_ratio", "br", "ratio", "value")
# summary.json "flops" keys that may hold a whole run's training FLOPs, most specific first.
FLOPS_KEYS = ("train_total", "training_total", "train", "training", "total_train", "total")


def higher_is_better(metric: str) -> bool:
    return metric.lower() in HIGHER_IS_BETTER


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every well-formed JSON object of a JSONL file; a torn last line is ignored."""
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def flops_total(flops: Any) -> float | None:
    """A run's training FLOPs from summary.json "flops", or None when absent."""
    if _number(flops) is not None:
        return _number(flops)
    if not isinstance(flops, dict):
        return None
    for key in FLOPS_KEYS:
        v = flops.get(key)
        if _number(v) is not None:
            return _number(v)
        if isinstance(v, dict) and _number(v.get("total")) is not None:
            return _number(v["total"])
    return None


@dataclass
class RunResult:
    path: Path
    name: str
    config: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    # --- identity ------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def is_dense(self) -> bool:
        return self.method == "dense"

    def sparsity(self, net: str) -> float:
        """The target sparsity; 0 for dense, which accepts the flags and ignores them."""
        if self.is_dense:
            return 0.0
        return float(self.config.get(f"sparsity_{net.lower()}", 0.0))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "incomplete"))

    # --- records ---------------------------------------------------------------------------
    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == kind]

    def metric(self, name: str) -> float | None:
        data = _read_json(self.path / "eval" / f"{name}.json")
        if isinstance(data, dict):
            for key in (name, "value"):
                if _number(data.get(key)) is not None:
                    return _number(data[key])
        final = (self.summary.get("metrics") or {}).get("final") or {}
        if _number(final.get(name)) is not None:
            return _number(final[name])
        for rec in reversed(self.of_kind("eval")):
            if _number(rec.get(name)) is not None:
                return _number(rec[name])
        return None

    @cached_property
    def metric_names(self) -> set[str]:
        names = {p.stem for p in (self.path / "eval").glob("*.json")}
        names |= set(((self.summary.get("metrics") or {}).get("final") or {}))
        skip = {"kind", "step", "num_samples", "generator", "split", "num_ref", "wall_time_s", "seconds"}
        for rec in self.of_kind("eval"):
            names |= {k for k, v in rec.items() if k not in skip and _number(v) is not None}
        return {n for n in names if self.metric(n) is not None}

    @property
    def flops(self) -> float | None:
        return flops_total(self.summary.get("flops"))

    @property
    def samples(self) -> list[Path]:
        return sorted((self.path / "samples").glob("*.png"))

    def balance_series(self) -> list[tuple[int, float]]:
        out = []
        for rec in self.of_kind("balance"):
            for key in BALANCE_KEYS:
                if _number(rec.get(key)) is not None:
                    out.append((int(rec.get("step", 0)), float(rec[key])))
                    break
        return out


def is_run_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and ((path / "metrics.jsonl").exists() or (path / "summary.json").exists())


def load_runs(root: str | Path) -> list[RunResult]:
    """Every run folder at or below ``root``, sorted by path."""
    root = Path(root)
    found = [root] if is_run_folder(root) else sorted(p.parent for p in root.rglob("config.json") if is_run_folder(p.parent))
    runs = []
    for path in found:
        config = _read_json(path / "config.json")
        if not isinstance(config, dict):
            continue
        summary = _read_json(path / "summary.json")
        name = str(path.relative_to(root)) if path != root else path.name
        runs.append(RunResult(path=path, name=name, config=config,
                              summary=summary if isinstance(summary, dict) else {},
                              records=read_jsonl(path / "metrics.jsonl")))
    return runs


def varying_keys(runs: list[RunResult]) -> list[str]:
    """Config keys (other than method, sparsities and seed) whose value differs between runs."""
    keys: set[str] = set()
    for r in runs:
        keys |= set(r.config)
    out = []
    for k in sorted(keys - NOT_AN_AXIS - {"method", "sparsity_g", "sparsity_d"}):
        values = {json.dumps(r.config.get(k), sort_keys=True) for r in runs}
        if len(values) > 1:
            out.append(k)
    return out


def label(run: RunResult, axes: list[str]) -> str:
    """The row label of a run: its method, plus the other axes the runs differ in."""
    extra = [f"{k}={run.config.get(k)}" for k in axes]
    return run.method + (f" ({', '.join(extra)})" if extra else "")


def choose_metric(runs: list[RunResult], wanted: str | None) -> str | None:
    """The metric to tabulate: the one asked for, else the one most runs have (ties: METRIC_PREFERENCE).

    FID measured at a few key points only must not empty the table of a grid evaluated with the
    domain metric everywhere."""
    if wanted:
        return wanted
    counts: dict[str, int] = {}
    for r in runs:
        for m in r.metric_names:
            counts[m] = counts.get(m, 0) + 1
    if not counts:
        return None
    rank = {m: i for i, m in enumerate(METRIC_PREFERENCE)}
    return min(counts, key=lambda m: (-counts[m], rank.get(m, len(rank)), m))
