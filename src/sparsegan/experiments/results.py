"""Load run folders into plain records for reports. Reads files only; never imports training.

A run folder (DESIGN.md, "Run folder") is any folder with a config.json next to a metrics.jsonl or
a summary.json.

Metric values are always looked up under a *label*, the value's name plus its protocol
(``fid_domain@1000``, ``fid@50000,ref=all``; :mod:`sparsegan.protocols`): values of different
protocols are never taken for one another. A run's value for a label is *current* only if it
measured the weights the run has now: the eval file ``eval/<metric><suffix>.json`` when
``sparsegan eval`` wrote one (same step as summary.json, same generator SHA-256), else the last
kind=eval record of that label if it is at the run's step (evaluation during training). Anything
older is *stale*: reported as such, never shown as the run's result.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sparsegan.protocols import (
    VALUE_TO_METRIC,
    Protocol,
    file_sha256,
    read_eval_file,
    split_label,
    staleness,
    value_names,
)
from sparsegan.run_folder import RunFolder, find_run_folders, read_json_or_none, read_records

# Lower is better unless listed here.
HIGHER_IS_BETTER = {"is", "precision", "recall", "pr_precision", "pr_recall", "inception_score"}
# Preferred metric when the user names none: the papers' FID first, then the cheap domain metric.
METRIC_PREFERENCE = ("fid", "fid_domain", "kid", "precision", "recall", "is")
# Config keys that never make two runs different experiments.
NOT_AN_AXIS = {"seed", "out", "data_root", "device", "log_every", "sample_every", "checkpoint_every",
               "keep_checkpoints", "num_sample_images", "tensorboard", "ignored", "ema_scope", "environment",
               # derived from the config by an IMP run (its round plan, per-net ranking, control seed)
               "imp_rounds", "imp_ranking_by_net", "reinit_seed"}
# Keys a balance record may carry its value under (ADAPT's balance ratio).
BALANCE_KEYS = ("balance_ratio", "br", "ratio", "value")
# summary.json "flops" keys that may hold a whole run's training FLOPs, most specific first.
FLOPS_KEYS = ("train_total", "training_total", "train", "training", "total_train", "total")


def higher_is_better(metric: str) -> bool:
    return metric.lower() in HIGHER_IS_BETTER


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


@dataclass(frozen=True)
class Measurement:
    """One metric value with its protocol and the training step of the weights it measured."""

    name: str  # the value's name: fid, kid, precision, recall, fid_domain, is, ...
    protocol: Protocol
    value: float
    step: int | None
    source: str  # "eval file" | "eval record" | "training record"
    stale: str | None = None  # why it no longer describes the run (None: current)

    @property
    def label(self) -> str:
        return self.protocol.label(self.name)


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
        """The target sparsity; 0 for dense, which accepts the flags and ignores them, and for a net the
        model does not have (a diffusion model's D: config.json's "nets" lists G alone)."""
        if self.is_dense or net not in self.config.get("nets", ("G", "D")):
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

    @property
    def step(self) -> int | None:
        """The step the run is at: summary.json's, else the last record's (a run still training)."""
        if isinstance(self.summary.get("step"), int):
            return self.summary["step"]
        steps = [r["step"] for r in self.records if isinstance(r.get("step"), int)]
        return max(steps) if steps else None

    @cached_property
    def _hashes(self) -> dict[Path, str | None]:
        return {}

    def _sha256(self, path: Path) -> str | None:
        if path not in self._hashes:
            self._hashes[path] = file_sha256(path)
        return self._hashes[path]

    @cached_property
    def measurements(self) -> dict[str, Measurement]:
        """label -> the run's latest measurement of it, current or stale (see the module doc)."""
        out: dict[str, Measurement] = {}
        from_files: set[str] = set()
        for path in RunFolder(self.path).eval_files():
            data = read_eval_file(path)
            proto = Protocol.of_record(data) if data else None
            if proto is None:
                continue
            why = staleness(self.path, data, self.step, self._sha256)
            for name in value_names(data):
                m = Measurement(name, proto, float(data[name]), data.get("step"), "eval file", why)
                if _number(data[name]) is not None:
                    out[m.label] = m
                    from_files.add(m.label)
        for rec in self.of_kind("eval"):
            proto = Protocol.of_record(rec)
            if proto is None:
                continue
            source = "eval record" if rec.get("source") == "eval" else "training record"
            for name in value_names(rec):
                label = proto.label(name)
                if _number(rec[name]) is None or (label in from_files and source == "eval record"):
                    continue
                step = rec.get("step")
                if label in from_files and out[label].stale is None:
                    continue  # a current eval file wins over a record of the same protocol
                why = None if step == self.step else f"measured at step {step}, the run is now at step {self.step}"
                out[label] = Measurement(name, proto, float(rec[name]), step, source, why)
        return out

    def current(self, label: str) -> Measurement | None:
        m = self.measurements.get(label)
        return m if m is not None and m.stale is None else None

    def metric(self, label: str) -> float | None:
        """The run's current value under ``label`` (e.g. 'fid_domain@1000'); None if missing or stale."""
        m = self.current(label)
        return None if m is None else m.value

    def series(self, label: str) -> list[tuple[int, float]]:
        """(step, value) of every kind=eval record of ``label`` (the metric over training)."""
        out = {}
        for rec in self.of_kind("eval"):
            proto = Protocol.of_record(rec)
            name, _ = split_label(label)
            if proto is not None and proto.label(name) == label and _number(rec.get(name)) is not None \
                    and isinstance(rec.get("step"), int):
                out[rec["step"]] = float(rec[name])
        return sorted(out.items())

    @cached_property
    def metric_names(self) -> set[str]:
        """The value names this run has a measurement of (current or stale: a report lists stale ones)."""
        return {m.name for m in self.measurements.values()}

    @property
    def flops(self) -> float | None:
        return flops_total(self.summary.get("flops"))

    @property
    def samples(self) -> list[Path]:
        return RunFolder(self.path).sample_files()

    def empty_layers(self) -> dict[int, dict[str, list[str]]]:
        """round -> {net: layers with no active weight} of an IMP run (0 for a single run): from the
        per-layer densities its summary.json records for every round but the last ("phases") and the
        kind=empty_layers records of the run or its rounds (runs trained since the engine writes them)."""
        out: dict[int, dict[str, set[str]]] = {}
        for phase in self.summary.get("phases", []):
            name = str(phase.get("phase", ""))
            for net, layers in phase.get("density", {}).items() if name.startswith("round-") else ():
                empty = {n for n, d in layers.items() if d == 0} if isinstance(layers, dict) else set()
                if empty:
                    out.setdefault(int(name.split("-")[1]), {}).setdefault(net, set()).update(empty)
        rounds = sorted((self.path / "rounds").glob("round-*")) if (self.path / "rounds").is_dir() else []
        runs = [(0, self)] + [(int(r.name.split("-")[1]), loaded) for r in rounds for loaded in load_runs(r)[:1]]
        for k, run in runs:
            for rec in run.of_kind("empty_layers"):
                for net, names in rec.get("layers", {}).items():
                    out.setdefault(k, {}).setdefault(net, set()).update(names)
        return {k: {net: sorted(names) for net, names in sorted(nets.items())} for k, nets in sorted(out.items())}

    def balance_series(self) -> list[tuple[int, float]]:
        out = []
        for rec in self.of_kind("balance"):
            for key in BALANCE_KEYS:
                if _number(rec.get(key)) is not None:
                    out.append((int(rec.get("step", 0)), float(rec[key])))
                    break
        return out


def load_runs(root: str | Path) -> list[RunResult]:
    """Every run folder at or below ``root``, sorted by path."""
    root = Path(root)
    runs = []
    for path in find_run_folders(root):
        folder = RunFolder(path)
        config = read_json_or_none(folder.config_file)
        if not isinstance(config, dict):
            continue
        summary = read_json_or_none(folder.summary_file)
        name = str(path.relative_to(root)) if path != root else path.name
        runs.append(RunResult(path=path, name=name, config=config,
                              summary=summary if isinstance(summary, dict) else {},
                              records=read_records(path)))
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
    domain metric everywhere. ``wanted`` may be a name ('fid_domain') or a label ('fid_domain@1000')."""
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


def labels_of(runs: list[RunResult], metric: str) -> list[str]:
    """The protocols ``metric`` was measured under in these runs (current or stale), the one most
    runs have a current value of first (ties: more samples first). A label selects itself."""
    name, proto = split_label(metric)
    found: dict[str, list[int]] = {}
    for r in runs:
        for label, m in r.measurements.items():
            if m.name == name and (proto is None or label == metric):
                c = found.setdefault(label, [0, m.protocol.num_samples])
                c[0] += m.stale is None
    return sorted(found, key=lambda lab: (-found[lab][0], -found[lab][1], lab))


def metric_of(label: str) -> str:
    """The evaluator metric a label's value comes from ('precision@1000' -> 'pr')."""
    name, _ = split_label(label)
    return VALUE_TO_METRIC.get(name, name)
