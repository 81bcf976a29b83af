"""Evaluation protocols: what a metric value measured, and where it is kept.

A metric value means something only next to its protocol: how many images were generated, how
many real ones (from which split) it was compared with, which generator weights (EMA, raw, best
EMA; eval or train mode) and at which training step. Values of different protocols are never
averaged, compared in one table column, or written over each other. A protocol is written as a
suffix of the value's name, the *label*:

    fid_domain@1000                 1,000 generated vs 1,000 real train images, EMA G, eval mode
    fid@50000,ref=all               50,000 generated vs the whole train split (the papers')
    kid@10000,ref=5000,split=test,G=raw,train-mode
    fid_domain@1000,nfe=20          a diffusion model's samples, 20 denoiser calls per image (DDIM)

(qualifiers appear only where they differ from the default: ``ref`` = as many real images as
generated, ``split=train``, ``G=ema``, eval mode; ``nfe`` always for a diffusion model, whose
samples depend on how many sampler steps made them, never for a GAN, which takes one call).
``sparsegan eval`` writes one file per (evaluator metric, protocol), ``RUN/eval/<metric><suffix>.json``,
e.g. ``eval/pr@1000.json`` holds precision and recall; each file records the step and the SHA-256
of the generator file it measured, so a run that trained on (or was replaced) leaves it *stale*,
never silently current. Every kind=eval record carries the same suffix under "protocol".

This module is plain Python (no torch): the evaluator, the sweep and the report share it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

# Value names of a kind=eval record or an eval file that are protocol fields, not metric values.
PROTOCOL_FIELDS = frozenset({
    "kind", "step", "metric", "num_samples", "num_ref", "dataset", "split", "resolution", "extractor",
    "weights_sha256", "generator", "eval_mode", "seed", "source", "protocol", "generator_file",
    "generator_sha256", "wall_time_s", "seconds", "kid_subset_size", "kid_subsets",
})
# A value that only qualifies another one (KID's spread over subsets, IS's over splits).
SPREAD_SUFFIX = "_std"
# The evaluator metric (and file) a value name comes from.
VALUE_TO_METRIC = {"precision": "pr", "recall": "pr", "kid_std": "kid", "is_std": "is",
                   "recon_mse": "recon", "psnr": "recon"}


# The defaults of an evaluation, defined once: `sparsegan eval` (and a sweep's eval block, read by its
# parser), the Evaluator, and evaluation during training (whose own counts are TrainConfig's eval_*).
DEFAULT_METRICS = "fid_domain"
DEFAULT_NUM_SAMPLES = 10_000  # `sparsegan eval`: generated images (the papers: 50,000)
DEFAULT_BATCH_SIZE = 64  # images per feature-extraction batch
SPLITS = ("train", "test")  # where the real images come from


@dataclass(frozen=True)
class Protocol:
    """The protocol of one evaluation, as asked for (``num_ref``: None = as many as generated,
    0 = the whole split, N = N real images)."""

    num_samples: int
    num_ref: int | None = None
    split: str = "train"
    generator: str = "ema"
    eval_mode: bool = True
    nfe: int | None = None  # a diffusion model's denoiser calls per image; None: a one-call generator

    @property
    def suffix(self) -> str:
        parts = [f"@{self.num_samples}"]
        if self.num_ref is not None and self.num_ref != self.num_samples:
            parts.append("ref=all" if self.num_ref == 0 else f"ref={self.num_ref}")
        if self.split != "train":
            parts.append(f"split={self.split}")
        if self.generator != "ema":
            parts.append(f"G={self.generator}")
        if not self.eval_mode:
            parts.append("train-mode")
        if self.nfe is not None:
            parts.append(f"nfe={self.nfe}")
        return ",".join(parts)

    def label(self, name: str) -> str:
        return name + self.suffix

    def describe(self) -> str:
        """Human words, e.g. '1,000 generated vs 1,000 real train images, EMA generator, eval mode'."""
        if self.num_ref is None:
            ref = f"{self.num_samples:,} real {self.split} images"
        elif self.num_ref == 0:
            ref = f"the whole {self.split} split"
        else:
            ref = f"{self.num_ref:,} real {self.split} images"
        g = {"ema": "EMA generator", "raw": "raw generator", "ema_best": "best EMA generator"}.get(self.generator,
                                                                                                  self.generator)
        nfe = "" if self.nfe is None else f", {self.nfe} denoiser calls per image"
        return f"{self.num_samples:,} generated vs {ref}, {g}, {'eval' if self.eval_mode else 'train'} mode{nfe}"

    def eval_args(self) -> list[str]:
        """The ``sparsegan eval`` flags that measure this protocol (after --metrics)."""
        args = ["--num-samples", str(self.num_samples)]
        if self.num_ref is not None and self.num_ref != self.num_samples:
            args += ["--num-ref", "all" if self.num_ref == 0 else str(self.num_ref)]
        if self.split != "train":
            args += ["--split", self.split]
        if self.generator != "ema":
            args += ["--generator", self.generator]
        return args + ([] if self.eval_mode else ["--train-mode"]) + \
            ([] if self.nfe is None else ["--sample-steps", str(self.nfe)])

    @classmethod
    def of_record(cls, rec: Mapping[str, Any]) -> "Protocol | None":
        """The protocol of a kind=eval record or an eval file; None without a sample count.

        Records written before protocols were named carry the real image count actually used
        (``num_ref``); it is read as a request for that many."""
        n = rec.get("num_samples")
        if isinstance(n, bool) or not isinstance(n, int):
            return None
        text = rec.get("protocol")  # a record's suffix ('@1000,ref=all'), an eval file's label ('fid@1000,...')
        if isinstance(text, str) and "@" in text:
            parsed = cls.parse(text[text.index("@"):])
            if parsed is not None:
                return parsed
        ref = rec.get("num_ref")
        ref = None if not isinstance(ref, int) or ref == n else ref
        return cls(n, ref, str(rec.get("split") or "train"), str(rec.get("generator") or "ema"),
                   rec.get("eval_mode", True) is not False)

    @classmethod
    def parse(cls, suffix: str) -> "Protocol | None":
        """The inverse of :attr:`suffix` ('@1000,ref=all'); None when it is not one."""
        if not suffix.startswith("@"):
            return None
        head, *quals = suffix[1:].split(",")
        try:
            kw: dict[str, Any] = {"num_samples": int(head)}
            for q in quals:
                key, _, val = q.partition("=")
                if key == "ref":
                    kw["num_ref"] = 0 if val == "all" else int(val)
                elif key == "split":
                    kw["split"] = val
                elif key == "G":
                    kw["generator"] = val
                elif key == "train-mode":
                    kw["eval_mode"] = False
                elif key == "nfe":
                    kw["nfe"] = int(val)
                else:
                    return None
        except ValueError:
            return None
        return cls(**kw)


def run_nfe(config: Mapping[str, Any]) -> int | None:
    """The denoiser calls per image a run samples with unless told otherwise: a diffusion model's
    ``sample_steps`` (its config.json lists the one net it trains, G, under "nets"); None for a
    generator that takes one call per image."""
    steps = config.get("sample_steps")
    return int(steps) if config.get("nets") == ["G"] and isinstance(steps, int) else None


def for_run(protocol: Protocol, config: Mapping[str, Any]) -> Protocol:
    """``protocol`` as ``sparsegan eval`` measures it on a run of this ``config``: a diffusion run's
    own NFE filled in where the protocol names none."""
    nfe = run_nfe(config)
    if protocol.nfe is not None or nfe is None:
        return protocol
    return Protocol(protocol.num_samples, protocol.num_ref, protocol.split, protocol.generator, protocol.eval_mode,
                    nfe)


def split_label(label: str) -> tuple[str, Protocol | None]:
    """'fid_domain@1000' -> ('fid_domain', Protocol(1000)); 'fid' -> ('fid', None)."""
    name, at, rest = label.partition("@")
    return name, (Protocol.parse("@" + rest) if at else None)


def eval_file(run: str | Path, metric: str, protocol: Protocol) -> Path:
    """Where ``sparsegan eval`` keeps one evaluator metric's result for one protocol (RUN/eval/...)."""
    from sparsegan.run_folder import RunLayout  # not at import: the CLI's parsers read this module

    return RunLayout(run).eval_file(metric, protocol.suffix)


def value_names(rec: Mapping[str, Any]) -> list[str]:
    """The metric values of a record or eval file (numbers that are not protocol fields or spreads)."""
    return [k for k, v in rec.items() if k not in PROTOCOL_FIELDS and not k.endswith(SPREAD_SUFFIX)
            and isinstance(v, (int, float)) and not isinstance(v, bool)]


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file (the generator weights an evaluation measured); None when it is absent."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def read_eval_file(path: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def staleness(run: str | Path, data: Mapping[str, Any], step: int | None, sha256=file_sha256) -> str | None:
    """None when an eval file measured the run's current weights; else why it is stale.

    Current means: written at the step the run is at now (summary.json "step"), and the generator
    file it measured still has the SHA-256 it recorded."""
    measured = data.get("step")
    if measured is None:
        return "it does not say which step it measured (written by an older sparsegan)"
    if measured != step:
        return f"measured at step {measured}, the run is now at step {step}"
    gen, sha = data.get("generator_file"), data.get("generator_sha256")
    if gen and sha and sha256(Path(run) / gen) != sha:
        return f"{gen} changed since it was measured"
    return None
