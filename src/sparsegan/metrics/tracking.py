"""Evaluation during training: at tick boundaries the loop hands over the EMA generator; this
logs a kind=eval record (with its protocol suffix, see sparsegan.protocols), keeps summary.json
"metrics": {"final", "best"} current, and saves the best generator as
RUN/final/generator_ema_best.safetensors. An autoencoder's held-out reconstruction (``recon``)
has a protocol of its own (the test split, the live nets) and so a record of its own.

"Best" is decided by the first metric of --eval-metrics (lower FID/KID/fid_domain, higher IS,
higher (precision + recall) / 2). It knows nothing of the loop: it gets a log function and a
function that saves a state dict, so metrics never import training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from sparsegan.metrics.evaluate import METRICS, Evaluator, headline
from sparsegan.metrics.generator import generator_sampler
from sparsegan.protocols import Protocol
from sparsegan.run_folder import FINAL_FILES, in_final, merge_summary, read_records

BEST_FILE = "G_ema_best"  # the best generator's role in final/ (run_folder.FINAL_FILES), for RunDir.save_final


def flat_values(results: dict[str, dict]) -> dict[str, Any]:
    """{metric: {values..., num_samples, ...}} -> one flat record: every value plus the counts."""
    out: dict[str, Any] = {}
    for name, r in results.items():
        for k, v in r.items():
            if k in ("num_samples", "num_ref", "dataset", "split", "resolution", "extractor", "weights_sha256"):
                continue
            out[k] = v
        out["num_samples"] = r["num_samples"]
        if r.get("num_ref") is not None:
            out["num_ref"] = r["num_ref"]
    return out


def _better(metric: str, new: float, old: float | None) -> bool:
    if old is None:
        return True
    return new < old if METRICS.get(metric).lower_is_better else new > old


def _holds(metric: str, record: dict) -> bool:
    """Whether a kind=eval record carries ``metric``'s values."""
    return {"pr": "precision", "recon": "recon_mse"}.get(metric, metric) in record


class TrainingEvaluation:
    """``evaluator``: the sample metrics (None when there are none); ``reconstruct``: () -> (values,
    number of held-out images), when ``recon`` is asked for; ``metrics``: all of them, in the order
    asked (the first decides "best"; a best by ``recon`` saves no generator: the decoder alone
    reconstructs nothing)."""

    def __init__(self, evaluator: Evaluator | None, run_path: str | Path, *, log: Callable[[dict], None],
                 save_best: Callable[[dict[str, torch.Tensor]], None], seed: int = 0, eval_mode: bool = True,
                 reconstruct: Callable[[], tuple[dict[str, float], int]] | None = None,
                 metrics: list[str] | None = None,
                 translate: Callable[[nn.Module], tuple[dict[str, dict], Protocol]] | None = None, dist=None,
                 runtime: Callable[[nn.Module], nn.Module] | None = None):
        self.evaluator, self.run_path, self.translate = evaluator, Path(run_path), translate
        # the sample metrics draw from runtime(G) where given (the sparse inference runtime), else G
        self.runtime = runtime
        # Under torchrun every rank generates and extracts its share (Evaluator.run); rank 0 alone
        # computes, logs and keeps the values.
        self.dist = dist
        self.main = dist is None or dist.is_main
        self.log, self.save_best, self.seed, self.eval_mode = log, save_best, seed, eval_mode
        self.reconstruct = reconstruct
        self.metrics = metrics if metrics is not None else list(evaluator.metrics)
        self.primary = self.metrics[0]
        self.best: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None
        self._restore()

    def _restore(self) -> None:
        """On resume: the best so far from the kind=eval records that survived the truncation."""
        for rec in read_records(self.run_path, "eval"):
            if rec.get("source") != "training" or not _holds(self.primary, rec):
                continue
            value = headline(self.primary, rec)
            if self.best is None or _better(self.primary, value, self.best["value"]):
                self.best = {**{k: v for k, v in rec.items() if k != "kind"}, "by": self.primary, "value": value}
            self.final = {k: v for k, v in rec.items() if k != "kind"}

    def __call__(self, step: int, G: nn.Module) -> dict[str, Any]:
        """Evaluate; return the record of the primary metric."""
        records = []
        if self.evaluator is not None:
            ev = self.evaluator
            sampling = G if self.runtime is None else self.runtime(G)
            results = ev.run(generator_sampler(sampling, seed=self.seed, device=next(G.parameters()).device,
                                               eval_mode=self.eval_mode), dist=self.dist)
            if results is None:  # not rank 0
                return {}
            # a diffusion model's samples depend on its sampler's steps: they are part of the protocol
            protocol = Protocol(ev.num_samples, ev.num_ref, ev.split, "ema", self.eval_mode,
                                getattr(G, "sample_steps", None))
            runtime = {} if self.runtime is None else {"runtime": "sparse"}
            records.append({"kind": "eval", "step": step, **flat_values(results), "generator": "ema",
                            "eval_mode": self.eval_mode, "split": ev.split, "protocol": protocol.suffix,
                            "source": "training", **runtime})
        if self.translate is not None:  # a translation pair: both directions (metrics.translation)
            results, protocol = self.translate(G)
            if results is None:  # not rank 0
                return {}
            records.append({"kind": "eval", "step": step, **flat_values(results), "generator": "ema",
                            "eval_mode": True, "split": protocol.split, "protocol": protocol.suffix,
                            "source": "training"})
        if self.reconstruct is not None and not self.main:
            return {}
        if self.reconstruct is not None:
            values, count = self.reconstruct()
            protocol = Protocol(count, None, "test", "raw", True)
            records.append({"kind": "eval", "step": step, **values, "num_samples": count, "generator": "raw",
                            "eval_mode": True, "split": "test", "protocol": protocol.suffix, "source": "training"})
        for record in records:
            self.log(record)
        record = next(r for r in records if _holds(self.primary, r))
        self.final = {k: v for k, v in record.items() if k != "kind"}
        value = headline(self.primary, record)
        if _better(self.primary, value, None if self.best is None else self.best["value"]):
            self.best = {**self.final, "by": self.primary, "value": value}
            if not METRICS.get(self.primary).needs_encoder:
                self.save_best({k: v.detach() for k, v in G.state_dict().items()})
        self._write_summary()
        return record

    def _write_summary(self) -> None:
        """Merge "metrics" into summary.json (atomically); the loop's own summary keeps it."""
        if not self.main:
            return
        metrics = {"final": self.final or {}, "best": self.best or {}}
        if not METRICS.get(self.primary).needs_encoder:
            metrics["best_generator"] = in_final(FINAL_FILES[BEST_FILE])
        merge_summary(self.run_path, {"metrics": metrics})
