"""One run of the loop as ``sparsegan train`` runs it: the loop (sparsegan.training.loop) with the
hooks a run needs beyond stepping, which the loop itself knows nothing of: its end (final/*.safetensors
and summary.json, with the FLOPs accounting), with ``--tensorboard`` a TensorBoard mirror of the run
folder, and with ``--eval-runtime sparse`` the sparse inference runtime its evaluations sample.
IMP's rounds (sparsegan.launch.rounds) are runs of this too."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from sparsegan.config import TrainConfig
from sparsegan.training import loop
from sparsegan.training.trainer import Trainer, params_summary


def train_one(
    cfg: TrainConfig,
    *,
    resume: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_step: Callable[[Trainer], None] | None = None,
    on_start: Callable[[Trainer], None] | None = None,
) -> Path:
    """Train one run of the loop into ``cfg.out`` (``on_start`` / ``on_step``: the caller's hooks)."""
    hooks = loop.Hooks(on_start=[on_start] if on_start else [], on_step=[on_step] if on_step else [],
                       on_end=[finish_run])
    if cfg.eval_runtime == "sparse":  # the evaluation's samples from the sparse inference runtime
        from sparsegan.inference.runtime import sparsify

        hooks.eval_sampler = lambda G: sparsify(G, "auto")
    if cfg.tensorboard:  # an optional dependency, imported only when asked for: fail before writing anything
        from sparsegan.experiments.tensorboard import TensorBoardMirror, summary_writer_class

        summary_writer_class()
        mirror: dict[str, TensorBoardMirror] = {}

        def start_mirror(t: Trainer) -> None:
            if t.dist.is_main:  # it reads the run folder only, on rank 0
                mirror["tb"] = TensorBoardMirror(t.run.path)

        hooks.on_start.append(start_mirror)
        hooks.on_log.append(lambda t: mirror["tb"].sync() if "tb" in mirror else None)
        hooks.on_close.append(lambda t: mirror.pop("tb").close() if "tb" in mirror else None)
    return loop.train(cfg, resume=resume, overwrite=overwrite, progress=progress, hooks=hooks)


def flops_of(t: Trainer) -> dict[str, Any]:
    """FLOPs totals for summary.json (sparsegan.efficiency); a failure is reported, not fatal."""
    from sparsegan.efficiency import flops_summary
    from sparsegan.run_folder import read_records

    try:
        return flops_summary(t.nets, {net: t.sparse.masks[net].masks for net in t.nets},
                             t.cfg.to_dict(), read_records(t.run.path), t.step, t.phases())
    except Exception as e:  # the summary must still be written
        print(f"sparsegan: warning: FLOPs not counted ({type(e).__name__}: {e})", file=sys.stderr)
        return {"error": f"{type(e).__name__}: {e}"}


def finish_run(t: Trainer, status: str) -> None:
    """final/*.safetensors and summary.json."""
    run, sparse = t.run, t.sparse
    if status == "completed":
        masks = {f"{net}.{n}": m for net in t.nets for n, m in sparse.masks[net].masks.items()}
        run.save_final({"G": t.G.state_dict(), "G_ema": t.ema.model.state_dict(),
                        **({"D": t.D.state_dict()} if t.D is not None else {}), "masks": masks})
    # The evaluation during training keeps its "metrics" in the same file (merged, not replaced).
    run.merge_summary({
        "step": t.step,
        "params": params_summary(t),
        "density": sparse.density(),
        "itop_rate": {net: sparse.masks[net].itop_rate() for net in t.nets},
        "phases": t.phases(),
        "flops": flops_of(t),
        "wall_time_s": t.wall_time,
        "status": status,
    }, defaults={"metrics": {"final": {}, "best": {}}})
