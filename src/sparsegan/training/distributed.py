"""Data-parallel training across processes (``torchrun --nproc_per_node N -m sparsegan train``).

Every rank holds a full copy of G, D, the EMA generator and the masks, and trains on its shard
of each global batch. What keeps the ranks identical (DESIGN: "every rank holds the same masks"):

* weights, buffers and the initial masks are broadcast from rank 0 once, at start;
* after every backward pass each gradient is averaged over the ranks (all-reduce, hooked on the
  parameters, so it happens before the method sees the gradient): every rank then captures the
  same dense gradient for RigL regrowth, takes the same Adam step and makes the same topology
  decision, with the same seeded topology generator;
* every topology record carries ``mask_checksums`` (one per rank, all-gathered) and the run
  stops with :class:`RankDisagreement` when they differ.

The reference ImageNet code seeds each rank differently and never syncs masks (REFERENCE §6.6).
Only rank 0 writes the run folder. ``gloo`` on CPU, ``nccl`` on CUDA. ``--sync-bn`` replaces
every BatchNorm with :class:`SyncBatchNorm`, whose batch statistics span all ranks (torch's own
is CUDA-only; this one also runs on gloo).
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from sparsegan.errors import UserError
from sparsegan.run_folder import RunDir
from sparsegan.sparsity import MaskSet


class RankDisagreement(RuntimeError):
    """The ranks' masks differ: a bug, never a user mistake; the run stops."""


def resolve_device(requested: str) -> str:
    """``auto``: the best device present (cuda, then mps, then cpu), so one recipe runs anywhere;
    any other name as given, after checking that this machine has it (one line if not)."""
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        kind = torch.device(requested).type
    except RuntimeError:
        raise UserError(f"--device {requested}: not a torch device (cpu, cuda, cuda:1, mps, auto)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {requested}: this machine has no usable CUDA device (use --device cpu, or auto: "
                        "the best device present)")
    return requested


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of a torchrun launch (or the only process): the one that speaks."""
    return os.environ.get("RANK", "0") == "0"


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    _hooks: list = field(default_factory=list, repr=False)
    #: Whether a backward pass averages gradients over the ranks now: off for all but the last
    #: micro-batch of an accumulated step (:meth:`micro_batch`), so they are synchronised once.
    sync: bool = True

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> "DistContext":
        """The context torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
        MASTER_ADDR, MASTER_PORT); a single process when WORLD_SIZE is unset or 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        device = resolve_device(device)  # before any CUDA call: a machine without one fails in one line
        if world <= 1:
            return cls()
        int(os.environ["RANK"])  # RANK must be set and an integer; the rank itself comes from the process group
        local = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        if backend == "nccl" and local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                            "start at most that many processes per node (--nproc_per_node)")
        if not dist.is_initialized():
            if backend == "nccl":
                torch.cuda.set_device(local)
            dist.init_process_group(backend)
            atexit.register(_destroy)
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, backend=dist.get_backend())

    def device(self, requested: str) -> torch.device:
        """``cuda`` means this rank's GPU (LOCAL_RANK) under torchrun; ``auto`` the best device present.
        Checked by allocating on it: a device this machine lacks is one line naming the flag."""
        d = torch.device(resolve_device(requested))
        if self.enabled and d.type == "cuda" and d.index is None:
            d = torch.device("cuda", self.local_rank)
        try:
            torch.empty(0, device=d)
        except (RuntimeError, AssertionError) as e:
            raise UserError(f"--device {requested} is not usable here ({str(e).splitlines()[0]})") from None
        return d

    @property
    def comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    # --- batches ---------------------------------------------------------------------
    def check_batch(self, *sizes: int, accumulation: int = 1) -> None:
        for n in sizes:
            if n % self.world_size:
                raise UserError(f"batch size {n} is not divisible by the {self.world_size} processes")
            if (n // self.world_size) % accumulation:
                raise UserError(f"batch size {n} over {self.world_size} process(es) gives {n // self.world_size} "
                                f"images each, not divisible into --grad-accum {accumulation} micro-batches")

    @contextlib.contextmanager
    def micro_batch(self, last: bool) -> Iterator[None]:
        """A micro-batch's backward: gradients accumulate locally, and are averaged over the ranks
        only in the last one's (whose hook then reduces the whole accumulated gradient)."""
        self.sync = last
        try:
            yield
        finally:
            self.sync = True

    def shard(self, x: Tensor | None) -> Tensor | None:
        """This rank's rows of a global batch (the same strided split as EpochSampler)."""
        return x if x is None or not self.enabled else x[self.rank :: self.world_size]

    # --- start: identical weights and masks ------------------------------------------
    @torch.no_grad()
    def broadcast_module_(self, module: nn.Module) -> None:
        if not self.enabled:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            buf = t.detach().to(self.comm_device).contiguous()  # channels-last weights are not
            dist.broadcast(buf, 0)
            t.copy_(buf)

    def average_gradients(self, *modules: nn.Module) -> None:
        """Average each parameter's gradient over the ranks as soon as backward produces it."""
        if not self.enabled:
            return
        for module in modules:
            for p in module.parameters():
                if p.requires_grad:
                    self._hooks.append(p.register_post_accumulate_grad_hook(self._average))

    def _average(self, p: Tensor) -> None:
        if not self.sync:
            return
        g = p.grad if p.grad.is_contiguous() else p.grad.contiguous()  # channels-last gradients
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        if g is not p.grad:
            p.grad.copy_(g)
        p.grad.div_(self.world_size)

    # --- checks ------------------------------------------------------------------------
    def mask_checksums(self, masks: MaskSet) -> list[int]:
        """One checksum per rank (every rank gets the list); raises if they differ."""
        mine = masks.checksum()
        if not self.enabled:
            return [mine]
        sums: list[int] = [0] * self.world_size
        dist.all_gather_object(sums, mine)
        if len(set(sums)) != 1:
            raise RankDisagreement(f"masks differ between ranks: checksums {sums}")
        return sums

    def all_finite(self, ok: bool) -> bool:
        """True only if every rank says True (so all ranks stop together)."""
        if not self.enabled:
            return ok
        flag = torch.tensor([0.0 if ok else 1.0], device=self.comm_device)
        dist.all_reduce(flag)
        return bool(flag.item() == 0.0)

    # --- the run folder ----------------------------------------------------------------
    def mean(self, values: Tensor) -> Tensor:
        """The mean over the ranks of each entry of ``values`` (equal shards: the global batch's mean)."""
        if not self.enabled:
            return values
        out = values.detach().to(self.comm_device, torch.float64).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return (out / self.world_size).to(values.device, values.dtype)

    def barrier(self) -> None:
        """Every rank waits here (e.g. for files rank 0 writes and the others read)."""
        if self.enabled:
            dist.barrier()

    def prepare_run_dir(self, path, *, resume: bool, overwrite: bool) -> RunDir:
        """Rank 0 prepares the folder; the others wait, then get a view that writes nothing.
        An error on rank 0 (e.g. a folder of another run) is raised on every rank."""
        if not self.enabled:
            return RunDir.prepare(path, resume=resume, overwrite=overwrite)
        run, err = None, [None]
        if self.is_main:
            try:
                run = RunDir.prepare(path, resume=resume, overwrite=overwrite)
            except UserError as e:
                err = [str(e)]
        dist.broadcast_object_list(err, 0)
        if err[0] is not None:
            raise UserError(err[0])
        return run if self.is_main else SilentRunDir(path)


class SilentRunDir(RunDir):
    """The run folder as the non-zero ranks see it: readable (to resume), never written."""

    def log(self, record) -> None:
        pass

    def truncate_records_after(self, step: int) -> None:
        pass

    def write_config(self, config) -> None:
        pass

    def write_summary(self, summary) -> None:
        pass

    def save_grid(self, images, nrow, name: str):
        return self.samples / name

    def save_final(self, tensors) -> None:
        pass


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# --- synchronized batch norm --------------------------------------------------------------
class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training-mode statistics are over the global batch (all ranks).

    Sums and sums of squares are all-reduced with the differentiable collective, so gradients
    flow through the global statistics exactly as in single-process BN on the whole batch.
    Same parameter and buffer names as nn.BatchNorm*d: checkpoints are interchangeable.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local_n = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
        stats = _AllReduceSum.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims), local_n]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0.0)  # biased, as BN normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1.0)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum over ranks is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``module`` by :class:`SyncBatchNorm`, keeping the parameter
    objects (masks and optimizers that already hold them stay valid) and buffers."""
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        out = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, device=None)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        new = convert_sync_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module
